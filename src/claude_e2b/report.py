"""Reports for people: the PR body (also summary.md), the job summary, the issue comment.

Templates are Jinja2 (``templates/`` in this package, shipped in the wheel),
rendered in a sandboxed, immutable environment with StrictUndefined, whether
they are ours or a user's overrides. A template sees:

- ``r``: the run as result.json has it (schema 1, secrets redacted), with long
  texts and lists possibly shortened to fit GitHub's limits; ``omitted`` says by
  how much (``final_message``, ``output_tail``, ``message`` in characters,
  ``changes``, ``skipped_changes``, ``by_model``, ``warnings`` in entries);
- ``status_line``, ``message`` (why the run stopped, or ""), ``warnings`` (the
  run's and those that did not fit as annotations), ``run_url`` (or None),
  ``no_pr_reason``, ``estimated`` (which cost figures are estimates), ``marker``.

Everything the agent controls is escaped for where it lands, by filters that
return Markup: ``md_quote`` (its Markdown, in a blockquote), ``md_inline`` (one
line of text), ``md_cell`` / ``md_cell_code`` (a table cell), ``md_code`` (a code
span), ``md_fence`` (a literal block); ``link(text, url)`` makes a link. Any other
``{{ … }}`` is neutralised by default (``md_text``): no HTML element can open and
no @-mention can ping. Figures: ``usd``, ``thousands``, ``duration``; a change's
``mode_label`` and ``size_label``. Block tags trim their line (``trim_blocks``,
``lstrip_blocks``).

Raises (load_overrides): ConfigError naming the file and line of a bad override.
"""

from __future__ import annotations

import functools
import hashlib
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from claude_e2b.errors import ConfigError, InternalError
from claude_e2b.log import REDACTOR, get_logger
from claude_e2b.markdown import (
    md_cell,
    md_cell_code,
    md_code,
    md_fence,
    md_inline,
    md_link,
    md_quote,
    md_text,
)
from claude_e2b.result import (
    AgentInfo,
    PlanInfo,
    PrInfo,
    RunResult,
    SandboxInfo,
    TimingInfo,
    VerifyInfo,
)

log = get_logger(__name__)

PR_BODY = "pr_body.md.j2"
STEP_SUMMARY = "step_summary.md.j2"
ISSUE_COMMENT = "issue_comment.md.j2"
MAX_SUMMARY_BYTES = 1024 * 1024  # the runner refuses a bigger step summary
# GitHub refuses a PR body or comment over 65,536 characters; UTF-8 bytes bound any count.
MAX_BODY_BYTES = 65_536
MAX_TEMPLATE_BYTES = 256 * 1024
COMMENT_MARKER = "<!-- claude-e2b:comment -->"

_STATUS_LINES = {
    "completed": "✅ **Completed**: the agent finished its work.",
    "no_changes": "💤 **No changes**: the agent finished without changing any file.",
    "timed_out": "⏱️ **Timed out**: the run hit its time limit; the work done until then is kept.",
    "budget_exceeded": "💸 **Budget reached**: the run hit its budget; the work done is kept.",
    "failed": "❌ **Failed**: whatever was changed before the failure is kept.",
    "blocked": "⛔ **Blocked**: the run stopped before the agent started.",
    "cancelled": "🛑 **Cancelled**: the run was stopped; the work done until then is kept.",
}
_MODE_LABELS = {"100755": "executable", "120000": "symlink", "160000": "submodule"}


@dataclass(frozen=True)
class TemplateOverrides:
    """A snapshot of the user's report templates: (file name, source) pairs."""

    folder: str
    files: tuple[tuple[str, str], ...]

    def filename(self, name: str) -> str:
        """The path shown in messages about template ``name``."""
        return str(Path(self.folder) / name)


