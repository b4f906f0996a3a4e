"""action.yml read and checked the way the runner's ActionManifestManager does.

The YAML is typed by the 1.2 core schema (YamlObjectReader: `yes` is a string, `3.10`
is the number 3.1), then checked against the rules of actions/runner
`src/Runner.Worker/action_yaml.json`: which keys each mapping takes, that `run:` steps
name a `shell:`, the step ids, and which contexts each `${{ }}` may name. Every
expression is parsed here, at load time, as the runner does: `${{ secrets.X }}` or a
typo in a context name fails the whole action before any step runs.

    ManifestError    action.yml is missing or breaks a rule; the message has file, line, column
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.stand_ins.actions import expressions as ex


class ManifestError(Exception):
    """action.yml cannot be loaded (the runner fails the step before running anything)."""


_CONTEXT_NAMES = frozenset({"github", "inputs", "strategy", "matrix", "steps", "job", "runner"})
_HASH_FILES = {"hashfiles": (1, 255)}
STEP_CONTEXT = ex.Allowed(_CONTEXT_NAMES | {"env"}, _HASH_FILES)
STEP_IF_CONTEXT = ex.Allowed(
    STEP_CONTEXT.names, _HASH_FILES | dict.fromkeys(ex.STATUS_FUNCTIONS, (0, 0))
)
INPUT_DEFAULT_CONTEXT = ex.Allowed(_CONTEXT_NAMES - {"inputs", "steps"}, _HASH_FILES)
OUTPUT_VALUE_CONTEXT = ex.Allowed(_CONTEXT_NAMES | {"env"})

_RUN_STEP_KEYS = {"name", "id", "if", "run", "env", "continue-on-error", "working-directory"}
_RUN_STEP_KEYS |= {"shell"}
_USES_STEP_KEYS = {"name", "id", "if", "uses", "continue-on-error", "with", "env"}
_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_MAX_ID = 100


# ---------------------------------------------------------------- YAML, typed like the runner


@dataclass(frozen=True)
class Yaml:
    """A YAML value with the place it came from."""

    value: Any  # str | bool | float | None | dict[str, Yaml] | list[Yaml]
    line: int
    column: int


_CORE_NULL = {"", "~", "null", "Null", "NULL"}
_CORE_BOOL = {"true": True, "True": True, "TRUE": True}
_CORE_BOOL |= {"false": False, "False": False, "FALSE": False}
_CORE_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_CORE_SPECIAL = {".inf": float("inf"), ".Inf": float("inf"), ".INF": float("inf")}
_CORE_SPECIAL |= {"-.inf": float("-inf"), "-.Inf": float("-inf"), "-.INF": float("-inf")}
_CORE_SPECIAL |= {".nan": float("nan"), ".NaN": float("nan"), ".NAN": float("nan")}


def _plain(text: str) -> Any:
    """A plain (unquoted) scalar typed by the YAML 1.2 core schema."""
    if text in _CORE_NULL:
        return None
    if text in _CORE_BOOL:
        return _CORE_BOOL[text]
    if text in _CORE_SPECIAL or text.lstrip("+") in _CORE_SPECIAL:
        return _CORE_SPECIAL[text.lstrip("+")]
    if re.fullmatch(r"0x[0-9a-fA-F]+", text):
        return float(int(text, 16))
    if re.fullmatch(r"0o[0-7]+", text):
        return float(int(text.removeprefix("0o"), 8))
    return float(text) if _CORE_FLOAT.fullmatch(text) else text


def _convert(node: yaml.Node, where: str) -> Yaml:
    line, column = node.start_mark.line + 1, node.start_mark.column + 1
    if isinstance(node, yaml.ScalarNode):
        value = _plain(node.value) if node.style is None else node.value
        return Yaml(value, line, column)
    if isinstance(node, yaml.SequenceNode):
        return Yaml([_convert(item, where) for item in node.value], line, column)
    mapping: dict[str, Yaml] = {}
    for key_node, value_node in node.value:
        key = _convert(key_node, where)
        if not isinstance(key.value, str) or not key.value:
            raise ManifestError(f"{where} (Line: {key.line}, Col: {key.column}): bad key")
        if key.value in mapping:
            raise ManifestError(
                f"{where} (Line: {key.line}, Col: {key.column}): '{key.value}' is already defined"
            )
        mapping[key.value] = _convert(value_node, where)
    return Yaml(mapping, line, column)


def read_yaml(path: Path) -> Yaml:
    """A YAML file as Yaml values; ManifestError when it does not parse."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: {exc}") from exc
    if node is None:
        raise ManifestError(f"{path}: the file is empty")
    return _convert(node, str(path))


