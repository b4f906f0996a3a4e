"""Live token usage per API message, from the stream: what the budget is checked on.

Claude Code repeats a message's usage on every content block of that message, and
the output tokens arrive only in the message's last ``message_delta``: so usage is
kept per message id and replaced, never summed across events.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from claude_e2b.agent.events import AssistantEvent, Event, StreamEvent

Usage = Mapping[str, Any]


class UsageMeter:
    """Collects ``message id → (model, usage)`` as events arrive."""

    def __init__(self) -> None:
        self._messages: dict[str, tuple[str, dict[str, Any]]] = {}
        self._current: str | None = None

    @property
    def per_message(self) -> Mapping[str, tuple[str, Usage]]:
        """The usage of every message seen so far."""
        return self._messages

    def record(self, event: Event) -> None:
        """Update the usage from one event; other events are ignored."""
        if isinstance(event, StreamEvent):
            self._stream(event)
        elif isinstance(event, AssistantEvent) and event.message_id:
            self._assistant(event)

    def _stream(self, event: StreamEvent) -> None:
        if event.kind == "message_start" and event.message_id:
            self._current = event.message_id
            self._messages[event.message_id] = (event.model, dict(event.usage))
        elif event.kind == "message_delta" and self._current in self._messages:
            usage = self._messages[self._current][1]
            # message_delta's figures replace message_start's, as the API defines them.
            usage.update({k: v for k, v in event.usage.items() if v is not None})

    def _assistant(self, event: AssistantEvent) -> None:
        # Without partial messages the assistant event is all there is; with them,
        # the stream's (fuller) figures are kept.
        if event.message_id not in self._messages:
            self._messages[event.message_id] = (event.model, dict(event.usage))
