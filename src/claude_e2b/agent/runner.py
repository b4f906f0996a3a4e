"""Run Claude Code in the sandbox, follow its stream-json live, stop it on time, budget or cancel.

Claude Code runs in the background with its output going to a file in the sandbox
(see agent/command.py); what is followed, in a worker thread, is a reader command
that streams that file from a byte offset. When the reader's stream drops, a new
reader starts from the end of the last whole line read: the transcript is what
Claude Code printed, no line lost or repeated, whatever the network did. The
calling thread polls the watchdog once a second and the caller's ``cancel`` event
ten times a second. A stop sends SIGINT to Claude Code, waits a grace period, then
kills its process group; either way the run goes on to collect the partial work.
"""

from __future__ import annotations

import re
import secrets
import shlex
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from claude_e2b.agent.command import CLAUDE_CODE_PACKAGE, EXIT_MARKER, QUIET_ENV, AgentCommand
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
# How often the caller's cancel event is looked at: a cancel must act at once.
TICK_S = 0.1
MAX_RECONNECTS = 20
SIGNAL_TIMEOUT_S = 10.0
# After SIGKILL the reader sees the end within a fraction of a second; this bounds a stuck one.
KILL_WAIT_S = 10.0
# The SDK's own stream timeout is only a backstop behind the watchdog.
STREAM_MARGIN_S = 300.0
# Raw stream events worth keeping in the transcript; text deltas repeat the assistant events.
KEPT_STREAM_KINDS = frozenset({"message_start", "message_delta"})
STDERR_TAIL = 4000
_EXIT_LINE = re.compile(rf"^{EXIT_MARKER} (-?\d+)\n", re.MULTILINE)

log = get_logger(__name__)
CostFunction = Callable[[UsageMeter], float]


@dataclass
class AgentOutcome:
    """What the agent run produced, whether or not it finished.

    ``reconnects`` counts the output streams started again after a drop;
    ``output_path`` is where Claude Code's whole stream-json is in the sandbox.
    """

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
    output_path: str = ""

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
    """Feeds output chunks through line splitting, the transcript and the event hook.

    ``offset`` is the number of bytes of Claude Code's output taken in as whole
    lines: where a new reader starts after a drop. (Counted from the decoded text,
    it is exact for valid UTF-8, which stream-json is.)
    """

    def __init__(
        self, transcript: IO[str], outcome: AgentOutcome, on_event: Callable[[Event], None]
    ) -> None:
        self._splitter = LineSplitter()
        self._transcript = transcript
        self._outcome = outcome
        self._on_event = on_event
        self._lock = threading.Lock()
        self._closed = False
        self.offset = 0

    def feed(self, chunk: str) -> None:
        with self._lock:
            if self._closed:
                return
            for line in self._splitter.feed(chunk):
                self.offset += len(line.encode("utf-8")) + 1
                self._line(line)

    def restart(self) -> None:
        """After a dropped stream: forget the cut line; the next reader sends it whole."""
        with self._lock:
            self._splitter = LineSplitter()

    def finish(self) -> None:
        """Take in a last unterminated line; nothing is taken in after this."""
        with self._lock:
            if not self._closed:
                for line in self._splitter.flush():
                    self._line(line)
            self._closed = True

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
    found = session.run(f"command -v {shlex.quote(claude_bin)}", timeout=60, idempotent=True)
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
class _Reader:
    """Follows Claude Code's output file in a thread; a dropped stream starts a new reader."""

    session: SandboxSession
    command: AgentCommand
    token: str
    follower: _Follower
    outcome: AgentOutcome
    stream_timeout_s: float
    handle: BackgroundCommand | None = None
    done: CommandOutcome | None = None
    stderr: str = ""
    error: SandboxError | None = None

    def run(self) -> None:
        """Read until the launcher ends (or the reader cannot go on: ``error``)."""
        while True:
            try:
                self._read()
            except SandboxTransientError as exc:
                if not self._reattach(exc):
                    return
            except SandboxError as exc:
                self.error = exc
                return
            else:
                return

    def _read(self) -> None:
        script = self.command.follow(self.token, self.follower.offset)
        self.handle = self.session.start(script, timeout=self.stream_timeout_s, idempotent=True)
        stderr: list[str] = []
        self.done = self.handle.wait(self.follower.feed, stderr.append)
        self.stderr = "".join(stderr)

    def _reattach(self, exc: SandboxError) -> bool:
        if self.outcome.reconnects >= MAX_RECONNECTS:
            self.error = exc
            return False
        self.outcome.reconnects += 1
        log.warning(
            "agent.stream_dropped",
            error=str(exc),
            reconnect=self.outcome.reconnects,
            offset=self.follower.offset,
        )
        self.abandon()
        self.follower.restart()
        return True

    def abandon(self) -> None:
        """Stop the current reader (Claude Code goes on; its output stays in its file)."""
        if self.handle is not None:
            self.handle.kill_quietly()


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
    cancel: threading.Event | None = None,
    cancel_grace_s: float = 2.0,
) -> AgentOutcome:
    """Upload the prompt, run Claude Code under the watchdog; return what happened.

    Setting ``cancel`` (from any thread) stops Claude Code like a timeout, with
    ``Stop(reason="cancelled")`` and a grace of ``cancel_grace_s`` seconds.
    """
    session.write_file(command.prompt_path, prompt.encode("utf-8"))
    outcome = AgentOutcome(output_path=command.output_path)
    watchdog = Watchdog(limits, clock)
    stream_timeout = limits.hard_limit_s + limits.grace_s + STREAM_MARGIN_S
    token = secrets.token_hex(8)
    launcher = session.start(
        command.launch(token),
        timeout=stream_timeout,
        cwd=command.cwd,
        envs={**QUIET_ENV, **env},
    )
    with transcript_path.open("w", encoding="utf-8") as transcript:
        follower = _Follower(transcript, outcome, on_event)
        reader = _Reader(session, command, token, follower, outcome, stream_timeout)
        thread = threading.Thread(target=reader.run, name="claude-e2b-agent", daemon=True)
        thread.start()
        _supervise(thread, _Supervision(watchdog, on_action, cost_of, cancel), outcome)
        if outcome.stopped is not None:
            cancelled = outcome.stopped.reason == "cancelled"
            grace = cancel_grace_s if cancelled else limits.grace_s
            _stop(session, command, _Running(launcher, reader, thread), grace)
        follower.finish()
    return _finish(outcome, reader)


