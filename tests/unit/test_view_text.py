"""Formatting shared by the views, and the pace of line-based progress."""

from __future__ import annotations

import math

import pytest

from claude_e2b.view import AgentStatus
from claude_e2b.view.pacing import StatusPace, TransferPace
from claude_e2b.view.text import count, duration, human_bytes, rate, safe, status_line


class Clock:
    """A clock tests move by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0 B"), (999, "999 B"), (1200, "1.2 kB"), (453_200_000, "453.2 MB"), (2e12, "2.0 TB")],
)
def test_human_bytes(value, text):
    assert human_bytes(value) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.04, "0.0s"), (3.25, "3.2s"), (59.9, "59.9s"), (252, "4m 12s"), (3725, "1h 02m"),
     (-1, "0.0s"), (math.inf, "—")],
)  # fmt: skip
def test_duration(seconds, text):
    assert duration(seconds) == text


def test_counts_and_rates():
    assert [count(n) for n in (812, 81_200, 1_310_000)] == ["812", "81.2k", "1.31M"]
    assert rate(10_000_000, 2.0) == "5.0 MB/s"
    assert rate(5, 0.0) == "—"


def test_safe_escapes_controls_and_bidi_overrides():
    """Escape sequences, newlines and right-to-left overrides become visible escapes."""
    assert safe("a\x1b[31mb\nc\u202ed\x7f") == "a\\x1b[31mb\\x0ac\\u202ed\\x7f"
    assert safe("plain ✓ text") == "plain ✓ text"


def test_status_line_moves_with_time_since_it_was_taken():
    """Elapsed grows and time left shrinks by the seconds since the counters came."""
    status = AgentStatus(turns=12, tokens=81_200, cost_usd=0.41234, elapsed_s=192, left_s=1608)
    assert (
        status_line(status) == "12 turns · 81.2k tokens · $0.4123 · 3m 12s elapsed · 26m 48s left"
    )
    later = status_line(status, since_s=8)
    assert later.endswith("3m 20s elapsed · 26m 40s left")
    unlimited = AgentStatus(1, 10, 0.0, 5.0, math.inf)
    assert status_line(unlimited) == "1 turn · 10 tokens · $0.0000 · 5.0s elapsed"


def test_transfer_pace_reports_each_tenth_once():
    """Many small advances give a line per tenth, none for the last (the closing line says it)."""
    clock = Clock()
    pace = TransferPace(1000, clock)
    due = [pace.advance(25) for _ in range(40)]
    reported = [25 * (i + 1) for i, d in enumerate(due) if d]
    assert reported == [100, 200, 300, 400, 500, 600, 700, 800, 900]


def test_transfer_pace_reports_every_five_seconds_without_a_total():
    """With no total, a line when five seconds passed since the last one."""
    clock = Clock()
    pace = TransferPace(None, clock)
    due = []
    for _ in range(12):
        clock.now += 1.0
        due.append(pace.advance(10))
    assert [i + 1 for i, d in enumerate(due) if d] == [5, 10]
    pace.set_total(1000)
    assert pace.advance(100)  # the first tenth, now that the total is known


def test_status_pace_once_a_minute():
    """The first status starts the clock; then one per minute, however many come."""
    clock = Clock()
    pace = StatusPace(clock)
    seen = []
    for _ in range(25):
        seen.append(pace.due())
        clock.now += 10
    assert [i for i, d in enumerate(seen) if d] == [6, 12, 18, 24]
