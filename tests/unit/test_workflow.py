import io

from claude_e2b.github.workflow import Workflow, command, escape_data, escape_property


def test_escaping():
    """Data escapes %, CR and LF; properties also : and ,."""
    assert escape_data("50%\r\nnext") == "50%25%0D%0Anext"
    assert escape_property("a:b,c%") == "a%3Ab%2Cc%25"


def test_command_shapes():
    """Commands with and without properties."""
    assert command("endgroup") == "::endgroup::"
    assert command("warning", "x\ny", title="t:1") == "::warning title=t%3A1::x%0Ay"


def test_disabled_outside_actions():
    """Nothing is written when not on Actions."""
    out = io.StringIO()
    Workflow(enabled=False, stream=out).warning("w")
    assert out.getvalue() == ""


def test_enabled_writes_lines():
    """On Actions each call writes one command line."""
    out = io.StringIO()
    flow = Workflow(enabled=True, stream=out)
    flow.group("Claude Code")
    flow.warning("30 min used")
    flow.end_group()
    assert out.getvalue().splitlines() == [
        "::group::Claude Code",
        "::warning title=claude-e2b::30 min used",
        "::endgroup::",
    ]
