"""Rendering results for people: the PR body / summary.md, from Jinja2 templates."""

from __future__ import annotations

from typing import Any

import jinja2

from claude_e2b.result import RunResult

_STATUS_LINES = {
    "completed": "✅ The agent finished and its changes are below.",
    "no_changes": "💤 The agent finished without changing any file.",
    "timed_out": "⏱️ The run hit its time limit; the work done until then is kept below.",
    "budget_exceeded": "💸 The run hit its budget; the work done until then is kept below.",
    "failed": "❌ The run failed; whatever was changed before is kept below.",
    "blocked": "⛔ The run was blocked before the agent started.",
}


def environment() -> jinja2.Environment:
    """The Jinja2 environment: package templates, StrictUndefined, no HTML escaping."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("claude_e2b", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - Markdown for GitHub, which sanitises it itself
        keep_trailing_newline=True,
        trim_blocks=False,
    )


def render_summary(result: RunResult) -> str:
    """The Markdown body of the pull request; also written as summary.md."""
    data: dict[str, Any] = result.to_dict()
    template = environment().get_template("pr_body.md.j2")
    return template.render(r=_Attr(data), status_line=_STATUS_LINES[result.status])


class _Attr(dict[str, Any]):
    """Dict with attribute access for templates; missing keys stay errors."""

    def __getattr__(self, name: str) -> Any:
        try:
            value = self[name]
        except KeyError:
            raise AttributeError(name) from None
        return _wrap(value)


def _wrap(value: Any) -> Any:
    if isinstance(value, dict):
        return _Attr(value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value
