"""What the person (or the machine) watching a run sees: the ``RunView`` protocol.

The pipeline tells a view what happens — a step begins and ends, bytes move, the
agent acts, a warning is raised, the run ends — and the view decides how to show
it: a live terminal view (rich) on a TTY, plain lines in CI (``::group::`` on
Actions), or structured JSON lines for machines. :class:`NullView` shows nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from claude_e2b.result import RunResult


@dataclass(frozen=True)
class AgentStatus:
    """The agent's progress so far, for the live status line."""

    turns: int
    tokens: int
    cost_usd: float
    elapsed_s: float
    left_s: float


class Transfer(Protocol):
    """A byte transfer in progress (upload or download)."""

    def advance(self, nbytes: int) -> None:
        """``nbytes`` more have moved."""
        ...

    def set_total(self, total: int) -> None:
        """The total is known (or changed)."""
        ...


def counted(chunks: Iterable[bytes], transfer: Transfer) -> Iterator[bytes]:
    """``chunks`` unchanged, each one's size told to ``transfer`` as it passes (a download)."""
    for chunk in chunks:
        transfer.advance(len(chunk))
        yield chunk


class RunView(Protocol):
    """Receives what happens during a run; every method must be cheap and never raise."""

    def step(self, name: str) -> contextlib.AbstractContextManager[None]:
        """A step of the run (``Uploading``, ``Agent``…) while the block runs."""
        ...

    def transfer(self, name: str, total: int | None) -> contextlib.AbstractContextManager[Transfer]:
        """A byte transfer with a progress bar while the block runs."""
        ...

    def agent_line(self, text: str) -> None:
        """One line of the agent's activity: a tool call, a file, a command, its words."""
        ...

    def agent_status(self, status: AgentStatus) -> None:
        """The agent's live counters."""
        ...

    def warning(self, text: str) -> None:
        """Something the user should notice."""
        ...

    def info(self, text: str) -> None:
        """A plain note (where the results are, what was skipped…)."""
        ...

    def finished(self, result: RunResult) -> None:
        """The run is over: show the changed files and the cost."""
        ...


class _NullTransfer:
    def advance(self, nbytes: int) -> None:
        """Nothing to show."""

    def set_total(self, total: int) -> None:
        """Nothing to show."""


class NullView:
    """A view that shows nothing (library use, tests)."""

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:  # noqa: ARG002
        """Nothing to show."""
        yield

    @contextlib.contextmanager
    def transfer(self, name: str, total: int | None) -> Iterator[Transfer]:  # noqa: ARG002
        """Nothing to show."""
        yield _NullTransfer()

    def agent_line(self, text: str) -> None:
        """Nothing to show."""

    def agent_status(self, status: AgentStatus) -> None:
        """Nothing to show."""

    def warning(self, text: str) -> None:
        """Nothing to show."""

    def info(self, text: str) -> None:
        """Nothing to show."""

    def finished(self, result: RunResult) -> None:
        """Nothing to show."""
