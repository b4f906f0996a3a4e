"""The end of a run as rows: the changed files, the cost, one closing line.

Pure functions of a ``RunResult``; the rich view draws them as tables, the plain
view as aligned text. Values are already formatted (redacted, made printable): the
views only lay them out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from claude_e2b.view.text import count, duration, human_bytes, safe, usd

if TYPE_CHECKING:
    from claude_e2b.result import RunResult

# How each status reads at the end, and its colour on a terminal.
STATUS_STYLE: Mapping[str, str] = {
    "completed": "bold green",
    "no_changes": "bold cyan",
    "timed_out": "bold yellow",
    "budget_exceeded": "bold yellow",
    "cancelled": "bold magenta",
    "failed": "bold red",
    "blocked": "bold red",
}
CHANGE_STYLE: Mapping[str, str] = {
    "added": "green",
    "modified": "yellow",
    "deleted": "red",
    "renamed": "blue",
}
COST_HEADER = ("", "input", "output", "cache read", "cache write", "USD")


@dataclass(frozen=True)
class ChangeRow:
    """One changed file: how it changed, its path, its size (empty when deleted)."""

    kind: str
    path: str
    size: str


def change_rows(result: RunResult) -> list[ChangeRow]:
    """A row per applied change, in the result's order."""
    return [_change_row(change) for change in result.changes]


def _change_row(change: Mapping[str, Any]) -> ChangeRow:
    kind = str(change.get("status", ""))
    path = safe(str(change.get("path", "")))
    old = change.get("old_path")
    if kind == "renamed" and old:
        path = f"{safe(str(old))} → {path}"
    size = "" if kind == "deleted" else human_bytes(int(change.get("bytes") or 0))
    if change.get("binary") and size:
        size = f"{size}, binary"
    return ChangeRow(kind, path, size)


def skipped_rows(result: RunResult) -> list[tuple[str, str]]:
    """``(path, reason)`` for each change that was refused."""
    return [
        (safe(str(s.get("path", ""))), safe(str(s.get("reason", ""))))
        for s in result.skipped_changes
    ]


def cost_rows(result: RunResult) -> list[tuple[str, ...]]:
    """A row per model (tokens and dollars), then the sandbox and the total (dollars only)."""
    cost = result.cost
    by_model: Mapping[str, Mapping[str, Any]] = cost.get("by_model") or {}
    rows = [_model_row(model, figures) for model, figures in by_model.items()]
    if not rows:
        rows.append(_model_row("Claude", cost))
    return [
        *rows,
        ("sandbox", "", "", "", "", usd(float(cost.get("sandbox_usd") or 0.0))),
        ("total", "", "", "", "", usd(float(cost.get("total_usd") or 0.0))),
    ]


def _model_row(name: str, figures: Mapping[str, Any]) -> tuple[str, ...]:
    tokens = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    dollars = figures.get("usd", figures.get("claude_usd", 0.0))
    return (
        safe(name),
        *(count(int(figures.get(key) or 0)) for key in tokens),
        usd(float(dollars or 0.0)),
    )


def closing_line(result: RunResult) -> str:
    """``completed in 4m 12s · 3 files changed · 1 skipped · $0.4223``."""
    files = len(result.changes)
    parts = [
        f"{result.status.replace('_', ' ')} in {duration(result.timing.total_s)}",
        f"{files} file{'' if files == 1 else 's'} changed",
    ]
    if result.skipped_changes:
        parts.append(f"{len(result.skipped_changes)} skipped")
    parts.append(usd(float(result.cost.get("total_usd") or 0.0)))
    return " · ".join(parts)


def closing_notes(result: RunResult) -> list[str]:
    """What follows the closing line: the pull request, and why the run stopped."""
    notes = []
    if result.pr is not None:
        notes.append(f"pull request {result.pr.operation}: {safe(result.pr.url)}")
    if result.message:
        notes.extend(safe(line) for line in result.message.splitlines() if line.strip())
    return notes