# ---------------------------------------------------------------- the checked manifest


@dataclass(frozen=True)
class Template:
    """A scalar of action.yml that may hold `${{ }}`, parsed for its place's contexts."""

    raw: Any
    tree: ex.Node | None
    where: str

    def evaluate(self, scope: ex.Scope) -> Any:
        """The value: the literal, or what its expression evaluates to."""
        if self.tree is None:
            return self.raw
        try:
            return ex.evaluate(self.tree, scope)
        except ex.ExpressionError as exc:
            raise ex.ExpressionError(f"{self.where}: {exc}") from exc

    def string(self, scope: ex.Scope) -> str:
        """The value where the schema wants a string."""
        return ex.as_string(self.evaluate(scope), self.where)


@dataclass(frozen=True)
class InputSpec:
    name: str
    default: Template | None
    required: bool
    deprecation: str | None


@dataclass(frozen=True)
class StepSpec:
    context_name: str  # the id, or the one the runner generates (`__run`, `__run_2`, ...)
    id: str | None
    name: Template | None
    condition: ex.Node
    condition_text: str
    continue_on_error: Template | None
    env: tuple[tuple[str, Template], ...]
    run: Template | None
    shell: Template | None
    working_directory: Template | None
    uses: str | None
    with_: tuple[tuple[str, Template], ...]
    where: str


@dataclass(frozen=True)
class Manifest:
    path: Path
    name: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple[tuple[str, Template | None], ...]
    steps: tuple[StepSpec, ...]


def find_manifest(action_dir: Path) -> Path:
    """action.yml, else action.yaml, in the action's directory (the runner's order)."""
    for name in ("action.yml", "action.yaml"):
        if (action_dir / name).is_file():
            return action_dir / name
    raise ManifestError(
        f"Can't find 'action.yml', 'action.yaml' or 'Dockerfile' under '{action_dir}'."
    )


def load_manifest(action_dir: Path) -> Manifest:
    """The checked composite action in `action_dir`; ManifestError names every rule it breaks."""
    path = find_manifest(action_dir)
    root = _mapping(read_yaml(path), str(path), "action manifest root")
    at = _Place(str(path))
    runs = root.get("runs")
    if runs is None:
        raise ManifestError(f"Top level 'runs:' section is required for {path}")
    return Manifest(
        path=path,
        name=at.string(root.get("name"), "name") or "",
        inputs=tuple(_inputs(at, root.get("inputs"))),
        outputs=tuple(_outputs(at, root.get("outputs"))),
        steps=_steps(at, _runs(at, runs)),
    )


