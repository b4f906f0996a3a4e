"""Run Claude Code in the sandbox and follow its stream-json output live."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from claude_e2b.agent.command import CLAUDE_CODE_PACKAGE, QUIET_ENV, AgentCommand
from claude_e2b.agent.events import (
    AssistantEvent,
    BrokenLine,
    Event,
    InitEvent,
    LineSplitter,
    ResultEvent,
    parse_event,
)
from claude_e2b.errors import AgentError, SandboxTimeoutError
from claude_e2b.log import REDACTOR, get_logger
from claude_e2b.sandbox.session import SandboxSession

INSTALL_TIMEOUT_S = 600.0
log = get_logger(__name__)


@dataclass
class AgentOutcome:
    """What the agent run produced, whether or not it finished."""

    exit_code: int | None = None
    timed_out: bool = False
    init: InitEvent | None = None
    result: ResultEvent | None = None
    last_text: str = ""
    assistant_events: list[AssistantEvent] = field(default_factory=list)
    broken_lines: int = 0
    stderr_tail: str = ""

    @property
    def session_id(self) -> str:
        """Claude Code's session id, from the result or the init event."""
        if self.result is not None:
            return self.result.session_id
        return self.init.session_id if self.init is not None else ""

    @property
    def final_message(self) -> str:
        """The agent's closing words: the result text, else its last text."""
        if self.result is not None and self.result.result_text:
            return self.result.result_text
        return self.last_text


class _Follower:
    """Feeds output chunks through line splitting, the transcript and the event hook."""

    def __init__(
        self, transcript: IO[str], outcome: AgentOutcome, on_event: Callable[[Event], None]
    ) -> None:
        self._splitter = LineSplitter()
        self._transcript = transcript
        self._outcome = outcome
        self._on_event = on_event

    def feed(self, chunk: str) -> None:
        for line in self._splitter.feed(chunk):
            self._line(line)

    def finish(self) -> None:
        for line in self._splitter.flush():
            self._line(line)

    def _line(self, line: str) -> None:
        event = parse_event(line)
        if event is None:
            return
        if not isinstance(event, BrokenLine):
            # Redact before writing: the agent can echo the run's own keys.
            self._transcript.write(REDACTOR.redact(line.rstrip("\r")) + "\n")
            self._transcript.flush()
        self._record(event)
        self._on_event(event)

    def _record(self, event: Event) -> None:
        if isinstance(event, InitEvent):
            self._outcome.init = event
        elif isinstance(event, AssistantEvent):
            self._outcome.assistant_events.append(event)
            if event.text.strip():
                self._outcome.last_text = event.text
        elif isinstance(event, ResultEvent):
            self._outcome.result = event
        elif isinstance(event, BrokenLine):
            self._outcome.broken_lines += 1


def ensure_claude(session: SandboxSession, claude_bin: str) -> None:
    """Install the pinned Claude Code with npm when the sandbox has none."""
    found = session.run(f"command -v {shlex.quote(claude_bin)}", timeout=60)
    if found.ok:
        return
    log.warning("agent.installing_claude", package=CLAUDE_CODE_PACKAGE)
    out = session.run(
        f"npm install -g {shlex.quote(CLAUDE_CODE_PACKAGE)}",
        timeout=INSTALL_TIMEOUT_S,
        user="root",
    )
    if not out.ok:
        raise AgentError(
            f"Claude Code is not in the sandbox and npm could not install it: {out.stderr[-1000:]}",
            hint="use a template that has Claude Code (the default anthropic-claude-code does)",
        )


def run_agent(
    session: SandboxSession,
    command: AgentCommand,
    *,
    prompt: str,
    env: Mapping[str, str],
    transcript_path: Path,
    timeout_s: float,
    on_event: Callable[[Event], None],
) -> AgentOutcome:
    """Upload the prompt, run Claude Code, stream its events; return what happened."""
    session.write_file(command.prompt_path, prompt.encode("utf-8"))
    outcome = AgentOutcome()
    stderr: list[str] = []
    with transcript_path.open("w", encoding="utf-8") as transcript:
        follower = _Follower(transcript, outcome, on_event)
        handle = session.start(
            command.shell(), timeout=timeout_s, cwd=command.cwd, envs={**QUIET_ENV, **env}
        )
        try:
            done = handle.wait(on_stdout=follower.feed, on_stderr=stderr.append)
            outcome.exit_code = done.exit_code
        except SandboxTimeoutError:
            outcome.timed_out = True
            handle.kill()
        follower.finish()
    outcome.stderr_tail = REDACTOR.redact("".join(stderr)[-2000:])
    log.debug("agent.done", exit_code=outcome.exit_code, timed_out=outcome.timed_out)
    return outcome
