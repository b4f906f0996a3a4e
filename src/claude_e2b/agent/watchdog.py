"""The agent's deadline and budget: warnings at marks, a heartbeat, a stop decision.

Pure logic over an injected clock: the runner polls it once a second while Claude
Code runs (its output is followed in another thread) and carries out what it says
(log a warning or a progress line, stop Claude). The caller may also cancel the
run (SIGINT/SIGTERM to claude-e2b): ``cancel`` turns that into a Stop like the
others. The runner stops gracefully: SIGINT, a grace period, then SIGKILL; the
partial work is collected after.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

StopReason = Literal["timeout", "budget", "cancelled"]


@dataclass(frozen=True)
class WatchdogConfig:
    """Limits of one agent run, in seconds and dollars."""

    hard_limit_s: float
    warn_at_s: tuple[float, ...] = ()
    budget_usd: float | None = None
    grace_s: float = 30.0
    heartbeat_s: float = 60.0


@dataclass(frozen=True)
class TimeWarning:
    """A time mark passed: ``mark_s`` of the ``limit_s`` seconds used."""

    mark_s: float
    limit_s: float

    def message(self) -> str:
        """Human text for the log and the annotation."""
        left = max(self.limit_s - self.mark_s, 0.0)
        return (
            f"the agent has run {_minutes(self.mark_s)} of its {_minutes(self.limit_s)} limit; "
            f"it will be stopped in {_minutes(left)} and its work so far kept"
        )


@dataclass(frozen=True)
class Heartbeat:
    """Time for a progress line."""

    elapsed_s: float


@dataclass(frozen=True)
class Stop:
    """Stop the agent now."""

    reason: StopReason
    elapsed_s: float
    cost_usd: float

    def message(self) -> str:
        """Human text for the log and the result."""
        if self.reason == "timeout":
            return f"the agent reached its time limit after {_minutes(self.elapsed_s)}"
        if self.reason == "cancelled":
            return f"the run was cancelled after {_minutes(self.elapsed_s)} of the agent's work"
        return f"the agent's running cost ${self.cost_usd:.4f} passed the budget"


Action = TimeWarning | Heartbeat | Stop


def _minutes(seconds: float) -> str:
    if seconds < 120:  # noqa: PLR2004 - below two minutes, seconds read better
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


@dataclass
class Watchdog:
    """Decides, from elapsed time and running cost, what the runner should do."""

    config: WatchdogConfig
    clock: Callable[[], float] = time.monotonic
    started: float = field(init=False)
    _pending_marks: list[float] = field(init=False)
    _next_beat: float = field(init=False)
    stopped: Stop | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.started = self.clock()
        limit = self.config.hard_limit_s
        self._pending_marks = sorted(m for m in self.config.warn_at_s if 0 < m < limit)
        self._next_beat = self.config.heartbeat_s

    @property
    def elapsed_s(self) -> float:
        """Seconds since the agent started."""
        return self.clock() - self.started

    def poll(self, cost_usd: float) -> list[Action]:
        """What to do now; a Stop is returned once, and nothing after it."""
        if self.stopped is not None:
            return []
        elapsed = self.elapsed_s
        actions: list[Action] = []
        while self._pending_marks and elapsed >= self._pending_marks[0]:
            actions.append(TimeWarning(self._pending_marks.pop(0), self.config.hard_limit_s))
        if elapsed >= self._next_beat:
            actions.append(Heartbeat(elapsed))
            self._next_beat = (elapsed // self.config.heartbeat_s + 1) * self.config.heartbeat_s
        stop = self._stop_reason(elapsed, cost_usd)
        if stop is not None:
            self.stopped = Stop(stop, elapsed, cost_usd)
            actions.append(self.stopped)
        return actions

    def cancel(self, cost_usd: float) -> Stop:
        """The run was cancelled: the Stop to carry out (the one given before, if any)."""
        if self.stopped is None:
            self.stopped = Stop("cancelled", self.elapsed_s, cost_usd)
        return self.stopped

    def _stop_reason(self, elapsed: float, cost_usd: float) -> StopReason | None:
        if elapsed >= self.config.hard_limit_s:
            return "timeout"
        budget = self.config.budget_usd
        if budget is not None and cost_usd > budget:
            return "budget"
        return None
