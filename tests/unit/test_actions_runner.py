"""The composite-action harness behaves as the GitHub Actions runner does (tiny action.yml)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.stand_ins.actions import (
    ActionRun,
    ManifestError,
    StandInAction,
    StandInCall,
    UnknownActionError,
    UsesTable,
    annotations_in,
    assert_masked,
    default_stand_ins,
    groups,
    host_environment,
    mask_leaks,
    masked_log,
    parse_commands,
    run_composite_action,
    setup_python_stand_in,
)
from tests.stand_ins.actions import expressions as ex
from tests.stand_ins.actions.filecommands import FileCommandError, parse_pairs
from tests.stand_ins.actions.setup_actions import find_uv, semver_satisfies

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


def write_action(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "action"
    folder.mkdir(exist_ok=True)
    (folder / "action.yml").write_text(textwrap.dedent(text), encoding="utf-8")
    return folder


def run(tmp_path: Path, workspace: Path, text: str, **kwargs: Any) -> ActionRun:
    kwargs.setdefault("timeout", 60)
    return run_composite_action(write_action(tmp_path, text), workspace=workspace, **kwargs)


def evaluate(text: str, **contexts: Any) -> Any:
    allowed = ex.Allowed(frozenset(contexts), {"hashfiles": (1, 255)})
    return ex.evaluate(ex.parse(text, allowed), ex.Scope(contexts))


def outcomes(result: ActionRun) -> dict[str, tuple[str, str]]:
    return {s.context_name: (s.outcome, s.conclusion) for s in result.steps}


# ---------------------------------------------------------------- expressions


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("format('{0} and {{1}} {1}', 'a', 2)", "a and {1} 2"),
        ("contains('Hello world', 'WORLD')", True),
        ("contains(fromJSON('[\"a\", \"b\"]'), 'B')", True),
        ("contains(fromJSON('[1, 2]'), '2')", True),
        ("startsWith('refs/heads/main', 'REFS/')", True),
        ("endsWith('report.MD', '.md')", True),
        ("join(fromJSON('[1, \"a\", true, null]'), '-')", "1-a-true-"),
        ("join('alone')", "alone"),
        ("case(1 == 2, 'a', 'b' == 'B', 'c', 'd')", "c"),
        ("0x10 == 16 && 0o10 == 8", True),
        ("'1.0' == 1", True),
        ("'' == 0 && null == 0 && false == 0", True),
        ("'abc' == 'ABC'", True),
        ("'b' > 'A'", True),
        ("'10' > 9", True),
        ("!'' && !null && !0 && !'false' == false", True),
        ("0 && 'never'", 0.0),
        ("'' || 'fallback'", "fallback"),
        ("format('{0}|{1}|{2}|{3}', 3.10, 1e21, true, null)", "3.1|1E+21|true|"),
        ("format('{0}', fromJSON('{}'))", "Object"),
        ('fromJSON(\'{"a": {"b": [10, 20]}}\').a.b[1]', 20.0),
        ("fromJSON('{\"Key\": 1}').key", 1.0),
        ("fromJSON('[1]')[5] == null", True),
    ],
)
def test_expression_values(text: str, expected: Any) -> None:
    """Functions, literals, coercions and truthiness follow the runner's DTExpressions2."""
    value = evaluate(text)
    assert value == expected
    assert type(value) is type(expected)


def test_to_json_layout() -> None:
    """toJSON indents by two spaces and writes whole numbers without a fraction."""
    value = evaluate('toJSON(fromJSON(\'{"a": [1, 2.5, null, true], "b": {}, "c": []}\'))')
    expected = '{\n  "a": [\n    1,\n    2.5,\n    null,\n    true\n  ],\n  "b": {},\n  "c": []\n}'
    assert value == expected


def test_property_access_and_wildcards() -> None:
    """`.x`, `['x']`, and `*` filters over arrays and objects; missing properties are null."""
    github = {"event": {"commits": [{"id": "a1"}, {"id": "b2"}, {"other": 1}], "n": 3}}
    assert evaluate("join(github.event.commits.*.id, ',')", github=github) == "a1,b2"
    assert evaluate("contains(github.event.commits.*.id, 'B2')", github=github) is True
    assert evaluate("github['event']['n'] == 3", github=github) is True
    assert evaluate("github.event.missing.deeper", github=github) is None
    assert evaluate("format('[{0}]', github.nope)", github=github) == "[]"


