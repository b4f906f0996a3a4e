"""JsonView: every event is one structlog JSON line a machine can read."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator

import pytest
import structlog

from claude_e2b.github.workflow import Workflow
from claude_e2b.log import REDACTED, REDACTOR, configure_logging
from claude_e2b.view import AgentStatus
from claude_e2b.view.json_lines import JsonView
from tests.unit.test_view_tables import make_result
from tests.unit.test_view_text import Clock


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging(json_lines=True, stream=out)
    yield out
    structlog.reset_defaults()


def events(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_run_is_a_sequence_of_json_events(stream: io.StringIO) -> None:
    """Steps, paced transfer progress, agent lines and counters, warning, the end."""
    clock = Clock()
    view = JsonView(clock=clock)
    with view.step("Uploading"), view.transfer("upload", 1000) as sent:
        for _ in range(4):
            clock.now += 0.5
            sent.advance(250)
    view.agent_line("Edit src/app.py")
    view.agent_status(AgentStatus(3, 1200, 0.0123456789, 30.0, math.inf))
    view.warning("careful")
    view.info("results in /tmp/x")
    with pytest.raises(ValueError, match="boom"), view.step("Collecting"):
        raise ValueError("boom")
    view.finished(make_result())
    seen = events(stream)
    assert [e["event"] for e in seen] == [
        "step.start", "transfer.start", "transfer.progress", "transfer.progress",
        "transfer.progress", "transfer.done", "step.done", "agent", "agent.status", "warning",
        "note", "step.start", "step.failed", "run.finished",
    ]  # fmt: skip
    assert [e["bytes"] for e in seen if e["event"] == "transfer.progress"] == [250, 500, 750]
    assert seen[5] | {"timestamp": ""} == {
        "event": "transfer.done", "name": "upload", "bytes": 1000, "seconds": 2.0,
        "level": "info", "timestamp": "",
    }  # fmt: skip
    assert seen[8]["cost_usd"] == 0.012346
    assert seen[8]["left_s"] is None
    assert seen[9]["level"] == "warning"
    assert seen[12]["error"] == "boom"
    assert seen[12]["level"] == "error"
    assert seen[-1]["status"] == "completed"
    assert seen[-1]["changes"] == 5
    assert seen[-1]["cost_usd"] == 0.4223


def test_secrets_are_redacted_in_every_event(stream: io.StringIO) -> None:
    REDACTOR.add("canary-secret-json-view")
    JsonView().agent_line("$ echo canary-secret-json-view")
    assert "canary-secret-json-view" not in stream.getvalue()
    assert events(stream)[0]["line"] == f"$ echo {REDACTED}"


def test_with_a_workflow_warnings_are_annotations_too(stream: io.StringIO) -> None:
    out = io.StringIO()
    JsonView(Workflow(enabled=True, stream=out)).warning("time is short")
    assert out.getvalue() == "::warning title=claude-e2b::time is short\n"
    assert events(stream)[0]["message"] == "time is short"
