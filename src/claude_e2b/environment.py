"""What a run takes from its environment, given as a mapping by the edge that read it.

``cli.py`` and ``action.py`` hand in ``os.environ`` (the action first adds what its
inputs say); nothing here reads the environment itself. Credentials, the local
Claude Code binary, the state directory and its local sandbox registry come from here.
"""

from __future__ import annotations

import secrets
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

from claude_e2b.config import Credentials, KeyInjection
from claude_e2b.errors import ConfigError
from claude_e2b.sandbox.localbox.launcher import LocalBoxHost
from claude_e2b.sandbox.localbox.registry import registry_dir, state_dir

__all__ = [
    "BEDROCK_VARS",
    "PROVIDER_SECRETS",
    "PROVIDER_VARS",
    "SECRET_ENV",
    "VERTEX_VARS",
    "credentials_from_env",
    "local_claude",
    "local_host",
    "local_registry",
    "new_run_id",
    "state_dir",
]

# Bedrock and Vertex, as Claude Code reads them: settings, then secrets. Each set
# reaches the agent only when its provider is switched on; the secrets are redacted anyway.
BEDROCK_VARS = (
    "CLAUDE_CODE_USE_BEDROCK",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "ANTHROPIC_BEDROCK_BASE_URL",
    "CLAUDE_CODE_SKIP_BEDROCK_AUTH",
)
VERTEX_VARS = (
    "CLAUDE_CODE_USE_VERTEX",
    "CLOUD_ML_REGION",
    "ANTHROPIC_VERTEX_PROJECT_ID",
    "ANTHROPIC_VERTEX_BASE_URL",
    "CLAUDE_CODE_SKIP_VERTEX_AUTH",
)
PROVIDER_VARS = BEDROCK_VARS + VERTEX_VARS
PROVIDER_SECRETS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_BEARER_TOKEN_BEDROCK",
)
_OFF = frozenset({"", "0", "false", "no", "off"})
SECRET_ENV = (
    "ANTHROPIC_API_KEY",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "E2B_API_KEY",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "INPUT_GITHUB-TOKEN",
    "INPUT_GITHUB_TOKEN",
)


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus random hex."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def local_registry(environ: Mapping[str, str]) -> Path:
    """Where local sandboxes announce themselves: in the state directory."""
    return registry_dir(state_dir(environ))


def local_host(environ: Mapping[str, str]) -> LocalBoxHost:
    """The local backend's registry, and the environment its servers take allowed names from."""
    return LocalBoxHost(local_registry(environ), environ)


def _present(environ: Mapping[str, str], names: tuple[str, ...]) -> dict[str, str]:
    return {name: environ[name] for name in names if environ.get(name)}


def credentials_from_env(
    environ: Mapping[str, str], key_injection: KeyInjection = "env"
) -> Credentials:
    """The agent's credentials, and every other secret value the run must never show."""
    bedrock = _switched_on(environ, "CLAUDE_CODE_USE_BEDROCK")
    agent_vars = {
        **(_present(environ, BEDROCK_VARS) if bedrock else {}),
        **(
            _present(environ, VERTEX_VARS)
            if _switched_on(environ, "CLAUDE_CODE_USE_VERTEX")
            else {}
        ),
    }
    provider_secrets = _present(environ, PROVIDER_SECRETS)
    # Secrets the agent does not get are still redacted everywhere.
    others = tuple(environ[name] for name in SECRET_ENV if environ.get(name))
    unused = () if bedrock else tuple(provider_secrets.values())
    return Credentials(
        anthropic_api_key=environ.get("ANTHROPIC_API_KEY") or None,
        anthropic_base_url=environ.get("ANTHROPIC_BASE_URL") or None,
        claude_oauth_token=environ.get("CLAUDE_CODE_OAUTH_TOKEN") or None,
        agent_vars=agent_vars,
        agent_secrets=provider_secrets if bedrock else {},
        other_secrets=others + unused,
        key_injection=key_injection,
    )


def _switched_on(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "").strip().lower() not in _OFF


def local_claude(environ: Mapping[str, str]) -> Path:
    """The Claude Code binary the local sandbox offers as ``claude``."""
    given = environ.get("CLAUDE_E2B_CLAUDE_BIN") or shutil.which("claude")
    if not given:
        raise ConfigError(
            "--sandbox local needs the Claude Code CLI on this machine, and none was found",
            hint="npm install -g @anthropic-ai/claude-code@2.1.328, or set CLAUDE_E2B_CLAUDE_BIN",
        )
    path = Path(given).resolve()
    if not path.is_file():
        raise ConfigError(
            f"CLAUDE_E2B_CLAUDE_BIN points to {given}, which is not a file",
            hint="install Claude Code (npm install -g @anthropic-ai/claude-code@2.1.328) and "
            "point CLAUDE_E2B_CLAUDE_BIN at its `claude`, or unset it to use `claude` on PATH",
        )
    return path
