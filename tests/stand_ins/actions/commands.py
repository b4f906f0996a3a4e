"""Workflow commands (`::name key=value::data`) in a step's output, and helpers for tests.

Parsing follows actions/runner `src/Runner.Common/ActionCommand.cs` (TryParseV2): the
line, left-trimmed, starts with `::`, the command name is one the runner knows, properties
are split on `,` then `=` and unescaped (%0D %0A %3A %2C %25), the data is unescaped
(%0D %0A %25). `::stop-commands::TOKEN` ignores commands until `::TOKEN::`.

For tests: `annotations_in(log)`, `groups(log)`, and for secrets `masked_log(log)` (what
GitHub would display: each value replaced by *** from its `::add-mask::` line on) with
`mask_leaks(log)` / `assert_masked(log)`: a value shown in clear before its mask line
is a leak, because the runner only masks what it has been told about.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

KNOWN = frozenset(
    {
        "add-mask", "set-output", "save-state", "set-env", "add-path", "add-matcher",
        "remove-matcher", "debug", "warning", "error", "notice", "group", "endgroup",
        "echo", "stop-commands",
    }
)  # fmt: skip
ANNOTATION_LEVELS = ("error", "warning", "notice")
MASK = "***"


@dataclass(frozen=True)
class Command:
    """One workflow command found in the log."""

    line_number: int  # 1-based, in the log it was parsed from
    name: str
    properties: dict[str, str]
    data: str


@dataclass(frozen=True)
class Annotation:
    """An error, warning or notice, from a step's command or from the runner itself."""

    level: str  # error | warning | notice
    message: str
    properties: dict[str, str] = field(default_factory=dict)
    step: str | None = None  # the step's context name
    source: str = "command"  # "command" (printed by the step) or "runner"


def _unescape(value: str, *, is_property: bool) -> str:
    pairs = [("%0D", "\r"), ("%0A", "\n")]
    pairs += [("%3A", ":"), ("%2C", ",")] if is_property else []
    for escaped, char in [*pairs, ("%25", "%")]:
        value = value.replace(escaped, char)
    return value


def parse_line(line: str, known: Iterable[str] = KNOWN) -> tuple[str, dict[str, str], str] | None:
    """(name, properties, data) when a line is a workflow command, else None."""
    message = line.lstrip()
    if not message.startswith("::"):
        return None
    end = message.find("::", 2)
    if end < 0:
        return None
    info = message[2:end]
    name, _, props = info.partition(" ")
    if name.casefold() not in {k.casefold() for k in known}:
        return None
    properties: dict[str, str] = {}
    for item in (p for p in props.strip().split(",") if p):
        key, sep, value = item.partition("=")
        if sep and key and value:
            properties[key] = _unescape(value, is_property=True)
    return name.lower(), properties, _unescape(message[end + 2 :], is_property=False)


def _printed_lines(log: str) -> Iterator[tuple[int, str]]:
    """The lines steps printed: not the runner's `##[group]Run …` … `##[endgroup]` headers."""
    in_header = False
    for number, line in enumerate(log.splitlines(), start=1):
        if line.startswith(("##[group]", "##[endgroup]")):
            in_header = line.startswith("##[group]")
        elif not in_header and not line.startswith("##["):
            yield number, line


def parse_commands(log: str) -> list[Command]:
    """Every command steps printed in a log, honouring `::stop-commands::` and its token."""
    found: list[Command] = []
    stop_token: str | None = None
    for number, line in _printed_lines(log):
        if stop_token is not None:
            parsed = parse_line(line, {stop_token})
            if parsed is not None:
                stop_token = None
            continue
        parsed = parse_line(line)
        if parsed is None:
            continue
        name, properties, data = parsed
        if name == "stop-commands":
            stop_token = data or None
            continue
        found.append(Command(number, name, properties, data))
    return found


def annotations_in(log: str) -> list[Annotation]:
    """The error, warning and notice commands of a log."""
    return [
        Annotation(c.name, c.data, c.properties)
        for c in parse_commands(log)
        if c.name in ANNOTATION_LEVELS
    ]


@dataclass(frozen=True)
class Group:
    title: str
    lines: tuple[str, ...]


def groups(log: str) -> list[Group]:
    """The `::group::` sections of a log with the lines printed inside them."""
    lines = log.splitlines()
    found: list[Group] = []
    commands = {c.line_number: c for c in parse_commands(log)}
    title: str | None = None
    inside: list[str] = []
    for number, line in enumerate(lines, start=1):
        command = commands.get(number)
        if command is not None and command.name in {"group", "endgroup"}:
            if title is not None:
                found.append(Group(title, tuple(inside)))
            title, inside = (command.data, []) if command.name == "group" else (None, [])
        elif title is not None:
            inside.append(line)
    if title is not None:
        found.append(Group(title, tuple(inside)))
    return found


# ---------------------------------------------------------------- masks


def _mask_values(data: str) -> list[str]:
    """What `::add-mask::` registers: the value, and each of its trimmed lines."""
    values = [data] + [part.strip() for part in data.replace("\r", "\n").split("\n")]
    return [v for v in dict.fromkeys(values) if v.strip()]


def _mask_lines(log: str, secrets: Iterable[str]) -> Iterator[tuple[int, str, list[str]]]:
    """Each line (number, text, values masked at that point) that is not an add-mask command."""
    masked = [s for s in secrets if s]
    commands = {c.line_number: c for c in parse_commands(log)}
    for number, line in enumerate(log.splitlines(), start=1):
        command = commands.get(number)
        if command is not None and command.name == "add-mask":
            masked.extend(_mask_values(command.data))
            continue
        yield number, line, masked


def masked_log(log: str, secrets: Iterable[str] = ()) -> str:
    """The log as GitHub would display it; `secrets` are masked from the first line."""
    shown = []
    for _, line, masked in _mask_lines(log, secrets):
        text = line
        for value in sorted(masked, key=len, reverse=True):
            text = text.replace(value, MASK)
        shown.append(text)
    return "\n".join(shown)


@dataclass(frozen=True)
class MaskLeak:
    value: str
    line_number: int
    line: str


def mask_leaks(log: str, secrets: Iterable[str] = ()) -> list[MaskLeak]:
    """Values that get masked at some point but appear in clear before their mask line."""
    all_masked = {
        v for c in parse_commands(log) if c.name == "add-mask" for v in _mask_values(c.data)
    }
    return [
        MaskLeak(value, number, line)
        for number, line, masked in _mask_lines(log, secrets)
        for value in sorted(all_masked - set(masked))
        if value in line
    ]


def assert_masked(log: str, secrets: Iterable[str] = ()) -> None:
    """AssertionError naming each masked value the log shows in clear before its mask line."""
    leaks = mask_leaks(log, secrets)
    if leaks:
        listed = "; ".join(f"line {leak.line_number} shows a masked value" for leak in leaks)
        raise AssertionError(f"values shown before their ::add-mask:: line: {listed}")
