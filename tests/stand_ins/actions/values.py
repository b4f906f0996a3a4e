"""Values of GitHub Actions expressions and the runner's rules for them.

From actions/runner `src/Sdk/DTExpressions2/Expressions2/EvaluationResult.cs`,
`Sdk/ExpressionUtility.cs`, `Sdk/Operators/Index.cs` and `Sdk/Functions/ToJson.cs`:
null, boolean, number (always a double), string, array, object; loose equality that
converts to numbers, string comparison ignoring case, truthiness, property lookup
ignoring case (except `env` on Linux), and numbers written as .NET's "G15".
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any


class ExpressionError(Exception):
    """An expression that does not parse or cannot be evaluated."""


class CaseSensitiveDict(dict[str, Any]):
    """A context whose keys are case-sensitive (the runner's `env` on Linux)."""


class Filtered(list[Any]):
    """The array a `*` filter produces."""


def format_number(value: float) -> str:
    """A double as .NET's `ToString("G15")` writes it."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return format(value, ".15g").replace("e", "E")


_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def parse_number(text: str) -> float:
    """A string as a number, following JavaScript's Number() like the runner; NaN if none."""
    text = text.strip()
    if not text:
        return 0.0
    if _DECIMAL.fullmatch(text):
        return float(text)
    for prefix, base, digits in (("0x", 16, "0123456789abcdefABCDEF"), ("0o", 8, "01234567")):
        rest = text[2:]
        if text.startswith(prefix) and rest and all(c in digits for c in rest):
            number = int(rest, base)
            return float(number) if number <= 2**31 - 1 else math.nan
    return {"Infinity": math.inf, "-Infinity": -math.inf}.get(text, math.nan)


_KINDS: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("boolean", bool),  # before number: a bool is an int in Python
    ("number", (int, float)),
    ("string", str),
    ("array", list),
)


def kind_of(value: Any) -> str:
    """The runner's ValueKind of a value."""
    if value is None:
        return "null"
    return next((kind for kind, types in _KINDS if isinstance(value, types)), "object")


def to_str(value: Any) -> str:
    """EvaluationResult.ConvertToString: null is '', objects are 'Object' and 'Array'."""
    kind = kind_of(value)
    if kind == "null":
        return ""
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "number":
        return format_number(float(value))
    if kind == "string":
        return str(value)
    return "Array" if kind == "array" else "Object"


def to_number(value: Any) -> float:
    """EvaluationResult.ConvertToNumber."""
    kind = kind_of(value)
    if kind == "null":
        return 0.0
    if kind in {"boolean", "number"}:
        return float(value)
    return parse_number(value) if kind == "string" else math.nan


def truthy(value: Any) -> bool:
    """EvaluationResult.IsTruthy."""
    kind = kind_of(value)
    if kind == "null":
        return False
    if kind == "number":
        return not (value == 0 or math.isnan(value))
    if kind in {"boolean", "string"}:
        return bool(value)
    return True


def _coerce(left: Any, right: Any) -> tuple[Any, Any, str, str]:
    lk, rk = kind_of(left), kind_of(right)
    if lk == rk:
        return left, right, lk, rk
    if lk == "number" and rk == "string":
        return left, to_number(right), lk, "number"
    if lk == "string" and rk == "number":
        return to_number(left), right, "number", rk
    if lk in {"boolean", "null"}:
        return _coerce(to_number(left), right)
    if rk in {"boolean", "null"}:
        return _coerce(left, to_number(right))
    return left, right, lk, rk


def equal(left: Any, right: Any) -> bool:
    """AbstractEqual: loose equality, strings compared ignoring case."""
    left, right, lk, rk = _coerce(left, right)
    if lk != rk:
        return False
    if lk == "null":
        return True
    if lk == "number":
        return not (math.isnan(left) or math.isnan(right)) and left == right
    if lk == "string":
        return bool(left.upper() == right.upper())
    if lk == "boolean":
        return bool(left == right)
    return left is right


def _greater(left: Any, right: Any) -> bool:
    left, right, lk, rk = _coerce(left, right)
    if lk != rk or lk not in {"number", "string", "boolean"}:
        return False
    if lk == "number":
        return not (math.isnan(left) or math.isnan(right)) and left > right
    if lk == "string":
        return bool(left.upper() > right.upper())
    return bool(left and not right)


def _less(left: Any, right: Any) -> bool:
    left, right, lk, rk = _coerce(left, right)
    if lk != rk or lk not in {"number", "string", "boolean"}:
        return False
    if lk == "number":
        return not (math.isnan(left) or math.isnan(right)) and left < right
    if lk == "string":
        return bool(left.upper() < right.upper())
    return bool(not left and right)


COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "==": equal,
    "!=": lambda a, b: not equal(a, b),
    ">": _greater,
    "<": _less,
    ">=": lambda a, b: equal(a, b) or _greater(a, b),
    "<=": lambda a, b: equal(a, b) or _less(a, b),
}


def lookup(container: Any, key: Any) -> Any:
    """`container[key]` as the Index operator reads it; null when absent."""
    if isinstance(container, dict):
        return _lookup_property(container, key)
    if isinstance(container, list):
        number = to_number(key)
        if math.isnan(number) or number < 0 or math.floor(number) >= len(container):
            return None
        return container[math.floor(number)]
    return None


def _lookup_property(container: dict[str, Any], key: Any) -> Any:
    if kind_of(key) in {"array", "object"}:
        return None
    name = to_str(key)
    if name in container or isinstance(container, CaseSensitiveDict):
        return container.get(name)
    folded = name.casefold()
    return next((v for k, v in container.items() if k.casefold() == folded), None)


def to_json(value: Any, indent: int = 0) -> str:
    """toJSON: two-space indented JSON, numbers written as the runner writes them."""
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(value, dict) and value:
        items = (f"{inner}{json.dumps(str(k))}: {to_json(v, indent + 1)}" for k, v in value.items())
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and value:
        return "[\n" + ",\n".join(inner + to_json(v, indent + 1) for v in value) + f"\n{pad}]"
    if isinstance(value, dict | list):
        return "{}" if isinstance(value, dict) else "[]"
    if kind_of(value) == "string":
        return json.dumps(value, ensure_ascii=False)
    return "null" if value is None else to_str(value)


def from_json(text: Any) -> Any:
    """fromJSON: objects, arrays and scalars, every number a float."""
    try:
        return json.loads(to_str(text), parse_int=float, parse_constant=float)
    except json.JSONDecodeError as exc:
        raise ExpressionError(f"Error reading JToken from JsonReader: {exc}") from exc
