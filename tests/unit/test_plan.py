"""Plan files: front matter validation with file:line problems, the body, its tasks."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path
from types import MappingProxyType

import pytest

from claude_e2b.errors import PlanError
from claude_e2b.front_matter import PLAN_KEYS
from claude_e2b.plan import (
    Plan,
    check_plan_file,
    load_plan,
    parse_plan,
)
from claude_e2b.tasks import TaskCount

PATH = Path("plans/fix.md")


def plan_text(front: str, body: str = "Fix the bug.\n") -> str:
    return f"---\n{textwrap.dedent(front).rstrip(chr(10))}\n---\n{body}"


def problems_of(text: str) -> list[str]:
    with pytest.raises(PlanError) as caught:
        parse_plan(text, PATH)
    return caught.value.problems


def only_problem(text: str) -> str:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    return problems[0]


# ---------------------------------------------------------------- malformed plans


def test_unknown_key_is_reported_with_a_suggestion() -> None:
    """A misspelt key is an error that names the key it probably meant."""
    text = plan_text("title: Fix\ntimout-minutes: 30")
    assert only_problem(text) == (
        "plans/fix.md:3: unknown key 'timout-minutes'; did you mean 'timeout-minutes'?"
    )


def test_snake_case_key_suggests_the_kebab_case_one() -> None:
    """The action's input names are kebab-case; snake_case gets pointed at them."""
    text = plan_text("max_turns: 3")
    assert (
        only_problem(text) == "plans/fix.md:2: unknown key 'max_turns'; did you mean 'max-turns'?"
    )


def test_unknown_key_without_a_close_match_lists_the_keys() -> None:
    """With no close match the message lists the keys a plan may use."""
    problem = only_problem(plan_text("zzzzqqq: 1"))
    assert problem.startswith(
        "plans/fix.md:2: unknown key 'zzzzqqq'; plan keys are allowed-paths, base-branch, "
    )


def test_string_key_given_a_number() -> None:
    """A number where text is expected is refused, with a hint to quote it."""
    text = plan_text("title: ok\nbranch: 2024")
    assert only_problem(text) == (
        "plans/fix.md:3: branch must be a non-empty string, got the integer 2024; "
        "put it in quotes to use it as text"
    )


def test_number_key_given_a_string() -> None:
    """budget-usd must be a number."""
    text = plan_text("budget-usd: five")
    assert only_problem(text) == (
        "plans/fix.md:2: budget-usd must be a positive number of US dollars, got the string 'five'"
    )


def test_int_key_given_a_fraction() -> None:
    """max-turns counts turns: a fraction is refused."""
    text = plan_text("\n\nmax-turns: 2.5")
    assert only_problem(text) == (
        "plans/fix.md:4: max-turns must be a positive whole number, got the number 2.5"
    )


def test_bool_key_given_a_string() -> None:
    """draft takes true or false, not a word YAML does not read as a boolean."""
    text = plan_text("draft: maybe")
    assert only_problem(text) == (
        "plans/fix.md:2: draft must be true or false, got the string 'maybe'"
    )


def test_list_key_given_a_mapping() -> None:
    """A glob list given a mapping is refused at the key's line."""
    text = plan_text("allowed-paths:\n  src: yes")
    assert only_problem(text) == (
        "plans/fix.md:2: allowed-paths must be a list of strings, got a mapping"
    )


def test_list_item_of_the_wrong_type_points_at_the_item() -> None:
    """A bad list item is reported on its own line."""
    text = plan_text("setup:\n  - make\n  - 42")
    assert only_problem(text) == (
        "plans/fix.md:4: setup: each item must be a non-empty string, got the integer 42"
    )


def test_mapping_key_given_a_list() -> None:
    """env must be a mapping."""
    text = plan_text("env: [A, B]")
    assert only_problem(text) == (
        "plans/fix.md:2: env must be a mapping of variable names to values, got a list"
    )


@pytest.mark.parametrize("value", ["0", "-5", ".nan", ".inf"])
def test_timeout_must_be_positive_and_finite(value: str) -> None:
    """Zero, negative, NaN and infinite timeouts are refused."""
    problem = only_problem(plan_text(f"timeout-minutes: {value}"))
    assert problem.startswith(
        "plans/fix.md:2: timeout-minutes must be a positive number of minutes, got "
    )


