import contextlib
import io
import json
import threading

from structlog.testing import capture_logs

from claude_e2b.agent.events import AssistantEvent, BrokenLine, ResultEvent, ToolUse, parse_event
from claude_e2b.agent.monitor import Progress, describe, describe_tool
from claude_e2b.agent.watchdog import Heartbeat, Stop, TimeWarning
from claude_e2b.github.workflow import Workflow
from claude_e2b.view import AgentStatus


def _assistant(text="", tools=()):
    return AssistantEvent("m1", "model", text, tuple(tools), {}, raw={})


def test_tool_lines_are_short_and_relative():
    """File tools show the path relative to the repository; Bash shows the command."""
    cwd = "/home/user/repo"
    assert describe_tool(ToolUse("1", "Edit", {"file_path": f"{cwd}/src/app.py"}), cwd) == (
        "Edit src/app.py"
    )
    assert describe_tool(ToolUse("2", "Bash", {"command": "pytest -q\n  -x"}), cwd) == (
        "$ pytest -q -x"
    )
    assert describe_tool(ToolUse("3", "Grep", {"pattern": "TODO"}), cwd) == "Grep TODO"
    assert describe_tool(ToolUse("4", "Mystery", {}), cwd) == "Mystery"


def test_assistant_text_is_one_trimmed_line():
    """Long assistant text is flattened and cut with an ellipsis."""
    lines = describe(_assistant("word " * 100))
    assert len(lines) == 1
    assert lines[0].endswith("…")
    assert "\n" not in lines[0]


def test_result_and_broken_lines():
    """The result line shows turns and cost; a broken line is mentioned."""
    result = ResultEvent("success", False, 3, "s", "ok", 0.5, {}, {}, 10, raw={})
    assert describe(result) == ["Claude Code finished: success, 3 turns, cost $0.5000"]
    assert "skipped" in describe(BrokenLine("x", "bad"))[0]


# --- Progress → view ----------------------------------------------------------------


class RecordingView:
    """A RunView that keeps what it was told, in order."""

    def __init__(self):
        self.calls = []

    @contextlib.contextmanager
    def step(self, name):
        self.calls.append(("step", name))
        yield

    @contextlib.contextmanager
    def transfer(self, name, total):
        self.calls.append(("transfer", name))
        yield None

    def agent_line(self, text):
        self.calls.append(("line", text))

    def agent_status(self, status):
        self.calls.append(("status", status))

    def warning(self, text):
        self.calls.append(("warning", text))

    def info(self, text):
        self.calls.append(("info", text))

    def finished(self, result):
        self.calls.append(("finished", result))


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


CWD = "/home/user/repo"
STREAM = [
    {"type": "system", "subtype": "init", "session_id": "s1", "model": "m", "cwd": CWD},
    {"type": "stream_event", "event": {"type": "message_start", "message": {
        "id": "a", "model": "m", "usage": {"input_tokens": 100, "cache_read_input_tokens": 900}}}},
    {"type": "assistant", "message": {"id": "a", "model": "m", "usage": {"input_tokens": 100},
        "content": [{"type": "text", "text": "I will fix it."}]}},
    {"type": "assistant", "message": {"id": "a", "model": "m", "usage": {"input_tokens": 100},
        "content": [{"type": "tool_use", "id": "t1", "name": "Edit",
                     "input": {"file_path": f"{CWD}/src/app.py"}}]}},
    {"type": "stream_event", "event": {"type": "message_delta", "usage": {"output_tokens": 50}}},
    {"type": "result", "subtype": "success", "num_turns": 1, "session_id": "s1",
     "total_cost_usd": 0.01, "result": "done"},
]  # fmt: skip


def per_message_cost(meter):
    """A dollar per thousand tokens, so the figures are easy to follow."""
    return sum(sum(int(v or 0) for v in u.values()) for _m, u in meter.per_message.values()) / 1000


