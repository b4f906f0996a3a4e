"""The Claude Code command line, built from the run's configuration, and its shell around it.

The prompt never travels inside a shell string: it is uploaded as a file and
fed on stdin. Every argument is quoted with ``shlex.quote``.

Claude Code runs in the background with its output going to files in the sandbox
(``launch``): a dropped connection cannot lose a byte of it. What the runner reads
is a second command (``follow``) that prints the output file from a byte offset
until the launcher ends, then the exit code (``EXIT_MARKER``) and the tail of
Claude Code's stderr on its own stderr; after a drop, a new reader starts from the
offset already read. Claude Code leads a process group of its own (``setsid``), so
``kill`` ends it and everything it started, and nothing else, on E2B as locally.
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass

CLAUDE_CODE_VERSION = "2.1.328"
CLAUDE_CODE_PACKAGE = f"@anthropic-ai/claude-code@{CLAUDE_CODE_VERSION}"

EXIT_MARKER = "claude-e2b-exit"
STDERR_TAIL_BYTES = 4000
# How long a reader waits for the launcher to say it started (600 x 0.05 s).
_START_POLLS = 600
# Keeps the CLI from calling home: no autoupdate, telemetry or side traffic.
QUIET_ENV = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
}


@dataclass(frozen=True)
class AgentCommand:
    """What is needed to start Claude Code in the sandbox."""

    argv: tuple[str, ...]
    prompt_path: str
    cwd: str
    pid_path: str

    @property
    def work_dir(self) -> str:
        """The sandbox directory of the run's agent files (the pid file's)."""
        return posixpath.dirname(self.pid_path) or "."

    @property
    def output_path(self) -> str:
        """Where Claude Code's stdout (stream-json) goes in the sandbox, whole."""
        return f"{self.work_dir}/agent.out"

    @property
    def stderr_path(self) -> str:
        """Where Claude Code's stderr goes in the sandbox."""
        return f"{self.work_dir}/agent.err"

    @property
    def exit_path(self) -> str:
        """Where the launcher writes Claude Code's exit code once it ended."""
        return f"{self.work_dir}/agent.exit"

    @property
    def launcher_path(self) -> str:
        """Where the launcher writes ``TOKEN PID`` once the output file is ready."""
        return f"{self.work_dir}/agent.launcher"

    def launch(self, token: str) -> str:
        """The background command: Claude Code, its output in files, then its exit code.

        ``token`` names this launch in the launcher file, so a reader never follows
        one from before. Claude Code's pid (its process group's) goes to ``pid_path``.
        """
        q = shlex.quote
        exit_path, launcher = q(self.exit_path), q(self.launcher_path)
        prepare = (
            f"mkdir -p -- {q(self.work_dir)} && : > {q(self.output_path)} && "
            f": > {q(self.stderr_path)} && rm -f -- {exit_path} {q(self.pid_path)} && "
            f"printf '%s %s\\n' {q(token)} \"$$\" > {launcher}.tmp && "
            f"mv -f -- {launcher}.tmp {launcher} || exit 125"
        )
        # setsid: Claude Code leads its own process group (see kill); -w: should setsid
        # fork, it still waits, so $? is Claude Code's own exit code.
        agent = (
            f'setsid -w sh -c \'echo $$ > "$0" && exec "$@"\' {q(self.pid_path)} '
            f"{shlex.join(self.argv)} < {q(self.prompt_path)} "
            f">> {q(self.output_path)} 2>> {q(self.stderr_path)}"
        )
        record = (
            f"code=$?; printf '%s\\n' \"$code\" > {exit_path}.tmp && "
            f'mv -f -- {exit_path}.tmp {exit_path}; exit "$code"'
        )
        return f"{prepare}\n{agent}\n{record}\n"

    def follow(self, token: str, offset: int) -> str:
        """The reader: the output file from byte ``offset`` until the launcher ends.

        Then, on stderr: ``EXIT_MARKER CODE`` (when the launcher lived to write it)
        and the tail of Claude Code's stderr. ``token`` "" follows whichever launch
        is there (another process, which cannot know the token).
        """
        q = shlex.quote
        wait_start = (
            f"n=0; until [ -s {q(self.launcher_path)} ] && "
            f"read -r token pid < {q(self.launcher_path)} && "
            f'{{ [ -z {q(token)} ] || [ "$token" = {q(token)} ]; }}; do '
            f"n=$((n+1)); if [ $n -gt {_START_POLLS} ]; then "
            "echo 'claude-e2b: the agent did not start' >&2; exit 3; fi; sleep 0.05; done"
        )
        read = f'tail -s 0.2 -c +{offset + 1} --pid="$pid" -f -- {q(self.output_path)}'
        report = (
            f"status=$?; if [ -s {q(self.exit_path)} ]; then "
            f"printf '{EXIT_MARKER} %s\\n' \"$(cat {q(self.exit_path)})\" >&2; fi; "
            f"tail -c {STDERR_TAIL_BYTES} -- {q(self.stderr_path)} >&2; exit $status"
        )
        return f"{wait_start}\n{read}\n{report}\n"

    def interrupt(self) -> str:
        """The command line that sends SIGINT to Claude Code (a graceful stop)."""
        return f'kill -INT "$(cat {shlex.quote(self.pid_path)})"'

    def kill(self) -> str:
        """The command line that SIGKILLs Claude Code's process group (all it started)."""
        return f'kill -KILL -- "-$(cat {shlex.quote(self.pid_path)})"'


def follow_agent(work_dir: str, offset: int = 0) -> str:
    """The reader of the agent launched in ``work_dir`` (the pid file's directory) by any process.

    For ``claude-e2b logs --follow``: Claude Code's stream-json from byte ``offset``,
    live until it ends (see ``AgentCommand.follow``).
    """
    return AgentCommand((), "", "", f"{work_dir}/agent.pid").follow("", offset)


def system_prompt(repo_dir: str, plan_file: str | None) -> str:
    """Rules the agent gets on top of Claude Code's own system prompt."""
    lines = [
        "You are running unattended in a disposable sandbox, started from CI by claude-e2b.",
        f"The repository is checked out at {repo_dir}: work only inside it.",
        (
            "Do not commit, push, or create branches: your changes to the files are collected "
            "automatically and turned into a pull request for a human to review."
        ),
        "Nobody can answer questions; make reasonable decisions and note them at the end.",
        "Finish with a short summary of what you changed and what is left to do.",
    ]
    if plan_file:
        lines.append(
            f"The task comes from the plan file {plan_file}. As you finish each task in "
            "its checklist, tick its checkbox in that file (- [ ] becomes - [x])."
        )
    return "\n".join(lines)


def build_command(
    *,
    claude_bin: str,
    model: str,
    repo_dir: str,
    prompt_path: str,
    plan_file: str | None,
    pid_path: str = "/tmp/claude-e2b/agent.pid",  # noqa: S108 - a path inside the sandbox
    max_turns: int | None = None,
    budget_usd: float | None = None,
) -> AgentCommand:
    """Assemble the argv for a non-interactive, fully permitted, stream-json run."""
    argv = [
        claude_bin,
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        # Raw stream events carry each message's final usage: the live cost for the budget.
        "--include-partial-messages",
        "--dangerously-skip-permissions",
        "--model",
        model,
        "--append-system-prompt",
        system_prompt(repo_dir, plan_file),
    ]
    if max_turns is not None:
        argv += ["--max-turns", str(max_turns)]
    if budget_usd is not None:
        argv += ["--max-budget-usd", f"{budget_usd:.4f}"]
    return AgentCommand(tuple(argv), prompt_path, repo_dir, pid_path)