@dataclass(frozen=True)
class _Place:
    file: str

    def __call__(self, item: Yaml) -> str:
        return f"{self.file} (Line: {item.line}, Col: {item.column})"

    def error(self, item: Yaml, message: str) -> ManifestError:
        return ManifestError(f"{self(item)}: {message}")

    def string(self, item: Yaml | None, what: str) -> str | None:
        """A literal string (booleans and numbers written as the runner writes them)."""
        if item is None:
            return None
        if isinstance(item.value, dict | list):
            raise self.error(item, f"A {what} must be a string")
        return ex.to_str(item.value)

    def template(self, item: Yaml | None, allowed: ex.Allowed) -> Template | None:
        """A scalar whose `${{ }}` is parsed now, for the contexts its place allows."""
        if item is None:
            return None
        if isinstance(item.value, dict | list):
            raise self.error(item, "A mapping or sequence was not expected")
        if not isinstance(item.value, str):
            return Template(item.value, None, self(item))
        try:
            expression = ex.template_expression(item.value)
            tree = None if expression is None else ex.parse(expression, allowed)
        except ex.ExpressionError as exc:
            raise self.error(item, str(exc)) from exc
        return Template(item.value, tree, self(item))


def _mapping(item: Yaml, where: str, what: str) -> dict[str, Yaml]:
    if not isinstance(item.value, dict):
        raise ManifestError(
            f"{where} (Line: {item.line}, Col: {item.column}): {what}: A mapping was expected"
        )
    return item.value


def _inputs(at: _Place, item: Yaml | None) -> list[InputSpec]:
    if item is None:
        return []
    specs = []
    for name, meta in _mapping(item, at.file, "inputs").items():
        fields = _mapping(meta, at.file, f"input '{name}'")
        required = fields.get("required")
        specs.append(
            InputSpec(
                name=name,
                default=at.template(fields.get("default"), INPUT_DEFAULT_CONTEXT),
                required=bool(required and ex.truthy(required.value)),
                deprecation=at.string(fields.get("deprecationMessage"), "deprecationMessage"),
            )
        )
    return specs


def _outputs(at: _Place, item: Yaml | None) -> list[tuple[str, Template | None]]:
    if item is None:
        return []
    outputs = []
    for name, definition in _mapping(item, at.file, "outputs").items():
        fields = _mapping(definition, at.file, f"output '{name}'")
        for key in fields.keys() - {"description", "value"}:
            raise at.error(fields[key], f"Unexpected value '{key}'")
        outputs.append((name, at.template(fields.get("value"), OUTPUT_VALUE_CONTEXT)))
    return outputs


def _runs(at: _Place, item: Yaml) -> list[Yaml]:
    runs = _mapping(item, at.file, "runs")
    using = at.string(runs.get("using"), "using")
    if using is None or using.lower() != "composite":
        raise at.error(item, f"'using: {using}': this harness runs composite actions only")
    for key in runs.keys() - {"using", "steps"}:
        raise at.error(runs[key], f"Unexpected value '{key}'")
    steps = runs.get("steps")
    if steps is None or not isinstance(steps.value, list):
        raise at.error(
            item, f"You are using a composite action but there are no steps provided in {at.file}."
        )
    return steps.value


def _steps(at: _Place, items: list[Yaml]) -> tuple[StepSpec, ...]:
    known: set[str] = set()
    for item in items:
        step_id = _mapping(item, at.file, "steps item").get("id")
        if step_id is not None:
            _check_id(at, step_id, known)
    generated: set[str] = set(known)
    return tuple(_step(at, item, generated) for item in items)


def _check_id(at: _Place, item: Yaml, known: set[str]) -> None:
    value = at.string(item, "id") or ""
    if not _ID.fullmatch(value) or len(value) >= _MAX_ID:
        raise at.error(
            item,
            f"The identifier '{value}' is invalid. IDs may only contain alphanumeric "
            "characters, '_', and '-'. IDs must start with a letter or '_' and must be less "
            "than 100 characters.",
        )
    if value.startswith("__"):
        raise at.error(
            item, f"The identifier '{value}' is invalid. IDs starting with '__' are reserved."
        )
    if value in known:
        raise at.error(
            item, f"The identifier '{value}' may not be used more than once within the same scope."
        )
    known.add(value)


