from pathlib import Path

import pytest

from claude_e2b.config import (
    DEFAULT_PROTECTED_PATHS,
    LIFETIME_MARGIN_S,
    Credentials,
    Overrides,
    build_run_config,
)
from claude_e2b.errors import ConfigError
from claude_e2b.plan import parse_plan

PLAN = """---
model: plan-model
timeout-minutes: 20
budget-usd: 2
max-turns: 9
template: plan-template
---
Do the thing.
"""


def _config(overrides=None, text=PLAN, credentials=None):
    overrides = overrides or Overrides()
    credentials = credentials or Credentials()
    plan = parse_plan(text, Path("PLAN.md"))
    return build_run_config(
        plan, overrides, repo_dir=Path("/r"), output_dir=Path("/o"), credentials=credentials
    )


def test_plan_values_beat_defaults():
    """Plan keys are used when no flag is given."""
    config = _config()
    assert (
        config.model,
        config.timeout_minutes,
        config.budget_usd,
        config.max_turns,
        config.template,
    ) == ("plan-model", 20, 2, 9, "plan-template")
    assert config.protected_paths == DEFAULT_PROTECTED_PATHS
    assert config.lifetime_s == 20 * 60 + LIFETIME_MARGIN_S


def test_flags_beat_plan():
    """Explicit flags win over the plan."""
    config = _config(
        Overrides(
            model="flag-model",
            timeout_minutes=5,
            budget_usd=0.5,
            max_turns=3,
            template="t",
            backend="local",
        )
    )
    assert (
        config.model,
        config.timeout_minutes,
        config.budget_usd,
        config.max_turns,
        config.template,
        config.backend,
    ) == ("flag-model", 5, 0.5, 3, "t", "local")


def test_defaults_without_front_matter():
    """A plan without front matter gets the documented defaults."""
    config = _config(text="Just a task.\n")
    assert config.timeout_minutes == 60
    assert config.warn_at_minutes == (30, 50)
    assert config.backend == "e2b"
    assert config.template == "anthropic-claude-code"
    assert config.budget_usd is None


def test_warn_marks_scale_with_a_shorter_limit():
    """Default warnings sit at half and five sixths of a shorter limit."""
    config = _config(Overrides(timeout_minutes=12), text="Task.\n")
    assert config.warn_at_minutes == (6, 10)


def test_bad_flag_values_are_config_errors():
    """A non-positive flag value is refused with its name."""
    with pytest.raises(ConfigError, match="--timeout-minutes"):
        _config(Overrides(timeout_minutes=0))


def test_agent_env_holds_only_what_the_agent_needs():
    """GitHub and E2B tokens never reach the agent's environment."""
    creds = Credentials(
        anthropic_api_key="sk-test-123456789",
        anthropic_base_url="http://x",
        other_secrets=("ghp_should_not_pass_1234",),
    )
    env = creds.agent_env()
    assert env == {"ANTHROPIC_API_KEY": "sk-test-123456789", "ANTHROPIC_BASE_URL": "http://x"}
    assert "ghp_should_not_pass_1234" in creds.secret_values()
