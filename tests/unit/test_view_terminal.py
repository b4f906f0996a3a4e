"""RichView rendered into a recording console: steps, bars, agent lines, warnings, tables."""

from __future__ import annotations

import io
import re
import sys
import threading

import pytest
from rich.console import Console

from claude_e2b.log import REDACTED, REDACTOR
from claude_e2b.view import AgentStatus
from claude_e2b.view.terminal import RichView
from tests.unit.test_view_tables import make_result
from tests.unit.test_view_text import Clock

STATUS = AgentStatus(turns=12, tokens=81_200, cost_usd=0.4123, elapsed_s=192.0, left_s=1608.0)


def recording_console() -> Console:
    return Console(
        file=io.StringIO(), record=True, force_terminal=True, width=100, color_system="truecolor"
    )


# What rich writes to redraw its live area: carriage return, erase line, cursor up, cursor.
_CURSOR = re.compile(r"\r|\n|\x1b\[2K|\x1b\[\d*A|\x1b\[\?25[lh]")
_SGR = re.compile(r"\x1b\[[0-9;]*m")


def lines_of(console: Console) -> list[str]:
    """Every line as it was drawn at some moment: printed lines and live-area frames."""
    parts = _CURSOR.split(console.export_text(clear=False, styles=True))
    return [_SGR.sub("", part).rstrip() for part in parts]


def has_line(lines: list[str], pattern: str) -> bool:
    return any(re.search(pattern, line) for line in lines)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def console() -> Console:
    return recording_console()


def fail_in_a_step(view, clock: Clock) -> None:
    with view.step("Collecting"):
        clock.now += 1.5
        raise RuntimeError


def run_steps(view: RichView, clock: Clock) -> None:
    with view.step("Uploading"), view.transfer("upload", 4_000_000) as sent:
        for _ in range(2):
            clock.now += 0.5
            sent.advance(1_000_000)
        view.refresh()  # draw the bar half way
        for _ in range(2):
            clock.now += 0.5
            sent.advance(1_000_000)
    with view.step("Running the agent"):
        view.agent_line("Edit src/app.py")
        view.agent_line("$ pytest -q")
        view.agent_line("  I will add a test.")
        view.agent_status(STATUS)
        clock.now += 8
        view.refresh()  # the status line, 8 s after the counters came
        view.warning("the agent has run 20 min of its 30 min limit")
    with pytest.raises(RuntimeError):
        fail_in_a_step(view, clock)


def test_steps_show_a_mark_and_their_time(console: Console, clock: Clock) -> None:
    """✓ and the time for a step that ended, ✗ for one that raised (and the error goes on)."""
    run_steps(RichView(console, clock=clock), clock)
    lines = lines_of(console)
    assert has_line(lines, r"^✓ Uploading\s+2\.0s$")
    assert has_line(lines, r"^✓ Running the agent\s+8\.0s$")
    assert has_line(lines, r"^✗ Collecting\s+1\.5s$")


def test_transfer_draws_a_bar_with_percentage_bytes_and_rate(
    console: Console, clock: Clock
) -> None:
    """Half way the bar shows 50 %, the bytes and the rate; at the end a line with the size."""
    run_steps(RichView(console, clock=clock), clock)
    lines = lines_of(console)
    bar = [line for line in lines if "upload" in line and "━" in line]
    assert bar, lines
    assert has_line(bar, r"50%\s+2\.0 MB / 4\.0 MB\s+2\.0 MB/s")
    assert has_line(lines, r"^\s+upload  4\.0 MB in 2\.0s \(2\.0 MB/s\)$")


def test_agent_lines_status_and_warning(console: Console, clock: Clock) -> None:
    """Agent lines indented; the status line live under the step; the warning marked."""
    run_steps(RichView(console, clock=clock), clock)
    lines = lines_of(console)
    assert "    Edit src/app.py" in lines
    assert "    $ pytest -q" in lines
    assert "    I will add a test." in lines
    assert has_line(
        lines, r"^  12 turns · 81\.2k tokens · \$0\.4123 · 3m 20s elapsed · 26m 40s left$"
    )
    assert "⚠ the agent has run 20 min of its 30 min limit" in lines
    styled = console.export_text(styles=True)
    assert re.search(r"\x1b\[[0-9;]*33m⚠", styled)  # yellow