def test_env_context_is_case_sensitive() -> None:
    """`env` keys are case-sensitive on Linux; other contexts are not."""
    env = ex.CaseSensitiveDict({"Name": "x"})
    assert evaluate("env.Name", env=env) == "x"
    assert evaluate("env.name", env=env) is None
    assert evaluate("inputs.NAME", inputs={"name": "y"}) == "y"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("secrets.TOKEN", "Unrecognized named-value: 'secrets'"),
        ("nosuch('a')", "Unrecognized function: 'nosuch'"),
        ("contains('a')", "Too few parameters supplied: 'contains'"),
        ("startsWith('a', 'b', 'c')", "Too many parameters supplied: 'startsWith'"),
        ("inputs.a ==", "Unexpected end of expression"),
        ("inputs.a = 'b'", "Unexpected symbol: '='"),
        ("'unclosed", "Unexpected symbol: ''unclosed'"),
    ],
)
def test_expression_errors(text: str, message: str) -> None:
    """Bad expressions fail at parse time with the runner's wording."""
    with pytest.raises(ex.ExpressionError, match=message.replace("(", r"\(")):
        ex.parse(text, ex.Allowed(frozenset({"inputs", "github"})))


def test_template_strings_become_format_calls() -> None:
    """`a ${{ x }} b` is format('a {0} b', x); a lone expression stays itself."""
    assert ex.template_expression("plain") is None
    assert ex.template_expression("${{ inputs.a }}") == "inputs.a"
    assert ex.template_expression("it's {x} ${{ inputs.a }}!") == (
        "format('it''s {{x}} {0}!', inputs.a)"
    )
    assert ex.template_expression("${{ '}}' }} tail") == "format('{0} tail', '}}')"
    with pytest.raises(ex.ExpressionError, match="not closed"):
        ex.template_expression("${{ inputs.a ")


def test_hash_files(workspace: Path) -> None:
    """hashFiles: SHA-256 over each matched file's SHA-256, sorted by path; '' for no match."""
    (workspace / "b.lock").write_text("bee")
    (workspace / "sub").mkdir()
    (workspace / "sub" / "a.lock").write_text("ay")
    (workspace / "skip.lock").write_text("skip")
    github = {"workspace": str(workspace)}
    outer = hashlib.sha256()
    for content in (b"bee", b"ay"):  # b.lock sorts before sub/a.lock
        outer.update(hashlib.sha256(content).digest())
    assert evaluate("hashFiles('**/*.lock', '!skip.lock')", github=github) == outer.hexdigest()
    assert evaluate("hashFiles('**/*.none')", github=github) == ""


# ---------------------------------------------------------------- file commands


def test_file_command_pairs() -> None:
    """NAME=value splits at the first '='; heredoc values keep inner lines and '='."""
    text = "a=1=2\n\nmulti<<END\nx=y\n\nlast\nEND\nempty<<END\nEND\n"
    assert parse_pairs(text) == [("a", "1=2"), ("multi", "x=y\n\nlast"), ("empty", "")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("k<<END\nvalue\n", "Matching delimiter not found 'END'"),
        ("k<<END\nvalue", "EOF marker missing new line"),
        ("no separator\n", "Invalid format 'no separator'"),
        ("<<END\nEND\n", "Name must not be empty"),
    ],
)
def test_file_command_errors(text: str, message: str) -> None:
    """Malformed files are rejected with the runner's messages."""
    with pytest.raises(FileCommandError, match=message):
        parse_pairs(text)


# ---------------------------------------------------------------- inputs and environment


def test_inputs_defaults_and_no_input_variables(tmp_path: Path, workspace: Path) -> None:
    """Defaults (even expressions) fill missing inputs; an explicit '' stays; no INPUT_* env."""
    result = run(
        tmp_path,
        workspace,
        """
        inputs:
          plain: {default: fallback}
          token: {default: "${{ github.token }}"}
          given-empty: {default: not-used}
          none: {description: no default}
          version: {default: 3.10}
          word: {default: yes}
        outputs:
          all:
            value: ${{ toJSON(inputs) }}
        runs:
          using: composite
          steps:
            - id: dump
              shell: bash
              run: env | sort > "$RUNNER_TEMP/env.txt"; cp "$RUNNER_TEMP/env.txt" env.txt
        """,
        inputs={"Given-Empty": "", "extra": True},
        github={"token": "ghs_given"},
    )
    assert result.conclusion == "success"
    assert json.loads(result.outputs["all"]) == {
        "Given-Empty": "",
        "extra": "true",
        "plain": "fallback",
        "token": "ghs_given",
        "none": "",
        "version": "3.1",
        "word": "yes",
    }
    names = [line.split("=")[0] for line in (workspace / "env.txt").read_text().splitlines()]
    assert not [n for n in names if n.startswith("INPUT_")]
    assert "GITHUB_TOKEN" not in names
    assert [a.message for a in result.annotations] == [
        (
            "Unexpected input(s) 'extra', valid inputs are "
            "['plain', 'token', 'given-empty', 'none', 'version', 'word']"
        )
    ]


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ("inputs: {a: {default: '${{ inputs.b }}'}}", "Unrecognized named-value: 'inputs'"),
        ("inputs: {a: {default: '${{ env.X }}'}}", "Unrecognized named-value: 'env'"),
    ],
)
def test_input_defaults_see_only_their_contexts(
    tmp_path: Path, workspace: Path, fragment: str, message: str
) -> None:
    """A default may name github/runner/job/strategy/matrix only, checked at load time."""
    text = fragment + "\nruns: {using: composite, steps: [{run: 'true', shell: bash}]}\n"
    with pytest.raises(ManifestError, match=message):
        run(tmp_path, workspace, text)


