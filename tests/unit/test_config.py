from pathlib import Path

import pytest

from claude_e2b.config import (
    DEFAULT_PROTECTED_PATHS,
    LIFETIME_MARGIN_S,
    PROXY_PLACEHOLDER,
    Credentials,
    Overrides,
    PublishSettings,
    build_run_config,
)
from claude_e2b.errors import ConfigError
from claude_e2b.pipeline import sandbox_spec
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


def test_proxy_mode_keeps_the_key_out_of_the_sandbox():
    """In proxy mode the sandbox gets a placeholder; the egress rule carries the real key."""
    creds = Credentials(anthropic_api_key="sk-real-key-123456", key_injection="proxy")
    env = creds.agent_env()
    assert env["ANTHROPIC_API_KEY"] == PROXY_PLACEHOLDER
    assert "sk-real-key-123456" not in repr(env)
    assert creds.egress_rules() == {
        "api.anthropic.com": [{"transform": {"headers": {"x-api-key": "sk-real-key-123456"}}}]
    }


def test_proxy_mode_follows_the_base_url_and_oauth():
    """A gateway's host gets the rule; an OAuth token becomes a bearer header."""
    creds = Credentials(
        claude_oauth_token="oauth-token-123456",
        key_injection="proxy",
        anthropic_base_url="https://gateway.example.com:8443/anthropic",
    )
    assert creds.egress_rules() == {
        "gateway.example.com": [
            {"transform": {"headers": {"authorization": "Bearer oauth-token-123456"}}}
        ]
    }
    assert creds.agent_env()["CLAUDE_CODE_OAUTH_TOKEN"] == PROXY_PLACEHOLDER


def test_env_mode_has_no_egress_rules():
    """With the key as an environment variable there is nothing for the proxy to do."""
    assert Credentials(anthropic_api_key="sk-real-key-123456").egress_rules() == {}


def test_proxy_mode_with_the_local_sandbox_is_refused():
    """The local sandbox has no egress proxy: say so instead of leaking the key in."""
    creds = Credentials(anthropic_api_key="sk-real-key-123456", key_injection="proxy")
    with pytest.raises(ConfigError, match="egress proxy"):
        _config(Overrides(backend="local"), credentials=creds)


def test_bedrock_and_vertex_count_as_model_access():
    """Provider variables reach the agent; their secrets are redacted like the key."""
    creds = Credentials(
        agent_vars={"CLAUDE_CODE_USE_BEDROCK": "1", "AWS_REGION": "us-east-1"},
        agent_secrets={"AWS_SECRET_ACCESS_KEY": "aws-secret-123456"},
    )
    assert creds.has_model_access
    assert creds.agent_env() == {
        "CLAUDE_CODE_USE_BEDROCK": "1",
        "AWS_REGION": "us-east-1",
        "AWS_SECRET_ACCESS_KEY": "aws-secret-123456",
    }
    assert "aws-secret-123456" in creds.secret_values()
    assert not Credentials().has_model_access


def test_allow_list_always_admits_the_api_host():
    """A plan's egress allow list gets the API host added, or the agent could not work."""
    text = "---\nnetwork: [pypi.org]\n---\nTask.\n"
    spec = sandbox_spec(_config(text=text))
    assert spec.allow_out == ("pypi.org", "api.anthropic.com")
    assert sandbox_spec(_config(text="Task.\n")).allow_out is None


PUBLISHING_PLAN = """---
branch: plan-branch
base-branch: develop
draft: false
labels: [bot, nightly]
reviewers: [alice]
---
Do it.
"""


def test_publish_settings_merge_inputs_over_plan():
    """Branch, base and draft from inputs beat the plan's; labels and reviewers add up."""
    overrides = Overrides(
        publish=PublishSettings(
            branch="input-branch",
            draft=True,
            labels=("nightly", "urgent"),
            reviewers=("bob",),
            sign_commits=True,
        )
    )
    publish = _config(overrides, PUBLISHING_PLAN).publish
    assert publish.branch == "input-branch"
    assert publish.base_branch == "develop"
    assert publish.draft is True
    assert publish.labels == ("bot", "nightly", "urgent")
    assert publish.reviewers == ("alice", "bob")
    assert publish.sign_commits is True


def test_publish_settings_left_open_without_plan_or_inputs():
    """Nothing given: branch, base and draft are decided at publish time."""
    publish = _config(text="Do it.\n").publish
    assert (publish.branch, publish.base_branch, publish.draft) == (None, None, None)
    assert publish.labels == ()
