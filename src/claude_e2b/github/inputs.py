"""The action's inputs and the runner's GITHUB_* variables, parsed from a mapping.

``action.py`` hands in ``os.environ``; nothing here reads the environment itself.
action.yml passes each input to the entrypoint as ``INPUT_<NAME>`` with ``-`` turned
into ``_`` (a composite action gets no ``INPUT_*`` from the runner); the spelling
the runner uses for other kinds of actions, ``INPUT_TIMEOUT-MINUTES``, works too.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from claude_e2b.config import KeyInjection
from claude_e2b.errors import ConfigError
from claude_e2b.sandbox import Backend

_TRUE = frozenset({"true", "yes", "1", "on"})
_FALSE = frozenset({"false", "no", "0", "off"})
# Names whose values are secrets: masked before anything prints, never in outputs.
SECRET_INPUTS = ("anthropic-api-key", "claude-code-oauth-token", "e2b-api-key", "github-token")


def read_input(environ: Mapping[str, str], name: str) -> str:
    """The value of input ``name`` ("" when not given), trimmed as the runner trims it."""
    upper = name.upper()
    for key in (f"INPUT_{upper.replace('-', '_')}", f"INPUT_{upper}"):
        value = environ.get(key)
        if value is not None and value.strip():
            return value.strip()
    return ""


def _yaml_hint(name: str, example: str) -> str:
    return f"in the workflow:\n  with:\n    {name}: {example}"


def _bool(environ: Mapping[str, str], name: str) -> bool | None:
    text = read_input(environ, name).lower()
    if not text:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(
        f"input {name} must be true or false, got {text!r}", hint=_yaml_hint(name, "true")
    )


def _number(environ: Mapping[str, str], name: str, example: str) -> float | None:
    text = read_input(environ, name)
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(
            f"input {name} must be a number greater than 0, got {text!r}",
            hint=_yaml_hint(name, example),
        )
    return value


def _whole(environ: Mapping[str, str], name: str, example: str) -> int | None:
    text = read_input(environ, name)
    if not text:
        return None
    if not text.isdigit() or int(text) <= 0:
        raise ConfigError(
            f"input {name} must be a whole number greater than 0, got {text!r}",
            hint=_yaml_hint(name, example),
        )
    return int(text)


def _choice(environ: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    text = read_input(environ, name) or default
    if text not in choices:
        raise ConfigError(
            f"input {name} must be one of {', '.join(choices)}, got {text!r}",
            hint=_yaml_hint(name, choices[0]),
        )
    return text


def split_list(text: str) -> tuple[str, ...]:
    """``a, b`` or one per line → ("a", "b"); empty items dropped."""
    items = (part.strip() for line in text.splitlines() for part in line.split(","))
    return tuple(item for item in items if item)


@dataclass(frozen=True)
class ActionInputs:
    """Every input of action.yml, parsed; empty strings and None mean "not given"."""

    plan: str = ""
    anthropic_api_key: str = ""
    claude_code_oauth_token: str = ""
    e2b_api_key: str = ""
    github_token: str = ""
    sandbox: Backend = "e2b"
    template: str | None = None
    model: str | None = None
    timeout_minutes: float | None = None
    budget_usd: float | None = None
    max_turns: int | None = None
    base_branch: str | None = None
    branch: str | None = None
    draft: bool | None = None
    labels: tuple[str, ...] = ()
    reviewers: tuple[str, ...] = ()
    comment_command: str = "/claude-e2b run"
    allowed_bots: tuple[str, ...] = ()
    sign_commits: bool = False
    key_injection: KeyInjection = "env"
    report_templates: str | None = None
    max_sandboxes: str | None = None  # validated by sandbox/limits.py, which names the input
    max_sandboxes_per_hour: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ActionInputs:
        """Parse the ``INPUT_*`` variables; raises ConfigError naming the bad input."""

        def text(name: str) -> str | None:
            return read_input(environ, name) or None

        return cls(
            plan=read_input(environ, "plan"),
            anthropic_api_key=read_input(environ, "anthropic-api-key"),
            claude_code_oauth_token=read_input(environ, "claude-code-oauth-token"),
            e2b_api_key=read_input(environ, "e2b-api-key"),
            github_token=read_input(environ, "github-token"),
            sandbox=cast("Backend", _choice(environ, "sandbox", ("e2b", "local"), "e2b")),
            template=text("template"),
            model=text("model"),
            timeout_minutes=_number(environ, "timeout-minutes", "30"),
            budget_usd=_number(environ, "budget-usd", "2.50"),
            max_turns=_whole(environ, "max-turns", "40"),
            base_branch=text("base-branch"),
            branch=text("branch"),
            draft=_bool(environ, "draft"),
            labels=split_list(read_input(environ, "labels")),
            reviewers=split_list(read_input(environ, "reviewers")),
            comment_command=read_input(environ, "comment-command") or "/claude-e2b run",
            allowed_bots=split_list(read_input(environ, "allowed-bots")),
            sign_commits=bool(_bool(environ, "sign-commits")),
            key_injection=cast(
                "KeyInjection", _choice(environ, "key-injection", ("env", "proxy"), "env")
            ),
            report_templates=text("report-templates"),
            max_sandboxes=text("max-sandboxes"),
            max_sandboxes_per_hour=text("max-sandboxes-per-hour"),
        )

    def secrets(self) -> tuple[str, ...]:
        """The secret values given as inputs (to mask and redact)."""
        values = (
            self.anthropic_api_key,
            self.claude_code_oauth_token,
            self.e2b_api_key,
            self.github_token,
        )
        return tuple(v for v in values if v)


@dataclass(frozen=True)
class RunnerEnv:
    """The standard GITHUB_* / RUNNER_* variables the action uses (never github.com itself)."""

    api_url: str
    server_url: str
    repository: str
    event_name: str
    event_path: Path | None
    workspace: Path
    output: Path | None
    step_summary: Path | None
    run_id: str
    ref_name: str
    temp: Path

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RunnerEnv:
        """Read them; raises ConfigError when one the action cannot work without is missing."""

        def need(name: str) -> str:
            value = environ.get(name, "").strip()
            if not value:
                raise ConfigError(
                    f"{name} is not set: the action must run as a step of a GitHub Actions job",
                    hint="outside Actions, use the command: claude-e2b run --plan PLAN.md",
                )
            return value

        def optional_path(name: str) -> Path | None:
            value = environ.get(name, "").strip()
            return Path(value) if value else None

        return cls(
            api_url=need("GITHUB_API_URL").rstrip("/"),
            server_url=need("GITHUB_SERVER_URL").rstrip("/"),
            repository=need("GITHUB_REPOSITORY"),
            event_name=need("GITHUB_EVENT_NAME"),
            event_path=optional_path("GITHUB_EVENT_PATH"),
            workspace=Path(need("GITHUB_WORKSPACE")),
            output=optional_path("GITHUB_OUTPUT"),
            step_summary=optional_path("GITHUB_STEP_SUMMARY"),
            run_id=environ.get("GITHUB_RUN_ID", "").strip(),
            ref_name=environ.get("GITHUB_REF_NAME", "").strip(),
            temp=Path(environ.get("RUNNER_TEMP", "").strip() or tempfile.gettempdir()),
        )

    @property
    def run_url(self) -> str | None:
        """The link to this workflow run, on this server."""
        if not self.run_id:
            return None
        return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}"