def test_standard_environment(
    tmp_path: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Steps get the runner's GITHUB_*/RUNNER_* variables and nothing else of the host's."""
    monkeypatch.setenv("HOST_ONLY_VARIABLE", "leak")
    payload = {"inputs": {"plan": "p.md"}, "sender": {"login": "octocat"}}
    result = run(
        tmp_path,
        workspace,
        """
        runs:
          using: composite
          steps:
            - id: env
              shell: bash
              run: pwd > pwd.txt
        """,
        github={"repository": "acme/widgets", "api_url": "http://127.0.0.1:9/api/v3",
                "server_url": "http://127.0.0.1:9", "run_id": "42"},
        event_name="issue_comment",
        event_payload=payload,
        env={"JOB_LEVEL": "job"},
        runner_temp=tmp_path / "temp",
    )  # fmt: skip
    env = result.step("env").env
    assert env["GITHUB_ACTIONS"] == "true"
    assert env["CI"] == "true"
    assert env["GITHUB_WORKSPACE"] == str(workspace.resolve())
    assert env["GITHUB_EVENT_NAME"] == "issue_comment"
    assert json.loads(Path(env["GITHUB_EVENT_PATH"]).read_text()) == payload
    assert env["GITHUB_REPOSITORY"] == "acme/widgets"
    assert env["GITHUB_REPOSITORY_OWNER"] == "acme"
    assert env["GITHUB_API_URL"] == "http://127.0.0.1:9/api/v3"
    assert env["GITHUB_GRAPHQL_URL"] == "http://127.0.0.1:9/api/graphql"
    assert env["GITHUB_SERVER_URL"] == "http://127.0.0.1:9"
    assert env["GITHUB_RUN_ID"] == "42"
    assert env["RUNNER_OS"] == "Linux"
    assert env["RUNNER_TEMP"] == str(result.runner_temp)
    assert env["GITHUB_ACTION_PATH"] == str((tmp_path / "action").resolve())
    assert env["JOB_LEVEL"] == "job"
    assert "GITHUB_TOKEN" not in env
    assert "HOST_ONLY_VARIABLE" not in env
    assert (workspace / "pwd.txt").read_text().strip() == str(workspace.resolve())


def test_host_environment_picks_only_named_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """host_environment() is PATH, HOME, LANG plus the names asked for, when set."""
    monkeypatch.setenv("SSL_CERT_FILE", "/etc/ca.pem")
    monkeypatch.setenv("OTHER_VARIABLE", "x")
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    chosen = host_environment("SSL_CERT_FILE", "SSL_CERT_DIR")
    assert chosen["SSL_CERT_FILE"] == "/etc/ca.pem"
    assert set(chosen) - {"PATH", "HOME", "LANG"} == {"SSL_CERT_FILE"}


def test_each_step_gets_fresh_output_file(tmp_path: Path, workspace: Path) -> None:
    """Every step has its own empty GITHUB_OUTPUT; steps.<id>.outputs come from it."""
    result = run(
        tmp_path,
        workspace,
        """
        outputs:
          greeting: {value: "${{ steps.second.outputs.greeting }}"}
        runs:
          using: composite
          steps:
            - id: first
              shell: bash
              run: |
                echo "name=first" >> "$GITHUB_OUTPUT"
                echo "$GITHUB_OUTPUT" > first.path
            - id: second
              shell: bash
              run: |
                wc -c < "$GITHUB_OUTPUT" > second.size
                echo "$GITHUB_OUTPUT" > second.path
                echo "greeting=hello ${{ steps.first.outputs.name }}" >> "$GITHUB_OUTPUT"
        """,
    )
    assert (workspace / "first.path").read_text() != (workspace / "second.path").read_text()
    assert (workspace / "second.size").read_text().strip() == "0"
    assert result.outputs == {"greeting": "hello first"}
    assert result.step("first").outputs == {"name": "first"}


def test_multiline_output_heredoc(tmp_path: Path, workspace: Path) -> None:
    """A heredoc output keeps its blank lines and '=' signs through to the action's outputs."""
    result = run(
        tmp_path,
        workspace,
        """
        outputs:
          body: {value: "${{ steps.make.outputs.body }}"}
        runs:
          using: composite
          steps:
            - id: make
              shell: bash
              run: |
                {
                  echo "body<<EOF_$$"
                  printf 'line 1\\n\\nkey=value\\n'
                  echo "EOF_$$"
                } >> "$GITHUB_OUTPUT"
        """,
    )
    assert result.outputs == {"body": "line 1\n\nkey=value"}


def test_bad_output_file_fails_the_step(tmp_path: Path, workspace: Path) -> None:
    """A heredoc without its delimiter fails the step with the runner's message."""
    result = run(
        tmp_path,
        workspace,
        """
        runs:
          using: composite
          steps:
            - id: bad
              shell: bash
              run: printf 'x<<END\\nvalue\\n' >> "$GITHUB_OUTPUT"
        """,
    )
    assert result.conclusion == "failure"
    messages = [a.message for a in result.annotations if a.level == "error"]
    assert "Invalid value. Matching delimiter not found 'END'" in messages


def test_github_env_reaches_later_steps_only(tmp_path: Path, workspace: Path) -> None:
    """GITHUB_ENV writes appear in later steps' env and `env` context, not the writer's."""
    result = run(
        tmp_path,
        workspace,
        """
        runs:
          using: composite
          steps:
            - id: write
              shell: bash
              run: |
                echo "LATER=set" >> "$GITHUB_ENV"
                echo "JOB=rewritten" >> "$GITHUB_ENV"
                echo "CALLER=ignored" >> "$GITHUB_ENV"
                echo "now:${LATER:-unset}"
            - id: read
              shell: bash
              run: echo "then:$LATER ${{ env.LATER }} $JOB $CALLER"
        """,
        env={"JOB": "job"},
        step_env={"CALLER": "caller"},
    )
    assert result.step("write").stdout == "now:unset\n"
    assert result.step("read").stdout == "then:set set rewritten caller\n"
    assert result.exported_env == {"LATER": "set", "JOB": "rewritten", "CALLER": "ignored"}


def test_step_env_is_evaluated_with_the_env_before_it(tmp_path: Path, workspace: Path) -> None:
    """`env:` values see the env context as it was before the step, not their siblings."""
    result = run(
        tmp_path,
        workspace,
        """
        runs:
          using: composite
          steps:
            - id: show
              shell: bash
              env:
                A: from-step
                B: "<${{ env.A }}>"
              run: echo "$A $B"
        """,
        env={"A": "from-job"},
    )
    assert result.step("show").stdout == "from-step <from-job>\n"
    assert result.step("show").env_context == {"A": "from-step", "B": "<from-job>"}


def test_github_path_prepends_newest_first(tmp_path: Path, workspace: Path) -> None:
    """GITHUB_PATH entries lead later steps' PATH, the last written first."""
    tools = workspace / "tools"
    tools.mkdir()
    (tools / "hello-tool").write_text("#!/bin/sh\necho tool ran\n")
    (tools / "hello-tool").chmod(0o755)
    result = run(
        tmp_path,
        workspace,
        """
        runs:
          using: composite
          steps:
            - id: add
              shell: bash
              run: |
                echo "$GITHUB_WORKSPACE/tools" >> "$GITHUB_PATH"
                echo "/opt/second" >> "$GITHUB_PATH"
            - id: use
              shell: bash
              run: hello-tool
        """,
    )
    tools_path = str(workspace.resolve() / "tools")
    assert result.step("use").stdout == "tool ran\n"
    assert result.step("use").env["PATH"].startswith(f"/opt/second:{tools_path}:")
    assert result.added_path == ("/opt/second", tools_path)


def test_step_summary_is_collected(tmp_path: Path, workspace: Path) -> None:
    """GITHUB_STEP_SUMMARY text of every step is kept in order."""
    result = run(
        tmp_path,
        workspace,
        """
        runs:
          using: composite
          steps:
            - {shell: bash, run: 'echo "# One" >> "$GITHUB_STEP_SUMMARY"'}
            - {shell: bash, run: 'true'}
            - {shell: bash, run: 'echo "two" >> "$GITHUB_STEP_SUMMARY"'}
        """,
    )
    assert result.summary == "# One\ntwo\n"


# ---------------------------------------------------------------- conditions and failures


def test_if_conditions(tmp_path: Path, workspace: Path) -> None:
    """`if:` comparisons ignore case; skipped steps are recorded with no outputs."""
    result = run(
        tmp_path,
        workspace,
        """
        inputs:
          mode: {default: fast}
          flag: {default: ""}
        runs:
          using: composite
          steps:
            - {id: eq, if: "inputs.mode == 'FAST'", shell: bash, run: echo x=1 >> $GITHUB_OUTPUT}
            - {id: ne, if: "inputs.mode != 'fast'", shell: bash, run: echo x=1 >> $GITHUB_OUTPUT}
            - {id: not, if: "!inputs.flag", shell: bash, run: 'true'}
            - {id: and, if: "inputs.mode && inputs.flag", shell: bash, run: 'true'}
            - {id: or, if: "${{ inputs.flag || inputs.mode == 'fast' }}", shell: bash, run: 'true'}
            - id: seen
              if: steps.ne.outcome == 'skipped' && steps.eq.outputs.x == '1'
              shell: bash
              run: 'true'
        """,
    )
    assert outcomes(result) == {
        "eq": ("success", "success"),
        "ne": ("skipped", "skipped"),
        "not": ("success", "success"),
        "and": ("skipped", "skipped"),
        "or": ("success", "success"),
        "seen": ("success", "success"),
    }
    assert result.step("ne").outputs == {}


def test_embedded_expression_in_if_is_always_true(tmp_path: Path, workspace: Path) -> None:
    """`if: ${{ a }} == 'b'` is a non-empty format() string, so the step runs (a real gotcha)."""
    result = run(
        tmp_path,
        workspace,
        """
        inputs:
          mode: {default: slow}
        runs:
          using: composite
          steps:
            - {id: gotcha, if: "${{ inputs.mode }} == 'fast'", shell: bash, run: 'true'}
        """,
    )
    assert outcomes(result) == {"gotcha": ("success", "success")}


def test_failure_stops_later_steps_unless_they_ask(tmp_path: Path, workspace: Path) -> None:
    """After a failure only always()/failure() steps run; outputs are still evaluated."""
    result = run(
        tmp_path,
        workspace,
        """
        outputs:
          first: {value: "${{ steps.ok.outputs.v }}"}
        runs:
          using: composite
          steps:
            - {id: ok, shell: bash, run: echo "v=1" >> "$GITHUB_OUTPUT"}
            - {id: boom, shell: bash, run: exit 3}
            - {id: normal, shell: bash, run: 'true'}
            - {id: implicit, if: "1 == 1", shell: bash, run: 'true'}
            - {id: ok-after, if: success(), shell: bash, run: 'true'}
            - id: cleanup
              if: always()
              shell: bash
              run: echo "${{ steps.boom.outcome }} ${{ steps.normal.conclusion }}"
            - {id: on-failure, if: failure(), shell: bash, run: 'true'}
        """,
    )
    assert result.conclusion == "failure"
    assert outcomes(result) == {
        "ok": ("success", "success"),
        "boom": ("failure", "failure"),
        "normal": ("skipped", "skipped"),
        "implicit": ("skipped", "skipped"),
        "ok-after": ("skipped", "skipped"),
        "cleanup": ("success", "success"),
        "on-failure": ("success", "success"),
    }
    assert result.step("cleanup").stdout == "failure skipped\n"
    assert result.step("boom").exit_code == 3
    assert result.outputs == {"first": "1"}
    errors = [a for a in result.annotations if a.level == "error"]
    assert [(a.message, a.step, a.source) for a in errors] == [
        ("Process completed with exit code 3.", "boom", "runner")
    ]
    assert "##[error]Process completed with exit code 3." in result.log


def test_continue_on_error(tmp_path: Path, workspace: Path) -> None:
    """continue-on-error keeps outcome 'failure' but concludes 'success'; the action succeeds."""
    result = run(
        tmp_path,
        workspace,
        """
        inputs:
          tolerate: {default: "true"}
        runs:
          using: composite
          steps:
            - id: flaky
              continue-on-error: ${{ inputs.tolerate == 'true' }}
              shell: bash
              run: exit 1
            - id: next
              shell: bash
              run: echo "${{ steps.flaky.outcome }}/${{ steps.flaky.conclusion }}"
        """,
    )
    assert result.conclusion == "success"
    assert outcomes(result)["flaky"] == ("failure", "success")
    assert result.step("next").stdout == "failure/success\n"


def test_condition_error_stops_the_action(tmp_path: Path, workspace: Path) -> None:
    """An `if:` that cannot be evaluated fails its step and no later step runs, even always()."""
    result = run(
        tmp_path,
        workspace,
        """
        runs:
          using: composite
          steps:
            - {id: broken, if: "fromJSON('{')", shell: bash, run: 'true'}
            - {id: cleanup, if: always(), shell: bash, run: 'true'}
        """,
    )
    assert result.conclusion == "failure"
    assert outcomes(result) == {"broken": ("failure", "failure")}


def test_bash_has_pipefail_and_sh_does_not(tmp_path: Path, workspace: Path) -> None:
    """bash runs with -e -o pipefail; sh with -e only."""
    result = run(
        tmp_path,
        workspace,
        """
        runs:
          using: composite
          steps:
            - {id: bash, continue-on-error: true, shell: bash, run: 'false | true'}
            - {id: sh, shell: sh, run: 'false | true'}
        """,
    )
    assert outcomes(result) == {"bash": ("failure", "success"), "sh": ("success", "success")}


def test_script_file_argv_and_working_directory(tmp_path: Path, workspace: Path) -> None:
    """The evaluated script goes to $RUNNER_TEMP/<uuid>.sh, run by the shell's argv, in the dir."""
    (workspace / "sub").mkdir()
    temp = tmp_path / "runner-temp"
    result = run(
        tmp_path,
        workspace,
        """
        inputs:
          who: {default: octocat}
        runs:
          using: composite
          steps:
            - id: hi
              shell: bash
              working-directory: sub
              run: echo "hi ${{ inputs.who }} from $(basename "$PWD")"
            - {id: py, shell: python, run: "import os; print(os.environ['GITHUB_ACTIONS'])"}
        """,
        runner_temp=temp,
    )
    step = result.step("hi")
    assert step.stdout == "hi octocat from sub\n"
    assert step.argv[1:-1] == ("--noprofile", "--norc", "-e", "-o", "pipefail")
    assert Path(step.argv[0]).name == "bash"
    script = Path(step.argv[-1])
    assert script.parent == temp.resolve()
    assert script.suffix == ".sh"
    assert script.read_text() == 'echo "hi octocat from $(basename "$PWD")"'
    assert result.step("py").stdout == "true\n"
    assert result.step("py").argv[-1].endswith(".py")


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("{run: 'true'}", "Required property is missing: shell"),
        ("{run: 'true', shell: bash, timeout-minutes: 5}", "Unexpected value 'timeout-minutes'"),
        ("{id: __x, run: 'true', shell: bash}", "IDs starting with '__' are reserved"),
        ("{id: 1x, run: 'true', shell: bash}", "The identifier '1x' is invalid"),
        ("{uses: actions/setup-python}", "Expected format {org}/{repo}"),
        ("{run: 'echo ${{ secrets.X }}', shell: bash}", "Unrecognized named-value: 'secrets'"),
        ("{run: 'true', shell: bash, continue-on-error: 'yes'}", "Unexpected value 'yes'"),
    ],
)
def test_manifest_rules(tmp_path: Path, workspace: Path, step: str, message: str) -> None:
    """action.yml breaking the runner's schema fails before any step runs."""
    text = f"runs:\n  using: composite\n  steps:\n    - {step}\n"
    with pytest.raises(ManifestError, match=message.replace("{", r"\{").replace("}", r"\}")):
        run(tmp_path, workspace, text)


