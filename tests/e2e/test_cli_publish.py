"""`claude-e2b run` without --no-pr: the pull request from a terminal, on origin's repository."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.e2e.test_run_local import SCENARIOS, make_repo, run_cli
from tests.stand_ins.anthropic_server import ScriptedAnthropic
from tests.stand_ins.github_server import GitHubStandIn

pytestmark = pytest.mark.e2e
REPO = "octo/app"


def test_run_opens_a_pull_request_on_the_origin_repository(tmp_path, cli_env):
    """The origin remote names the repository, GITHUB_TOKEN publishes: a PR with the changes."""
    seed = make_repo(tmp_path / "seed")
    with GitHubStandIn(tmp_path / "github") as gh:
        gh.create_repo(REPO, source=seed)
        work = tmp_path / "work"
        subprocess.run(
            ["git", "clone", "-q", gh.clone_url(REPO), str(work)], check=True, timeout=60
        )
        (work / ".env").write_text((seed / ".env").read_text())  # never committed, never sent
        cli_env.update(GITHUB_TOKEN=gh.token, GITHUB_API_URL=gh.api_url)
        with ScriptedAnthropic(SCENARIOS / "add_edit_delete.yaml") as api:
            cli_env["ANTHROPIC_BASE_URL"] = api.url
            done = run_cli(
                ["run", "--plan", str(work / "PLAN.md"), "--repo", str(work), "--sandbox", "local",
                 "--output-dir", str(tmp_path / "out")],
                cli_env,
            )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        pulls = gh.pulls(REPO)
        assert len(pulls) == 1
        assert pulls[0].pull is not None
        assert pulls[0].pull.head_ref == "claude-e2b/PLAN"
        changed = gh.git(REPO, "diff", "--name-only", "main", "claude-e2b/PLAN").split()
        assert sorted(changed) == ["PLAN.md", "README.md", "hello.py", "obsolete.txt"]
        assert "pull request created: " in done.stdout
        result = json.loads((tmp_path / "out" / "result.json").read_text())
        assert result["pr"]["number"] == pulls[0].number
        assert gh.leaks(gh.token) == []