@dataclass(frozen=True)
class ReportContext:
    """What a report needs beyond the RunResult.

    ``run_url``: the Actions run, ``{server_url}/{repo}/actions/runs/{run_id}``.
    ``overrides``: from ``load_overrides``, read before the agent's changes were applied.
    ``extra_warnings``: warnings that were not shown as annotations (``Workflow.overflow``).
    ``comment_key``: one result comment per key (see ``comment_marker``).
    ``no_pr_reason``: why no pull request was opened, when the caller knows better.
    """

    run_url: str | None = None
    overrides: TemplateOverrides | None = None
    extra_warnings: tuple[str, ...] = ()
    comment_key: str | None = None
    no_pr_reason: str | None = None


def comment_marker(key: str | None = None) -> str:
    """The hidden first line of our issue comment; one comment per ``key`` (e.g. a trigger)."""
    if key is None:
        return COMMENT_MARKER
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    return f"<!-- claude-e2b:comment {digest} -->"


def render_pr_body(result: RunResult, ctx: ReportContext | None = None) -> str:
    """The pull request body, within GitHub's 65,536-character limit."""
    return _render(PR_BODY, result, ctx or ReportContext(), MAX_BODY_BYTES)


def render_step_summary(result: RunResult, ctx: ReportContext | None = None) -> str:
    """The job summary, within the runner's 1 MiB limit."""
    return _render(STEP_SUMMARY, result, ctx or ReportContext(), MAX_SUMMARY_BYTES)


def render_issue_comment(result: RunResult, ctx: ReportContext | None = None) -> str:
    """The short comment on the triggering issue; it starts with the comment marker."""
    return _render(ISSUE_COMMENT, result, ctx or ReportContext(), MAX_BODY_BYTES)


def render_summary(result: RunResult, ctx: ReportContext | None = None) -> str:
    """The PR body in full (summary.md): never shortened, so cut reports can point at it."""
    return _render(PR_BODY, result, ctx or ReportContext(), None)


def usd(value: float) -> str:
    """Dollars to four decimals, halves rounded up: $0.0577."""
    amount = Decimal(repr(float(value))).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
    return f"${amount:,}"


def thousands(value: int) -> str:
    """An integer with thousands separators: 12,000."""
    return f"{int(value):,}"


def duration(seconds: float) -> str:
    """Seconds for people: 4.2 s, 2 min 05 s, 1 h 02 min."""
    if seconds < 60:  # noqa: PLR2004 - a minute
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:  # noqa: PLR2004 - an hour
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def mode_label(change: dict[str, Any]) -> str:
    """The file mode of a change, named, with the old one when it changed."""
    mode, old = change.get("mode") or "", change.get("old_mode")
    label = _MODE_LABELS.get(mode, "")
    if old and mode and old != mode:
        return f"{old} → {mode}" + (f" ({label})" if label else "")
    return label


def size_label(change: dict[str, Any]) -> str:
    """The size after the change; "binary" when git saw it as one."""
    if change.get("status") == "deleted":
        return "—"
    size = int(change.get("bytes") or 0)
    text = f"{size:,} B" if size < 1024 else f"{size / 1024:,.1f} KiB"  # noqa: PLR2004
    return f"{text}, binary" if change.get("binary") else text


def _finalize(value: Any) -> Any:
    # Output no filter escaped is neutralised: an override that forgets one stays safe.
    return value if isinstance(value, Markup) else md_text(value)


_FILTERS: dict[str, Callable[..., Any]] = {
    "md_text": md_text,
    "md_inline": md_inline,
    "md_quote": md_quote,
    "md_cell": md_cell,
    "md_code": md_code,
    "md_cell_code": md_cell_code,
    "md_fence": md_fence,
    "usd": usd,
    "thousands": thousands,
    "duration": duration,
    "mode_label": mode_label,
    "size_label": size_label,
}


# --- The environment and user overrides -------------------------------------------------


class _SnapshotLoader(jinja2.BaseLoader):
    """Serves the user's templates from the snapshot taken by load_overrides."""

    def __init__(self, overrides: TemplateOverrides) -> None:
        self.overrides = overrides
        self.sources = dict(overrides.files)

    def get_source(
        self,
        environment: jinja2.Environment,  # noqa: ARG002 - the loader protocol's signature
        template: str,
    ) -> tuple[str, str, Callable[[], bool]]:
        source = self.sources.get(template)
        if source is None:
            raise jinja2.TemplateNotFound(template)
        return source, self.overrides.filename(template), lambda: True