@pytest.mark.parametrize("value", ["true", "yes", "on", "false"])
def test_boolean_is_not_a_number(value: str) -> None:
    """YAML's true (1 to Python) does not pass as one minute."""
    problem = only_problem(plan_text(f"timeout-minutes: {value}"))
    assert problem.startswith("plans/fix.md:2: timeout-minutes must be a positive number")
    assert "the boolean" in problem


def test_boolean_is_not_a_turn_count() -> None:
    """max-turns: true is refused too."""
    problem = only_problem(plan_text("max-turns: true"))
    assert (
        problem == "plans/fix.md:2: max-turns must be a positive whole number, got the boolean true"
    )


def test_warn_mark_at_or_after_timeout_points_at_the_mark() -> None:
    """A warning that could never fire before the timeout is refused on its item line."""
    text = plan_text("timeout-minutes: 30\nwarn-at-minutes:\n  - 10\n  - 30")
    assert only_problem(text) == (
        "plans/fix.md:5: warn-at-minutes: 30 is not before timeout-minutes (30)"
    )


def test_warn_mark_that_is_a_boolean_is_refused() -> None:
    """Each warn mark is a positive number of minutes."""
    text = plan_text("warn-at-minutes: [5, true]")
    assert only_problem(text) == (
        "plans/fix.md:2: warn-at-minutes: each mark must be a positive number of minutes, "
        "got the boolean true"
    )


def test_broken_yaml_indentation_reports_yaml_line() -> None:
    """Broken YAML is reported at the line YAML names, counted in the plan file."""
    text = plan_text("title: Fix\nlabels:\n  - bug\n model: x")
    problem = only_problem(text)
    assert problem.startswith("plans/fix.md:5: front matter is not valid YAML: ")


def test_tab_indentation_is_reported() -> None:
    """Tabs, a classic YAML slip, come back as a problem with a line, not a traceback."""
    problem = only_problem("---\ntitle: x\nenv:\n\tA: 1\n---\nbody\n")
    assert problem.startswith("plans/fix.md:4: front matter is not valid YAML: ")


def test_unterminated_front_matter() -> None:
    """An opening '---' without a closing one is reported on line 1."""
    assert only_problem("---\ntitle: Fix\n\nDo things.\n") == (
        "plans/fix.md:1: the front matter opened by '---' is never closed: end it with a '---' line"
    )


def test_front_matter_that_is_a_list() -> None:
    """Front matter must be a mapping."""
    assert only_problem(plan_text("- title\n- Fix")) == (
        "plans/fix.md:2: the front matter must be a mapping of keys, not a list"
    )


def test_front_matter_that_is_a_single_value() -> None:
    """A bare word is not front matter either."""
    assert only_problem(plan_text("\njust words")) == (
        "plans/fix.md:3: the front matter must be a mapping of keys, not a single value"
    )


def test_duplicate_key_is_reported_at_the_second_one() -> None:
    """PyYAML would silently keep the last value; we report the duplicate."""
    text = plan_text("title: One\nmodel: m\ntitle: Two")
    assert only_problem(text) == (
        "plans/fix.md:4: duplicate key 'title' (first on line 2): keep only one"
    )


def test_duplicate_env_name_is_reported() -> None:
    """Duplicates inside a nested mapping are found too."""
    text = plan_text("env:\n  A: 1\n  A: 2")
    assert (
        only_problem(text) == "plans/fix.md:4: duplicate key 'A' (first on line 3): keep only one"
    )


def test_empty_body_after_front_matter() -> None:
    """A plan with no task is refused; the line is the closing '---'."""
    assert only_problem("---\ntitle: Fix\n---\n") == (
        "plans/fix.md:3: the plan has no task: write what Claude should do after the closing '---'"
    )


def test_whitespace_only_body() -> None:
    """Blank lines are no task either."""
    problem = only_problem("---\ntitle: Fix\n---\n   \n\t\n\n")
    assert problem.startswith("plans/fix.md:3: the plan has no task")


def test_empty_file() -> None:
    """An empty plan file is refused on line 1."""
    assert only_problem("") == "plans/fix.md:1: the plan is empty: write the task for Claude in it"
    assert only_problem(" \n\n") == (
        "plans/fix.md:1: the plan is empty: write the task for Claude in it"
    )


