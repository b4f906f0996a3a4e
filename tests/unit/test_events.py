import json

from claude_e2b.agent.events import (
    AssistantEvent,
    BrokenLine,
    InitEvent,
    LineSplitter,
    OtherEvent,
    ResultEvent,
    StreamEvent,
    ToolResultEvent,
    parse_event,
)


def test_splitter_joins_lines_cut_across_chunks():
    """Chunks cut in the middle of a line come out as whole lines."""
    splitter = LineSplitter()
    assert splitter.feed('{"a"') == []
    assert splitter.feed(': 1}\n{"b": 2}\n{"c"') == ['{"a": 1}', '{"b": 2}']
    assert splitter.flush() == ['{"c"']
    assert splitter.flush() == []


def test_init_event():
    """The init event gives session id, model, cwd and tools."""
    line = json.dumps(
        {
            "type": "system",
            "subtype": "init",
            "session_id": "s1",
            "model": "claude-sonnet-4-5",
            "cwd": "/home/user/repo",
            "tools": ["Bash"],
        }
    )
    event = parse_event(line)
    assert isinstance(event, InitEvent)
    assert (event.session_id, event.model, event.cwd, event.tools) == (
        "s1",
        "claude-sonnet-4-5",
        "/home/user/repo",
        ("Bash",),
    )


def test_assistant_event_with_text_and_tool_use():
    """Assistant text and tool calls are both read from the content blocks."""
    line = json.dumps(
        {
            "type": "assistant",
            "message": {
                "id": "msg_1",
                "model": "m",
                "usage": {"input_tokens": 3},
                "content": [
                    {"type": "text", "text": "Editing."},
                    {"type": "tool_use", "id": "t1", "name": "Edit", "input": {"file_path": "/x"}},
                ],
            },
        }
    )
    event = parse_event(line)
    assert isinstance(event, AssistantEvent)
    assert event.text == "Editing."
    assert event.tool_uses[0].name == "Edit"
    assert event.tool_uses[0].input == {"file_path": "/x"}
    assert event.usage == {"input_tokens": 3}


def test_tool_result_event():
    """User events carrying tool results are recognised, errors flagged."""
    line = json.dumps(
        {
            "type": "user",
            "message": {
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "is_error": True,
                        "content": "boom",
                    }
                ]
            },
        }
    )
    event = parse_event(line)
    assert isinstance(event, ToolResultEvent)
    assert event.tool_ids == ("t1",)
    assert event.is_error


def test_result_event():
    """The result event carries cost, usage and per-model usage."""
    line = json.dumps(
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "num_turns": 4,
            "session_id": "s1",
            "result": "Done.",
            "total_cost_usd": 0.0123,
            "usage": {"input_tokens": 10, "output_tokens": 5},
            "modelUsage": {"m": {"costUSD": 0.0123}},
            "duration_ms": 900,
        }
    )
    event = parse_event(line)
    assert isinstance(event, ResultEvent)
    assert event.total_cost_usd == 0.0123
    assert event.num_turns == 4
    assert event.usage["output_tokens"] == 5
    assert event.model_usage["m"]["costUSD"] == 0.0123


def test_unknown_type_is_kept():
    """A type we do not know is passed over as OtherEvent, not an error."""
    event = parse_event('{"type": "rate_limit_event", "x": 1}')
    assert isinstance(event, OtherEvent)
    assert event.type == "rate_limit_event"


def test_broken_lines():
    """Non-JSON and non-object lines become BrokenLine; blank lines are nothing."""
    assert isinstance(parse_event("not json"), BrokenLine)
    assert isinstance(parse_event("[1, 2]"), BrokenLine)
    assert parse_event("   ") is None


def test_malformed_known_event_does_not_raise():
    """A known type with a wrong shape is reported as broken, never raised."""
    event = parse_event('{"type": "result", "num_turns": "many"}')
    assert isinstance(event, BrokenLine)


def test_stream_events_carry_message_usage():
    """message_start gives id, model and usage; message_delta gives the final usage."""
    start = parse_event(
        json.dumps(
            {
                "type": "stream_event",
                "event": {
                    "type": "message_start",
                    "message": {"id": "msg_9", "model": "m", "usage": {"input_tokens": 7}},
                },
            }
        )
    )
    delta = parse_event(
        json.dumps(
            {
                "type": "stream_event",
                "event": {"type": "message_delta", "usage": {"output_tokens": 42}},
            }
        )
    )
    assert isinstance(start, StreamEvent)
    assert (start.kind, start.message_id, start.model, start.usage) == (
        "message_start",
        "msg_9",
        "m",
        {"input_tokens": 7},
    )
    assert isinstance(delta, StreamEvent)
    assert (delta.kind, delta.usage) == ("message_delta", {"output_tokens": 42})
