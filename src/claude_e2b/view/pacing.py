"""How often a line-based view (plain text, JSON) reports something that moves.

A terminal redraws one line in place; a log can only add lines. So a transfer is
reported when another tenth of it has moved, or when five seconds passed since
the last line (a slow one still shows life) — never per chunk — and the agent's
counters once a minute. Not thread-safe on its own: the views hold their lock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

TRANSFER_STEPS = 10  # a line per tenth
TRANSFER_EVERY_S = 5.0
STATUS_EVERY_S = 60.0


@dataclass
class TransferPace:
    """Counts a transfer's bytes and says when a progress line is due."""

    total: int | None
    clock: Callable[[], float]
    every_s: float = TRANSFER_EVERY_S
    done: int = 0
    started: float = field(init=False)
    _last: float = field(init=False)
    _step_shown: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.started = self._last = self.clock()

    @property
    def elapsed_s(self) -> float:
        """Seconds since the transfer began."""
        return self.clock() - self.started

    def advance(self, nbytes: int) -> bool:
        """Count ``nbytes`` more; True when a line is due now (not at the very end)."""
        self.done += nbytes
        now = self.clock()
        step = self.done * TRANSFER_STEPS // self.total if self.total else 0
        if step >= TRANSFER_STEPS:
            return False  # the closing line says it
        due = step > self._step_shown or now - self._last >= self.every_s
        if due:
            self._last, self._step_shown = now, step
        return due

    def set_total(self, total: int) -> None:
        """The total is known (or changed)."""
        self.total = total


@dataclass
class StatusPace:
    """Says when the agent's counters are due again: once a minute."""

    clock: Callable[[], float]
    every_s: float = STATUS_EVERY_S
    _last: float | None = None

    def due(self) -> bool:
        """True at most once per ``every_s``; the first call only starts the clock."""
        now = self.clock()
        if self._last is None:
            self._last = now
            return False
        if now - self._last < self.every_s:
            return False
        self._last = now
        return True