@functools.lru_cache(maxsize=8)
def environment(overrides: TemplateOverrides | None = None) -> jinja2.Environment:
    """The sandboxed Jinja2 environment: the user's templates first by name, then ours."""
    loaders: list[jinja2.BaseLoader] = [jinja2.PackageLoader("claude_e2b", "templates")]
    if overrides is not None:
        loaders.insert(0, _SnapshotLoader(overrides))
    env = ImmutableSandboxedEnvironment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # Markdown, escaped by the md_* filters and _finalize
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
    )
    env.filters.update(_FILTERS)
    env.globals["link"] = md_link
    return env


def load_overrides(folder: Path, *, root: Path | None = None) -> TemplateOverrides:
    """Read and check the user's report templates: the ``*.j2`` files directly in ``folder``.

    Security: call this on the checkout as it was BEFORE the agent's changes were
    applied (at the start of the run), or the agent could write the templates
    that describe its own work. The snapshot is what the renderers use later.
    With ``root`` (the repository), a folder that resolves outside it is refused;
    without, a folder that is a link is.

    Raises ConfigError: no such folder, outside ``root``, a symlink, a file too big
    or not UTF-8, a syntax error, or an error when rendered for a sample run
    ("path:line: message").
    """
    if root is not None and not folder.resolve().is_relative_to(root.resolve()):
        raise ConfigError(f"report-templates: {folder} is outside the repository")
    if not folder.is_dir() or (root is None and folder.is_symlink()):
        raise ConfigError(f"report-templates: {folder} is not a folder in the repository")
    files = tuple(
        (entry.name, _read_template(entry))
        for entry in sorted(folder.iterdir())
        if entry.name.endswith(".j2") and not entry.name.startswith(".")
    )
    if not files:
        raise ConfigError(
            f"report-templates: {folder} holds no *.j2 template",
            hint=f"name a file like ours to replace it: {PR_BODY}, {STEP_SUMMARY}, {ISSUE_COMMENT}",
        )
    overrides = TemplateOverrides(str(folder), files)
    _check_overrides(overrides)
    return overrides


def _read_template(path: Path) -> str:
    if path.is_symlink() or not path.is_file():
        raise ConfigError(f"{path}: a report template must be a regular file, not a link")
    if path.stat().st_size > MAX_TEMPLATE_BYTES:
        raise ConfigError(f"{path}: a report template may have {MAX_TEMPLATE_BYTES:,} bytes")
    try:
        return path.read_text("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: a report template must be UTF-8 ({exc.reason})") from exc


def _check_overrides(overrides: TemplateOverrides) -> None:
    env = environment(overrides)
    ctx = ReportContext(run_url="https://github.example/o/r/actions/runs/1", overrides=overrides)
    try:
        for name, _source in overrides.files:
            env.get_template(name)
        for result in _sample_results():
            for name in (PR_BODY, STEP_SUMMARY, ISSUE_COMMENT):
                _fit(env, name, result, ctx, None)
    except Exception as exc:  # a user's template can raise anything
        raise ConfigError(
            f"report template {template_problem(exc, overrides)}",
            hint="a template sees the run as `r` (the fields of result.json) and the md_* filters",
        ) from exc


def template_problem(exc: BaseException, overrides: TemplateOverrides) -> str:
    """Where a user's template failed ("path:line: message") and why."""
    message = exc.message if isinstance(exc, jinja2.TemplateError) and exc.message else str(exc)
    names = {overrides.filename(name) for name, _ in overrides.files}
    if isinstance(exc, jinja2.TemplateSyntaxError) and exc.filename in names:
        return f"{exc.filename}:{exc.lineno}: {message}"
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename in names:
            return f"{frame.filename}:{frame.lineno}: {message}"
    return f"{overrides.folder}: {message}"


# --- Rendering within a size limit ----------------------------------------------------