@dataclass(frozen=True)
class _Supervision:
    """What decides a stop: the watchdog, and the caller's cancel event."""

    watchdog: Watchdog
    on_action: Callable[[Action, AgentOutcome], None]
    cost_of: CostFunction
    cancel: threading.Event | None

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()


def _supervise(thread: threading.Thread, sup: _Supervision, outcome: AgentOutcome) -> None:
    """Wait for the reader to end; set ``outcome.stopped`` when the agent must stop first."""
    next_poll = time.monotonic() + POLL_S
    while thread.is_alive():
        thread.join(TICK_S)
        if sup.cancelled():
            actions: list[Action] = [sup.watchdog.cancel(sup.cost_of(outcome.meter))]
        elif time.monotonic() >= next_poll:
            next_poll += POLL_S
            actions = sup.watchdog.poll(sup.cost_of(outcome.meter))
        else:
            continue
        for action in actions:
            sup.on_action(action, outcome)
            if isinstance(action, Stop):
                outcome.stopped = action
                return


@dataclass(frozen=True)
class _Running:
    """The agent's commands while it runs: the launcher, the reader and its thread."""

    launcher: BackgroundCommand
    reader: _Reader
    thread: threading.Thread


def _stop(
    session: SandboxSession, command: AgentCommand, running: _Running, grace_s: float
) -> None:
    """SIGINT, a grace period, then SIGKILL: Claude Code gets a chance to end cleanly."""
    _signal(session, command.interrupt(), "SIGINT")
    running.thread.join(grace_s)
    if not running.thread.is_alive():
        return
    log.warning("agent.kill", reason="still running after the grace period", grace_s=grace_s)
    if not _signal(session, command.kill(), "SIGKILL"):
        running.launcher.kill_quietly()
    running.thread.join(KILL_WAIT_S)
    if running.thread.is_alive():
        log.warning("agent.reader_abandoned", reason="the agent's end was not seen in time")
        running.reader.abandon()


def _signal(session: SandboxSession, command_line: str, name: str) -> bool:
    """Run a signalling command; whether it worked (a failure is logged, not raised)."""
    try:
        out = session.run(command_line, timeout=SIGNAL_TIMEOUT_S)
    except SandboxError as exc:
        log.warning("agent.signal_failed", signal=name, error=str(exc))
        return False
    return out.ok


def exit_report(stderr: str) -> tuple[int | None, str]:
    """Claude Code's exit code and stderr tail, from what the reader printed at its end."""
    found = _EXIT_LINE.search(stderr)
    if found is None:
        return None, stderr
    return int(found.group(1)), stderr[found.end() :]


def _finish(outcome: AgentOutcome, reader: _Reader) -> AgentOutcome:
    code, stderr = exit_report(reader.stderr)
    outcome.exit_code = code
    outcome.stderr_tail = REDACTOR.redact(stderr[-STDERR_TAIL:])
    error = reader.error
    if isinstance(error, SandboxTimeoutError) and outcome.stopped is None:
        outcome.stream_error = "the agent's output stream reached its time limit"
    elif error is not None:
        outcome.stream_error = REDACTOR.redact(str(error))
    elif code is None and outcome.stopped is None:
        outcome.stream_error = (
            "the agent ended without reporting an exit code: it or its sandbox was killed"
        )
    return outcome
