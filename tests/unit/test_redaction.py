import io
import json

from claude_e2b.log import REDACTED, REDACTOR, Redactor, configure_logging, get_logger


def test_redactor_replaces_values_everywhere():
    """Secret values are replaced in nested structures; short values are ignored."""
    redactor = Redactor(["supersecretvalue1", "abc"])
    data = {"a": "x supersecretvalue1 y", "b": ["supersecretvalue1"], "c": ("abc",), "n": 3}
    assert redactor.redact_value(data) == {
        "a": f"x {REDACTED} y",
        "b": [REDACTED],
        "c": ("abc",),
        "n": 3,
    }


def test_longer_secret_is_replaced_whole():
    """A secret that contains another is replaced as a whole."""
    redactor = Redactor(["secret-12345678", "secret-12345678-extended"])
    assert redactor.redact("k=secret-12345678-extended") == f"k={REDACTED}"


def test_logs_never_show_a_registered_secret():
    """The structlog pipeline redacts every field, including the event text."""
    stream = io.StringIO()
    configure_logging(json_lines=True, stream=stream)
    REDACTOR.add("canary-secret-value-42")
    get_logger("t").info("saw canary-secret-value-42", detail={"k": "canary-secret-value-42"})
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert "canary-secret-value-42" not in stream.getvalue()
    assert line["detail"]["k"] == REDACTED