def test_glob_that_climbs_out_of_the_repository() -> None:
    """A '..' segment in a glob is refused on the item's line."""
    text = plan_text("exclude:\n  - build/**\n  - ../x")
    assert only_problem(text) == (
        "plans/fix.md:4: exclude: '../x' has a '..' segment; "
        "globs cannot reach outside the repository"
    )


@pytest.mark.parametrize("glob", ["/abs", "/etc/*", "C:/x", "\\\\server\\share"])
def test_absolute_glob(glob: str) -> None:
    """Absolute globs are refused."""
    text = plan_text(f"protected-paths: ['{glob}']")
    assert only_problem(text) == (
        f"plans/fix.md:2: protected-paths: {glob!r} is an absolute path; "
        "write it relative to the repository root"
    )


def test_dotdot_inside_a_name_is_fine() -> None:
    """'a..b' is a file name, not a parent directory."""
    plan = parse_plan(plan_text("allowed-paths: ['a..b/*', '**/x..']"), PATH)
    assert plan.allowed_paths == ("a..b/*", "**/x..")


@pytest.mark.parametrize(
    "name", ["API_KEY", "GITHUB_TOKEN", "db_password", "AWS_SECRET", "CREDENTIALS"]
)
def test_secret_looking_env_name(name: str) -> None:
    """Secrets do not belong in a committed plan: the message says where they go."""
    problem = only_problem(plan_text(f"env:\n  {name}: x"))
    assert problem == (
        f"plans/fix.md:3: env: {name} looks like a secret; plan files are committed and "
        "uploaded, so pass secrets through the action's inputs and repository secrets, "
        "not the plan"
    )


def test_env_name_that_is_not_a_variable_name() -> None:
    """Env names follow shell rules."""
    assert only_problem(plan_text("env:\n  1ABC: x")) == (
        "plans/fix.md:3: env: '1ABC' is not a variable name (letters, digits, _; no digit first)"
    )


def test_env_value_that_is_a_list_or_null() -> None:
    """Env values are scalars; an empty value must be written as ''."""
    problems = problems_of(plan_text("env:\n  A: [1]\n  B:\n  C: ''"))
    assert problems == [
        "plans/fix.md:3: env: the value must be a string or number, not a list",
        "plans/fix.md:4: env: a variable needs a value; write '' for an empty one",
    ]


def test_bad_secrets_policy_suggests_the_close_one() -> None:
    """secrets takes one of three policies."""
    assert only_problem(plan_text("secrets: fial")) == (
        "plans/fix.md:2: secrets must be one of 'exclude', 'fail', 'warn', "
        "got the string 'fial'; did you mean 'fail'?"
    )


def test_bad_network_entry() -> None:
    """Network entries are host names, addresses or CIDR ranges."""
    text = plan_text("network: [pypi.org, 10.0.0.0/8, '*.github.com', 'http://x.y/']")
    assert only_problem(text) == (
        "plans/fix.md:2: network: 'http://x.y/' is not a host name, IP address or CIDR range"
    )


def test_null_value_is_refused() -> None:
    """A key with nothing after it is a mistake, not a default."""
    assert only_problem(plan_text("branch:")) == (
        "plans/fix.md:2: branch must be a non-empty string, got no value"
    )


def test_explicitly_tagged_junk_is_a_problem_not_a_traceback() -> None:
    """PyYAML's own constructor errors come back as problems with a line."""
    problems = problems_of(plan_text('title: !!int ""\nmodel: !!python/object:os.system x'))
    assert [problem.split(": ")[0] for problem in problems] == ["plans/fix.md:2", "plans/fix.md:3"]


def test_several_problems_are_all_reported_in_line_order() -> None:
    """Every problem is reported at once, ordered by line."""
    text = plan_text(
        """\
        titel: Fix
        timeout-minutes: -1
        draft: sure
        env:
          MY_TOKEN: x
        allowed-paths: [/abs]
        secrets: nope
        """,
        body="\n",
    )
    problems = problems_of(text)
    assert [problem.split(": ")[0] for problem in problems] == [
        "plans/fix.md:2",
        "plans/fix.md:3",
        "plans/fix.md:4",
        "plans/fix.md:6",
        "plans/fix.md:7",
        "plans/fix.md:8",
        "plans/fix.md:9",
    ]
    assert problems[-1].endswith(
        "the plan has no task: write what Claude should do after the closing '---'"
    )