def test_duplicate_ids_are_rejected(tmp_path: Path, workspace: Path) -> None:
    """Two steps may not share an id."""
    text = "runs:\n  using: composite\n  steps:\n"
    text += "    - {id: a, run: 'true', shell: bash}\n" * 2
    with pytest.raises(ManifestError, match="may not be used more than once"):
        run(tmp_path, workspace, text)


def test_steps_without_id_keep_no_outputs(tmp_path: Path, workspace: Path) -> None:
    """Steps without an id get `__run`, `__run_2` names and stay out of the steps context."""
    result = run(
        tmp_path,
        workspace,
        """
        outputs:
          steps: {value: "${{ toJSON(steps) }}"}
        runs:
          using: composite
          steps:
            - {shell: bash, run: echo "a=1" >> "$GITHUB_OUTPUT"}
            - {shell: bash, run: 'true'}
            - {id: named, shell: bash, run: 'true'}
        """,
    )
    assert [s.context_name for s in result.steps] == ["__run", "__run_2", "named"]
    assert result.steps[0].outputs == {"a": "1"}
    assert json.loads(result.outputs["steps"]) == {
        "named": {"outputs": {}, "outcome": "success", "conclusion": "success"}
    }


def test_disabled_set_env_command_fails_the_step(tmp_path: Path, workspace: Path) -> None:
    """`::set-env` is disabled unless ACTIONS_ALLOW_UNSECURE_COMMANDS=true."""
    result = run(
        tmp_path,
        workspace,
        """
        runs:
          using: composite
          steps:
            - {id: old, shell: bash, run: 'echo "::set-env name=X::1"'}
        """,
    )
    assert result.conclusion == "failure"
    assert "The `set-env` command is disabled" in result.annotations[0].message


