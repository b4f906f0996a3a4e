"""README's generated parts stay in step with action.yml; every input reaches the entrypoint."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from scripts import action_docs

ROOT = Path(__file__).resolve().parents[2]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
README = (ROOT / "README.md").read_text(encoding="utf-8")
_FIX = "run `uv run python scripts/action_docs.py` and commit README.md"


def _table_names(readme: str, marker: str) -> list[str]:
    """The first-column names of the table between a marker pair, as the README shows them."""
    body = readme.partition(f"<!-- {marker}:start -->")[2].partition(f"<!-- {marker}:end -->")[0]
    return re.findall(r"^\| `([^`]+)` \|", body, flags=re.MULTILINE)


def _copy_repo(tmp_path: Path) -> Path:
    """The files scripts/action_docs.py reads, copied into a scratch repository."""
    for name in (
        "README.md",
        "action.yml",
        "examples/plans/health-endpoint.md",
        "examples/workflows/dispatch.yml",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def test_readme_is_up_to_date():
    """README.md's tables and quick start are exactly what action.yml and the examples give."""
    assert action_docs.render(README, action_docs.blocks(ROOT)) == README, _FIX


def test_tables_name_every_input_and_output_in_order():
    """The README's tables list action.yml's inputs and outputs, in the file's order."""
    assert _table_names(README, "action-inputs") == list(ACTION["inputs"])
    assert _table_names(README, "action-outputs") == list(ACTION["outputs"])


def test_quick_start_is_the_linted_example():
    """The quick start's workflow is examples/workflows/dispatch.yml, which the lint tests cover."""
    workflow = (ROOT / "examples/workflows/dispatch.yml").read_text(encoding="utf-8")
    assert f"```yaml\n{workflow}```\n<!-- quick-start-workflow:end -->" in README


def test_check_mode_fails_on_a_new_input_until_rewritten(tmp_path):
    """--check exits 1 when action.yml gains an input; a rewrite adds it and --check passes."""
    repo = _copy_repo(tmp_path)
    action = repo / "action.yml"
    action.write_text(
        action.read_text(encoding="utf-8").replace(
            "inputs:\n", "inputs:\n  shiny:\n    description: A new <knob> | pipe.\n", 1
        ),
        encoding="utf-8",
    )
    assert action_docs.main(["--check", "--root", str(repo)]) == 1
    assert action_docs.main(["--root", str(repo)]) == 0
    assert action_docs.main(["--check", "--root", str(repo)]) == 0
    readme = (repo / "README.md").read_text(encoding="utf-8")
    assert "| `shiny` |  | A new &lt;knob&gt; \\| pipe. |" in readme
    assert _table_names(readme, "action-inputs")[0] == "shiny"


def test_cells_escape_pipes_and_angle_brackets_but_not_code():
    """Cells are one line; `|` is escaped everywhere; `<…>` becomes entities outside code."""
    assert action_docs.cell("a <b>\n  c | `<d|e>`") == r"a &lt;b&gt; c \| `<d\|e>`"


def test_required_inputs_say_so():
    """A required input shows "required" where others show their default."""
    table = action_docs.input_table(
        {"inputs": {"a": {"required": True, "description": "x"}, "b": {"default": "1"}}}
    )
    assert table.splitlines()[2:] == ["| `a` | required | x |", "| `b` | `1` |  |"]


def test_fence_outgrows_backticks_inside(tmp_path):
    """A file holding a ``` fence is wrapped in a longer one."""
    path = tmp_path / "plan.md"
    path.write_text("text\n```sh\nls\n```\n", encoding="utf-8")
    assert action_docs.fenced(path, "markdown") == "````markdown\ntext\n```sh\nls\n```\n````"


@pytest.mark.parametrize(
    "readme",
    [
        "no markers at all",
        "<!-- action-inputs:end -->\n<!-- action-inputs:start -->",
        "<!-- action-inputs:start -->\n<!-- action-inputs:start -->\n<!-- action-inputs:end -->",
    ],
)
def test_missing_or_misplaced_markers_are_an_error(readme):
    """A marker pair that is missing, reversed or doubled is reported by name."""
    with pytest.raises(ValueError, match="action-inputs:start"):
        action_docs.render(readme, {"action-inputs": "table"})


def _entrypoint_env() -> dict[str, str]:
    """The env: of the step that runs the entrypoint."""
    steps = ACTION["runs"]["steps"]
    (step,) = [s for s in steps if "entrypoint" in str(s.get("run", ""))]
    return {str(key): str(value) for key, value in step["env"].items()}


def test_every_input_reaches_the_entrypoint():
    """Each input is handed to the entrypoint as INPUT_<NAME>, and nothing else is.

    The runner gives a composite action's steps no INPUT_ variables: an input missing
    from this env: would be dropped without a word.
    """
    given = {k: v for k, v in _entrypoint_env().items() if k.startswith("INPUT_")}
    wanted = {
        "INPUT_" + name.replace("-", "_").upper(): f"${{{{ inputs.{name} }}}}"
        for name in ACTION["inputs"]
    }
    assert given == wanted
