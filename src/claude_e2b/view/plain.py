"""The run as plain lines, for logs that are not a terminal (CI, a file, GitHub Actions).

No colour and no cursor movement: every event is one line, written whole under a
lock (the agent's events come from a worker thread, upload progress from the
sender thread). Transfers report every tenth or every five seconds, the agent's
counters once a minute (see pacing)::

    ==> Uploading
        upload  45.3 MB / 453.2 MB  10%
        upload  453.2 MB in 3.2s (141.6 MB/s)
        done in 3.4s
    ==> Running the agent
        Edit src/app.py
        $ pytest -q
    warning: the agent has run 20 min of its 30 min limit; …

On Actions each top-level step is a collapsible ``::group::`` and a warning is a
``::warning::`` annotation. Text from outside (the agent's words and commands)
could start a workflow command of its own: a line that would begin with ``::``
and any ``##[`` are defused before they are written.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, TextIO

from claude_e2b.github.workflow import Workflow, command
from claude_e2b.view import AgentStatus, Transfer
from claude_e2b.view.pacing import StatusPace, TransferPace
from claude_e2b.view.tables import (
    COST_HEADER,
    change_rows,
    closing_line,
    closing_notes,
    cost_rows,
    skipped_rows,
)
from claude_e2b.view.text import duration, human_bytes, rate, safe, status_line

if TYPE_CHECKING:
    from claude_e2b.result import RunResult

INDENT = "    "


def defuse(line: str) -> str:
    """A line the Actions runner will not read as a workflow command.

    The runner takes a line as a command when it starts with ``::`` after leading
    spaces, or holds ``##[`` anywhere (the old syntax).
    """
    stripped = line.lstrip()
    if stripped.startswith("::"):
        line = line[: len(line) - len(stripped)] + "\\" + stripped
    return line.replace("##[", "##\\[")


def aligned(rows: Sequence[Sequence[str]], *, right: frozenset[int] = frozenset()) -> list[str]:
    """Rows as lines of columns two spaces apart; columns in ``right`` are right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))] if rows else []
    return [
        "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]


class _PlainTransfer:
    """Counts a transfer's bytes and writes a line when one is due."""

    def __init__(self, view: PlainView, name: str, pace: TransferPace) -> None:
        self._view = view
        self._name = name
        self.pace = pace

    def advance(self, nbytes: int) -> None:
        """``nbytes`` more have moved."""
        with self._view.lock:
            if self.pace.advance(nbytes):
                self._view.line(self.progress_text())

    def set_total(self, total: int) -> None:
        """The total is known (or changed)."""
        with self._view.lock:
            self.pace.set_total(total)

    def progress_text(self) -> str:
        """``upload  45.3 MB / 453.2 MB  10%`` (without a total: the bytes so far)."""
        done, total = self.pace.done, self.pace.total
        if not total:
            return f"{self._name}  {human_bytes(done)}"
        return f"{self._name}  {human_bytes(done)} / {human_bytes(total)}  {done / total:.0%}"

    def done_text(self) -> str:
        """``upload  453.2 MB in 3.2s (141.6 MB/s)``."""
        seconds = self.pace.elapsed_s
        moved = self.pace.done
        return f"{self._name}  {human_bytes(moved)} in {duration(seconds)} ({rate(moved, seconds)})"


class PlainView:
    """A ``RunView`` that writes plain lines to ``stream`` (``::group::`` on Actions)."""

    def __init__(
        self,
        stream: TextIO,
        *,
        github_actions: bool,
        workflow: Workflow | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._actions = github_actions
        self._workflow = workflow or Workflow(enabled=github_actions, stream=stream)
        self._clock = clock
        self._depth = 0
        self._status_pace = StatusPace(clock)
        self.lock = threading.RLock()

    def line(self, text: str, *, indent: bool = True) -> None:
        """Write one line (indented inside a step), defused on Actions."""
        prefix = INDENT if indent and self._depth else ""
        self._write(prefix + text)

    def _write(self, text: str) -> None:
        with self.lock:
            self._stream.write((defuse(text) if self._actions else text) + "\n")
            self._stream.flush()

    def _command(self, text: str) -> None:
        with self.lock:
            self._stream.write(text + "\n")
            self._stream.flush()

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """``==> name`` (a ``::group::`` on Actions), then how long it took."""
        with self.lock:
            grouped = self._actions and self._depth == 0
            if grouped:
                self._command(command("group", safe(name)))
            else:
                self.line(("==> " if self._depth == 0 else "-> ") + safe(name))
            self._depth += 1
        began = self._clock()
        try:
            yield
        except BaseException:
            self._end_step(f"failed after {duration(self._clock() - began)}", grouped=grouped)
            raise
        self._end_step(f"done in {duration(self._clock() - began)}", grouped=grouped)

    def _end_step(self, text: str, *, grouped: bool) -> None:
        with self.lock:
            self.line(text)
            self._depth -= 1
            if grouped:
                self._command(command("endgroup"))

    @contextlib.contextmanager
    def transfer(self, name: str, total: int | None) -> Iterator[Transfer]:
        """Progress lines now and then, and one with the size and rate at the end."""
        handle = _PlainTransfer(self, safe(name), TransferPace(total, self._clock))
        try:
            yield handle
        except BaseException:
            with self.lock:
                self.line(f"{handle.progress_text()}, then it failed")
            raise
        with self.lock:
            self.line(handle.done_text())

    def agent_line(self, text: str) -> None:
        """One line of the agent's activity, indented."""
        self.line(safe(text))

    def agent_status(self, status: AgentStatus) -> None:
        """The agent's counters, at most once a minute (a terminal shows them live)."""
        with self.lock:
            if self._status_pace.due():
                self.line(status_line(status))

    def warning(self, text: str) -> None:
        """``warning: text``; on Actions a ``::warning::`` annotation (past ten, a line)."""
        with self.lock:
            shown = safe(text)
            overflow = len(self._workflow.overflow)
            self._workflow.warning(shown)
            if not self._actions or len(self._workflow.overflow) > overflow:
                self.line(f"warning: {shown}", indent=False)

    def info(self, text: str) -> None:
        """A note, indented inside a step."""
        self.line(safe(text))

    def log_line(self, level: str, text: str) -> None:
        """A log record from structlog (warnings and errors; with -v, all); a traceback kept."""
        with self.lock:
            first, *rest = text.splitlines() or [""]
            self.line(f"{level}: {safe(first)}", indent=False)
            for more in rest:
                self.line(safe(more), indent=False)

    def finished(self, result: RunResult) -> None:
        """The changed files, what was skipped, the cost, the status: as aligned text."""
        with self.lock:
            for text in _final_lines(result):
                self.line(text, indent=False)


def _final_lines(result: RunResult) -> list[str]:
    lines = [""]
    rows = change_rows(result)
    if rows:
        lines.append("Changes")
        lines.extend(INDENT + t for t in aligned([(r.kind, r.path, r.size) for r in rows]))
    skipped = skipped_rows(result)
    if skipped:
        lines.append("Skipped")
        lines.extend(INDENT + t for t in aligned([(p, f"({why})") for p, why in skipped]))
    lines.append("Cost")
    table = [COST_HEADER, *cost_rows(result)]
    lines.extend(INDENT + t for t in aligned(table, right=frozenset(range(1, 6))))
    lines.append("")
    lines.append(closing_line(result))
    lines.extend(closing_notes(result))
    return lines