def feed(progress, clock):
    for data in STREAM:
        clock.now += 5
        progress.on_event(parse_event(json.dumps(data)))


def test_progress_hands_lines_and_moving_counters_to_the_view():
    """A line per described event; counters when a message starts, grows, or the run ends."""
    view, clock, annotations = RecordingView(), Clock(), io.StringIO()
    progress = Progress(
        Workflow(enabled=True, stream=annotations), per_message_cost, CWD,
        view=view, limit_s=1800, clock=clock,
    )  # fmt: skip
    feed(progress, clock)
    assert view.calls == [
        ("line", "Claude Code started (model m, session s1)"),
        ("line", "  I will fix it."),
        ("status", AgentStatus(1, 1000, 1.0, 15.0, 1785.0)),
        ("line", "Edit src/app.py"),  # same message, same counters: no status
        ("status", AgentStatus(1, 1050, 1.05, 25.0, 1775.0)),
        ("line", "Claude Code finished: success, 1 turns, cost $0.0100"),
    ]
    assert annotations.getvalue() == ""  # the view shows warnings; nothing else annotates


def test_actions_become_warnings_and_heartbeat_counters():
    """Time marks and stops are warnings (kept for the result); a heartbeat always shows."""
    view, clock = RecordingView(), Clock()
    progress = Progress(Workflow(), per_message_cost, CWD, view=view, limit_s=1800, clock=clock)
    feed(progress, clock)
    view.calls.clear()
    progress.on_action(TimeWarning(1200, 1800), None)
    progress.on_action(Heartbeat(1260.0), None)
    progress.on_action(Heartbeat(1320.0), None)
    progress.on_action(Stop("timeout", 1800.0, 1.05), None)
    mark = TimeWarning(1200, 1800).message()
    stop = f"{Stop('timeout', 1800.0, 1.05).message()}: stopping it and keeping its work"
    assert view.calls == [
        ("warning", mark),
        ("status", AgentStatus(1, 1050, 1.05, 1260.0, 540.0)),
        ("status", AgentStatus(1, 1050, 1.05, 1320.0, 480.0)),
        ("warning", stop),
    ]
    assert progress.warnings == [mark, stop]


def test_without_a_view_progress_logs_and_annotates_as_before():
    """The default view logs each line (event "agent") and annotates warnings on Actions."""
    annotations, clock = io.StringIO(), Clock()
    progress = Progress(
        Workflow(enabled=True, stream=annotations), per_message_cost, CWD, clock=clock
    )
    with capture_logs() as logs:
        feed(progress, clock)
        progress.on_action(TimeWarning(60, 120), None)
    lines = [e["line"] for e in logs if e["event"] == "agent"]
    assert lines[:3] == [
        "Claude Code started (model m, session s1)",
        "  I will fix it.",
        "Edit src/app.py",
    ]
    assert [e["turns"] for e in logs if e["event"] == "agent.status"] == [1, 1]
    assert (
        annotations.getvalue() == f"::warning title=claude-e2b::{TimeWarning(60, 120).message()}\n"
    )
    assert progress.warnings == [TimeWarning(60, 120).message()]


def test_events_and_heartbeats_from_two_threads():
    """The follower thread feeds events while the supervisor asks for counters: no error."""
    view, clock = RecordingView(), Clock()
    progress = Progress(Workflow(), per_message_cost, CWD, view=view, clock=clock)
    lines = [
        json.dumps({"type": "assistant", "message": {"id": f"m{i}", "model": "m",
                    "usage": {"input_tokens": 1}, "content": []}})
        for i in range(300)
    ]  # fmt: skip

    def follow():
        for line in lines:
            progress.on_event(parse_event(line))

    thread = threading.Thread(target=follow)
    thread.start()
    while thread.is_alive():
        progress.on_action(Heartbeat(1.0), None)
    thread.join()
    assert progress.status(2.0).turns == 300