def test_timeout_kills_the_step_and_stops(tmp_path: Path, workspace: Path) -> None:
    """At the deadline the running step is killed and marked cancelled; nothing runs after."""
    started = time.monotonic()
    result = run(
        tmp_path,
        workspace,
        """
        runs:
          using: composite
          steps:
            - {id: slow, shell: bash, run: sleep 60}
            - {id: after, if: always(), shell: bash, run: 'true'}
        """,
        timeout=1.5,
    )
    assert time.monotonic() - started < 30
    assert result.timed_out
    assert result.conclusion == "cancelled"
    assert outcomes(result) == {"slow": ("cancelled", "cancelled")}


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in {"Z", "X"}


def test_orphans_are_killed_at_the_end(tmp_path: Path, workspace: Path) -> None:
    """A background process a step leaves behind does not outlive the run."""
    result = run(
        tmp_path,
        workspace,
        """
        runs:
          using: composite
          steps:
            - {id: bg, shell: bash, run: 'sleep 300 > /dev/null 2>&1 & echo $! > pid.txt'}
        """,
    )
    assert result.conclusion == "success"
    pid = int((workspace / "pid.txt").read_text())
    deadline = time.monotonic() + 10
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(pid)


# ---------------------------------------------------------------- uses: steps


def test_unknown_uses_fails_before_any_step(tmp_path: Path, workspace: Path) -> None:
    """A `uses:` without stand-in is an error up front, not a skipped step."""
    text = f"""
        runs:
          using: composite
          steps:
            - {{shell: bash, run: touch ran.txt}}
            - uses: some-org/some-action@{SHA}
        """
    with pytest.raises(UnknownActionError, match="some-org/some-action"):
        run(tmp_path, workspace, text)
    assert not (workspace / "ran.txt").exists()


