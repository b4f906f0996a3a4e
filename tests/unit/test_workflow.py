import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claude_e2b.github import workflow as workflow_module
from claude_e2b.github.workflow import (
    MAX_ANNOTATIONS,
    Workflow,
    append_summary,
    command,
    escape_data,
    escape_property,
    heredoc_delimiter,
    write_outputs,
)
from tests.stand_ins.actions.commands import annotations_in, groups
from tests.stand_ins.actions.filecommands import parse_pairs


def test_escaping():
    """Data escapes %, CR and LF; properties also : and ,."""
    assert escape_data("50%\r\nnext") == "50%25%0D%0Anext"
    assert escape_property("a:b,c%") == "a%3Ab%2Cc%25"


def test_command_shapes():
    """Commands with and without properties."""
    assert command("endgroup") == "::endgroup::"
    assert command("warning", "x\ny", title="t:1") == "::warning title=t%3A1::x%0Ay"


def test_disabled_outside_actions():
    """Nothing is written, or kept, when not on Actions."""
    out = io.StringIO()
    flow = Workflow(enabled=False, stream=out)
    for n in range(MAX_ANNOTATIONS + 3):
        flow.warning(f"w{n}")
    flow.mask("secret-value")
    with flow.section("s"):
        pass
    assert out.getvalue() == ""
    assert flow.overflow == []


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


def test_warnings_past_the_limit_go_to_overflow():
    """Ten warnings become annotations; the rest are kept, in order, for the summary."""
    out = io.StringIO()
    flow = Workflow(enabled=True, stream=out)
    messages = [f"warning {n}" for n in range(MAX_ANNOTATIONS + 4)]
    for message in messages:
        flow.warning(message)
    shown = [a.message for a in annotations_in(out.getvalue())]
    assert shown == messages[:MAX_ANNOTATIONS]
    assert flow.overflow == messages[MAX_ANNOTATIONS:]


def test_errors_have_their_own_annotation_limit():
    """Errors are counted apart from warnings, as GitHub limits each kind per step."""
    out = io.StringIO()
    flow = Workflow(enabled=True, stream=out)
    for n in range(MAX_ANNOTATIONS + 1):
        flow.warning(f"w{n}")
    flow.error("broken")
    kinds = [(a.level, a.message) for a in annotations_in(out.getvalue())]
    assert ("error", "broken") in kinds
    assert flow.overflow == [f"w{MAX_ANNOTATIONS}"]


def test_section_closes_its_group_when_the_block_raises():
    """The group ends even when the code inside it fails."""
    out = io.StringIO()
    flow = Workflow(enabled=True, stream=out)

    def fail_inside():
        with flow.section("Upload"):
            print("::debug::inside", file=out)
            raise RuntimeError

    with pytest.raises(RuntimeError):
        fail_inside()
    assert out.getvalue().splitlines()[-1] == "::endgroup::"
    assert [g.title for g in groups(out.getvalue())] == ["Upload"]


def _read_outputs(path):
    # The runner reads the raw text: a CR is data, not a line break (Linux).
    return dict(parse_pairs(path.read_bytes().decode("utf-8")))


NASTY_VALUES = {
    "status": "completed",
    "empty": "",
    "multi": "line one\nline two",
    "trailing": "ends with a newline\n",
    "only-newline": "\n",
    "naive-delimiter": "x\nEOF\nstatus=hijacked\nghadelimiter_\n",
    "crlf": "a\r\nb\r",
    "unicode": "café ✅ 日本",
}


def test_outputs_read_back_exactly_as_the_runner_reads_them(tmp_path):
    """Every value, newlines, delimiter look-alikes and CRs included, round-trips."""
    path = tmp_path / "output"
    write_outputs(path, NASTY_VALUES)
    assert _read_outputs(path) == NASTY_VALUES


def test_outputs_append_to_what_the_step_wrote(tmp_path):
    """Writing twice keeps both; a later value of the same name wins, as on the runner."""
    path = tmp_path / "output"
    path.write_text("earlier=1\n", encoding="utf-8")
    write_outputs(path, {"status": "failed"})
    write_outputs(path, {"status": "completed", "pr-url": ""})
    assert _read_outputs(path) == {"earlier": "1", "status": "completed", "pr-url": ""}


@settings(deadline=None)  # file writes on a busy machine
@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True), st.text()))
def test_any_value_round_trips(tmp_path_factory, outputs):
    """Arbitrary text can neither break its block nor set another output."""
    path = tmp_path_factory.mktemp("out") / "output"
    write_outputs(path, outputs)
    assert _read_outputs(path) == outputs


def test_delimiter_is_never_in_the_value(mocker):
    """A random delimiter that happens to occur in the value is drawn again."""
    taken = "ab" * 16
    mocker.patch.object(workflow_module.secrets, "token_hex", side_effect=[taken, "cd" * 16])
    assert heredoc_delimiter(f"x ghadelimiter_{taken} y") == f"ghadelimiter_{'cd' * 16}"


@pytest.mark.parametrize("name", ["", "a=b", "a<<b", "two\nlines", "-dash-first"])
def test_output_names_the_runner_cannot_read_are_refused(tmp_path, name):
    """A name with = or << or a newline would be misread: refused before writing."""
    path = tmp_path / "output"
    with pytest.raises(ValueError, match="invalid output name"):
        write_outputs(path, {name: "v"})
    assert not path.exists()


def test_nothing_is_written_without_a_file():
    """Outside Actions there is no GITHUB_OUTPUT or GITHUB_STEP_SUMMARY: no-ops."""
    write_outputs(None, {"status": "completed"})
    append_summary(None, "# report")


def test_summary_is_appended_with_line_ends(tmp_path):
    """Each appended text starts on its own line, after what was there."""
    path = tmp_path / "summary"
    append_summary(path, "## one")
    append_summary(path, "## two\n")
    assert path.read_text(encoding="utf-8") == "## one\n## two\n"
