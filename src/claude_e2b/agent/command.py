"""The Claude Code command line, built from the run's configuration.

The prompt never travels inside a shell string: it is uploaded as a file and
fed on stdin. Every argument is quoted with ``shlex.quote``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

CLAUDE_CODE_VERSION = "2.1.328"
CLAUDE_CODE_PACKAGE = f"@anthropic-ai/claude-code@{CLAUDE_CODE_VERSION}"

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

    def shell(self) -> str:
        """The bash command line: quoted argv, prompt on stdin, pid recorded for SIGINT."""
        # exec keeps the pid: the file names Claude Code itself, as the sandbox sees it.
        return (
            f"echo $$ > {shlex.quote(self.pid_path)} && "
            f"exec {shlex.join(self.argv)} < {shlex.quote(self.prompt_path)}"
        )

    def interrupt(self) -> str:
        """The command line that sends SIGINT to Claude Code (a graceful stop)."""
        return f'kill -INT "$(cat {shlex.quote(self.pid_path)})"'


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
