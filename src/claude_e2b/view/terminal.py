"""The run on a terminal: live steps, transfer bars, the agent's activity, tables at the end.

Finished things are printed once, above a live area at the bottom of the screen
that rich redraws in place (``rich.live``)::

    ✓ Selecting files            0.2s
    ✓ Uploading                  3.4s
        upload  453.2 MB in 3.2s (141.6 MB/s)
        Edit src/app.py
        $ pytest -q
    ⚠ the agent has run 20 min of its 30 min limit; …
    ⠹ Running the agent          4m 12s          ← live area: running steps,
      12 turns · 81.2k tokens · $0.4123 · …        the agent's counters,
      download ━━━━━━━━━━━━━━━━━━━╸━━━━━━━━━━━  45%  12.1 MB / 27.0 MB  8.4 MB/s   and bars

The live area exists only while a step or a transfer runs, and is cleared when
it stops (``transient``): what stays on the screen is the printed lines.

Thread safety: every method may be called from any thread. Our lock serialises
changes and printing; the live area is drawn by rich's refresh thread from
immutable snapshots (tuples replaced whole) and never takes our lock, so the two
locks are never taken in opposite orders.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TransferSpeedColumn,
)
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from claude_e2b.view import AgentStatus, Transfer
from claude_e2b.view.tables import (
    CHANGE_STYLE,
    COST_HEADER,
    STATUS_STYLE,
    change_rows,
    closing_line,
    closing_notes,
    cost_rows,
    skipped_rows,
)
from claude_e2b.view.text import duration, human_bytes, rate, safe, safe_lines, status_line

if TYPE_CHECKING:
    from claude_e2b.result import RunResult

NAME_WIDTH = 30  # "Starting the local sandbox" and a gap
REFRESH_PER_SECOND = 8
AGENT_INDENT = "    "
_STATUS_MARK = {
    "completed": "✓",
    "no_changes": "✓",
    "timed_out": "⚠",
    "budget_exceeded": "⚠",
    "cancelled": "■",
    "failed": "✗",
    "blocked": "✗",
}
_LOG_STYLE = {"warning": ("⚠ ", "yellow"), "error": ("✗ ", "red")}


@dataclass(frozen=True, eq=False)
class _Step:
    """A running step: its name, nesting depth, start and spinner."""

    name: str
    depth: int
    started: float
    spinner: Spinner = field(default_factory=lambda: Spinner("dots", style="cyan"))


@dataclass(frozen=True)
class _Status:
    """The agent's last counters, when they came, and the step they belong to."""

    status: AgentStatus
    received: float
    owner: _Step | None


class _BytesColumn(ProgressColumn):
    """``12.1 MB / 27.0 MB``, or ``12.1 MB`` while the total is unknown."""

    def render(self, task: Task) -> Text:
        """The bytes moved, and the total when known."""
        done = human_bytes(task.completed)
        text = f"{done} / {human_bytes(task.total)}" if task.total is not None else done
        return Text(text, style="progress.download")


