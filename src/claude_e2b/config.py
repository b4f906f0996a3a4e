"""RunConfig: everything one run needs, merged as flags/inputs > plan > defaults.

The environment is not read here: ``cli.py`` and ``action.py`` collect flags,
inputs and credentials and hand them over as plain values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from claude_e2b.errors import ConfigError
from claude_e2b.plan import Plan
from claude_e2b.sandbox import DEFAULT_TEMPLATE, Backend
from claude_e2b.sync.screen import SecretsPolicy

T = TypeVar("T")

DEFAULT_TIMEOUT_MINUTES = 60.0
DEFAULT_WARN_AT_MINUTES = (30.0, 50.0)
DEFAULT_PROTECTED_PATHS = (".github/workflows/**",)
DEFAULT_MODEL = "claude-sonnet-4-5"
# Seconds Claude Code gets after SIGINT to end on its own before it is killed.
DEFAULT_GRACE_S = 30.0
# Size of E2B's anthropic-claude-code template, for the compute cost.
DEFAULT_SANDBOX_VCPUS = 2.0
DEFAULT_SANDBOX_MEMORY_GIB = 2.0
# The sandbox outlives the hard limit by this much, so the partial work can still
# be collected after the agent is stopped, and no longer.
LIFETIME_MARGIN_S = 600
SANDBOX_REPO_DIR = "/home/user/repo"
SANDBOX_WORK_DIR = "/tmp/claude-e2b"  # noqa: S108 - a path inside the sandbox, not on the runner


KeyInjection = Literal["env", "proxy"]
# What the sandbox sees instead of the key in proxy mode; E2B's egress proxy puts the
# real header on each request to the API host, so the key never exists in the sandbox.
PROXY_PLACEHOLDER = "sk-ant-placeholder-set-by-the-egress-proxy"
DEFAULT_API_HOST = "api.anthropic.com"


@dataclass(frozen=True)
class Credentials:
    """Secrets and endpoints for the agent; only what the agent needs enters the sandbox.

    ``agent_vars`` carries provider settings (Bedrock, Vertex) and ``agent_secrets``
    their secret values; both reach the agent, the latter are also redacted everywhere.
    """

    anthropic_api_key: str | None = None
    anthropic_base_url: str | None = None
    claude_oauth_token: str | None = None
    agent_vars: Mapping[str, str] = field(default_factory=dict)
    agent_secrets: Mapping[str, str] = field(default_factory=dict)
    other_secrets: tuple[str, ...] = ()
    key_injection: KeyInjection = "env"

    @property
    def has_model_access(self) -> bool:
        """Whether any way to reach a model was given."""
        third_party = ("CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX")
        return bool(
            self.anthropic_api_key
            or self.claude_oauth_token
            or any(self.agent_vars.get(name) for name in third_party)
        )

    def secret_values(self) -> tuple[str, ...]:
        """Every secret value the run holds, for redaction and the secret scan."""
        values = [
            self.anthropic_api_key,
            self.claude_oauth_token,
            *self.agent_secrets.values(),
            *self.other_secrets,
        ]
        return tuple(v for v in values if v)

    def agent_env(self) -> dict[str, str]:
        """Variables Claude Code needs to reach its model (placeholders in proxy mode)."""
        env = {**self.agent_vars, **self.agent_secrets}
        proxied = self.key_injection == "proxy"
        if self.anthropic_api_key:
            env["ANTHROPIC_API_KEY"] = PROXY_PLACEHOLDER if proxied else self.anthropic_api_key
        if self.claude_oauth_token:
            token = PROXY_PLACEHOLDER if proxied else self.claude_oauth_token
            env["CLAUDE_CODE_OAUTH_TOKEN"] = token
        if self.anthropic_base_url:
            env["ANTHROPIC_BASE_URL"] = self.anthropic_base_url
        return env

    def api_host(self) -> str:
        """The host Claude Code talks to: the base URL's, else Anthropic's."""
        if not self.anthropic_base_url:
            return DEFAULT_API_HOST
        return urlsplit(self.anthropic_base_url).hostname or DEFAULT_API_HOST

    def api_endpoint(self) -> str:
        """HOST:PORT of the model's API (the base URL's, else Anthropic's on 443)."""
        url = urlsplit(self.anthropic_base_url or f"https://{DEFAULT_API_HOST}")
        host = url.hostname or DEFAULT_API_HOST
        port = url.port or (80 if url.scheme == "http" else 443)
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def egress_rules(self) -> dict[str, list[dict[str, Any]]]:
        """Proxy mode: the header E2B's egress proxy sets on requests to the API host."""
        if self.key_injection != "proxy":
            return {}
        if self.anthropic_api_key:
            headers = {"x-api-key": self.anthropic_api_key}
        elif self.claude_oauth_token:
            headers = {"authorization": f"Bearer {self.claude_oauth_token}"}
        else:
            return {}
        return {self.api_host(): [{"transform": {"headers": headers}}]}


@dataclass(frozen=True)
class PublishSettings:
    """Where and how the pull request goes; None means "decide at publish time".

    ``branch`` None: ``claude-e2b/<plan stem>``; ``base_branch`` None: the branch
    checked out; ``draft`` None: a draft unless the run completed.
    """

    branch: str | None = None
    base_branch: str | None = None
    draft: bool | None = None
    labels: tuple[str, ...] = ()
    reviewers: tuple[str, ...] = ()
    sign_commits: bool = False


