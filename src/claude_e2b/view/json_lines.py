"""The run as structlog events: the machine format (``--log-format json``).

Each thing that happens is one event with plain fields, rendered by the logging
setup (JSON lines, secrets redacted by its processor)::

    {"event": "step.start", "step": "Uploading", …}
    {"event": "transfer.progress", "name": "upload", "bytes": 47513600, "total": 475136000, …}
    {"event": "agent", "line": "Edit src/app.py", …}
    {"event": "agent.status", "turns": 12, "tokens": 84300, "cost_usd": 0.4123, …}
    {"event": "warning", "message": "…", "level": "warning", …}
    {"event": "run.finished", "status": "completed", "changes": 3, "cost_usd": 0.4223, …}

Transfers report at the same pace as the plain view (every tenth or five seconds).
Given a ``Workflow`` (on Actions), warnings are also annotations.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from claude_e2b.github.workflow import Workflow
from claude_e2b.log import get_logger
from claude_e2b.view import AgentStatus, Transfer
from claude_e2b.view.pacing import TransferPace

if TYPE_CHECKING:
    from claude_e2b.result import RunResult

log = get_logger("claude_e2b.view")


class _JsonTransfer:
    """Counts a transfer's bytes and logs ``transfer.progress`` when one is due."""

    def __init__(self, name: str, pace: TransferPace) -> None:
        self.name = name
        self.pace = pace
        self._lock = threading.Lock()

    def advance(self, nbytes: int) -> None:
        """``nbytes`` more have moved."""
        with self._lock:
            due = self.pace.advance(nbytes)
            done, total = self.pace.done, self.pace.total
        if due:
            log.info("transfer.progress", name=self.name, bytes=done, total=total)

    def set_total(self, total: int) -> None:
        """The total is known (or changed)."""
        with self._lock:
            self.pace.set_total(total)


class JsonView:
    """A ``RunView`` that logs every event through structlog (annotating warnings on Actions)."""

    def __init__(
        self, workflow: Workflow | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._workflow = workflow
        self._clock = clock

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """``step.start``, then ``step.done`` or ``step.failed`` with the seconds."""
        log.info("step.start", step=name)
        began = self._clock()
        try:
            yield
        except BaseException as exc:
            seconds = round(self._clock() - began, 3)
            log.error(  # noqa: TRY400 - the caller reports the error; here only the step
                "step.failed", step=name, seconds=seconds, error=str(exc) or repr(exc)
            )
            raise
        log.info("step.done", step=name, seconds=round(self._clock() - began, 3))

    @contextlib.contextmanager
    def transfer(self, name: str, total: int | None) -> Iterator[Transfer]:
        """``transfer.start``, paced ``transfer.progress``, ``transfer.done`` (or ``.failed``)."""
        handle = _JsonTransfer(name, TransferPace(total, self._clock))
        log.info("transfer.start", name=name, total=total)
        try:
            yield handle
        except BaseException:
            # The caller reports the error itself: no traceback here.
            log.error("transfer.failed", name=name, bytes=handle.pace.done)  # noqa: TRY400
            raise
        seconds = round(handle.pace.elapsed_s, 3)
        log.info("transfer.done", name=name, bytes=handle.pace.done, seconds=seconds)

    def agent_line(self, text: str) -> None:
        """``agent`` with the line."""
        log.info("agent", line=text)

    def agent_status(self, status: AgentStatus) -> None:
        """``agent.status`` with the counters (``left_s`` null without a limit)."""
        log.info(
            "agent.status",
            turns=status.turns,
            tokens=status.tokens,
            cost_usd=round(status.cost_usd, 6),
            elapsed_s=round(status.elapsed_s, 1),
            left_s=round(status.left_s, 1) if math.isfinite(status.left_s) else None,
        )

    def warning(self, text: str) -> None:
        """``warning`` with the message; an annotation too, given a workflow."""
        log.warning("warning", message=text)
        if self._workflow is not None:
            self._workflow.warning(text)

    def info(self, text: str) -> None:
        """``note`` with the message."""
        log.info("note", message=text)

    def finished(self, result: RunResult) -> None:
        """``run.finished``: status, counts, cost and the pull request's address."""
        log.info(
            "run.finished",
            run_id=result.run_id,
            status=result.status,
            changes=len(result.changes),
            skipped=len(result.skipped_changes),
            cost_usd=result.cost.get("total_usd", 0.0),
            seconds=round(result.timing.total_s, 3),
            pr=result.pr.url if result.pr else None,
        )