class _RichTransfer:
    """Advances a task of the view's rich ``Progress`` (which has its own lock)."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def advance(self, nbytes: int) -> None:
        """``nbytes`` more have moved."""
        self._progress.advance(self._task, nbytes)

    def set_total(self, total: int) -> None:
        """The total is known (or changed)."""
        self._progress.update(self._task, total=total)


class RichView:
    """A ``RunView`` for a terminal, drawn with rich on ``console``."""

    def __init__(
        self,
        console: Console,
        *,
        clock: Callable[[], float] = time.monotonic,
        refresh_per_second: float = REFRESH_PER_SECOND,
    ) -> None:
        self._console = console
        self._clock = clock
        self._refresh = refresh_per_second
        self._lock = threading.RLock()
        self._live: Live | None = None
        self._steps: tuple[_Step, ...] = ()
        self._status: _Status | None = None
        self._transfers = Progress(
            TextColumn("  {task.description}", markup=False),
            BarColumn(bar_width=30),
            TaskProgressColumn(),
            _BytesColumn(),
            TransferSpeedColumn(),
            console=console,
            auto_refresh=False,
            get_time=clock,
        )

    # ── the live area ──────────────────────────────────────────────────────────

    def _render(self) -> RenderableType:
        """The live area, from snapshots only (called by rich's refresh thread)."""
        now = self._clock()
        steps, status = self._steps, self._status
        rows: list[RenderableType] = []
        for step in steps:
            rows.append(_running_line(step, now))
            if status is not None and status.owner is step:
                since = now - status.received
                indent = "  " * (step.depth + 1)
                rows.append(Text(indent + status_line(status.status, since_s=since), "cyan"))
        if self._transfers.tasks:
            rows.append(self._transfers.get_renderable())
        return Group(*rows)

    def _sync_live(self) -> None:
        """Start the live area when something runs, stop (and clear) it when nothing does."""
        active = bool(self._steps) or bool(self._transfers.tasks)
        if active and self._live is None:
            self._live = Live(
                console=self._console,
                get_renderable=self._render,
                refresh_per_second=self._refresh,
                transient=True,
                redirect_stdout=False,  # stdout may be a pipe (--json): leave it alone
                redirect_stderr=True,  # a library's stray line goes above the live area
            )
            self._live.start(refresh=True)
        elif not active and self._live is not None:
            live, self._live = self._live, None
            live.stop()

    def refresh(self) -> None:
        """Draw the live area now (rich's thread does it several times a second)."""
        with self._lock:
            if self._live is not None:
                self._live.refresh()

    def _print(self, renderable: RenderableType) -> None:
        with self._lock:
            self._console.print(renderable, highlight=False)

    # ── RunView ────────────────────────────────────────────────────────────────

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """A spinner and the time while the block runs; ✓ or ✗ and the time after."""
        with self._lock:
            step = _Step(safe(name), len(self._steps), self._clock())
            self._steps = (*self._steps, step)
            self._sync_live()
        try:
            yield
        except BaseException:
            self._end_step(step, ok=False)
            raise
        self._end_step(step, ok=True)

    def _end_step(self, step: _Step, *, ok: bool) -> None:
        with self._lock:
            self._print(_done_line(step, self._clock() - step.started, ok=ok))
            self._steps = tuple(s for s in self._steps if s is not step)
            if self._status is not None and self._status.owner is step:
                self._status = None
            self._sync_live()

    @contextlib.contextmanager
    def transfer(self, name: str, total: int | None) -> Iterator[Transfer]:
        """A bar with percentage, bytes and rate; a line with size and rate after."""
        with self._lock:
            task = self._transfers.add_task(safe(name), total=total)
            self._sync_live()
        try:
            yield _RichTransfer(self._transfers, task)
        except BaseException:
            self._end_transfer(task, ok=False)
            raise
        self._end_transfer(task, ok=True)

    def _end_transfer(self, task_id: TaskID, *, ok: bool) -> None:
        with self._lock:
            task = next(t for t in self._transfers.tasks if t.id == task_id)
            seconds = task.elapsed or 0.0
            moved = f"{human_bytes(task.completed)} in {duration(seconds)}"
            text = f"({rate(task.completed, seconds)})" if ok else "then it failed"
            indent = "  " * (len(self._steps) + 1)
            self._print(Text(f"{indent}{task.description}  {moved} {text}", "dim"))
            self._transfers.remove_task(task_id)
            self._sync_live()

    def agent_line(self, text: str) -> None:
        """A line of the agent's activity, styled by kind (words, command, tool)."""
        self._print(_agent_text(text))

    def agent_status(self, status: AgentStatus) -> None:
        """Keep the agent's counters under the innermost running step."""
        with self._lock:
            owner = self._steps[-1] if self._steps else None
            self._status = _Status(status, self._clock(), owner)

    def warning(self, text: str) -> None:
        """``⚠ text`` in yellow."""
        self._print(_hanging(Text("⚠ ", "bold yellow"), Text(safe(text), "yellow")))

    def info(self, text: str) -> None:
        """A note, plain."""
        self._print(Text(safe(text)))

    def log_line(self, level: str, text: str) -> None:
        """A log record (warnings and errors; with -v all), above the live area."""
        mark, style = _LOG_STYLE.get(level, ("· ", "dim"))
        self._print(_hanging(Text(mark, f"bold {style}"), Text(safe_lines(text), style)))

    def finished(self, result: RunResult) -> None:
        """The changed files, what was skipped, the cost, and the status in its colour."""
        with self._lock:
            if self._live is not None:
                live, self._live = self._live, None
                live.stop()
            for part in _final(result):
                self._print(part)


# ── what is printed ────────────────────────────────────────────────────────────


def _running_line(step: _Step, now: float) -> Text:
    frame = step.spinner.render(now)
    return Text.assemble(
        "  " * step.depth,
        frame if isinstance(frame, Text) else Text("•"),
        " ",
        step.name.ljust(NAME_WIDTH),
        (duration(now - step.started), "dim"),
    )


def _done_line(step: _Step, seconds: float, *, ok: bool) -> Text:
    mark = ("✓", "bold green") if ok else ("✗", "bold red")
    return Text.assemble(
        "  " * step.depth,
        mark,
        " ",
        (step.name.ljust(NAME_WIDTH), "" if ok else "red"),
        (duration(seconds), "dim"),
    )


def _hanging(head: Text, body: Text) -> Table:
    """``head`` then ``body``, whose wrapped lines stay indented under its first."""
    grid = Table.grid()
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row(head, body)
    return grid


def _agent_text(line: str) -> Table:
    """Words dim and italic, commands bold after a dim ``$``, a tool's name in cyan."""
    shown = safe(line)
    indent = Text(AGENT_INDENT)
    if shown.startswith("  "):
        return _hanging(indent, Text(shown.strip(), "dim italic"))
    if shown.startswith("$ "):
        return _hanging(Text.assemble(AGENT_INDENT, ("$ ", "dim")), Text(shown[2:], "bold"))
    if shown.startswith(("Claude Code", "(")):
        return _hanging(indent, Text(shown, "dim"))
    tool, _, rest = shown.partition(" ")
    return _hanging(indent, Text.assemble((tool, "cyan"), " " if rest else "", rest))


def _final(result: RunResult) -> list[RenderableType]:
    tables: list[RenderableType] = []
    rows = change_rows(result)
    if rows:
        changes = _table("Changes")
        changes.add_column(no_wrap=True)
        changes.add_column(overflow="fold")
        changes.add_column(justify="right", style="dim", no_wrap=True)
        for row in rows:
            changes.add_row(Text(row.kind, CHANGE_STYLE.get(row.kind, "")), row.path, row.size)
        tables.append(changes)
    skipped = skipped_rows(result)
    if skipped:
        table = _table("Skipped")
        table.add_column(style="yellow", overflow="fold")
        table.add_column(style="dim", overflow="fold")
        for path, why in skipped:
            table.add_row(path, why)
        tables.append(table)
    tables.append(_cost_table(result))
    spaced = [part for table in tables for part in (Text(), table)]
    return [*spaced, _closing(result)]


def _table(title: str, *, header: bool = False) -> Table:
    return Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD if header else None,
        show_header=header,
        show_edge=False,
        pad_edge=False,
        padding=(0, 2, 0, 0),
    )


def _cost_table(result: RunResult) -> Table:
    table = _table("Cost", header=True)
    for i, name in enumerate(COST_HEADER):
        table.add_column(name, justify="left" if i == 0 else "right", header_style="dim")
    rows = cost_rows(result)
    for i, row in enumerate(rows):
        table.add_row(*row, style="bold" if i == len(rows) - 1 else "")
    return table


def _closing(result: RunResult) -> Group:
    style = STATUS_STYLE.get(result.status, "bold")
    mark = _STATUS_MARK.get(result.status, "•")
    lines: list[RenderableType] = [Text(f"{mark} {closing_line(result)}", style)]
    note_style = "" if result.status in {"completed", "no_changes"} else style.split()[-1]
    lines.extend(Text(f"  {note}", note_style) for note in closing_notes(result))
    return Group(Text(), *lines)
