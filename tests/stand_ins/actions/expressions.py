"""GitHub Actions expressions, parsed and evaluated the way the runner's DTExpressions2 does.

Read from actions/runner `src/Sdk/DTExpressions2` (LexicalAnalyzer, ExpressionParser,
the Functions and Operators folders) and the template reader that turns
`prefix ${{ x }} suffix` into `format('prefix {0} suffix', x)`. Values and their rules
(coercion, truthiness, lookup) are in `values`.

    ExpressionError          a parse or evaluation error, message worded like the runner's
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.stand_ins.actions.values import (
    COMPARISONS,
    CaseSensitiveDict,
    ExpressionError,
    Filtered,
    equal,
    from_json,
    kind_of,
    lookup,
    parse_number,
    to_json,
    to_str,
    truthy,
)

__all__ = [
    "CaseSensitiveDict",
    "ExpressionError",
    "Scope",
    "as_string",
    "evaluate",
    "parse",
    "template_expression",
    "to_str",
    "truthy",
]

MAX_LENGTH = 21000
OPEN, CLOSE = "${{", "}}"
STATUS_FUNCTIONS = frozenset({"success", "failure", "cancelled", "always"})


# ---------------------------------------------------------------- lexer


@dataclass(frozen=True)
class Token:
    kind: str  # ( [ fn( ) ] fn) , . * op null boolean number string prop function named
    raw: str
    index: int
    value: Any = None


_BOUNDARY = set("()[],.!><=&|")
_OPERATORS = ("!=", ">=", "<=", "==", "&&", "||", "!", ">", "<")
_KEYWORD = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_OPERAND_BEFORE = {None, ",", "(", "fn(", "[", "op"}
_LITERALS: dict[str, tuple[str, Any]] = {
    "null": ("null", None),
    "true": ("boolean", True),
    "false": ("boolean", False),
    "NaN": ("number", math.nan),
    "Infinity": ("number", math.inf),
}


def _is_boundary(char: str) -> bool:
    return char in _BOUNDARY or char.isspace()


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.tokens: list[Token] = []
        self.open: list[str] = []

    def run(self) -> list[Token]:
        while True:
            while self.i < len(self.text) and self.text[self.i].isspace():
                self.i += 1
            if self.i >= len(self.text):
                return self.tokens
            self.tokens.append(self._next())

    @property
    def last(self) -> str | None:
        return self.tokens[-1].kind if self.tokens else None

    def _next(self) -> Token:
        char = self.text[self.i]
        if char in "([":
            return self._open(char)
        if char in ")]":
            return self._close(char, self.i)
        if char in ",*":
            self.i += 1
            return Token(char, char, self.i - 1)
        if char == "'":
            return self._string(self.i)
        if char in "!<>=&|":
            return self._operator(self.i)
        return self._dot_number_or_keyword(char)

    def _open(self, char: str) -> Token:
        kind = "fn(" if char == "(" and self.last == "function" else char
        self.open.append(kind)
        self.i += 1
        return Token(kind, char, self.i - 1)

    def _dot_number_or_keyword(self, char: str) -> Token:
        if char == "." and self.last not in _OPERAND_BEFORE:
            self.i += 1
            return Token(".", char, self.i - 1)
        if char in "-+." or char.isdigit():
            return self._number(self.i)
        return self._keyword(self.i)

    def _close(self, char: str, start: int) -> Token:
        opener = self.open[-1] if self.open else None
        if opener not in ({"["} if char == "]" else {"(", "fn("}):
            raise _unexpected(char, start, self.text)
        self.open.pop()
        self.i += 1
        return Token("fn)" if opener == "fn(" else char, char, start)

    def _string(self, start: int) -> Token:
        chars: list[str] = []
        self.i += 1
        while self.i < len(self.text):
            char = self.text[self.i]
            self.i += 1
            if char == "'":
                if self.text[self.i : self.i + 1] != "'":
                    return Token("string", self.text[start : self.i], start, "".join(chars))
                self.i += 1
            chars.append(char)
        raise _unexpected(self.text[start:], start, self.text)

    def _operator(self, start: int) -> Token:
        for op in _OPERATORS:
            if self.text.startswith(op, start):
                self.i += len(op)
                return Token("op", op, start)
        raise _unexpected(self.text[start], start, self.text)

    def _number(self, start: int) -> Token:
        self.i += 1
        while self.i < len(self.text) and (
            not _is_boundary(self.text[self.i]) or self.text[self.i] == "."
        ):
            self.i += 1
        raw = self.text[start : self.i]
        value = parse_number(raw)
        if math.isnan(value):
            raise _unexpected(raw, start, self.text)
        return Token("number", raw, start, value)

    def _keyword(self, start: int) -> Token:
        self.i += 1
        while self.i < len(self.text) and not _is_boundary(self.text[self.i]):
            self.i += 1
        raw = self.text[start : self.i]
        if not _KEYWORD.fullmatch(raw):
            raise _unexpected(raw, start, self.text)
        if self.last == ".":
            return Token("prop", raw, start)
        if raw in _LITERALS:
            kind, value = _LITERALS[raw]
            return Token(kind, raw, start, value)
        rest = self.text[self.i :].lstrip()
        return Token("function" if rest.startswith("(") else "named", raw, start)


def _unexpected(raw: str, index: int, text: str) -> ExpressionError:
    return ExpressionError(
        f"Unexpected symbol: '{raw}'. Located at position {index + 1} within expression: {text}"
    )


# ---------------------------------------------------------------- syntax tree


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class Named:
    name: str


@dataclass(frozen=True)
class Wildcard:
    pass


@dataclass(frozen=True)
class Index:
    target: Node
    key: Node


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class Logical:
    op: str  # "&&" or "||"
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Compare:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Call:
    name: str  # lower case
    args: tuple[Node, ...]


Node = Literal | Named | Wildcard | Index | Not | Logical | Compare | Call

_PRECEDENCE = {"||": 5, "&&": 6, "==": 10, "!=": 10, ">": 11, "<": 11, ">=": 11, "<=": 11}


@dataclass(frozen=True)
class Allowed:
    """What an expression in one place of action.yml may name (the schema's `context`)."""

    names: frozenset[str]
    functions: Mapping[str, tuple[int, int]] = field(default_factory=dict)


BUILT_IN_FUNCTIONS: dict[str, tuple[int, int]] = {
    "contains": (2, 2),
    "startswith": (2, 2),
    "endswith": (2, 2),
    "format": (1, 255),
    "join": (1, 2),
    "tojson": (1, 1),
    "fromjson": (1, 1),
    "case": (3, 255),
}


class _Parser:
    def __init__(self, text: str, allowed: Allowed) -> None:
        self.text = text
        self.allowed = allowed
        self.tokens = _Lexer(text).run()
        self.i = 0

    def parse(self) -> Node:
        node = self._binary(0)
        if self.i < len(self.tokens):
            token = self.tokens[self.i]
            raise _unexpected(token.raw, token.index, self.text)
        return node

    def _peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _take(self) -> Token:
        token = self._peek()
        if token is None:
            last = self.tokens[-1] if self.tokens else Token("", "", 0)
            raise ExpressionError(
                f"Unexpected end of expression: '{last.raw}'. Located at position "
                f"{last.index + 1} within expression: {self.text}"
            )
        self.i += 1
        return token

    def _expect(self, kind: str) -> Token:
        token = self._take()
        if token.kind != kind:
            raise _unexpected(token.raw, token.index, self.text)
        return token

    def _binary(self, min_precedence: int) -> Node:
        left = self._unary()
        while (token := self._peek()) and token.kind == "op" and token.raw in _PRECEDENCE:
            precedence = _PRECEDENCE[token.raw]
            if precedence < min_precedence:
                break
            self.i += 1
            right = self._binary(precedence + 1)
            left = _combine(token.raw, left, right)
        return left

    def _unary(self) -> Node:
        token = self._peek()
        if token and token.kind == "op" and token.raw == "!":
            self.i += 1
            return Not(self._unary())
        return self._postfix(self._primary())

    def _primary(self) -> Node:
        token = self._take()
        if token.kind in {"null", "boolean", "number", "string"}:
            return Literal(token.value)
        if token.kind == "(":
            node = self._binary(0)
            self._expect(")")
            return node
        if token.kind == "function":
            return self._call(token)
        if token.kind == "named":
            if token.raw.lower() not in self.allowed.names:
                raise ExpressionError(
                    f"Unrecognized named-value: '{token.raw}'. Located at position "
                    f"{token.index + 1} within expression: {self.text}"
                )
            return Named(token.raw.lower())
        raise _unexpected(token.raw, token.index, self.text)

    def _call(self, token: Token) -> Node:
        name = token.raw.lower()
        arity = BUILT_IN_FUNCTIONS.get(name) or self.allowed.functions.get(name)
        if arity is None:
            raise ExpressionError(
                f"Unrecognized function: '{token.raw}'. Located at position "
                f"{token.index + 1} within expression: {self.text}"
            )
        self._expect("fn(")
        args: list[Node] = []
        while (nxt := self._peek()) is not None and nxt.kind != "fn)":
            if args:
                self._expect(",")
            args.append(self._binary(0))
        closing = self._expect("fn)")
        if not arity[0] <= len(args) <= arity[1]:
            few = "few" if len(args) < arity[0] else "many"
            raise ExpressionError(
                f"Too {few} parameters supplied: '{token.raw}'. Located at position "
                f"{closing.index + 1} within expression: {self.text}"
            )
        if name == "case" and len(args) % 2 == 0:
            raise ExpressionError(f"case requires an odd number of arguments: {self.text}")
        return Call(name, tuple(args))

    def _postfix(self, node: Node) -> Node:
        while (token := self._peek()) and token.kind in {".", "["}:
            self.i += 1
            if token.kind == ".":
                key = self._take()
                if key.kind not in {"prop", "*"}:
                    raise _unexpected(key.raw, key.index, self.text)
                node = Index(node, Wildcard() if key.kind == "*" else Literal(key.raw))
                continue
            if (star := self._peek()) and star.kind == "*":
                self.i += 1
                node = Index(node, Wildcard())
            else:
                node = Index(node, self._binary(0))
            self._expect("]")
        return node


def _combine(op: str, left: Node, right: Node) -> Node:
    if op in {"&&", "||"}:
        parts = [*(left.operands if isinstance(left, Logical) and left.op == op else [left])]
        parts += right.operands if isinstance(right, Logical) and right.op == op else [right]
        return Logical(op, tuple(parts))
    return Compare(op, left, right)


def parse(text: str, allowed: Allowed) -> Node:
    """The syntax tree of an expression; ExpressionError names what is wrong and where."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"Exceeded max expression length {MAX_LENGTH}")
    if not text.strip():
        raise ExpressionError("Expected an expression")
    return _Parser(text, allowed).parse()


def calls_in(node: Node) -> set[str]:
    """Names of the functions an expression calls (to find status functions in `if:`)."""
    if isinstance(node, Call):
        return {node.name}.union(*(calls_in(a) for a in node.args))
    children: Iterable[Node] = ()
    if isinstance(node, Index):
        children = (node.target, node.key)
    elif isinstance(node, Not):
        children = (node.operand,)
    elif isinstance(node, Logical):
        children = node.operands
    elif isinstance(node, Compare):
        children = (node.left, node.right)
    return set().union(*(calls_in(c) for c in children))


# ---------------------------------------------------------------- evaluation


@dataclass
class Scope:
    """The contexts and status functions an expression is evaluated with."""

    contexts: Mapping[str, Any]
    status: Mapping[str, Callable[[], bool]] = field(default_factory=dict)


def evaluate(node: Node, scope: Scope) -> Any:
    """The value of an expression tree; ExpressionError for bad arguments (fromJSON, format)."""
    handler = _EVALUATORS.get(type(node))
    if handler is None:
        raise ExpressionError("A wildcard is only allowed after '.' or '['")
    return handler(node, scope)


def _logical(node: Logical, scope: Scope) -> Any:
    value: Any = None
    for operand in node.operands:
        value = evaluate(operand, scope)
        if truthy(value) == (node.op == "||"):
            return value
    return value


def _index(node: Index, scope: Scope) -> Any:
    target = evaluate(node.target, scope)
    wildcard = isinstance(node.key, Wildcard)
    if isinstance(target, Filtered):
        key = None if wildcard else evaluate(node.key, scope)
        out = Filtered()
        for item in target:
            out.extend(_select(item, key, wildcard=wildcard))
        return out
    if wildcard:
        if isinstance(target, dict):
            return Filtered(target.values())
        return Filtered(target) if isinstance(target, list) else Filtered()
    return lookup(target, evaluate(node.key, scope))


def _select(item: Any, key: Any, *, wildcard: bool) -> list[Any]:
    """What one element of a filtered array contributes to the next filter."""
    if wildcard and isinstance(item, dict | list):
        return list(item.values() if isinstance(item, dict) else item)
    if isinstance(item, dict) and kind_of(key) not in {"array", "object"}:
        name = to_str(key)
        if isinstance(item, CaseSensitiveDict):
            return [item[name]] if name in item else []
        return [v for k, v in item.items() if k.casefold() == name.casefold()][:1]
    if isinstance(item, list) and lookup(item, key) is not None:
        return [lookup(item, key)]
    return []


def _call(node: Call, scope: Scope) -> Any:
    if node.name in scope.status:
        return scope.status[node.name]()
    if node.name == "hashfiles":
        return hash_files(scope, [to_str(evaluate(a, scope)) for a in node.args])
    if node.name == "case":
        return _case(node, scope)
    args = [evaluate(a, scope) for a in node.args]
    return FUNCTIONS[node.name](*args)


def _case(node: Call, scope: Scope) -> Any:
    for predicate, result in zip(node.args[:-1:2], node.args[1::2], strict=True):
        value = evaluate(predicate, scope)
        if not isinstance(value, bool):
            raise ExpressionError("case predicate must evaluate to a boolean value")
        if value:
            return evaluate(result, scope)
    return evaluate(node.args[-1], scope)


_EVALUATORS: dict[type, Callable[[Any, Scope], Any]] = {
    Literal: lambda node, _: node.value,
    Named: lambda node, scope: scope.contexts.get(node.name),
    Index: _index,
    Not: lambda node, scope: not truthy(evaluate(node.operand, scope)),
    Logical: _logical,
    Compare: lambda node, scope: COMPARISONS[node.op](
        evaluate(node.left, scope), evaluate(node.right, scope)
    ),
    Call: _call,
}


def _contains(haystack: Any, needle: Any) -> bool:
    if kind_of(haystack) in {"array", "object"}:
        return isinstance(haystack, list) and any(equal(needle, item) for item in haystack)
    if kind_of(needle) in {"array", "object"}:
        return False
    return to_str(needle).upper() in to_str(haystack).upper()


def _affix(test: str) -> Callable[[Any, Any], bool]:
    def check(text: Any, affix: Any) -> bool:
        if {kind_of(text), kind_of(affix)} & {"array", "object"}:
            return False
        return bool(getattr(to_str(text).upper(), test)(to_str(affix).upper()))

    return check


def _join(items: Any, separator: Any = ",") -> str:
    if isinstance(items, list):
        sep = to_str(separator) if kind_of(separator) not in {"array", "object"} else ","
        return sep.join(to_str(item) for item in items)
    return "" if isinstance(items, dict) else to_str(items)


_FORMAT_TOKEN = re.compile(r"\{\{|\}\}|\{(\d+)\}|[{}]")


def _format(template: Any, *args: Any) -> str:
    text = to_str(template)

    def replace(match: re.Match[str]) -> str:
        if match.group(0) in {"{{", "}}"}:
            return match.group(0)[0]
        if match.group(1) is None:
            raise ExpressionError(f"The following format string is invalid: {text}")
        index = int(match.group(1))
        if index >= len(args):
            raise ExpressionError(
                f"The following format string references more arguments than were supplied: {text}"
            )
        return to_str(args[index])

    return _FORMAT_TOKEN.sub(replace, text)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "contains": _contains,
    "startswith": _affix("startswith"),
    "endswith": _affix("endswith"),
    "format": _format,
    "join": _join,
    "tojson": to_json,
    "fromjson": from_json,
}


def hash_files(scope: Scope, patterns: list[str]) -> str:
    """hashFiles: SHA-256 over the SHA-256 of each matched file under the workspace; '' if none."""
    github = scope.contexts.get("github") or {}
    root = Path(to_str(lookup(github, "workspace")) or ".").resolve()
    chosen: set[Path] = set()
    for pattern in patterns:
        negate = pattern.startswith("!")
        matches = _glob_files(root, pattern.removeprefix("!").strip())
        chosen = chosen - matches if negate else chosen | matches
    inside = sorted(p for p in chosen if p.is_relative_to(root))
    if not inside:
        return ""
    outer = hashlib.sha256()
    for path in inside:
        outer.update(hashlib.sha256(path.read_bytes()).digest())
    return outer.hexdigest()


def _glob_files(root: Path, pattern: str) -> set[Path]:
    if Path(pattern).is_absolute():
        if not Path(pattern).is_relative_to(root):
            return set()
        pattern = str(Path(pattern).relative_to(root))
    if not pattern or pattern == ".":
        return set()
    return {p.resolve() for p in root.glob(pattern) if p.is_file()}


# ---------------------------------------------------------------- templates: ${{ }} in YAML


def template_expression(raw: str) -> str | None:
    """The expression a YAML string stands for, or None when it holds no `${{`.

    `${{ a }}` alone is `a`; mixed text becomes `format('text {0}', a)` exactly as
    the runner's TemplateReader.ParseScalar builds it.
    """
    start = raw.find(OPEN)
    if start < 0:
        return None
    segments: list[tuple[bool, str]] = []
    i = 0
    while i < len(raw):
        if i < start:
            segments.append((False, raw[i:start]))
            i = start
            continue
        if start < 0:
            segments.append((False, raw[i:]))
            break
        end = _closing(raw, start)
        segments.append((True, raw[start + len(OPEN) : end - 1].strip()))
        i = end + 1
        start = raw.find(OPEN, i)
    if len(segments) == 1 and segments[0][0]:
        return segments[0][1]
    return _as_format(segments)


def _closing(raw: str, start: int) -> int:
    in_string = False
    for j in range(start + len(OPEN), len(raw)):
        if raw[j] == "'":
            in_string = not in_string
        elif not in_string and raw[j] == "}" and raw[j - 1] == "}":
            return j
    raise ExpressionError(
        "The expression is not closed. An unescaped ${{ sequence was found, "
        "but the closing }} sequence was not found."
    )


def _as_format(segments: list[tuple[bool, str]]) -> str:
    text: list[str] = []
    args: list[str] = []
    for is_expression, value in segments:
        if is_expression:
            text.append("{" + str(len(args)) + "}")
            args.append(value)
        else:
            text.append(value.replace("'", "''").replace("{", "{{").replace("}", "}}"))
    return "format('" + "".join(text) + "'" + "".join(", " + a for a in args) + ")"


def as_string(value: Any, what: str) -> str:
    """A template value where the schema wants a string; mappings and sequences are errors."""
    if isinstance(value, dict):
        raise ExpressionError(f"{what}: A mapping was not expected")
    if isinstance(value, list):
        raise ExpressionError(f"{what}: A sequence was not expected")
    return to_str(value)
