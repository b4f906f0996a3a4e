"""Property tests: parse_plan never crashes, and valid front matter round-trips."""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_e2b.errors import PlanError
from claude_e2b.front_matter import SECRET_POLICIES
from claude_e2b.plan import Plan, parse_plan

PATH = Path("plan.md")
PROBLEM = re.compile(r"^.+:\d+: .+$")

yaml_ish = st.sampled_from(
    [
        "---",
        "\n",
        "\r\n",
        ": ",
        "- ",
        "  ",
        "\t",
        "title",
        "timeout-minutes",
        "env",
        "labels",
        "[",
        "]",
        "{",
        "}",
        "&a ",
        "*a",
        "!!int ",
        "!!timestamp ",
        "!!python/object ",
        "'",
        '"',
        "#",
        "true",
        "-1",
        "1e400",
        "..",
        "\ufeff",
        "\x00",
        "? ",
        "<<: ",
    ]
)
text_like_plans = st.one_of(
    st.text(),
    st.lists(st.one_of(yaml_ish, st.text(max_size=5)), max_size=40).map("".join),
    st.builds(lambda front, body: f"---\n{front}\n---\n{body}", st.text(), st.text()),
)


def outcome(text: str) -> Plan | PlanError:
    try:
        return parse_plan(text, PATH)
    except PlanError as exc:
        return exc


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(text_like_plans)
def test_parse_plan_returns_a_plan_or_well_formed_problems(text: str) -> None:
    """Any text gives a Plan or a PlanError whose problems all read 'PATH:LINE: message'."""
    result = outcome(text)
    if isinstance(result, PlanError):
        assert result.problems
        for problem in result.problems:
            assert PROBLEM.match(problem), problem
            assert int(problem.split(":")[1]) >= 1
    else:
        assert result.body.strip()


words = st.text(alphabet=string.ascii_letters + string.digits + " -_./:@#", min_size=1).filter(
    str.strip
)
names = st.text(alphabet=string.ascii_lowercase + string.digits + "-", min_size=1, max_size=20)
labels = st.lists(st.text(alphabet=string.ascii_letters + " -", min_size=1).filter(str.strip))
globs = st.lists(
    st.lists(st.sampled_from(["src", "*", "**", "a.b", "x..y", "tests", "*.py"]), min_size=1).map(
        "/".join
    )
)
hosts = st.lists(
    st.one_of(
        st.lists(names.filter(lambda n: n[0] != "-" and n[-1] != "-"), min_size=1, max_size=4).map(
            ".".join
        ),
        st.sampled_from(["10.0.0.0/8", "192.168.1.1", "::1", "*.example.com"]),
    )
)
env_names = st.from_regex(r"[A-Z_][A-Z0-9_]{0,12}", fullmatch=True).filter(
    lambda n: (
        not any(w in n for w in ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL"))
    )
)
# PyYAML itself does not round-trip YAML 1.1's extra line breaks inside quoted strings.
env_values = st.text(
    alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00\x85\u2028\u2029"),
    max_size=20,
)
minutes = st.floats(min_value=0.01, max_value=10_000, allow_nan=False)


@st.composite
def front_matters(draw: st.DrawFn) -> dict[str, Any]:
    optional: dict[str, st.SearchStrategy[Any]] = {
        "title": words,
        "branch": words,
        "base-branch": words,
        "model": words,
        "max-turns": st.integers(min_value=1, max_value=10**6),
        "budget-usd": st.floats(min_value=0.001, max_value=1e6),
        "template": words,
        "labels": labels,
        "reviewers": labels,
        "draft": st.booleans(),
        "allowed-paths": globs,
        "protected-paths": globs,
        "network": hosts,
        "setup": st.lists(words),
        "verify": words,
        "env": st.dictionaries(env_names, env_values),
        "secrets": st.sampled_from(SECRET_POLICIES),
        "include-untracked": st.booleans(),
        "exclude": globs,
    }
    chosen = draw(st.sets(st.sampled_from(sorted(optional))))
    front = {key: draw(optional[key]) for key in chosen}
    if draw(st.booleans()):
        timeout = draw(minutes)
        front["timeout-minutes"] = timeout
        front["warn-at-minutes"] = draw(st.lists(minutes.filter(lambda m: m < timeout)))
    return front


def expected_value(key: str, value: Any) -> Any:
    if key == "warn-at-minutes":
        return tuple(sorted(set(value)))
    if key == "env":
        return value
    if isinstance(value, list):
        return tuple(value)
    if key in {"timeout-minutes", "budget-usd"}:
        return float(value)
    return value


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(front_matters(), st.booleans())
def test_valid_front_matter_round_trips(front: dict[str, Any], crlf: bool) -> None:
    """Front matter dumped by YAML comes back as the same values on the Plan."""
    dumped = yaml.safe_dump(front, allow_unicode=True, sort_keys=False)
    text = f"---\n{dumped}---\nDo the work.\n"
    if crlf:
        text = text.replace("\n", "\r\n")
    plan = parse_plan(text, PATH)
    for key, value in front.items():
        got = getattr(plan, key.replace("-", "_"))
        assert (dict(got) if key == "env" else got) == expected_value(key, value), key
    assert plan.body == "Do the work.\n"