def _generated_id(uses: str | None, taken: set[str]) -> str:
    """The runner's default id: `__run`, or `__owner_repo` for a `uses:` step, made unique."""
    base = "run"
    if uses and uses.startswith(("./", ".\\")):
        base = "self"
    elif uses and "@" in uses and len(re.split(r"[/\\]", uses.split("@")[0])) >= 2:
        base = "/".join(re.split(r"[/\\]", uses.split("@")[0])[:2])
    name = "__" + re.sub(r"[^A-Za-z0-9_-]", "_", base)
    candidate, attempt = name, 1
    while candidate in taken:
        attempt += 1
        candidate = f"{name}_{attempt}"
    taken.add(candidate)
    return candidate


def _step(at: _Place, item: Yaml, taken: set[str]) -> StepSpec:
    fields = _mapping(item, at.file, "steps item")
    is_run = "run" in fields
    if not is_run and "uses" not in fields:
        raise at.error(item, "A step needs either 'run' or 'uses'")
    allowed_keys = _RUN_STEP_KEYS if is_run else _USES_STEP_KEYS
    for key in fields.keys() - allowed_keys:
        raise at.error(fields[key], f"Unexpected value '{key}'")
    if is_run and "shell" not in fields:
        raise at.error(item, "Required property is missing: shell")
    uses = None if is_run else _uses(at, fields["uses"])
    step_id = at.string(fields.get("id"), "id")
    condition, text = _condition(at, fields.get("if"))
    return StepSpec(
        context_name=step_id or _generated_id(uses, taken),
        id=step_id,
        name=at.template(fields.get("name"), STEP_CONTEXT),
        condition=condition,
        condition_text=text,
        continue_on_error=_boolean(at, fields.get("continue-on-error")),
        env=_template_map(at, fields.get("env"), "env"),
        run=at.template(fields.get("run"), STEP_CONTEXT),
        shell=at.template(fields.get("shell"), STEP_CONTEXT),
        working_directory=at.template(fields.get("working-directory"), STEP_CONTEXT),
        uses=uses,
        with_=_template_map(at, fields.get("with"), "with"),
        where=at(item),
    )


def _boolean(at: _Place, item: Yaml | None) -> Template | None:
    """`continue-on-error`: a YAML boolean, or an expression that must give one."""
    template = at.template(item, STEP_CONTEXT)
    literal = item is not None and template is not None and template.tree is None
    if literal and item is not None and not isinstance(item.value, bool):
        raise at.error(item, f"Unexpected value '{ex.to_str(item.value)}'")
    return template


def _uses(at: _Place, item: Yaml) -> str:
    value = at.string(item, "uses") or ""
    if value.startswith(("docker://", "./", ".\\")):
        return value
    parts = value.split("@")
    path = [p for p in re.split(r"[/\\]", parts[0]) if p]
    if len(parts) != 2 or len(path) < 2 or not parts[1]:
        raise at.error(item, f"Expected format {{org}}/{{repo}}[/path]@ref. Actual '{value}'")
    return value


def _template_map(at: _Place, item: Yaml | None, what: str) -> tuple[tuple[str, Template], ...]:
    if item is None:
        return ()
    pairs = []
    for key, value in _mapping(item, at.file, what).items():
        template = at.template(value, STEP_CONTEXT)
        pairs.append((key, template or Template("", None, at(value))))
    return tuple(pairs)


def _condition(at: _Place, item: Yaml | None) -> tuple[ex.Node, str]:
    """The step's `if:` as the runner rewrites it: `success() && (…)` unless it names a status."""
    text = "" if item is None else at.string(item, "if") or ""
    try:
        expression = ex.template_expression(text)
        condition = text if expression is None else expression
        if not condition.strip():
            condition = "success()"
        tree = ex.parse(condition, STEP_IF_CONTEXT)
        if not ex.calls_in(tree) & ex.STATUS_FUNCTIONS:
            condition = f"success() && ({condition})"
            tree = ex.parse(condition, STEP_IF_CONTEXT)
    except ex.ExpressionError as exc:
        raise ManifestError(f"{at(item) if item else at.file}: {exc}") from exc
    return tree, condition