def test_non_utf8_file(tmp_path: Path) -> None:
    """A file that is not UTF-8 is reported at the line of the first bad byte."""
    path = tmp_path / "plan.md"
    path.write_bytes(b"---\ntitle: caf\xe9\n---\nbody\n")
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert caught.value.problems == [
        f"{path}:2: not valid UTF-8 (byte 0xe9); save the plan as UTF-8"
    ]


def test_missing_file(tmp_path: Path) -> None:
    """A missing plan is a PlanError on line 1."""
    path = tmp_path / "nope.md"
    assert check_plan_file(path) == [f"{path}:1: plan file not found"]


def test_directory_instead_of_file(tmp_path: Path) -> None:
    """A directory is not a plan."""
    assert check_plan_file(tmp_path) == [f"{tmp_path}:1: is a directory, not a plan file"]


def test_plan_error_is_a_user_error() -> None:
    """Plan problems exit 2, bad input."""
    with pytest.raises(PlanError) as caught:
        parse_plan("", PATH)
    assert caught.value.exit_code == 2
    assert str(caught.value) == "\n".join(caught.value.problems)


# ---------------------------------------------------------------- valid plans

FULL_PLAN = """\
---
title: Upgrade the parser
branch: claude/parser
base-branch: main
model: claude-sonnet-4-5
timeout-minutes: 45
warn-at-minutes: [40, 30.5]
max-turns: 60
budget-usd: 2.5
template: my-template
labels: [deps, automated]
reviewers: alice, bob
draft: true
allowed-paths: ["src/**", "tests/**"]
protected-paths: [".github/**"]
network: [pypi.org, files.pythonhosted.org, 10.1.0.0/16]
setup: uv sync
verify: uv run pytest -q
env:
  PYTHONWARNINGS: error
  VERSION: 3.10
  DEBUG: true
secrets: warn
include-untracked: false
exclude: ["*.sqlite"]
---
# Upgrade

- [x] read the changelog
- [ ] bump it
"""


def test_full_plan_round_trips_every_key() -> None:
    """Every key arrives in the Plan with its Python type."""
    plan = parse_plan(FULL_PLAN, PATH)
    expected = Plan(
        path=PATH,
        body="# Upgrade\n\n- [x] read the changelog\n- [ ] bump it\n",
        body_line=27,
        title="Upgrade the parser",
        branch="claude/parser",
        base_branch="main",
        model="claude-sonnet-4-5",
        timeout_minutes=45.0,
        warn_at_minutes=(30.5, 40.0),
        max_turns=60,
        budget_usd=2.5,
        template="my-template",
        labels=("deps", "automated"),
        reviewers=("alice", "bob"),
        draft=True,
        allowed_paths=("src/**", "tests/**"),
        protected_paths=(".github/**",),
        network=("pypi.org", "files.pythonhosted.org", "10.1.0.0/16"),
        setup=("uv sync",),
        verify="uv run pytest -q",
        env=MappingProxyType({"PYTHONWARNINGS": "error", "VERSION": "3.10", "DEBUG": "true"}),
        secrets="warn",
        include_untracked=False,
        exclude=("*.sqlite",),
        tasks=TaskCount(done=1, total=2),
    )
    assert plan == expected
    assert {field.name.replace("_", "-") for field in dataclasses.fields(Plan)} >= PLAN_KEYS


def test_plan_keys_are_the_documented_ones() -> None:
    """PLAN_KEYS is the kebab-case contract from the architecture."""
    assert "timeout-minutes" in PLAN_KEYS
    assert len(PLAN_KEYS) == 21
    assert all(key == key.lower() and "_" not in key for key in PLAN_KEYS)


def test_plan_is_immutable() -> None:
    """A Plan and its env cannot be changed after parsing."""
    plan = parse_plan(FULL_PLAN, PATH)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.title = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        plan.env["X"] = "y"  # type: ignore[index]
    assert isinstance(hash(plan), int)


def test_plan_without_front_matter_is_valid() -> None:
    """Front matter is optional: the whole file is the task."""
    plan = parse_plan("Make the tests pass.\n", PATH)
    assert plan.body == "Make the tests pass.\n"
    assert plan.body_line == 1
    assert plan.title is None
    assert plan.env == {}
    assert plan.display_title == "fix"


