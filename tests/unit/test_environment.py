"""Credentials by provider: the agent gets what its provider needs, GitHub and E2B never."""

from __future__ import annotations

from claude_e2b.environment import credentials_from_env

AWS = {
    "AWS_ACCESS_KEY_ID": "AKIACANARY0000000000",
    "AWS_SECRET_ACCESS_KEY": "canary-aws-secret-0123456789",
    "AWS_SESSION_TOKEN": "canary-aws-session-0123456789",
    "AWS_REGION": "eu-west-1",
}
OTHERS = {
    "GITHUB_TOKEN": "ghs_canary0123456789",
    "E2B_API_KEY": "e2b_canary0123456789",
    "CLOUD_ML_REGION": "us-east5",
    "ANTHROPIC_VERTEX_PROJECT_ID": "proj",
}


def test_anthropic_key_alone_keeps_aws_and_vertex_out():
    """With an Anthropic key and no provider switched on, no AWS or Vertex variable is passed."""
    creds = credentials_from_env({"ANTHROPIC_API_KEY": "sk-ant-canary", **AWS, **OTHERS})
    env = creds.agent_env()
    assert env == {"ANTHROPIC_API_KEY": "sk-ant-canary"}
    # ...but every secret is still known, so it is redacted wherever it shows up.
    secrets = creds.secret_values()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        assert AWS[name] in secrets
    assert OTHERS["GITHUB_TOKEN"] in secrets
    assert OTHERS["E2B_API_KEY"] in secrets


def test_bedrock_gets_aws_credentials_and_nothing_of_github_or_e2b():
    """CLAUDE_CODE_USE_BEDROCK=1 passes the AWS variables; tokens of GitHub and E2B stay out."""
    creds = credentials_from_env({"CLAUDE_CODE_USE_BEDROCK": "1", **AWS, **OTHERS})
    env = creds.agent_env()
    assert {k: env[k] for k in AWS} == AWS
    assert "CLOUD_ML_REGION" not in env
    assert OTHERS["GITHUB_TOKEN"] not in env.values()
    assert OTHERS["E2B_API_KEY"] not in env.values()


def test_vertex_gets_its_settings_but_no_aws():
    """CLAUDE_CODE_USE_VERTEX=true passes Vertex's settings and no AWS secret."""
    creds = credentials_from_env({"CLAUDE_CODE_USE_VERTEX": "true", **AWS, **OTHERS})
    env = creds.agent_env()
    assert env["ANTHROPIC_VERTEX_PROJECT_ID"] == "proj"
    assert not any(k.startswith("AWS_") for k in env)


def test_a_provider_switched_off_is_off():
    """CLAUDE_CODE_USE_BEDROCK=0 (or false) is the same as not set."""
    for off in ("0", "false", ""):
        creds = credentials_from_env({"CLAUDE_CODE_USE_BEDROCK": off, **AWS})
        assert not any(k.startswith("AWS_") for k in creds.agent_env())
        assert not creds.has_model_access
