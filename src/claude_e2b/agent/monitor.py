"""Live progress: Claude Code's events as short readable lines and counters, for a view.

``describe`` turns an event into lines (``Edit src/app.py``, ``$ pytest -q``, the
agent's words); ``Progress`` hands them to a ``RunView`` with the live counters
(turns, tokens, dollars, time left) and the watchdog's warnings.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from claude_e2b.agent.events import (
    AssistantEvent,
    BrokenLine,
    Event,
    InitEvent,
    ResultEvent,
    StreamEvent,
    ToolUse,
)
from claude_e2b.agent.meter import UsageMeter
from claude_e2b.agent.watchdog import Action, Heartbeat, TimeWarning
from claude_e2b.github.workflow import Workflow
from claude_e2b.view import AgentStatus, RunView
from claude_e2b.view.json_lines import JsonView


class AgentProgress(Protocol):
    """What the heartbeat needs to know of the run so far."""

    @property
    def turns(self) -> int:
        """Turns so far."""
        ...

    @property
    def meter(self) -> UsageMeter:
        """Usage per API message so far."""
        ...


TEXT_PREVIEW = 200
_PATH_TOOLS = {
    "Edit": "file_path",
    "MultiEdit": "file_path",
    "Write": "file_path",
    "Read": "file_path",
    "NotebookEdit": "notebook_path",
}


def _relative(path: str, cwd: str) -> str:
    prefix = cwd.rstrip("/") + "/"
    return path[len(prefix) :] if cwd and path.startswith(prefix) else path


def _one_line(text: str, limit: int = TEXT_PREVIEW) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def describe_tool(tool: ToolUse, cwd: str = "") -> str:
    """Describe one tool call: ``Edit src/app.py``, ``$ pytest -q``, ``Grep TODO``."""
    args: Mapping[str, Any] = tool.input
    if tool.name in _PATH_TOOLS:
        return f"{tool.name} {_relative(str(args.get(_PATH_TOOLS[tool.name], '')), cwd)}"
    if tool.name == "Bash":
        return f"$ {_one_line(str(args.get('command', '')))}"
    for key in ("pattern", "query", "url", "description", "prompt"):
        if key in args:
            return f"{tool.name} {_one_line(str(args[key]), 120)}"
    return tool.name


def describe(event: Event, cwd: str = "") -> list[str]:
    """The log lines for one event (none for events not worth a line)."""
    if isinstance(event, InitEvent):
        return [f"Claude Code started (model {event.model}, session {event.session_id})"]
    if isinstance(event, AssistantEvent):
        lines = [f"  {_one_line(event.text)}"] if event.text.strip() else []
        return lines + [describe_tool(t, cwd) for t in event.tool_uses]
    if isinstance(event, ResultEvent):
        cost = f"${event.total_cost_usd:.4f}" if event.total_cost_usd is not None else "n/a"
        return [f"Claude Code finished: {event.subtype}, {event.num_turns} turns, cost {cost}"]
    if isinstance(event, BrokenLine):
        return [f"(unreadable output line skipped: {event.error})"]
    return []


def _tokens(meter: UsageMeter) -> int:
    """Tokens so far: input (fresh and cached) and output, over every message."""
    keys = (
        "input_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "output_tokens",
    )
    return sum(int(u.get(k) or 0) for _model, u in meter.per_message.values() for k in keys)


def _shows_progress(event: Event) -> bool:
    """Whether the counters may have moved: a message began, ended, or the run ended."""
    if isinstance(event, StreamEvent):
        return event.kind == "message_delta"
    return isinstance(event, AssistantEvent | ResultEvent)


@dataclass
class Progress:
    """Shows the agent's events and the watchdog's actions, live, through a view.

    Its hooks are called from two threads (events from the output follower,
    actions from the supervising loop): it keeps its own usage meter under a lock.
    Without a ``view``, a ``JsonView`` on ``workflow`` logs every line as before
    (``agent`` line=…, warnings annotated on Actions). Warnings are also kept in
    ``warnings`` for the result.
    """

    workflow: Workflow
    cost_of: Callable[[UsageMeter], float]
    cwd: str = ""
    warnings: list[str] = field(default_factory=list)
    view: RunView | None = None
    limit_s: float = math.inf
    clock: Callable[[], float] = time.monotonic
    _out: RunView = field(init=False, repr=False)
    _meter: UsageMeter = field(init=False, repr=False, default_factory=UsageMeter)
    _turns: int | None = field(init=False, repr=False, default=None)
    _started: float = field(init=False, repr=False)
    _shown: tuple[int, int, float] | None = field(init=False, repr=False, default=None)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._out = self.view if self.view is not None else JsonView(self.workflow)
        self._started = self.clock()

    def on_event(self, event: Event) -> None:
        """Show the readable lines for one event, and the counters when they moved."""
        with self._lock:
            self._meter.record(event)
            if isinstance(event, ResultEvent):
                self._turns = event.num_turns
        for line in describe(event, self.cwd):
            self._out.agent_line(line)
        if _shows_progress(event):
            self._show_status(self.clock() - self._started, always=False)

    # ``outcome`` stays in the signature the runner calls; the counters come from our meter.
    def on_action(self, action: Action, outcome: AgentProgress) -> None:  # noqa: ARG002
        """Show a time warning, the heartbeat's counters, or a stop (annotated on Actions)."""
        if isinstance(action, TimeWarning):
            self._warn(action.message())
        elif isinstance(action, Heartbeat):
            self._show_status(action.elapsed_s, always=True)
        else:
            self._warn(f"{action.message()}: stopping it and keeping its work")

    def status(self, elapsed_s: float) -> AgentStatus:
        """The counters now, ``elapsed_s`` into the run."""
        with self._lock:
            turns = self._turns if self._turns is not None else len(self._meter.per_message)
            tokens = _tokens(self._meter)
            cost = self.cost_of(self._meter)
        left = max(self.limit_s - elapsed_s, 0.0)
        return AgentStatus(turns, tokens, cost, elapsed_s, left)

    def _show_status(self, elapsed_s: float, *, always: bool) -> None:
        """Hand the counters to the view: on a heartbeat, or when they changed."""
        status = self.status(elapsed_s)
        key = (status.turns, status.tokens, round(status.cost_usd, 6))
        with self._lock:
            changed, self._shown = key != self._shown, key
        if always or changed:
            self._out.agent_status(status)

    def _warn(self, message: str) -> None:
        self._out.warning(message)
        self.warnings.append(message)