@dataclass(frozen=True)
class _Budget:
    """How much of the long parts to keep: characters of texts, entries of lists."""

    chars: int | None = None  # None: everything
    rows: int | None = None


def _render(name: str, result: RunResult, ctx: ReportContext, limit: int | None) -> str:
    try:
        return _fit(environment(ctx.overrides), name, result, ctx, limit)
    except Exception as exc:
        if ctx.overrides is None:
            raise InternalError(f"rendering {name} failed: {exc}") from exc
        # The run's work is done: a broken override must not lose its report.
        problem = template_problem(exc, ctx.overrides)
        log.warning("report.template_failed", template=name, problem=problem)
        warning = f"report template {problem}; the built-in template was used instead"
        fallback = replace(ctx, overrides=None, extra_warnings=(*ctx.extra_warnings, warning))
        return _fit(environment(None), name, result, fallback, limit)


def _fit(
    env: jinja2.Environment, name: str, result: RunResult, ctx: ReportContext, limit: int | None
) -> str:
    template = env.get_template(name)
    base = result.to_dict()
    text = template.render(_variables(base, result, ctx, _Budget()))
    if limit is None or _fits(text, limit):
        return text
    note = _cut_note(name, ctx)
    room = limit - len(note.encode("utf-8"))
    for budget in _budgets(limit):
        text = template.render(_variables(base, result, ctx, budget))
        if _fits(text, room):
            return text + note
    return _hard_cut(text, room) + note


def _budgets(limit: int) -> Iterator[_Budget]:
    chars, rows = limit // 4, 1000
    while chars or rows:
        yield _Budget(chars, rows)
        chars, rows = chars // 2, rows // 2
    yield _Budget(0, 0)


def _fits(text: str, limit: int) -> bool:
    return len(text.encode("utf-8")) <= limit


def _hard_cut(text: str, limit: int) -> str:
    # Only a user's template can get here (ours fit once every list and text is empty).
    cut = text.encode("utf-8")[:limit].decode("utf-8", "ignore")
    return cut[: cut.rfind("\n") + 1] if "\n" in cut else cut


def _cut_note(name: str, ctx: ReportContext) -> str:
    where = "this job summary" if name == STEP_SUMMARY else "this text"
    run = f" and in the job summary of the {md_link('workflow run', ctx.run_url)}"
    elsewhere = run if ctx.run_url and name != STEP_SUMMARY else ""
    return (
        f"\n\n---\n\n**Shortened:** {where} was cut to fit GitHub's size limit. The full "
        f"report is in `summary.md` and `result.json` (the action's `result-path`){elsewhere}.\n"
    )


def _variables(
    base: dict[str, Any], result: RunResult, ctx: ReportContext, budget: _Budget
) -> dict[str, Any]:
    data, omitted = _shrink(base, budget)
    message = REDACTOR.redact(result.message)
    warnings = list(dict.fromkeys([*data["warnings"], *REDACTOR.redact_value(ctx.extra_warnings)]))
    kept_message, omitted["message"] = _head(message, budget.chars)
    kept_warnings, omitted["warnings"] = _first(warnings, budget.rows)
    return {
        "r": data,
        "omitted": omitted,
        "status_line": _STATUS_LINES.get(result.status, f"**{result.status}**"),
        "message": kept_message,
        "warnings": kept_warnings,
        "run_url": ctx.run_url,
        "no_pr_reason": _no_pr_reason(result, ctx),
        "estimated": _estimated(data),
        "marker": Markup(comment_marker(ctx.comment_key)),  # noqa: S704 - ours, fixed form
    }


