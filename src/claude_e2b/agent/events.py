"""Claude Code's stream-json output → typed events.

Chunks from the sandbox arrive cut anywhere; :class:`LineSplitter` joins them
into whole lines. Each line is one JSON object; :func:`parse_event` turns it
into an event. Unknown types are kept as :class:`OtherEvent`; a line that is
not JSON becomes a :class:`BrokenLine` for the caller to log and pass over.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class InitEvent:
    """The session started: its id, model, tools and working directory."""

    session_id: str
    model: str
    cwd: str
    tools: tuple[str, ...]
    raw: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class ToolUse:
    """One tool call the assistant made."""

    tool_id: str
    name: str
    input: Mapping[str, Any]


@dataclass(frozen=True)
class AssistantEvent:
    """One assistant message part: text and/or tool calls, with the message id."""

    message_id: str
    model: str
    text: str
    tool_uses: tuple[ToolUse, ...]
    usage: Mapping[str, Any]
    raw: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class ToolResultEvent:
    """Tool results handed back to the model."""

    tool_ids: tuple[str, ...]
    is_error: bool
    raw: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class ResultEvent:
    """The run's final event: outcome, turns, usage, cost as Claude Code computed it."""

    subtype: str
    is_error: bool
    num_turns: int
    session_id: str
    result_text: str
    total_cost_usd: float | None
    usage: Mapping[str, Any]
    model_usage: Mapping[str, Any]
    duration_ms: int
    raw: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class StreamEvent:
    """A raw API stream event (``--include-partial-messages``): where live usage comes from.

    ``message_start`` carries the message id, model and input-side usage;
    ``message_delta`` the final output usage of the message started last.
    """

    kind: str
    message_id: str
    model: str
    usage: Mapping[str, Any]
    raw: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class OtherEvent:
    """An event type we do not interpret; kept for the transcript."""

    type: str
    raw: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class BrokenLine:
    """A line that is not a JSON object."""

    text: str
    error: str


Event = (
    InitEvent
    | AssistantEvent
    | ToolResultEvent
    | ResultEvent
    | StreamEvent
    | OtherEvent
    | BrokenLine
)


class LineSplitter:
    """Joins output chunks cut at arbitrary places into complete lines."""

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, chunk: str) -> list[str]:
        """Add a chunk; return the lines it completed (without newlines)."""
        text = self._pending + chunk
        *lines, self._pending = text.split("\n")
        return lines

    def flush(self) -> list[str]:
        """Return the last, unterminated line if there is one."""
        rest, self._pending = self._pending, ""
        return [rest] if rest.strip() else []


def parse_event(line: str) -> Event | None:
    """Parse one line of stream-json; None for a blank line."""
    if not line.strip():
        return None
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        return BrokenLine(line, str(exc))
    if not isinstance(data, dict):
        return BrokenLine(line, "not a JSON object")
    return _typed(data)


def _typed(data: dict[str, Any]) -> Event:
    kind = str(data.get("type", ""))
    if kind == "system" and data.get("subtype") == "init":
        kind = "system/init"
    parser = _PARSERS.get(kind)
    if parser is None:
        return OtherEvent(kind, data)
    try:
        return parser(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return BrokenLine(json.dumps(data)[:500], f"unexpected {kind} event shape: {exc}")


def _init(data: dict[str, Any]) -> InitEvent:
    return InitEvent(
        session_id=str(data.get("session_id", "")),
        model=str(data.get("model", "")),
        cwd=str(data.get("cwd", "")),
        tools=tuple(str(t) for t in data.get("tools", [])),
        raw=data,
    )


def _content(data: dict[str, Any]) -> list[dict[str, Any]]:
    message = data.get("message") or {}
    content = message.get("content") or []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [c for c in content if isinstance(c, dict)]


def _assistant(data: dict[str, Any]) -> AssistantEvent:
    message = data.get("message") or {}
    blocks = _content(data)
    return AssistantEvent(
        message_id=str(message.get("id", "")),
        model=str(message.get("model", "")),
        text="".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text"),
        tool_uses=tuple(
            ToolUse(str(b.get("id", "")), str(b.get("name", "")), dict(b.get("input") or {}))
            for b in blocks
            if b.get("type") == "tool_use"
        ),
        usage=dict(message.get("usage") or {}),
        raw=data,
    )


def _tool_results(data: dict[str, Any]) -> ToolResultEvent:
    results = [b for b in _content(data) if b.get("type") == "tool_result"]
    return ToolResultEvent(
        tool_ids=tuple(str(b.get("tool_use_id", "")) for b in results),
        is_error=any(bool(b.get("is_error")) for b in results),
        raw=data,
    )


def _stream(data: dict[str, Any]) -> StreamEvent:
    inner = data.get("event") or {}
    message = inner.get("message") or {}
    return StreamEvent(
        kind=str(inner.get("type", "")),
        message_id=str(message.get("id", "")),
        model=str(message.get("model", "")),
        usage=dict(message.get("usage") or inner.get("usage") or {}),
        raw=data,
    )


def _result(data: dict[str, Any]) -> ResultEvent:
    cost = data.get("total_cost_usd")
    return ResultEvent(
        subtype=str(data.get("subtype", "")),
        is_error=bool(data.get("is_error", False)),
        num_turns=int(data.get("num_turns", 0)),
        session_id=str(data.get("session_id", "")),
        result_text=str(data.get("result", "")),
        total_cost_usd=float(cost) if cost is not None else None,
        usage=dict(data.get("usage") or {}),
        model_usage=dict(data.get("modelUsage") or {}),
        duration_ms=int(data.get("duration_ms", 0)),
        raw=data,
    )


_PARSERS: dict[str, Callable[[dict[str, Any]], Event]] = {
    "system/init": _init,
    "assistant": _assistant,
    "user": _tool_results,
    "result": _result,
    "stream_event": _stream,
}