def test_pinned_only_table_rejects_tags(tmp_path: Path, workspace: Path) -> None:
    """With pinned_only, a `uses:` on a tag instead of a full SHA is refused."""
    text = "runs:\n  using: composite\n  steps:\n    - uses: actions/setup-python@v5\n"
    with pytest.raises(UnknownActionError, match="not pinned to a full commit SHA"):
        run(tmp_path, workspace, text, uses=default_stand_ins(pinned_only=True))


def test_custom_stand_in_gets_input_variables(tmp_path: Path, workspace: Path) -> None:
    """A stand-in sees INPUT_* (with its defaults) and its outputs reach steps.<id>.outputs."""
    seen: dict[str, str] = {}

    def tool(call: StandInCall) -> None:
        seen.update({k: v for k, v in call.env.items() if k.startswith("INPUT_")})
        call.set_output("said", f"{call.input('greeting')} {call.input('who')}")
        call.export_variable("TOOL_HOME", "/opt/tool")

    table = UsesTable().add(StandInAction("acme/tool", {"greeting": "hi", "who": None}, tool))
    result = run(
        tmp_path,
        workspace,
        f"""
        outputs:
          said: {{value: "${{{{ steps.t.outputs.said }}}}"}}
        runs:
          using: composite
          steps:
            - id: t
              uses: acme/tool@{SHA}
              with: {{who: "${{{{ github.actor }}}}"}}
            - {{id: after, shell: bash, run: echo "$TOOL_HOME"}}
        """,
        uses=table,
    )
    assert seen == {"INPUT_GREETING": "hi", "INPUT_WHO": "octocat"}
    assert result.outputs == {"said": "hi octocat"}
    assert result.step("t").uses == f"acme/tool@{SHA}"
    assert result.step("after").stdout == "/opt/tool\n"


