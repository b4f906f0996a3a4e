"""Which view a run gets, and how the log shares its output."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator

import pytest
import structlog

from claude_e2b.log import REDACTED, REDACTOR, configure_logging, get_logger
from claude_e2b.view.choose import configure_output, make_view
from claude_e2b.view.json_lines import JsonView
from claude_e2b.view.plain import PlainView
from claude_e2b.view.terminal import RichView


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


@pytest.mark.parametrize(
    ("stream", "log_format", "actions", "dumb", "kind"),
    [
        (Terminal(), "auto", False, False, RichView),
        (Terminal(), "text", False, False, RichView),
        (io.StringIO(), "auto", False, False, PlainView),
        (Terminal(), "auto", True, False, PlainView),
        (Terminal(), "auto", False, True, PlainView),
        (Terminal(), "json", False, False, JsonView),
        (io.StringIO(), "json", True, False, JsonView),
    ],
)
def test_make_view_picks_by_format_terminal_and_ci(stream, log_format, actions, dumb, kind):
    """Rich only on a capable terminal outside Actions; plain otherwise; JSON when asked."""
    view = make_view(
        stream, log_format=log_format, verbose=False, github_actions=actions, dumb_terminal=dumb
    )
    assert type(view) is kind


def test_no_color_keeps_the_live_view_without_colours():
    """NO_COLOR: still a spinner and cursor movement, but no colour codes."""
    out = Terminal()
    view = make_view(out, log_format="auto", verbose=False, github_actions=False, no_color=True)
    with view.step("Uploading"):
        view.warning("careful")
    text = out.getvalue()
    assert "⚠ careful" in re.sub(r"\x1b\[[0-9;]*m", "", text)
    assert "\x1b[2K" in text  # the live area is redrawn in place
    assert "\x1b[1m" in text  # bold stays
    codes = {c for sgr in re.findall(r"\x1b\[([0-9;]*)m", text) for c in sgr.split(";")}
    assert codes <= {"", "0", "1", "2", "3", "4"}  # reset, bold, dim, italic, underline: no colour


def test_text_view_log_shows_only_warnings_and_errors_through_the_view():
    """info is the view's business; warnings and errors reach the same stream as plain lines."""
    out = io.StringIO()
    configure_output(out, log_format="auto", verbose=False, github_actions=False)
    log = get_logger("t")
    log.info("upload.done", chunks=3)
    log.debug("detail")
    log.warning("upload.file_retry", file="chunk-000002", error="HTTP 500: bad gateway")
    log.error("run.failed", error="x")
    assert out.getvalue().splitlines() == [
        "warning: upload.file_retry file=chunk-000002 error='HTTP 500: bad gateway'",
        "error: run.failed error=x",
    ]


def test_verbose_adds_info_and_debug_detail():
    out = io.StringIO()
    configure_output(out, log_format="text", verbose=True, github_actions=False)
    get_logger("t").debug("sandbox.write", path="/tmp/x", bytes=12)
    get_logger("t").info("upload.done", phases={"split_s": 0.1})
    assert out.getvalue().splitlines() == [
        "debug: sandbox.write path=/tmp/x bytes=12",
        "info: upload.done phases={'split_s': 0.1}",
    ]


def test_log_through_a_view_is_redacted_and_keeps_tracebacks():
    out = io.StringIO()
    configure_output(out, log_format="auto", verbose=False, github_actions=False)
    REDACTOR.add("canary-secret-for-the-log")
    log = get_logger("t")
    log.warning("leak", value="canary-secret-for-the-log")
    try:
        raise RuntimeError("bad")  # noqa: TRY301
    except RuntimeError:
        log.exception("internal_error")
    lines = out.getvalue().splitlines()
    assert lines[0] == f"warning: leak value={REDACTED}"
    assert lines[1] == "error: internal_error"
    assert lines[2].startswith("Traceback (most recent call last):")
    assert lines[-1] == "RuntimeError: bad"


def test_json_format_keeps_structured_lines():
    """--log-format json: every record (info too) is a JSON line on the stream."""
    out = io.StringIO()
    view = configure_output(out, log_format="json", verbose=False, github_actions=False)
    get_logger("t").info("upload.done", chunks=3)
    view.agent_line("Edit a.py")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert (first["event"], first["chunks"], first["level"]) == ("upload.done", 3, "info")
    assert "timestamp" in first
    assert (second["event"], second["line"]) == ("agent", "Edit a.py")


def test_without_a_view_the_console_renderer_stays():
    """configure_logging without a sink keeps the old behaviour (info lines, timestamps)."""
    out = io.StringIO()
    configure_logging(json_lines=False, stream=out)
    get_logger("t").info("upload.done", chunks=3)
    assert "upload.done" in out.getvalue()
    assert "chunks=3" in out.getvalue()
