"""Run Claude Code in the sandbox, follow its stream-json live, stop it on time and budget.

The output is followed in a worker thread; the calling thread polls the watchdog
once a second. A stop sends SIGINT to Claude Code, waits a grace period, then
kills it; either way the run goes on to collect the partial work. A dropped
output stream is re-attached (the agent keeps working meanwhile).
"""

from __future__ import annotations

import shlex
import threading
import time
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
    StreamEvent,
    parse_event,
)
from claude_e2b.agent.meter import UsageMeter
from claude_e2b.agent.watchdog import Action, Stop, Watchdog, WatchdogConfig
from claude_e2b.errors import AgentError, SandboxError, SandboxTimeoutError, SandboxTransientError
from claude_e2b.log import REDACTOR, get_logger
from claude_e2b.sandbox.session import BackgroundCommand, CommandOutcome, SandboxSession

INSTALL_TIMEOUT_S = 600.0
POLL_S = 1.0
MAX_RECONNECTS = 3
# The SDK's own stream timeout is only a backstop behind the watchdog.
STREAM_MARGIN_S = 300.0
# Raw stream events worth keeping in the transcript; text deltas repeat the assistant events.
KEPT_STREAM_KINDS = frozenset({"message_start", "message_delta"})
STDERR_TAIL = 4000

log = get_logger(__name__)
CostFunction = Callable[[UsageMeter], float]


@dataclass
class AgentOutcome:
    """What the agent run produced, whether or not it finished."""

    exit_code: int | None = None
    stopped: Stop | None = None
    init: InitEvent | None = None
    result: ResultEvent | None = None
    last_text: str = ""
    broken_lines: int = 0
    reconnects: int = 0
    stream_error: str = ""
    stderr_tail: str = ""
    meter: UsageMeter = field(default_factory=UsageMeter)

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

    @property
    def turns(self) -> int:
        """Turns so far: the result's count, else the API messages seen."""
        if self.result is not None:
            return self.result.num_turns
        return len(self.meter.per_message)


class _Follower:
    """Feeds output chunks through line splitting, the transcript and the event hook."""

    def __init__(
        self, transcript: IO[str], outcome: AgentOutcome, on_event: Callable[[Event], None]
    ) -> None:
        self._splitter = LineSplitter()
        self._transcript = transcript
        self._outcome = outcome
        self._on_event = on_event
        self._lock = threading.Lock()

    def feed(self, chunk: str) -> None:
        with self._lock:
            for line in self._splitter.feed(chunk):
                self._line(line)

    def restart(self) -> None:
        """After a reconnect: a line cut by the drop cannot be completed."""
        with self._lock:
            if self._splitter.flush():
                self._outcome.broken_lines += 1

    def finish(self) -> None:
        with self._lock:
            for line in self._splitter.flush():
                self._line(line)

    def _line(self, line: str) -> None:
        event = parse_event(line)
        if event is None:
            return
        if _worth_keeping(event):
            # Redacted before writing: the agent can echo the run's own keys.
            self._transcript.write(REDACTOR.redact(line.rstrip("\r")) + "\n")
            self._transcript.flush()
        self._record(event)
        self._on_event(event)

    def _record(self, event: Event) -> None:
        outcome = self._outcome
        outcome.meter.record(event)
        if isinstance(event, InitEvent):
            outcome.init = event
        elif isinstance(event, AssistantEvent) and event.text.strip():
            outcome.last_text = event.text
        elif isinstance(event, ResultEvent):
            outcome.result = event
        elif isinstance(event, BrokenLine):
            outcome.broken_lines += 1
            log.warning("agent.broken_line", error=event.error, line=event.text[:200])


def _worth_keeping(event: Event) -> bool:
    if isinstance(event, BrokenLine):
        return False
    return not isinstance(event, StreamEvent) or event.kind in KEPT_STREAM_KINDS


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