def _python_on_path() -> dict[str, str]:
    """The host env with this interpreter's directory in front of PATH."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {"PATH": path, "HOME": os.environ.get("HOME", "/root")}


def test_setup_python_stand_in(tmp_path: Path, workspace: Path) -> None:
    """setup-python finds a matching Python, outputs its version and puts it first on PATH."""
    major_minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    result = run(
        tmp_path,
        workspace,
        f"""
        runs:
          using: composite
          steps:
            - id: py
              uses: actions/setup-python@{SHA}
              with: {{python-version: "{major_minor}"}}
            - id: which
              shell: bash
              run: python -c 'import sys; print(sys.base_prefix)'
        """,
        host_env=_python_on_path(),
    )
    assert result.conclusion == "success"
    assert result.step("py").outputs["python-version"] == ".".join(map(str, sys.version_info[:3]))
    assert result.step("which").stdout.strip() == sys.base_prefix
    assert result.exported_env["pythonLocation"] == sys.base_prefix


def _link_python(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "python3").symlink_to(sys.executable)
    return folder


@pytest.mark.parametrize("where", ["tool cache", "search"])
def test_setup_python_stand_in_looks_off_path(tmp_path: Path, workspace: Path, where: str) -> None:
    """setup-python also finds a Python in the runner's tool cache or in given directories."""
    version = ".".join(map(str, sys.version_info[:3]))
    tool_cache = tmp_path / "toolcache"
    table = default_stand_ins()
    if where == "tool cache":
        _link_python(tool_cache / "Python" / version / "x64" / "bin")
    else:
        table = table.add(setup_python_stand_in([_link_python(tmp_path / "elsewhere")]))
    result = run(
        tmp_path,
        workspace,
        f"""
        runs:
          using: composite
          steps:
            - {{id: py, uses: actions/setup-python@{SHA}, with: {{python-version: "{version}"}}}}
        """,
        host_env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        runner={"tool_cache": str(tool_cache)},
        uses=table,
    )
    assert result.conclusion == "success"
    assert result.step("py").outputs["python-version"] == version


def test_setup_python_stand_in_fails_without_match(tmp_path: Path, workspace: Path) -> None:
    """A version range nothing on PATH satisfies fails the step with the real message."""
    result = run(
        tmp_path,
        workspace,
        f"""
        runs:
          using: composite
          steps:
            - {{id: py, uses: actions/setup-python@{SHA}, with: {{python-version: "2.6"}}}}
        """,
        host_env=_python_on_path(),
    )
    assert result.conclusion == "failure"
    errors = [a.message for a in result.annotations if a.level == "error"]
    assert errors[0].startswith("The version '2.6' with architecture 'x64' was not found")


