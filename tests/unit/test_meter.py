import json

from claude_e2b.agent.events import parse_event
from claude_e2b.agent.meter import UsageMeter


def _stream(inner):
    return parse_event(json.dumps({"type": "stream_event", "event": inner}))


def _assistant(message_id, usage):
    return parse_event(
        json.dumps(
            {
                "type": "assistant",
                "message": {
                    "id": message_id,
                    "model": "m",
                    "usage": usage,
                    "content": [{"type": "text", "text": "x"}],
                },
            }
        )
    )


def test_usage_is_kept_per_message_and_delta_replaces():
    """Output tokens come from message_delta; repeated assistant events are not summed."""
    meter = UsageMeter()
    meter.record(
        _stream(
            {
                "type": "message_start",
                "message": {
                    "id": "a",
                    "model": "m",
                    "usage": {"input_tokens": 10, "output_tokens": 1},
                },
            }
        )
    )
    meter.record(_assistant("a", {"input_tokens": 10, "output_tokens": 1}))
    meter.record(_assistant("a", {"input_tokens": 10, "output_tokens": 1}))
    meter.record(_stream({"type": "message_delta", "usage": {"output_tokens": 55}}))
    assert dict(meter.per_message) == {"a": ("m", {"input_tokens": 10, "output_tokens": 55})}


def test_without_partial_messages_assistant_usage_counts_once():
    """Only assistant events: each message id counted once."""
    meter = UsageMeter()
    for _ in range(3):
        meter.record(_assistant("b", {"input_tokens": 4}))
    meter.record(_assistant("c", {"input_tokens": 6}))
    assert {k: v[1]["input_tokens"] for k, v in meter.per_message.items()} == {"b": 4, "c": 6}
