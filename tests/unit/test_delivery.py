"""What becomes of a finished run: where it publishes, which branch, which base, draft or not."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from claude_e2b.config import Credentials, Overrides, PublishSettings, build_run_config
from claude_e2b.delivery import (
    Delivery,
    base_for,
    branch_for,
    pull_request_spec,
    target_from_remote,
)
from claude_e2b.errors import ConfigError, PublishError
from claude_e2b.plan import parse_plan
from claude_e2b.result import AgentInfo, PlanInfo, RunResult, SandboxInfo, TimingInfo
from tests.gitrepo import commit_all, git


def config_for(repo: Path, front: str = "", overrides: Overrides | None = None):
    plan = parse_plan(f"---\ntitle: Tidy up\n{front}---\nDo it.\n", repo / "plans" / "tidy.md")
    return build_run_config(
        plan,
        overrides or Overrides(),
        repo_dir=repo,
        output_dir=repo / "out",
        credentials=Credentials(anthropic_api_key="k"),
        run_id="r1",
    )


def result(status="completed") -> RunResult:
    return RunResult(
        run_id="r1",
        status=status,
        plan=PlanInfo("plans/tidy.md", "Tidy up", 0, 0, 0),
        sandbox=SandboxInfo("local", "s", "t", 1.0),
        agent=AgentInfo(0, 1, "s", "done"),
        verify=None,
        changes=({"path": "a.txt", "status": "added"},),
        skipped_changes=(),
        cost={"total_usd": 0.0},
        timing=TimingInfo(),
    )


@pytest.mark.parametrize(
    ("url", "server", "api", "repository"),
    [
        (
            "https://github.com/octo/app.git",
            "https://github.com",
            "https://api.github.com",
            "octo/app",
        ),
        ("git@github.com:octo/app.git", "https://github.com", "https://api.github.com", "octo/app"),
        (
            "ssh://git@ghe.example.test/octo/app",
            "https://ghe.example.test",
            "https://ghe.example.test/api/v3",
            "octo/app",
        ),
        (
            "http://127.0.0.1:8080/octo/app.git",
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/api/v3",
            "octo/app",
        ),
        (
            "https://x-access-token:SECRET@ghe.example.test/octo/app",
            "https://ghe.example.test",
            "https://ghe.example.test/api/v3",
            "octo/app",
        ),
    ],
)
def test_target_from_remote(url, server, api, repository):
    """https, ssh and scp-like remotes give the server, its API and owner/name."""
    target = target_from_remote(url, "tok", {})
    assert (target.server_url, target.api_url, target.repository) == (server, api, repository)
    assert "SECRET" not in target.server_url


def test_environment_overrides_what_the_remote_says():
    """GITHUB_API_URL, GITHUB_SERVER_URL and GITHUB_REPOSITORY win over the URL."""
    env = {
        "GITHUB_API_URL": "https://api.example.test/",
        "GITHUB_SERVER_URL": "https://example.test",
        "GITHUB_REPOSITORY": "other/repo",
    }
    target = target_from_remote("git@github.com:octo/app.git", "tok", env)
    assert (target.api_url, target.server_url, target.repository) == (
        "https://api.example.test",
        "https://example.test",
        "other/repo",
    )


def test_remote_without_owner_and_name_is_refused():
    """A remote URL that names no owner/name gives a ConfigError saying what to set."""
    with pytest.raises(ConfigError) as caught:
        target_from_remote("/srv/git/app.git", "tok", {})
    assert caught.value.hint is not None
    assert "GITHUB_REPOSITORY" in caught.value.hint


def test_branch_defaults_to_the_plan_stem_and_bad_names_are_refused(tmp_path):
    """No branch given: claude-e2b/<plan stem>; an invalid one is a ConfigError before the run."""
    assert branch_for(config_for(tmp_path)) == "claude-e2b/tidy"
    assert branch_for(config_for(tmp_path, "branch: bots/tidy\n")) == "bots/tidy"
    with pytest.raises(ConfigError):
        branch_for(
            config_for(tmp_path, overrides=Overrides(publish=PublishSettings(branch="bad..name")))
        )


def test_base_is_given_or_the_branch_checked_out(tmp_path):
    """base-branch wins; else the checkout's branch; a detached HEAD needs a fallback."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "trunk")
    (repo / "f").write_text("x")
    commit_all(repo, "init")
    assert base_for(config_for(repo), None) == "trunk"
    assert base_for(config_for(repo, "base-branch: release\n"), None) == "release"
    git(repo, "checkout", "-q", "--detach")
    assert base_for(config_for(repo), "main") == "main"
    with pytest.raises(ConfigError):
        base_for(config_for(repo), None)


@pytest.mark.parametrize(
    ("status", "draft_setting", "draft"),
    [
        ("completed", None, False),
        ("timed_out", None, True),
        ("failed", None, True),
        ("budget_exceeded", None, True),
        ("completed", True, True),
        ("timed_out", False, False),
    ],
)
def test_draft_unless_completed_or_as_told(tmp_path, status, draft_setting, draft):
    """A draft when the run did not complete, unless draft was set either way."""
    config = config_for(
        tmp_path, overrides=Overrides(publish=PublishSettings(draft=draft_setting, labels=("bot",)))
    )
    spec = pull_request_spec(config, result(status), branch="b", base="main", body="text")
    assert spec.draft is draft
    assert spec.title == "Tidy up"
    assert spec.labels == ("bot",)
    assert f"({status})" in spec.commit_message


def test_a_publishing_failure_makes_the_exit_code_one():
    """A completed run whose PR could not be published exits 1; without error, the run's code."""
    completed = result("completed")
    assert Delivery(completed).exit_code == 0
    assert Delivery(completed, PublishError("push refused")).exit_code == 1
    assert Delivery(replace(completed, status="timed_out")).exit_code == 1