@dataclass(frozen=True)
class Overrides:
    """Explicit flags or action inputs; None means "not given"."""

    backend: Backend | None = None
    template: str | None = None
    model: str | None = None
    timeout_minutes: float | None = None
    budget_usd: float | None = None
    max_turns: int | None = None
    include_untracked: bool | None = None
    # None fields are the plan's or decided at publish time; labels and reviewers add up.
    publish: PublishSettings = field(default_factory=PublishSettings)


@dataclass(frozen=True)
class RunConfig:
    """The merged configuration of one run."""

    plan: Plan
    repo_dir: Path
    output_dir: Path
    backend: Backend
    template: str
    model: str
    timeout_minutes: float
    warn_at_minutes: tuple[float, ...]
    budget_usd: float | None
    max_turns: int | None
    include_untracked: bool
    secrets_policy: SecretsPolicy
    excludes: tuple[str, ...]
    allowed_paths: tuple[str, ...]
    protected_paths: tuple[str, ...]
    setup: tuple[str, ...]
    verify: str | None
    env: Mapping[str, str]
    network: tuple[str, ...] | None
    credentials: Credentials
    local_tools: Mapping[str, Path] = field(default_factory=dict)
    publish: PublishSettings = field(default_factory=PublishSettings)
    run_id: str = ""
    grace_s: float = DEFAULT_GRACE_S
    sandbox_vcpus: float = DEFAULT_SANDBOX_VCPUS
    sandbox_memory_gib: float = DEFAULT_SANDBOX_MEMORY_GIB

    @property
    def lifetime_s(self) -> int:
        """Server-side sandbox lifetime: the hard limit plus the collection margin."""
        return int(self.timeout_minutes * 60) + LIFETIME_MARGIN_S


def _first(*values: T | None, default: T) -> T:
    for value in values:
        if value is not None:
            return value
    return default


MAX_LIMIT = 1e9  # minutes, dollars or turns: past it a value is a mistake (and overflows)


def _positive(name: str, value: float | None) -> None:
    if value is not None and not 0 < value <= MAX_LIMIT:
        raise ConfigError(f"{name} must be greater than 0 and at most {MAX_LIMIT:.0e}, got {value}")


def build_run_config(
    plan: Plan,
    overrides: Overrides,
    *,
    repo_dir: Path,
    output_dir: Path,
    credentials: Credentials,
    local_tools: Mapping[str, Path] | None = None,
    run_id: str = "",
) -> RunConfig:
    """Merge flags/inputs over the plan over the defaults; raises ConfigError on bad values."""
    _positive("--timeout-minutes", overrides.timeout_minutes)
    _positive("--budget-usd", overrides.budget_usd)
    _positive("--max-turns", overrides.max_turns)
    backend: Backend = _first(overrides.backend, default="e2b")
    if backend == "local" and credentials.key_injection == "proxy":
        raise ConfigError(
            "key-injection: proxy needs E2B's egress proxy, which the local sandbox does not have",
            hint="use --sandbox e2b, or key-injection: env with the local sandbox",
        )
    timeout = _first(
        overrides.timeout_minutes, plan.timeout_minutes, default=DEFAULT_TIMEOUT_MINUTES
    )
    return RunConfig(
        plan=plan,
        repo_dir=repo_dir,
        output_dir=output_dir,
        backend=backend,
        template=_first(overrides.template, plan.template, default=DEFAULT_TEMPLATE),
        model=_first(overrides.model, plan.model, default=DEFAULT_MODEL),
        timeout_minutes=timeout,
        warn_at_minutes=_warn_marks(plan.warn_at_minutes, timeout),
        budget_usd=_first(overrides.budget_usd, plan.budget_usd, default=None),
        max_turns=_first(overrides.max_turns, plan.max_turns, default=None),
        include_untracked=_first(
            overrides.include_untracked, plan.include_untracked, default=False
        ),
        secrets_policy=_secrets_policy(plan.secrets),
        excludes=plan.exclude,
        allowed_paths=plan.allowed_paths,
        protected_paths=_first(plan.protected_paths, default=DEFAULT_PROTECTED_PATHS),
        setup=plan.setup,
        verify=plan.verify,
        env=dict(plan.env),
        network=plan.network,
        credentials=credentials,
        local_tools=dict(local_tools or {}),
        publish=_publish_settings(plan, overrides),
        run_id=run_id,
    )


def _merged(first: tuple[str, ...], then: tuple[str, ...]) -> tuple[str, ...]:
    """Both lists, in order, each name once (inputs add to the plan's)."""
    return tuple(dict.fromkeys((*first, *then)))


def _publish_settings(plan: Plan, overrides: Overrides) -> PublishSettings:
    given = overrides.publish
    return PublishSettings(
        branch=_first(given.branch, plan.branch, default=None),
        base_branch=_first(given.base_branch, plan.base_branch, default=None),
        draft=_first(given.draft, plan.draft, default=None),
        labels=_merged(plan.labels, given.labels),
        reviewers=_merged(plan.reviewers, given.reviewers),
        sign_commits=given.sign_commits,
    )


def _warn_marks(marks: tuple[float, ...] | None, timeout: float) -> tuple[float, ...]:
    if marks is not None:
        return tuple(m for m in marks if m < timeout)
    # Default marks scale with a shorter limit: half-way and five-sixths of the way.
    if timeout == DEFAULT_TIMEOUT_MINUTES:
        return DEFAULT_WARN_AT_MINUTES
    return (timeout * 0.5, timeout * 5 / 6)


def _secrets_policy(value: str | None) -> SecretsPolicy:
    if value in (None, "exclude"):
        return "exclude"
    if value == "fail":
        return "fail"
    if value == "warn":
        return "warn"
    raise ConfigError(f"secrets must be exclude, fail or warn, got {value!r}")
