"""A plan's front matter: YAML checked key by key into the values of a Plan.

Every problem is collected, with the line it is on, counted in the plan file, so
that ``parse_plan`` can report them all at once.

Hostile input stays cheap: front matter over 32 KiB or nested more than 64 deep
never reaches YAML, a number written with more than 64 characters is never built,
and every string handed on is text (no NUL, no lone surrogate).
"""

from __future__ import annotations

import bisect
import difflib
import functools
import ipaddress
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import yaml
from yaml.reader import ReaderError

from claude_e2b.errors import PlanError

SECRET_POLICIES: Final = ("exclude", "fail", "warn")

# The front matter always starts on the line after the opening "---"; YAML counts
# its lines from 0, the plan file from 1.
_FRONT_LINE: Final = 2
_INVALID: Final = object()
_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SECRET_WORDS: Final = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL")
_HOST_NAME: Final = re.compile(
    r"(\*\.)?[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)
_DRIVE: Final = re.compile(r"[A-Za-z]:")
_SHORT: Final = 60
# Limits that keep PyYAML fast on hostile input: its scanner is quadratic in the
# depth of flow nesting, and it computes a sexagesimal integer (1:2:3) in time
# quadratic in its length. Settings need neither.
MAX_FRONT_MATTER_CHARS: Final = 32 * 1024
_MAX_FLOW_DEPTH: Final = 64
_MAX_NUMBER_CHARS: Final = 64
# Larger numbers of minutes, dollars or turns are typos, and overflow later (seconds, argv).
_MAX_NUMBER: Final = 10**9
_NUMBER_TAGS: Final = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


class Problems:
    """Collects ``(line, message)`` pairs so that one run reports every problem."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._items: list[tuple[int, str]] = []

    def add(self, line: int, message: str) -> None:
        """Record a problem at a plan-file line (at least 1), flattened to one line."""
        # One problem per output line, whatever line breaks YAML or a value brought in.
        flat = " ".join(part.strip() for part in message.splitlines())
        self._items.append((max(line, 1), flat))

    def error(self) -> PlanError:
        """A PlanError holding every problem, in line order."""
        ordered = sorted(self._items, key=lambda item: item[0])
        return PlanError([f"{self._path}:{line}: {message}" for line, message in ordered])

    def raise_if_any(self) -> None:
        """Raise the PlanError if any problem was recorded."""
        if self._items:
            raise self.error()


# ---------------------------------------------------------------- front matter


def _line(node: yaml.Node) -> int:
    return _mark_line(node.start_mark)


def _mark_line(mark: yaml.Mark) -> int:
    # YAML also ends lines at NEL, U+2028 and U+2029; the plan file ends them at "\n" only.
    buffer = getattr(mark, "buffer", None)
    if not isinstance(buffer, str):
        return int(mark.line) + _FRONT_LINE
    return bisect.bisect_left(_line_ends(buffer), mark.index) + _FRONT_LINE


@functools.lru_cache(maxsize=4)
def _line_ends(text: str) -> tuple[int, ...]:
    """The index of every line break of ``text``, for counting lines by bisection."""
    return tuple(match.start() for match in re.finditer("\n", text))


def read_front_matter(front: str | None, problems: Problems) -> dict[str, Any]:
    """The values of the front matter's keys, by field name; each problem goes to problems."""
    root = _compose(front, problems) if front is not None else None
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        kind = _node_kind(root)
        problems.add(_line(root), f"the front matter must be a mapping of keys, not {kind}")
        return {}
    _check_duplicates(root, problems)
    values: dict[str, Any] = {}
    for key_node, value_node in root.value:
        _read_entry(key_node, value_node, values, problems)
    _finish_warnings(values, problems)
    return values


def _compose(front: str, problems: Problems) -> yaml.Node | None:
    refusal = _size_problem(front)
    if refusal is not None:
        problems.add(_FRONT_LINE, refusal)
        return None
    try:
        return yaml.compose(front, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        problems.add(_error_line(exc), f"front matter is not valid YAML: {_yaml_message(exc)}")
    except ReaderError as exc:
        line = front.count("\n", 0, exc.position) + _FRONT_LINE
        problems.add(line, f"front matter holds a character YAML refuses: {exc.character!r}")
    except RecursionError:
        problems.add(_FRONT_LINE, "front matter is nested too deeply")
    return None


def _size_problem(front: str) -> str | None:
    """Say why the front matter is too big or too deep to hand to YAML, or None."""
    if len(front) > MAX_FRONT_MATTER_CHARS:
        return (
            f"the front matter is over {MAX_FRONT_MATTER_CHARS // 1024} KiB: it holds settings;"
            " write the task after the closing '---'"
        )
    depth = 0
    for char in front:
        if char in "[{":
            depth += 1
            if depth > _MAX_FLOW_DEPTH:
                return "front matter is nested too deeply"
        elif char in "]}":
            depth = max(depth - 1, 0)
    return None


def _error_line(exc: yaml.MarkedYAMLError) -> int:
    mark = exc.problem_mark or exc.context_mark
    return _mark_line(mark) if mark else 1


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    return "; ".join(part for part in (exc.context, exc.problem) if part) or "cannot parse it"


def _node_kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return "a single value"


def _check_duplicates(root: yaml.Node, problems: Problems) -> None:
    # PyYAML keeps the last of two equal keys without a word: look in the node tree.
    # A loop over a stack, not recursion: aliases can make the tree a cycle.
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            _check_keys_unique(node, problems)
            stack.extend(child for pair in node.value for child in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _check_keys_unique(node: yaml.MappingNode, problems: Problems) -> None:
    first_lines: dict[tuple[str, str], int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            continue
        identity = (key_node.tag, key_node.value)
        if identity in first_lines:
            first = first_lines[identity]
            message = f"duplicate key {key_node.value!r} (first on line {first}): keep only one"
            problems.add(_line(key_node), message)
        else:
            first_lines[identity] = _line(key_node)


def _read_entry(
    key_node: yaml.Node, value_node: yaml.Node, values: dict[str, Any], problems: Problems
) -> None:
    key = _key_name(key_node, problems)
    if key is None:
        return
    data = _construct(key, value_node, problems)
    if data is _INVALID:
        return
    value = _Value(key=key, node=value_node, data=data, line=_line(key_node))
    converted = _CONVERTERS[key](value, problems)
    if converted is not _INVALID:
        values[key.replace("-", "_")] = converted


def _key_name(node: yaml.Node, problems: Problems) -> str | None:
    if not isinstance(node, yaml.ScalarNode):
        problems.add(_line(node), f"keys must be plain names, not {_node_kind(node)}")
        return None
    name = str(node.value)
    if name not in _CONVERTERS:
        problems.add(_line(node), _unknown_key_message(name))
        return None
    return name


def _unknown_key_message(name: str) -> str:
    guess = _suggest(name, PLAN_KEYS)
    hint = f"did you mean {guess!r}?" if guess else f"plan keys are {', '.join(sorted(PLAN_KEYS))}"
    return f"unknown key {_short(name)}; {hint}"


def _suggest(word: str, choices: frozenset[str] | tuple[str, ...]) -> str | None:
    # Underscores and capitals are the usual slips from other config formats.
    normal = word.strip().lower().replace("_", "-").replace(" ", "-")
    if normal in choices:
        return normal
    close = difflib.get_close_matches(normal, sorted(choices), n=1)
    return close[0] if close else None


def _construct(key: str, node: yaml.Node, problems: Problems) -> Any:
    long_number = _long_number(node)
    if long_number is not None:
        message = f"{key}: a number of more than {_MAX_NUMBER_CHARS} characters is no setting"
        problems.add(_line(long_number), message)
        return _INVALID
    # A fresh constructor per value: a failed one keeps half-built state behind.
    constructor = yaml.SafeLoader("")
    try:
        return constructor.construct_object(node, deep=True)
    except yaml.MarkedYAMLError as exc:
        problems.add(_error_line(exc), f"{key}: {_yaml_message(exc)}")
    # PyYAML's constructors let ValueError, IndexError, AttributeError… escape on
    # explicitly tagged junk (`!!int ""`, `!!timestamp x`); the set is open-ended.
    except Exception as exc:  # noqa: BLE001
        problems.add(_line(node), f"{key}: YAML cannot build this value ({type(exc).__name__})")
    return _INVALID


def _long_number(root: yaml.Node) -> yaml.Node | None:
    """The first number in ``root`` written with too many characters to build, if any."""
    seen: set[int] = set()
    stack = [root]
    while stack:  # a loop, not recursion: aliases can make the tree a cycle
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            if node.tag in _NUMBER_TAGS and len(node.value) > _MAX_NUMBER_CHARS:
                return node
        elif isinstance(node, yaml.MappingNode):
            stack.extend(child for pair in node.value for child in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return None


# ---------------------------------------------------------------- values


@dataclass(frozen=True)
class _Value:
    """One front-matter value, as YAML built it, with what is needed to point at it."""

    key: str
    node: yaml.Node
    data: Any
    line: int  # the key's line

    def item_line(self, index: int) -> int:
        if isinstance(self.node, yaml.SequenceNode) and index < len(self.node.value):
            return _line(self.node.value[index])
        return self.line

    def expected(self, wanted: str) -> str:
        return f"{self.key} must be {wanted}, got {_describe(self.data)}"


@dataclass(frozen=True)
class _Mark:
    """A warn-at-minutes mark, kept with its line until it is checked against the timeout."""

    minutes: float
    line: int


_Converter = Callable[[_Value, Problems], Any]


def _describe(data: Any) -> str:
    if data is None:
        return "no value"
    if isinstance(data, bool):
        return f"the boolean {str(data).lower()}"
    if isinstance(data, int):
        # str() of an int beyond ~4300 digits raises; nobody needs to see those digits.
        return f"the integer {data}" if data.bit_length() < 128 else "a huge integer"  # noqa: PLR2004
    if isinstance(data, float):
        return f"the number {data}"
    if isinstance(data, str):
        return f"the string {_short(data)}" if data.strip() else "an empty string"
    return _container_kind(data)


def _container_kind(data: Any) -> str:
    if isinstance(data, list):
        return "a list"
    if isinstance(data, dict):
        return "a mapping"
    return f"a value of type {type(data).__name__}"


def _short(text: str) -> str:
    return repr(text if len(text) <= _SHORT else text[: _SHORT - 1] + "…")


def _is_number(data: Any) -> bool:
    # YAML's true/false are ints to Python; a boolean is never a count of minutes.
    return isinstance(data, int | float) and not isinstance(data, bool)


def _positive_float(data: Any) -> float | None:
    if not _is_number(data):
        return None
    try:
        number = float(data)
    except OverflowError:
        return None
    return number if 0 < number <= _MAX_NUMBER else None


def _text_problem(text: str) -> str | None:
    """Say why a string cannot be passed on as text (to git, a shell, an API), or None."""
    if "\0" in text:
        return "holds a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"holds U+{ord(text[exc.start]):04X}, a lone surrogate, which is not text"
    return None


def _string(value: _Value, problems: Problems) -> Any:
    if isinstance(value.data, str) and value.data.strip():
        problem = _text_problem(value.data)
        if problem is None:
            return value.data
        problems.add(value.line, f"{value.key} {problem}")
        return _INVALID
    message = value.expected("a non-empty string")
    if value.data is not None and not isinstance(value.data, str | list | dict):
        message += "; put it in quotes to use it as text"
    problems.add(value.line, message)
    return _INVALID


def _boolean(value: _Value, problems: Problems) -> Any:
    if isinstance(value.data, bool):
        return value.data
    problems.add(value.line, value.expected("true or false"))
    return _INVALID


def _positive_int(value: _Value, problems: Problems) -> Any:
    if _is_number(value.data) and isinstance(value.data, int) and 0 < value.data <= _MAX_NUMBER:
        return value.data
    problems.add(value.line, value.expected(_bounded("a positive whole number", value.data)))
    return _INVALID


def _positive_number(wanted: str) -> _Converter:
    def convert(value: _Value, problems: Problems) -> Any:
        number = _positive_float(value.data)
        if number is None:
            problems.add(value.line, value.expected(_bounded(wanted, value.data)))
            return _INVALID
        return number

    return convert


def _bounded(wanted: str, data: Any) -> str:
    """What a number must be, naming the upper bound when ``data`` is over it."""
    over = _is_number(data) and _MAX_NUMBER < data < math.inf
    return f"{wanted}, at most {_MAX_NUMBER}" if over else wanted


def _secrets_policy(value: _Value, problems: Problems) -> Any:
    if value.data in SECRET_POLICIES:
        return value.data
    choices = ", ".join(repr(policy) for policy in SECRET_POLICIES)
    message = value.expected(f"one of {choices}")
    guess = _suggest(value.data, SECRET_POLICIES) if isinstance(value.data, str) else None
    problems.add(value.line, f"{message}; did you mean {guess!r}?" if guess else message)
    return _INVALID


def _warn_marks(value: _Value, problems: Problems) -> Any:
    if not isinstance(value.data, list):
        problems.add(value.line, value.expected("a list of positive numbers of minutes"))
        return _INVALID
    marks = [_warn_mark(value, index, problems) for index in range(len(value.data))]
    return tuple(marks) if all(marks) else _INVALID


def _warn_mark(value: _Value, index: int, problems: Problems) -> _Mark | None:
    item = value.data[index]
    minutes = _positive_float(item)
    if minutes is None:
        wanted = f"{_bounded('a positive number of minutes', item)}, got {_describe(item)}"
        problems.add(value.item_line(index), f"{value.key}: each mark must be {wanted}")
        return None
    return _Mark(minutes=minutes, line=value.item_line(index))


def _finish_warnings(values: dict[str, Any], problems: Problems) -> None:
    marks: tuple[_Mark, ...] | None = values.get("warn_at_minutes")
    if marks is None:
        return
    timeout = values.get("timeout_minutes")
    for mark in marks:
        if timeout is not None and mark.minutes >= timeout:
            late = f"{mark.minutes:g} is not before timeout-minutes ({timeout:g})"
            problems.add(mark.line, f"warn-at-minutes: {late}")
    values["warn_at_minutes"] = tuple(sorted({mark.minutes for mark in marks}))


def _string_list(
    *,
    comma: bool = False,
    single: bool = False,
    check: Callable[[str], str | None] | None = None,
) -> _Converter:
    """Build a converter for a list of strings; ``comma``/``single`` also take one string."""

    def convert(value: _Value, problems: Problems) -> Any:
        data = value.data
        if comma and isinstance(data, str):
            parts = [part.strip() for part in data.split(",") if part.strip()]
            return _texts(value, parts, problems)
        if single and isinstance(data, str) and data.strip():
            return _texts(value, [data], problems)
        if not isinstance(data, list):
            problems.add(value.line, value.expected("a list of strings"))
            return _INVALID
        items = [_list_item(value, index, check, problems) for index in range(len(data))]
        return tuple(item for item in items if item is not None) if all(items) else _INVALID

    return convert


def _texts(value: _Value, items: list[str], problems: Problems) -> Any:
    """The strings as a tuple, or a problem at the key's line if one is not text."""
    problem = next((found for found in map(_text_problem, items) if found), None)
    if problem is None:
        return tuple(items)
    problems.add(value.line, f"{value.key}: an item {problem}")
    return _INVALID


def _list_item(
    value: _Value, index: int, check: Callable[[str], str | None] | None, problems: Problems
) -> str | None:
    item = value.data[index]
    if not isinstance(item, str) or not item.strip():
        message = f"{value.key}: each item must be a non-empty string, got {_describe(item)}"
        problems.add(value.item_line(index), message)
        return None
    problem = _text_problem(item) or (check(item) if check else None)
    if problem:
        problems.add(value.item_line(index), f"{value.key}: {_short(item)} {problem}")
        return None
    return item


def _glob_problem(pattern: str) -> str | None:
    # Globs are matched against repository paths: anything outside the checkout is a mistake.
    if pattern.startswith(("/", "\\")) or _DRIVE.match(pattern):
        return "is an absolute path; write it relative to the repository root"
    if ".." in re.split(r"[\\/]", pattern):
        return "has a '..' segment; globs cannot reach outside the repository"
    return None


def _network_problem(entry: str) -> str | None:
    try:
        ipaddress.ip_network(entry, strict=False)
    except ValueError:
        pass
    else:
        return None
    if len(entry) <= 253 and _HOST_NAME.fullmatch(entry):  # noqa: PLR2004 (DNS name limit)
        return None
    return "is not a host name, IP address or CIDR range"


def _env(value: _Value, problems: Problems) -> Any:
    if not isinstance(value.node, yaml.MappingNode) or not isinstance(value.data, dict):
        problems.add(value.line, value.expected("a mapping of variable names to values"))
        return _INVALID
    entries = [_env_entry(key, item, problems) for key, item in value.node.value]
    if not all(entries):
        return _INVALID
    return MappingProxyType(dict(entry for entry in entries if entry is not None))


def _env_entry(
    key_node: yaml.Node, value_node: yaml.Node, problems: Problems
) -> tuple[str, str] | None:
    name = _env_name(key_node, problems)
    if not isinstance(value_node, yaml.ScalarNode):
        kind = _node_kind(value_node)
        problems.add(_line(value_node), f"env: the value must be a string or number, not {kind}")
        return None
    if value_node.tag == "tag:yaml.org,2002:null":
        problems.add(_line(value_node), "env: a variable needs a value; write '' for an empty one")
        return None
    # The text as written: YAML would turn 3.10 into 3.1 and 0755 into 493.
    text = str(value_node.value)
    problem = _text_problem(text)
    if problem is not None:
        problems.add(_line(value_node), f"env: the value {problem}")
        return None
    return (name, text) if name else None


def _env_name(node: yaml.Node, problems: Problems) -> str | None:
    name = str(node.value) if isinstance(node, yaml.ScalarNode) else ""
    if not _ENV_NAME.fullmatch(name):
        message = f"env: {_short(name)} is not a variable name (letters, digits, _; no digit first)"
        problems.add(_line(node), message)
        return None
    if any(word in name.upper() for word in _SECRET_WORDS):
        problems.add(_line(node), _secret_name_message(name))
        return None
    return name


def _secret_name_message(name: str) -> str:
    return (
        f"env: {name} looks like a secret; plan files are committed and uploaded, so pass "
        "secrets through the action's inputs and repository secrets, not the plan"
    )


_CONVERTERS: Final[dict[str, _Converter]] = {
    "title": _string,
    "branch": _string,
    "base-branch": _string,
    "model": _string,
    "timeout-minutes": _positive_number("a positive number of minutes"),
    "warn-at-minutes": _warn_marks,
    "max-turns": _positive_int,
    "budget-usd": _positive_number("a positive number of US dollars"),
    "template": _string,
    "labels": _string_list(comma=True),
    "reviewers": _string_list(comma=True),
    "draft": _boolean,
    "allowed-paths": _string_list(check=_glob_problem),
    "protected-paths": _string_list(check=_glob_problem),
    "network": _string_list(check=_network_problem),
    "setup": _string_list(single=True),
    "verify": _string,
    "env": _env,
    "secrets": _secrets_policy,
    "include-untracked": _boolean,
    "exclude": _string_list(check=_glob_problem),
}

PLAN_KEYS: Final[frozenset[str]] = frozenset(_CONVERTERS)
