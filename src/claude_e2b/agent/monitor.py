"""Live progress: turn Claude Code's events into short readable log lines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from claude_e2b.agent.events import (
    AssistantEvent,
    BrokenLine,
    Event,
    InitEvent,
    ResultEvent,
    ToolUse,
)

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