def _shrink(base: dict[str, Any], budget: _Budget) -> tuple[dict[str, Any], dict[str, int]]:
    data = {**base, "agent": dict(base["agent"]), "cost": dict(base["cost"])}
    omitted: dict[str, int] = {}
    data["agent"]["final_message"], omitted["final_message"] = _head(
        data["agent"]["final_message"], budget.chars
    )
    data["plan"] = {**base["plan"], "title": _head(base["plan"]["title"], budget.chars)[0]}
    omitted["output_tail"] = 0
    if base["verify"] is not None:
        tail, omitted["output_tail"] = _tail(base["verify"]["output_tail"], budget.chars)
        data["verify"] = {**base["verify"], "output_tail": tail}
    data["changes"], omitted["changes"] = _first(base["changes"], budget.rows)
    data["skipped_changes"], omitted["skipped_changes"] = _first(
        base["skipped_changes"], budget.rows
    )
    models, omitted["by_model"] = _first(list(base["cost"]["by_model"].items()), budget.rows)
    data["cost"]["by_model"] = dict(models)
    return data, omitted


def _head(text: str, chars: int | None) -> tuple[str, int]:
    if chars is None or len(text) <= chars:
        return text, 0
    return text[:chars], len(text) - chars


def _tail(text: str, chars: int | None) -> tuple[str, int]:
    if chars is None or len(text) <= chars:
        return text, 0
    return text[len(text) - chars :], len(text) - chars


def _first(items: list[Any], rows: int | None) -> tuple[list[Any], int]:
    if rows is None or len(items) <= rows:
        return items, 0
    return items[:rows], len(items) - rows


def _estimated(data: dict[str, Any]) -> dict[str, bool]:
    claude = any(m["source"] != "claude-code" for m in data["cost"]["by_model"].values())
    # E2B's bill is not known to us: its list price x the sandbox's size x its seconds.
    sandbox = data["sandbox"]["backend"] == "e2b"
    return {"claude": claude, "sandbox": sandbox, "total": claude or sandbox}


def _no_pr_reason(result: RunResult, ctx: ReportContext) -> str:
    if ctx.no_pr_reason:
        return ctx.no_pr_reason.rstrip(". ")
    if result.status == "blocked":
        why = REDACTOR.redact(result.message).strip().split("\n", 1)[0]
        return f"The run was blocked ({why}), so no pull request" if why else "No pull request"
    if not result.changes:
        return "No changes, so no pull request"
    return "No pull request was opened; the changes are in the checkout"


def _sample_results() -> tuple[RunResult, ...]:
    """Runs that take every branch of the templates, to check a user's overrides."""
    tokens = {"input_tokens": 10, "output_tokens": 5, "cache_read_tokens": 1,
              "cache_write_tokens": 1}  # fmt: skip
    change = {"path": "src/app.py", "status": "renamed", "old_path": "app.py", "mode": "100755",
              "old_mode": "100644", "binary": False, "bytes": 2048}  # fmt: skip
    model = {**tokens, "usd": 0.01, "source": "price-table"}
    cost = {"claude_usd": 0.01, "sandbox_usd": 0.002, "total_usd": 0.012, **tokens,
            "by_model": {"claude-sonnet-4-5": model}}  # fmt: skip
    pr = PrInfo("https://github.example/o/r/pull/1", 1, "claude-e2b/sample", draft=False,
                operation="created")  # fmt: skip
    full = RunResult(
        run_id="sample",
        status="completed",
        plan=PlanInfo("plans/sample.md", "A sample plan", 0, 1, 2),
        sandbox=SandboxInfo("e2b", "sbx", "anthropic-claude-code", 60.0),
        agent=AgentInfo(0, 3, "session", "Changed `app.py`."),
        verify=VerifyInfo("pytest -q", 1, "1 failed"),
        changes=(change,),
        skipped_changes=({"path": ".github/workflows/ci.yml", "reason": "protected path"},),
        cost=cost,
        timing=TimingInfo(70.0, 1.0, 60.0, 1.0),
        pr=pr,
        warnings=("a sample warning",),
    )
    empty = replace(
        full,
        status="blocked",
        sandbox=SandboxInfo("local", "", "", 0.0),
        agent=AgentInfo(None, 0, "", ""),
        verify=None,
        changes=(),
        skipped_changes=(),
        cost={**cost, "by_model": {}},
        pr=None,
        warnings=(),
        message="a secret was found before upload",
    )
    return full, empty