@dataclass
class _Worker:
    """Follows the command's output in a thread, re-attaching after a dropped stream."""

    session: SandboxSession
    handle: BackgroundCommand
    follower: _Follower
    outcome: AgentOutcome
    stream_timeout_s: float
    stderr: list[str] = field(default_factory=list)
    done: CommandOutcome | None = None
    error: SandboxError | None = None
    stopping: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while True:
            try:
                self.done = self.handle.wait(self.follower.feed, self.stderr.append)
            except SandboxTransientError as exc:
                if not self._reattach(exc):
                    return
            except SandboxError as exc:
                self.error = exc
                return
            else:
                return

    def _reattach(self, exc: SandboxError) -> bool:
        if self.stopping.is_set() or self.outcome.reconnects >= MAX_RECONNECTS:
            self.error = exc
            return False
        self.outcome.reconnects += 1
        log.warning("agent.stream_dropped", error=str(exc), reconnect=self.outcome.reconnects)
        self.follower.restart()
        try:
            self.handle = self.session.connect(self.handle.pid, timeout=self.stream_timeout_s)
        except SandboxError as again:
            self.error = again
            return False
        return True


def run_agent(
    session: SandboxSession,
    command: AgentCommand,
    *,
    prompt: str,
    env: Mapping[str, str],
    transcript_path: Path,
    limits: WatchdogConfig,
    on_event: Callable[[Event], None],
    on_action: Callable[[Action, AgentOutcome], None],
    cost_of: CostFunction,
    clock: Callable[[], float] = time.monotonic,
) -> AgentOutcome:
    """Upload the prompt, run Claude Code under the watchdog; return what happened."""
    session.write_file(command.prompt_path, prompt.encode("utf-8"))
    outcome = AgentOutcome()
    watchdog = Watchdog(limits, clock)
    stream_timeout = limits.hard_limit_s + limits.grace_s + STREAM_MARGIN_S
    handle = session.start(
        command.shell(), timeout=stream_timeout, cwd=command.cwd, envs={**QUIET_ENV, **env}
    )
    with transcript_path.open("w", encoding="utf-8") as transcript:
        follower = _Follower(transcript, outcome, on_event)
        worker = _Worker(session, handle, follower, outcome, stream_timeout)
        thread = threading.Thread(target=worker.run, name="claude-e2b-agent", daemon=True)
        thread.start()
        _supervise(thread, watchdog, outcome, on_action, cost_of)
        if outcome.stopped is not None:
            _stop(session, command, worker, thread, limits.grace_s)
        thread.join()
        follower.finish()
    return _finish(outcome, worker)


def _supervise(
    thread: threading.Thread,
    watchdog: Watchdog,
    outcome: AgentOutcome,
    on_action: Callable[[Action, AgentOutcome], None],
    cost_of: CostFunction,
) -> None:
    while thread.is_alive():
        thread.join(POLL_S)
        for action in watchdog.poll(cost_of(outcome.meter)):
            on_action(action, outcome)
            if isinstance(action, Stop):
                outcome.stopped = action
                return


def _stop(
    session: SandboxSession,
    command: AgentCommand,
    worker: _Worker,
    thread: threading.Thread,
    grace_s: float,
) -> None:
    """SIGINT, a grace period, then SIGKILL: Claude Code gets a chance to end cleanly."""
    worker.stopping.set()
    try:
        session.run(command.interrupt(), timeout=30)
    except SandboxError as exc:
        log.warning("agent.interrupt_failed", error=str(exc))
    thread.join(grace_s)
    if thread.is_alive():
        log.warning("agent.kill", reason="still running after the grace period")
        worker.handle.kill_quietly()
        thread.join(60)


def _finish(outcome: AgentOutcome, worker: _Worker) -> AgentOutcome:
    if worker.done is not None:
        outcome.exit_code = worker.done.exit_code
    if isinstance(worker.error, SandboxTimeoutError) and outcome.stopped is None:
        outcome.stream_error = "the agent's output stream reached its time limit"
    elif worker.error is not None:
        outcome.stream_error = REDACTOR.redact(str(worker.error))
    outcome.stderr_tail = REDACTOR.redact("".join(worker.stderr)[-STDERR_TAIL:])
    return outcome
