"""Live progress: turn Claude Code's events into short readable log lines."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from claude_e2b.agent.events import (
    AssistantEvent,
    BrokenLine,
    Event,
    InitEvent,
    ResultEvent,
    ToolUse,
)
from claude_e2b.agent.meter import UsageMeter
from claude_e2b.agent.watchdog import Action, Heartbeat, TimeWarning
from claude_e2b.github.workflow import Workflow
from claude_e2b.log import get_logger

log = get_logger(__name__)


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


def _tokens(meter: UsageMeter) -> tuple[int, int]:
    usage = [u for _model, u in meter.per_message.values()]
    fresh_in = sum(
        int(u.get(k) or 0)
        for u in usage
        for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    )
    return fresh_in, sum(int(u.get("output_tokens") or 0) for u in usage)


def heartbeat_line(elapsed_s: float, turns: int, meter: UsageMeter, cost_usd: float) -> str:
    """``12.0 min elapsed · 14 turns · 81,200 in / 3,100 out tokens · $0.4123 so far``."""
    tokens_in, tokens_out = _tokens(meter)
    return (
        f"{elapsed_s / 60:.1f} min elapsed · {turns} turns · "
        f"{tokens_in:,} in / {tokens_out:,} out tokens · ${cost_usd:.4f} so far"
    )


@dataclass
class Progress:
    """Renders the agent's events and the watchdog's actions into the log, live."""

    workflow: Workflow
    cost_of: Callable[[UsageMeter], float]
    cwd: str = ""
    warnings: list[str] = field(default_factory=list)

    def on_event(self, event: Event) -> None:
        """Log the readable lines for one event."""
        for line in describe(event, self.cwd):
            log.info("agent", line=line)

    def on_action(self, action: Action, outcome: AgentProgress) -> None:
        """Log (and annotate, on Actions) a warning, a heartbeat or a stop."""
        if isinstance(action, TimeWarning):
            self._warn(action.message())
        elif isinstance(action, Heartbeat):
            cost = self.cost_of(outcome.meter)
            log.info(
                "agent.heartbeat",
                line=heartbeat_line(action.elapsed_s, outcome.turns, outcome.meter, cost),
            )
        else:
            self._warn(f"{action.message()}: stopping it and keeping its work")

    def _warn(self, message: str) -> None:
        log.warning("agent.warning", message=message)
        self.workflow.warning(message)
        self.warnings.append(message)
