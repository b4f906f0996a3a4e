"""Bad input for the plan parser: any bytes, YAML bombs, every key with the wrong type.

Whatever the file holds, ``load_plan`` gives a Plan whose every value the run can
use, or raises ``PlanError`` with ``PATH:LINE: message`` lines pointing into the
file; and it answers fast, bombs included. ``test_plan_properties.py`` covers the
round trip of valid front matter; this module covers what a hostile or broken
plan file may hold.
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from claude_e2b.errors import PlanError
from claude_e2b.front_matter import PLAN_KEYS
from claude_e2b.plan import Plan, check_plan_file, load_plan, parse_plan

PROBLEM = re.compile(r"(?P<path>.+):(?P<line>[0-9]+): (?P<message>.+)")
# Generous: a bomb that is not defused takes minutes; a defused one, milliseconds.
FAST_S = 2.0
BOM = b"\xef\xbb\xbf"


def fuzz(examples: int) -> settings:
    """Settings for these tests: our own time bound instead of hypothesis' deadline."""
    return settings(
        max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("plans")


# ---------------------------------------------------------------- what every outcome must be


def timed_load(path: Path) -> tuple[Plan | PlanError, float]:
    """Load a plan file; the Plan or the PlanError, and the seconds it took."""
    started = time.perf_counter()
    try:
        outcome: Plan | PlanError = load_plan(path)
    except PlanError as exc:
        outcome = exc
    return outcome, time.perf_counter() - started


def timed_parse(text: str) -> tuple[Plan | PlanError, float]:
    """Parse plan text; the Plan or the PlanError, and the seconds it took."""
    started = time.perf_counter()
    try:
        outcome: Plan | PlanError = parse_plan(text, Path("plan.md"))
    except PlanError as exc:
        outcome = exc
    return outcome, time.perf_counter() - started


def line_count(data: bytes) -> int:
    """The most lines an editor may show for ``data`` (CR, LF and CRLF all end one)."""
    return data.count(b"\n") + data.count(b"\r") + 1


def assert_problems_point_into(error: PlanError, path: Path, lines: int) -> None:
    """Each problem is one 'PATH:LINE: message' line whose LINE is a line of the file."""
    assert error.problems
    assert str(error) == "\n".join(error.problems)
    for problem in error.problems:
        assert len(problem.splitlines()) == 1, problem
        problem.encode("utf-8")  # printable on any terminal: no lone surrogates
        match = PROBLEM.fullmatch(problem)
        assert match is not None, problem
        assert match["path"] == str(path)
        assert 1 <= int(match["line"]) <= lines, (problem, lines)


def usable_text(value: object) -> bool:
    """A string the run can hand to git, a shell, an API or a terminal as it is."""
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def usable_number(value: object) -> bool:
    """A positive number the run can turn into seconds, a lifetime and an argument."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        return False
    if isinstance(value, int) and value.bit_length() > 62:
        return False  # str() fails past 4300 digits, float() past 1e308
    return math.isfinite(value * 60) and int(value * 60) > 0 and len(str(value)) < 30


STRING_FIELDS = ("title", "branch", "base_branch", "model", "template", "verify", "secrets")
LIST_FIELDS = ("labels", "reviewers", "allowed_paths", "exclude", "setup")
OPTIONAL_LIST_FIELDS = ("protected_paths", "network")


def assert_usable(plan: Plan) -> None:
    """Every value of a Plan is of its declared type and safe to use downstream."""
    assert usable_text(plan.body)
    assert plan.body_line >= 1
    assert 0 <= plan.tasks.done <= plan.tasks.total
    assert usable_text(plan.display_title)
    for name in STRING_FIELDS:
        value = getattr(plan, name)
        assert value is None or usable_text(value), (name, value)
    for name in LIST_FIELDS + OPTIONAL_LIST_FIELDS:
        value = getattr(plan, name)
        if value is None and name in OPTIONAL_LIST_FIELDS:
            continue
        assert isinstance(value, tuple), (name, value)
        assert all(usable_text(item) for item in value), (name, value)
    for name in ("draft", "include_untracked"):
        assert getattr(plan, name) in (None, True, False)
    assert_usable_numbers(plan)
    for key, value in plan.env.items():
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key)
        assert isinstance(value, str)
        assert "\0" not in value
        value.encode("utf-8")


def assert_usable_numbers(plan: Plan) -> None:
    for name in ("timeout_minutes", "budget_usd"):
        value = getattr(plan, name)
        assert value is None or (isinstance(value, float) and usable_number(value)), (name, value)
    assert plan.max_turns is None or (
        isinstance(plan.max_turns, int) and usable_number(plan.max_turns)
    )
    marks = plan.warn_at_minutes
    if marks is not None:
        assert all(usable_number(mark) for mark in marks)
        assert list(marks) == sorted(set(marks))
        if plan.timeout_minutes is not None:
            assert all(mark < plan.timeout_minutes for mark in marks)


def check_file(path: Path, data: bytes) -> Plan | PlanError:
    """Write ``data`` as a plan and load it: a usable Plan or well-formed problems, fast."""
    path.write_bytes(data)
    outcome, seconds = timed_load(path)
    assert seconds < FAST_S, seconds
    problems = check_plan_file(path)
    if isinstance(outcome, PlanError):
        assert_problems_point_into(outcome, path, line_count(data))
        assert problems == outcome.problems
    else:
        assert_usable(outcome)
        assert problems == []
    return outcome


# ---------------------------------------------------------------- any bytes

PIECES = [
    b"---",
    b"--- ",
    b"\n",
    b"\r\n",
    b"\r",
    BOM,
    b"\x00",
    b"\xff",  # never valid UTF-8
    b"\xc0\x80",  # an overlong NUL
    b"\xed\xa0\x80",  # a UTF-16 surrogate, encoded
    b"\xe2\x80",  # a character cut short
    b"\xc2\x85",  # NEL: a line break to YAML, not to an editor
    b"\xe2\x80\xa8",  # LINE SEPARATOR: likewise
    b"\t",
    b"  ",
    b": ",
    b"- ",
    b"? ",
    b"<<: ",
    b"title",
    b"max-turns",
    b"timeout-minutes",
    b"warn-at-minutes",
    b"env",
    b"labels",
    b"network",
    b"&a ",
    b"*a",
    b"[",
    b"]",
    b"{",
    b"}",
    b"'",
    b'"',
    b"\\0",
    b"\\ud800",
    b"!!int ",
    b"!!binary ",
    b"!!python/object ",
    b"#",
    b"- [ ] ",
    b"- [x] ",
    b"```",
    b"# Title",
    b"1:1:1",
    b"0x7f",
    b"1.0e+308",
]
pieces = st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=4)), max_size=60)
eols = st.sampled_from([b"\n", b"\r\n", b"\r"])


@st.composite
def framed(draw: st.DrawFn) -> bytes:
    """Front matter and body between real delimiters, each made of hostile pieces."""
    eol = draw(eols)
    front = b"".join(draw(pieces)).replace(b"\n", eol)
    body = b"".join(draw(pieces)) + draw(st.sampled_from([b"Do it.", b"", b"- [ ] a"]))
    bom = draw(st.sampled_from([b"", BOM]))
    closing = draw(st.sampled_from([b"---", b"--- \t", b"", b"..."]))
    return bom + b"---" + eol + front + eol + closing + eol + body


plan_bytes = st.one_of(st.binary(max_size=400), pieces.map(b"".join), framed())


@fuzz(300)
@given(plan_bytes)
@example(b"---\ntitle: x\xe2\x80\xa8\xe2\x80\xa8bad: [\n---\nbody\n")
@example(b'---\ntitle: "a\\0b"\n---\nbody\n')
@example(b'---\nbranch: "\\ud800"\n---\nbody\n')
@example(b"---\r\ntitle: ok\r\n")
@example(BOM + b"\xff---\n")
def test_any_bytes_give_a_usable_plan_or_problems(plan_dir: Path, data: bytes) -> None:
    """Any bytes load as a Plan the run can use, or as 'PATH:LINE: message' problems."""
    check_file(plan_dir / "any.md", data)


@fuzz(150)
@given(pieces.map(b"".join).map(lambda b: b.decode("utf-8", "replace")), st.booleans())
def test_line_ends_and_bom_do_not_change_the_outcome(text: str, bom: bool) -> None:
    """LF, CRLF and CR, with or without a BOM, give the same Plan or the same problems."""
    lf = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    reference, _ = timed_parse(lf)
    for eol in ("\r\n", "\r"):
        variant, _ = timed_parse(("\ufeff" if bom else "") + lf.replace("\n", eol))
        if isinstance(reference, PlanError):
            assert isinstance(variant, PlanError)
            assert variant.problems == reference.problems
        else:
            assert variant == reference


def test_unreadable_plan_files_are_plan_errors(plan_dir: Path) -> None:
    """A missing file, a directory and invalid UTF-8 are problems at line 1 or their line."""
    missing, folder = plan_dir / "missing.md", plan_dir / "folder.md"
    folder.mkdir(exist_ok=True)
    for path in (missing, folder):
        outcome, _ = timed_load(path)
        assert isinstance(outcome, PlanError)
        assert outcome.problems[0].startswith(f"{path}:1: ")
    outcome = check_file(plan_dir / "latin1.md", b"Do it.\n\nCaf\xe9\n")
    assert isinstance(outcome, PlanError)
    assert outcome.problems == [f"{plan_dir / 'latin1.md'}:3: " + NOT_UTF8.format(byte="0xe9")]


NOT_UTF8 = "not valid UTF-8 (byte {byte}); save the plan as UTF-8"


def test_a_huge_plan_file_is_refused_without_reading_it_whole(plan_dir: Path) -> None:
    """A plan far larger than any task (here 64 MiB) is refused, fast."""
    path = plan_dir / "huge.md"
    with path.open("wb") as out:
        out.truncate(64 * 2**20)  # sparse: no disk is used
    outcome, seconds = timed_load(path)
    assert seconds < FAST_S
    assert isinstance(outcome, PlanError)
    assert "too large" in outcome.problems[0]


# ---------------------------------------------------------------- every key, any value

SCALARS = [
    "",
    "~",
    "null",
    "true",
    "no",
    "on",
    "0",
    "-1",
    "1",
    "7",
    "3.5",
    "-2.5",
    "1e400",
    "1.0e+308",
    "-.inf",
    ".inf",
    ".nan",
    "0x7fffffffffffffffffffffffff",
    "0x" + "f" * 1200,
    "9" * 5000,
    "0o17",
    "1_000",
    "1:30:00",
    "1" + ":1" * 3000,
    "1" + ":1" * 300 + ".5",
    "2024-01-01",
    "2024-01-01T00:00:00Z",
    "!!binary aGk=",
    "!!int ''",
    "!!float x",
    "!!timestamp x",
    "!!bool maybe",
    "!!python/object:os.system x",
    "!!python/name:os.system ''",
    "!!str 12",
    "!!set {a, b}",
    "!!omap [a: 1]",
    "!!pairs [a: 1]",
    "'x'",
    "'  '",
    '"\\0"',
    '"a\\0b"',
    '"\\ud800"',
    '"\\udc80x"',
    '"a\\nb"',
    '"\\x85"',
    '"\\u2028"',
    '"\\e[31m"',
    "text",
    "a, b",
    "'*.py'",
    "../up",
    "'/abs'",
    "'C:/win'",
    "10.0.0.0/8",
    "host.example",
    "'*.example.com'",
    "'a..b'",
    "*undefined",
    "&x 1",
    "exclude",
    "fail",
    "FAIL",
]
flow_values = st.recursive(
    st.sampled_from(SCALARS),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda items: "[" + ", ".join(items) + "]"),
        st.lists(
            st.tuples(st.sampled_from(["A", "b", "PATH", "1", "MY_TOKEN", "'x y'"]), inner)
        ).map(lambda pairs: "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"),
    ),
    max_leaves=8,
)
odd_objects = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=2**200, max_value=2**260),
        st.floats(),
        st.text(max_size=8),
        st.binary(max_size=4),
        st.dates(),
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


def value_text(obj: Any) -> str:
    """A Python value as YAML block text, indented to sit under a key."""
    dumped = yaml.safe_dump(obj, allow_unicode=False, default_flow_style=False)
    dumped = dumped.removesuffix("...\n")
    return "\n" + "".join(f"  {line}\n" for line in dumped.splitlines())


values = st.one_of(flow_values.map(lambda text: f" {text}\n"), odd_objects.map(value_text))
keys = st.sampled_from(sorted(PLAN_KEYS))


@fuzz(400)
@given(st.lists(st.tuples(keys, values), min_size=1, max_size=4))
@example([("max-turns", " 0x" + "f" * 1200 + "\n")])
@example([("max-turns", " 1" + ":1" * 3000 + "\n")])
@example([("timeout-minutes", " 1.0e+307\n")])
@example([("title", ' "a\\0b"\n'), ("env", ' {A: "\\0"}\n')])
@example([("labels", ' "a\\0b, c"\n')])
def test_every_key_with_any_value(plan_dir: Path, entries: list[tuple[str, str]]) -> None:
    """Each key, whatever its value, gives a usable field or a problem on that key's line."""
    front = "".join(f"{key}:{value}" for key, value in entries)
    data = f"---\n{front}---\nDo it.\n".encode()
    outcome = check_file(plan_dir / "keys.md", data)
    if isinstance(outcome, PlanError):
        assert any(
            key in problem or "front matter" in problem or "duplicate" in problem
            for problem in outcome.problems
            for key, _ in entries
        ), outcome.problems


TITLE_SPELLINGS = ["title", "'title'", '"title"', '"titl\\x65"', "!!str title", "? title\n"]


@fuzz(60)
@given(st.lists(st.sampled_from(TITLE_SPELLINGS), min_size=2, max_size=5))
def test_duplicate_keys_are_reported_on_their_line(spellings: list[str]) -> None:
    """A key given twice, however it is quoted, is a problem; YAML would keep the last."""
    lines = [f"{spelling}: v{i}" for i, spelling in enumerate(spellings)]
    outcome, _ = timed_parse("---\n" + "\n".join(lines) + "\n---\nDo it.\n")
    assert isinstance(outcome, PlanError)
    duplicates = [p for p in outcome.problems if "duplicate key 'title'" in p]
    assert len(duplicates) == len(spellings) - 1, outcome.problems


NON_STRING_KEYS = ["1", "null", "~", "true", "1.5", "[a]", "{a: b}", "? [x, y]\n", "!!binary aGk="]


@pytest.mark.parametrize("key", NON_STRING_KEYS)
def test_keys_that_are_not_names_are_problems(key: str) -> None:
    """Numbers, nulls, booleans, lists and mappings as keys are refused with their line."""
    outcome, _ = timed_parse(f"---\ntitle: ok\n{key}: x\n---\nDo it.\n")
    assert isinstance(outcome, PlanError)
    assert outcome.problems[0].startswith("plan.md:3: "), outcome.problems


@fuzz(100)
@given(st.text(max_size=200))
def test_front_matter_never_closed_is_one_problem_at_line_1(rest: str) -> None:
    """An opening '---' with no closing line is refused as such, whatever follows."""
    lines = rest.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    assume("\0" not in rest)  # a NUL is refused first, wherever it is
    assume(all(line.rstrip() != "---" for line in lines))
    outcome, _ = timed_parse("---\n" + rest)
    assert isinstance(outcome, PlanError)
    assert outcome.problems == [
        "plan.md:1: the front matter opened by '---' is never closed: end it with a '---' line"
    ]


# ---------------------------------------------------------------- bombs


def laughs(depth: int, width: int) -> str:
    """Billion laughs: each anchor a list of ``width`` aliases of the one before."""
    levels = ["&l0 [lol, lol]"]
    levels += [f"&l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, depth)]
    return "[" + ", ".join(levels) + "]"


def merges(depth: int, width: int) -> str:
    """Merge-key bomb: each mapping merges ``width`` aliases of the one before."""
    levels = ["&m0 {k0: v}"]
    levels += [
        f"&m{i} {{<<: [{', '.join([f'*m{i - 1}'] * width)}], k{i}: v}}" for i in range(1, depth)
    ]
    return "[" + ", ".join(levels) + "]"


def mapping_laughs(depth: int, width: int) -> str:
    """Billion laughs through mappings, each value a list of the one before."""
    levels = ["&d0 {a: b}"]
    levels += [f"&d{i} {{x: [{', '.join([f'*d{i - 1}'] * width)}]}}" for i in range(1, depth)]
    return "{" + ", ".join(f"k{i}: {level}" for i, level in enumerate(levels)) + "}"


def flow_nesting(depth: int, width: int) -> str:
    return "[" * depth + "x" + "]" * (depth // max(width, 1))


def map_nesting(depth: int, width: int) -> str:
    return "{a: " * depth + "x" + "}" * (depth // max(width, 1))


def block_nesting(depth: int, width: int) -> str:
    return (
        "\n" + "".join(" " * (i + 2) + f"k{i}:\n" for i in range(depth)) + " " * (depth + 2) + "x"
    )


def sequence_nesting(depth: int, width: int) -> str:
    return "\n  " + "- " * depth + "x"


def anchor_cycle(depth: int, width: int) -> str:
    return "&c [" + ", ".join(["*c"] * width) + "]"


BOMBS = {
    "laughs": (laughs, 40),
    "merges": (merges, 40),
    "mapping_laughs": (mapping_laughs, 40),
    "flow_nesting": (flow_nesting, 60_000),
    "map_nesting": (map_nesting, 20_000),
    "block_nesting": (block_nesting, 300),
    "sequence_nesting": (sequence_nesting, 20_000),
    "anchor_cycle": (anchor_cycle, 10),
}


@st.composite
def bombs(draw: st.DrawFn) -> tuple[str, str]:
    name = draw(st.sampled_from(sorted(BOMBS)))
    build, most = BOMBS[name]
    depth = draw(st.integers(min_value=2, max_value=most))  # one level can be a valid value
    width = draw(st.integers(min_value=1, max_value=12))
    return name, build(depth, width)


@fuzz(120)
@given(keys, bombs())
@example("labels", ("laughs", laughs(40, 10)))
@example("title", ("merges", merges(30, 10)))
@example("env", ("mapping_laughs", mapping_laughs(30, 10)))
@example("setup", ("flow_nesting", flow_nesting(60_000, 1)))
@example("title", ("map_nesting", map_nesting(20_000, 1)))
@example("warn-at-minutes", ("sequence_nesting", sequence_nesting(20_000, 1)))
@example("network", ("block_nesting", block_nesting(300, 1)))
@example("title", ("anchor_cycle", anchor_cycle(1, 10)))
def test_yaml_bombs_are_refused_fast(plan_dir: Path, key: str, bomb: tuple[str, str]) -> None:
    """Alias bombs, merge bombs, cycles and deep nesting under any key: refused, fast."""
    name, value = bomb
    data = f"---\n{key}: {value}\n---\nDo it.\n".encode()
    outcome = check_file(plan_dir / "bomb.md", data)
    assert isinstance(outcome, PlanError), name


@pytest.mark.parametrize(
    "value",
    [
        "1" + ":1" * 15_000,  # sexagesimal: YAML multiplies a bigger number each step
        "0x" + "f" * 30_000,
        "9" * 30_000,
        "1" + ":1" * 15_000 + ".5",
    ],
    ids=["sexagesimal", "hex", "decimal", "sexagesimal-float"],
)
def test_huge_numbers_are_refused_fast(plan_dir: Path, value: str) -> None:
    """A number written with tens of thousands of digits is refused, not computed."""
    data = f"---\nmax-turns: {value}\n---\nDo it.\n".encode()
    outcome = check_file(plan_dir / "number.md", data)
    assert isinstance(outcome, PlanError)
    assert outcome.problems[0].startswith(f"{plan_dir / 'number.md'}:2: max-turns")


@pytest.mark.parametrize(
    ("front", "problem"),
    [
        ("title: " + "x" * 40_000, "2: the front matter is over 32 KiB: it holds settings;"),
        ("labels: " + "[" * 65 + "]" * 65, "2: front matter is nested too deeply"),
        ("max-turns: " + "1" * 65, "2: max-turns: a number of more than 64 characters is no"),
        (
            "max-turns: 1000000001",
            "2: max-turns must be a positive whole number, at most 1000000000",
        ),
        ("budget-usd: 1.0e+10", "2: budget-usd must be a positive number of US dollars, at most"),
        ('title: "a\\0b"', "2: title holds a NUL character"),
        ('branch: "\\ud800"', "2: branch holds U+D800, a lone surrogate, which is not text"),
        ('labels: "a, \\0"', "2: labels: an item holds a NUL character"),
        ('setup: ["ok", "\\0"]', "2: setup: '\\x00' holds a NUL character"),
        ('env:\n  A: "\\0"', "3: env: the value holds a NUL character"),
        ("title: x\u2028\u2028bad: [", "2: front matter is not valid YAML"),
    ],
    ids=[
        "big",
        "deep",
        "long-number",
        "turns",
        "dollars",
        "nul",
        "surrogate",
        "comma",
        "item",
        "env",
        "u2028",
    ],
)
def test_refusals_say_what_is_wrong_and_where(front: str, problem: str) -> None:
    """Each limit the parser keeps is a problem on the right line that says which."""
    outcome, _ = timed_parse(f"---\n{front}\n---\nDo it.\n")
    assert isinstance(outcome, PlanError)
    assert outcome.problems[0].startswith(f"plan.md:{problem}"), outcome.problems


def test_a_nul_anywhere_in_the_file_is_refused_on_its_line() -> None:
    """A NUL byte (a binary file, or one that would cut a git argument short) is refused."""
    outcome, _ = timed_parse("# Title\r\n\r\nDo \0 it.\n")
    assert isinstance(outcome, PlanError)
    assert outcome.problems == ["plan.md:3: holds a NUL character: a plan is text"]


def test_many_problems_are_all_reported_fast(plan_dir: Path) -> None:
    """Thousands of bad keys each give their problem, in line order, fast."""
    front = "".join(f"titel{i}: x\n" for i in range(2_000))
    outcome = check_file(plan_dir / "many.md", f"---\n{front}---\nDo it.\n".encode())
    assert isinstance(outcome, PlanError)
    lines = [int(PROBLEM.fullmatch(p)["line"]) for p in outcome.problems]  # type: ignore[index]
    assert lines == list(range(2, 2_002))


# ---------------------------------------------------------------- the body

markdown_lines = st.lists(
    st.one_of(
        st.sampled_from(
            ["- [ ] a", "- [x] b", "* [X] c", "1. [ ] d", "```", "~~~", "````py", "# H", "#"]
        ),
        st.text(alphabet=" \t#-*[]xX`~0123456789.)a", max_size=30),
    ),
    max_size=60,
).map("\n".join)


@fuzz(200)
@given(markdown_lines)
def test_task_counts_and_title_of_any_body(body: str) -> None:
    """Any Markdown body has done <= total tasks and a usable title, whatever its fences."""
    outcome, _ = timed_parse("Task:\n" + body + "\nDo it.")
    assert isinstance(outcome, Plan)
    assert 0 <= outcome.tasks.done <= outcome.tasks.total <= body.count("[") + 1
    assert usable_text(outcome.display_title)


@pytest.mark.parametrize(
    "line",
    [
        "# " + " \t" * 50_000 + "x",
        "- " + " " * 100_000 + "[ ]",
        " " * 100_000 + "```",
        "1" * 100_000 + ". [ ] x",
        "#" * 100_000,
    ],
    ids=["heading-spaces", "task-spaces", "fence-spaces", "numbered", "hashes"],
)
def test_long_body_lines_are_read_fast(line: str) -> None:
    """Lines built to make a regular expression backtrack are read in linear time."""
    outcome, seconds = timed_parse(f"{line}\n{line}\nDo it.\n")
    assert isinstance(outcome, Plan)
    started = time.perf_counter()
    assert usable_text(outcome.display_title)
    assert seconds + time.perf_counter() - started < FAST_S