def test_finished_shows_changes_cost_and_a_coloured_status(console: Console) -> None:
    """The changed files with kind and size, the cost per model and in total, the status."""
    RichView(console).finished(make_result())
    lines = lines_of(console)
    assert "Changes" in lines
    assert has_line(lines, r"^modified\s+src/app\.py\s+1\.2 kB$")
    assert has_line(lines, r"^renamed\s+a\.py → b\.py\s+5 B$")
    assert has_line(lines, r"^deleted\s+old\.txt$")
    assert has_line(lines, r"^\.github/workflows/ci\.yml\s+protected path$")
    assert has_line(lines, r"input\s+output\s+cache read\s+cache write\s+USD")
    assert has_line(lines, r"^claude-sonnet-4-5\s+1\.2k\s+3\.1k\s+81\.2k\s+9\.0k\s+\$0\.4123$")
    assert has_line(lines, r"^sandbox\s+\$0\.0100$")
    assert has_line(lines, r"^total\s+\$0\.4223$")
    assert "✓ completed in 4m 12s · 5 files changed · 1 skipped · $0.4223" in lines
    assert re.search(r"\x1b\[1;32m✓ completed", console.export_text(styles=True))


@pytest.mark.parametrize(
    ("status", "mark", "colour"), [("failed", "✗", "31"), ("timed_out", "⚠", "33")]
)
def test_an_unfinished_run_ends_in_its_colour_with_the_reason(
    console: Console, status: str, mark: str, colour: str
) -> None:
    RichView(console).finished(make_result(status=status, message="the agent ended early"))
    lines = lines_of(console)
    assert any(line.startswith(f"{mark} {status.replace('_', ' ')} in 4m 12s") for line in lines)
    assert "  the agent ended early" in lines
    assert re.search(rf"\x1b\[1;{colour}m{mark} ", console.export_text(styles=True))


def test_text_from_outside_is_redacted_and_cannot_move_the_cursor(console: Console) -> None:
    """An agent line with an escape sequence or a registered secret is shown defused."""
    REDACTOR.add("canary-secret-for-rich-view")
    view = RichView(console)
    view.agent_line("$ echo canary-secret-for-rich-view \x1b[2J\x1b[H")
    view.warning("bad \x1b]0;title\x07")
    text = console.export_text()
    assert "canary-secret-for-rich-view" not in text
    assert f"$ echo {REDACTED} \\x1b[2J\\x1b[H" in text
    assert "bad \\x1b]0;title\\x07" in text


def test_log_lines_print_above_the_live_area(console: Console, clock: Clock) -> None:
    """A warning from the log is marked like the view's own; debug detail is dim."""
    view = RichView(console, clock=clock)
    with view.step("Uploading"):
        view.log_line("warning", "upload.file_retry file=chunk-000002")
        view.log_line("debug", "sandbox.write path=/tmp/x")
        view.log_line("error", "internal_error\nTraceback (most recent call last):\n  bad")
    lines = lines_of(console)
    assert "⚠ upload.file_retry file=chunk-000002" in lines
    assert "· sandbox.write path=/tmp/x" in lines
    at = lines.index("✗ internal_error")
    assert lines[at + 1 : at + 3] == ["  Traceback (most recent call last):", "    bad"]


def test_long_lines_wrap_under_their_text(clock: Clock) -> None:
    """A warning or command too long for the width continues under its first word."""
    console = Console(file=io.StringIO(), record=True, force_terminal=True, width=40)
    view = RichView(console, clock=clock)
    view.warning("the agent has run 20 min of its 30 min limit; it will be stopped")
    view.agent_line("$ pytest -q tests/unit/test_view_terminal.py --maxfail=1")
    assert lines_of(console)[:4] == [
        "⚠ the agent has run 20 min of its 30 min",
        "  limit; it will be stopped",
        "    $ pytest -q",
        "      tests/unit/test_view_terminal.py",
    ]


def test_the_live_area_ends_with_the_last_step(console: Console, clock: Clock) -> None:
    """No live display is left behind (stderr is given back, the cursor shown again)."""
    stderr = sys.stderr
    view = RichView(console, clock=clock)
    with view.step("Uploading"):
        assert console._live_stack  # a live display is running
    assert not console._live_stack
    assert sys.stderr is stderr
    styled = console.export_text(styles=True)
    assert styled.rindex("\x1b[?25h") > styled.rindex("\x1b[?25l")  # the cursor is back


def test_events_from_many_threads(console: Console, clock: Clock) -> None:
    """Agent lines, counters and bytes from worker threads while a step runs: all shown."""
    view = RichView(console, clock=clock, refresh_per_second=50)
    with view.step("Running the agent"), view.transfer("upload", None) as sent:

        def work(n: int) -> None:
            for i in range(50):
                view.agent_line(f"Read file-{n}-{i}.py")
                view.agent_status(AgentStatus(i, i * 10, 0.01 * i, float(i), 100.0))
                sent.advance(1000)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    lines = lines_of(console)
    for n in range(4):
        for i in range(50):
            assert f"    Read file-{n}-{i}.py" in lines
    assert has_line(lines, r"^\s+upload  200\.0 kB in ")