def test_empty_front_matter_is_valid() -> None:
    """'---' twice with nothing between is an empty mapping."""
    plan = parse_plan("---\n---\nDo it.\n", PATH)
    assert (plan.body, plan.body_line) == ("Do it.\n", 3)


def test_horizontal_rule_later_in_the_body_is_not_front_matter() -> None:
    """Only a '---' on the first line opens front matter."""
    plan = parse_plan("Do it.\n\n---\n\nmore\n", PATH)
    assert plan.body == "Do it.\n\n---\n\nmore\n"


def test_crlf_line_endings() -> None:
    """Windows line endings parse, and line numbers stay right."""
    text = "---\r\ntitle: Fix\r\nmodel: m\r\n---\r\nDo it.\r\n"
    plan = parse_plan(text, PATH)
    assert (plan.title, plan.model, plan.body, plan.body_line) == ("Fix", "m", "Do it.\n", 5)
    problem = only_problem("---\r\ntitle: Fix\r\ndraft: 3\r\n---\r\nDo it.\r\n")
    assert problem.startswith("plans/fix.md:3: draft must be true or false")


def test_byte_order_mark_is_tolerated(tmp_path: Path) -> None:
    """A UTF-8 BOM before the front matter does not hide it."""
    path = tmp_path / "bom.md"
    path.write_bytes("\ufeff---\ntitle: Café\n---\nDo it.\n".encode())
    plan = load_plan(path)
    assert (plan.title, plan.body) == ("Café", "Do it.\n")
    assert check_plan_file(path) == []


def test_labels_accept_a_comma_separated_string() -> None:
    """labels and reviewers take 'a, b' as well as a list."""
    plan = parse_plan(plan_text("labels: 'bug, , help wanted'\nreviewers: [carol]"), PATH)
    assert plan.labels == ("bug", "help wanted")
    assert plan.reviewers == ("carol",)


def test_setup_accepts_a_list() -> None:
    """setup is a list of commands; one string is one command."""
    plan = parse_plan(plan_text("setup:\n  - npm ci\n  - npm run build"), PATH)
    assert plan.setup == ("npm ci", "npm run build")


def test_env_values_are_kept_as_written() -> None:
    """Env values are strings, taken as written (3.10 stays 3.10, 0755 stays 0755)."""
    plan = parse_plan(plan_text("env: {A: 3.10, B: 0755, C: 'x y', D: ''}"), PATH)
    assert dict(plan.env) == {"A": "3.10", "B": "0755", "C": "x y", "D": ""}


def test_empty_lists_are_kept_distinct_from_absent() -> None:
    """protected-paths: [] means none protected; absent means the default."""
    plan = parse_plan(plan_text("protected-paths: []\nnetwork: []"), PATH)
    assert (plan.protected_paths, plan.network) == ((), ())
    assert parse_plan("x", PATH).protected_paths is None


def test_yaml_anchors_work() -> None:
    """Anchors and aliases are ordinary YAML and are accepted."""
    plan = parse_plan(plan_text("allowed-paths: &src ['src/**']\nexclude: *src"), PATH)
    assert plan.exclude == ("src/**",)


def test_display_title_prefers_title_then_heading_then_stem() -> None:
    """display_title falls back from title to the first heading to the file stem."""
    assert parse_plan(plan_text("title: T", "# H\n"), PATH).display_title == "T"
    body = "```\n# not this\n```\n## The heading ##\n"
    assert parse_plan(body, PATH).display_title == "The heading"
    assert parse_plan("#hashtag is not a heading\n", PATH).display_title == "fix"


def test_load_plan_reads_a_file(tmp_path: Path) -> None:
    """load_plan and check_plan_file read from disk."""
    path = tmp_path / "task.md"
    path.write_text(plan_text("title: T\ndraft: no"), encoding="utf-8")
    assert load_plan(path).draft is False
    path.write_text(plan_text("draft: nah"), encoding="utf-8")
    assert check_plan_file(path) == [f"{path}:2: draft must be true or false, got the string 'nah'"]


# ---------------------------------------------------------------- task counting


def test_plan_tasks_come_from_the_body_only() -> None:
    """A task-like line in the front matter is not counted."""
    plan = parse_plan("---\ntitle: '- [ ] x'\n---\n- [x] done\n", PATH)
    assert plan.tasks == TaskCount(done=1, total=1)
