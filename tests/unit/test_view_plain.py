"""PlainView: one plain line per event, groups and annotations on Actions, no escapes."""

from __future__ import annotations

import io
import threading
import time

import pytest

from claude_e2b.view import AgentStatus
from claude_e2b.view.plain import PlainView, aligned, defuse
from tests.unit.test_view_tables import make_result
from tests.unit.test_view_text import Clock

STATUS = AgentStatus(turns=12, tokens=81_200, cost_usd=0.4123, elapsed_s=192.0, left_s=1608.0)


def fail_in_a_step(view, clock: Clock) -> None:
    with view.step("Collecting"):
        clock.now += 1.5
        raise RuntimeError


def run_steps(view: PlainView, clock: Clock) -> None:
    """Upload with a transfer, the agent with its lines, a failing step, a note."""
    with view.step("Uploading"), view.transfer("upload", 4_000_000) as sent:
        for _ in range(4):
            clock.now += 0.5
            sent.advance(1_000_000)
    with view.step("Running the agent"):
        view.agent_line("Edit src/app.py")
        view.agent_line("  I will add a test.")
        view.agent_line("$ pytest -q")
        view.agent_status(STATUS)  # the first only starts the minute
        clock.now += 61
        view.agent_status(STATUS)
        view.warning("the agent has run 20 min of its 30 min limit")
    with pytest.raises(RuntimeError):
        fail_in_a_step(view, clock)
    view.info("results in /tmp/out")
    view.log_line("warning", "upload.file_retry file=chunk-000002 attempt=1")


def test_a_run_reads_as_plain_lines():
    """Steps, progress every quarter here, agent lines, status, warning, failure: exact lines."""
    out, clock = io.StringIO(), Clock()
    run_steps(PlainView(out, github_actions=False, clock=clock), clock)
    assert out.getvalue().splitlines() == [
        "==> Uploading",
        "    upload  1.0 MB / 4.0 MB  25%",
        "    upload  2.0 MB / 4.0 MB  50%",
        "    upload  3.0 MB / 4.0 MB  75%",
        "    upload  4.0 MB in 2.0s (2.0 MB/s)",
        "    done in 2.0s",
        "==> Running the agent",
        "    Edit src/app.py",
        "      I will add a test.",
        "    $ pytest -q",
        "    12 turns · 81.2k tokens · $0.4123 · 3m 12s elapsed · 26m 48s left",
        "warning: the agent has run 20 min of its 30 min limit",
        "    done in 1m 01s",
        "==> Collecting",
        "    failed after 1.5s",
        "results in /tmp/out",
        "warning: upload.file_retry file=chunk-000002 attempt=1",
    ]


def test_on_actions_steps_are_groups_and_warnings_annotations():
    """Top-level steps open and close a group; a nested step is a line; warnings annotate."""
    out, clock = io.StringIO(), Clock()
    view = PlainView(out, github_actions=True, clock=clock)
    with view.step("Uploading"):
        with view.step("Packing"):
            clock.now += 0.25
        view.warning("50% of the time used")
    assert out.getvalue().splitlines() == [
        "::group::Uploading",
        "    -> Packing",
        "    done in 0.2s",
        "::warning title=claude-e2b::50%25 of the time used",
        "    done in 0.2s",
        "::endgroup::",
    ]


def test_group_closes_when_the_step_fails():
    """A failing step still ends its group (the rest of the log is not folded into it)."""
    out = io.StringIO()
    view = PlainView(out, github_actions=True, clock=Clock())
    with pytest.raises(KeyboardInterrupt), view.step("Running the agent"):
        raise KeyboardInterrupt
    assert out.getvalue().splitlines()[-2:] == ["    failed after 0.0s", "::endgroup::"]


def test_agent_text_cannot_issue_workflow_commands():
    """Lines from the agent that look like workflow commands are defused on Actions."""
    out = io.StringIO()
    view = PlainView(out, github_actions=True, clock=Clock())
    with view.step("Agent"):
        view.agent_line("::add-mask::everything")
        view.agent_line("$ echo '##[error]fake' && echo ::stop-commands::x")
        view.info("::set-env name=X::1")
    lines = out.getvalue().splitlines()
    assert lines[1:4] == [
        "    \\::add-mask::everything",
        "    $ echo '##\\[error]fake' && echo ::stop-commands::x",
        "    \\::set-env name=X::1",
    ]
    # What the runner would read as a command: only our own group lines.
    commands = [line for line in lines if line.lstrip().startswith("::") or "##[" in line]
    assert commands == ["::group::Agent", "::endgroup::"]


def test_defuse_leaves_ordinary_lines_alone():
    assert defuse("    Edit a::b.py") == "    Edit a::b.py"
    assert defuse("  :: x") == "  \\:: x"


def test_warnings_past_the_annotation_cap_become_lines():
    """GitHub shows ten annotations per kind: the eleventh warning is printed, not dropped."""
    out = io.StringIO()
    view = PlainView(out, github_actions=True, clock=Clock())
    for i in range(11):
        view.warning(f"w{i}")
    lines = out.getvalue().splitlines()
    assert lines[:10] == [f"::warning title=claude-e2b::w{i}" for i in range(10)]
    assert lines[10:] == ["warning: w10"]


def test_finished_prints_aligned_tables_without_escapes():
    """The changes, the skipped file, the cost table and the closing line, aligned, no ANSI."""
    out = io.StringIO()
    PlainView(out, github_actions=False).finished(make_result())
    text = out.getvalue()
    assert "\x1b" not in text
    assert text.splitlines() == [
        "",
        "Changes",
        "    modified  src/app.py            1.2 kB",
        "    added     tests/test_health.py  880 B",
        "    deleted   old.txt",
        "    renamed   a.py → b.py           5 B",
        "    added     logo.png              2.5 MB, binary",
        "Skipped",
        "    .github/workflows/ci.yml  (protected path)",
        "Cost",
        "                       input  output  cache read  cache write      USD",
        "    claude-sonnet-4-5   1.2k    3.1k       81.2k         9.0k  $0.4123",
        "    sandbox" + " " * 52 + "$0.0100",
        "    total" + " " * 54 + "$0.4223",
        "",
        "completed in 4m 12s · 5 files changed · 1 skipped · $0.4223",
    ]


def test_a_traceback_from_the_log_keeps_its_lines():
    out = io.StringIO()
    PlainView(out, github_actions=False).log_line("error", "internal_error\nTraceback:\n  x")
    assert out.getvalue().splitlines() == ["error: internal_error", "Traceback:", "  x"]


def test_aligned_right_aligns_the_asked_columns():
    assert aligned([("a", "1"), ("bbb", "22")], right=frozenset({1})) == ["a     1", "bbb  22"]


class TrickleStream(io.StringIO):
    """A stream that writes one character at a time, letting other threads in between."""

    def write(self, text: str) -> int:
        for char in text:
            super().write(char)
            time.sleep(0)
        return len(text)


def test_lines_from_many_threads_never_interleave():
    """The agent's thread, the upload's and the main one write whole lines."""
    out = TrickleStream()
    view = PlainView(out, github_actions=False, clock=Clock())

    def write(tag: str) -> None:
        for i in range(40):
            view.agent_line(f"{tag} line {i} " + "x" * 30)

    threads = [threading.Thread(target=write, args=(f"t{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = {f"t{n} line {i} " + "x" * 30 for n in range(4) for i in range(40)}
    assert sorted(out.getvalue().splitlines()) == sorted(expected)