@pytest.mark.parametrize(
    ("event", "enabled"),
    [("workflow_dispatch", True), ("pull_request_target", False)],
)
def test_setup_uv_stand_in(tmp_path: Path, workspace: Path, event: str, enabled: bool) -> None:
    """setup-uv puts the local uv on PATH and records the cache settings it resolved."""
    (workspace / "uv.lock").write_text("version = 1\n")
    result = run(
        tmp_path,
        workspace,
        f"""
        runs:
          using: composite
          steps:
            - id: uv
              uses: astral-sh/setup-uv@{SHA}
              with: {{enable-cache: auto, cache-dependency-glob: "uv.lock"}}
            - {{id: which, shell: bash, run: command -v uv}}
        """,
        event_name=event,
    )
    uv = find_uv(dict(os.environ))
    assert uv is not None, "uv must be installed ($HOME/.local/bin) for the project's tests"
    assert result.conclusion == "success"
    assert result.step("which").stdout.strip() == str(uv)
    records = result.step("uv").records
    assert records["enable-cache"] is enabled
    if enabled:
        assert records["cache-dependency-files"] == [workspace.resolve() / "uv.lock"]
        assert result.exported_env["UV_CACHE_DIR"] == f"{result.runner_temp}/setup-uv-cache"
    assert result.step("uv").outputs["uv-path"] == str(uv)


def test_semver_ranges() -> None:
    """setup-python's npm ranges: x.y, wildcards, comparators, caret, tilde, hyphen, ||."""
    assert semver_satisfies((3, 12, 4), "3.12")
    assert not semver_satisfies((3, 13, 0), "3.12")
    assert semver_satisfies((3, 13, 1), "3.x")
    assert semver_satisfies((3, 11, 0), ">=3.10 <3.13")
    assert not semver_satisfies((3, 13, 0), ">=3.10 <3.13")
    assert semver_satisfies((3, 12, 0), ">3.11")
    assert not semver_satisfies((3, 11, 9), ">3.11")
    assert semver_satisfies((3, 14, 0), "^3.11")
    assert not semver_satisfies((3, 12, 0), "~3.11")
    assert semver_satisfies((3, 12, 0), "3.10 - 3.12")
    assert semver_satisfies((3, 9, 1), "3.8 || 3.9")
    assert not semver_satisfies((3, 12, 0), "3.12t")


# ---------------------------------------------------------------- the log


LOG = """\
::group::Setting up
installing
::endgroup::
::warning file=src/a.py,line=3,title=Heads up::50%25 used%0Asecond line
::stop-commands::pause-token-123
::error::not a command while stopped
::pause-token-123::
::notice::back
"""


def test_log_commands_and_annotations() -> None:
    """Commands are parsed with their unescaped properties; stop-commands pauses them."""
    assert [c.name for c in parse_commands(LOG)] == ["group", "endgroup", "warning", "notice"]
    found = annotations_in(LOG)
    assert [(a.level, a.message) for a in found] == [
        ("warning", "50% used\nsecond line"),
        ("notice", "back"),
    ]
    assert found[0].properties == {"file": "src/a.py", "line": "3", "title": "Heads up"}
    assert [(g.title, g.lines) for g in groups(LOG)] == [("Setting up", ("installing",))]


def test_masks() -> None:
    """A value printed before its ::add-mask:: line is a leak; after it, it shows as ***."""
    log = "token is tok-123\n::add-mask::tok-123\nagain tok-123\n"
    assert [(leak.value, leak.line_number) for leak in mask_leaks(log)] == [("tok-123", 1)]
    assert masked_log(log) == "token is tok-123\nagain ***"
    with pytest.raises(AssertionError, match="line 1 shows a masked value"):
        assert_masked(log)
    assert_masked("::add-mask::abc\nvalue abc\n")
    assert mask_leaks(log, secrets=["tok-123"]) == []
    multi = "::add-mask::first%0Asecond\nsecond alone\n"
    assert masked_log(multi) == "*** alone"


def test_run_mask_helpers_know_the_secrets(tmp_path: Path, workspace: Path) -> None:
    """ActionRun's helpers treat `secrets=` and github.token as masked from the start."""
    result = run(
        tmp_path,
        workspace,
        """
        inputs:
          key: {default: ""}
        runs:
          using: composite
          steps:
            - id: s
              shell: bash
              env: {KEY: "${{ inputs.key }}", FRESH: fresh-value-1}
              run: |
                echo "key $KEY token ${{ github.token }}"
                echo "fresh $FRESH"
                echo "::add-mask::$FRESH"
        """,
        inputs={"key": "sk-secret-1"},
        secrets=["sk-secret-1"],
    )
    shown = result.masked_log()
    assert "sk-secret-1" not in shown
    assert result.secrets[-1] not in shown
    assert {leak.value for leak in result.mask_leaks()} == {"fresh-value-1"}
