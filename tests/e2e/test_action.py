"""The Action as GitHub runs it: action.yml's steps in order, inputs only through the
`inputs` context, a GITHUB_OUTPUT per step, the outputs evaluated at the end.

Real parts throughout: the composite-action runner stand-in runs action.yml (setup
steps, `uv sync` from the action's lock, ./entrypoint); the real Claude Code CLI
works in the local sandbox against the scripted Messages API; the pull request goes
to the GitHub stand-in through PyGithub and real git over HTTP.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.gitrepo import commit_all, git
from tests.stand_ins.actions import TLS_VARIABLES, ActionRun, host_environment, run_composite_action
from tests.stand_ins.anthropic_server import ScriptedAnthropic
from tests.stand_ins.github_server import Fault, GitHubStandIn

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "tests" / "stand_ins" / "scenarios"
REPO = "octo/app"
KEY = "sk-ant-api03-action-canary-" + "d00d" * 10
PLAN = (
    "---\ntitle: Greet the sandbox\nlabels: [claude-e2b]\n---\n"
    "Add hello.py, greet the sandbox in README.md, delete obsolete.txt.\n\n"
    "- [ ] Add hello.py\n- [ ] Something for later\n"
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="session")
def action_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout's files as the runner downloads an action, its venv made once."""
    target = tmp_path_factory.mktemp("action") / "claude-e2b-action"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        source = ROOT / name
        if source.is_file() or source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name, follow_symlinks=False)
    subprocess.run(
        ["uv", "sync", "--locked", "--no-dev", "--quiet", "--project", str(target)],
        check=True,
        timeout=600,
        env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(target / ".venv")},
    )
    return target


@pytest.fixture
def github(tmp_path: Path) -> Iterator[GitHubStandIn]:
    """The GitHub stand-in with octo/app: the demo files on main, alice (write), rita (read)."""
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "README.md").write_text("# Demo\n\nHello world.\n")
    (seed / "obsolete.txt").write_text("remove me\n")
    (seed / "PLAN.md").write_text(PLAN)
    git(seed, "init", "-q", "-b", "main")
    commit_all(seed, "init")
    with GitHubStandIn(tmp_path / "github") as gh:
        gh.create_repo(REPO, source=seed)
        gh.add_user("alice", permission="write")
        gh.add_user("rita", permission="read")
        yield gh


def checkout(gh: GitHubStandIn, into: Path) -> Path:
    """What actions/checkout leaves: a clone on main, no credentials kept."""
    subprocess.run(["git", "clone", "-q", gh.clone_url(REPO), str(into)], check=True, timeout=60)
    return into


@dataclass
class Job:
    """One job of a workflow: its checkout, the stand-ins and the run's environment."""

    gh: GitHubStandIn
    workspace: Path
    action_dir: Path
    claude_bin: Path
    tmp: Path
    model_requests: int = 0

    def run(
        self,
        scenario: str,
        inputs: dict[str, str] | None = None,
        *,
        event_name: str = "workflow_dispatch",
        payload: dict[str, Any] | None = None,
    ) -> ActionRun:
        with ScriptedAnthropic(SCENARIOS / scenario) as api:
            run = run_composite_action(
                self.action_dir,
                workspace=self.workspace,
                inputs={
                    "plan": "PLAN.md",
                    "anthropic-api-key": KEY,
                    "sandbox": "local",
                    **(inputs or {}),
                },
                github={
                    "token": self.gh.token,
                    "api_url": self.gh.api_url,
                    "server_url": self.gh.server_url,
                    "graphql_url": self.gh.graphql_url,
                    "repository": REPO,
                    "run_id": "4242",
                    "ref": "refs/heads/main",
                    "ref_name": "main",
                },
                env={
                    "ANTHROPIC_BASE_URL": api.url,
                    "CLAUDE_E2B_CLAUDE_BIN": str(self.claude_bin),
                    "CLAUDE_E2B_STATE_DIR": str(self.tmp / "state"),
                    "CLAUDE_E2B_DB": str(self.tmp / "history.sqlite3"),
                    "UV_PROJECT_ENVIRONMENT": str(self.action_dir / ".venv"),
                },
                event_name=event_name,
                event_payload=payload or {"inputs": {}},
                secrets=[KEY],
                runner_temp=self.tmp / "runner-temp",
                host_env=host_environment(*TLS_VARIABLES),
                timeout=300,
            )
            self.model_requests = len(api.requests)
        return run


@pytest.fixture
def job(github, action_dir, claude_bin, tmp_path) -> Job:
    return Job(github, checkout(github, tmp_path / "workspace"), action_dir, claude_bin, tmp_path)


def comment_payload(gh: GitHubStandIn, user: str, body: str, association: str) -> dict:
    """An issue_comment "created" event as GitHub sends it, for a real issue and comment."""
    number = gh.add_issue(REPO, "Please greet", user=user)
    comment_id = gh.add_comment(REPO, number, body, user=user)
    return {
        "action": "created",
        "issue": {"number": number, "title": "Please greet", "user": {"login": user}},
        "comment": {
            "id": comment_id,
            "body": body,
            "user": {"login": user, "type": "User"},
            "author_association": association,
        },
        "repository": {"full_name": REPO, "default_branch": "main"},
        "sender": {"login": user, "type": "User"},
    }


def branch_changes(gh: GitHubStandIn, branch: str) -> dict[str, str]:
    """`git diff --name-status main <branch>` in the stand-in's repository."""
    out = gh.git(REPO, "diff", "--name-status", "--no-renames", "main", branch)
    return {line.split("\t")[1]: line.split("\t")[0] for line in out.splitlines()}


def test_dispatch_opens_a_pr_with_exactly_the_changes(job):
    """workflow_dispatch: a PR whose branch holds the agent's changes; outputs and summary."""
    run = job.run("add_edit_delete.yaml")
    assert run.conclusion == "success", run.log[-4000:]
    assert run.outputs["status"] == "completed"
    assert run.outputs["branch"] == "claude-e2b/PLAN"
    assert run.outputs["changed-files"] == "4"
    assert float(run.outputs["cost-usd"]) > 0
    pulls = job.gh.pulls(REPO)
    assert len(pulls) == 1
    pull = pulls[0]
    assert run.outputs["pr-number"] == str(pull.number)
    assert run.outputs["pr-url"].endswith(f"/{REPO}/pull/{pull.number}")
    assert pull.pull is not None
    assert not pull.pull.draft
    assert (pull.pull.head_ref, pull.pull.base_ref) == ("claude-e2b/PLAN", "main")
    assert pull.title == "Greet the sandbox"
    assert pull.labels == ["claude-e2b"]
    assert branch_changes(job.gh, "claude-e2b/PLAN") == {
        "PLAN.md": "M",
        "README.md": "M",
        "hello.py": "A",
        "obsolete.txt": "D",
    }
    body = pull.body or ""
    assert "hello.py" in body
    assert "| Claude" in body  # the cost table's rows
    assert "Total" in body
    result = json.loads(Path(run.outputs["result-path"]).read_text())
    assert result["pr"]["number"] == pull.number
    assert result["pr"]["operation"] == "created"
    assert "Greet the sandbox" in run.summary
    assert "hello.py" in run.summary
    # No INPUT_ variable reached the entry step from the runner: only action.yml's env.
    entry = run.step("run")
    assert entry.env["INPUT_ANTHROPIC_API_KEY"] == KEY
    assert "INPUT_ANTHROPIC-API-KEY" not in entry.env
    assert run.mask_leaks() == []
    assert job.gh.leaks(KEY) == []
    assert job.gh.leaks(job.gh.token) == []


def test_rerun_updates_the_same_pr(job):
    """The same dispatch twice: one PR, updated; its branch holds the second run's commit."""
    first = job.run("add_edit_delete.yaml")
    assert first.outputs["status"] == "completed", first.log[-3000:]
    head_before = job.gh.git(REPO, "rev-parse", "claude-e2b/PLAN")
    second = job.run("add_edit_delete.yaml", {"labels": "nightly"})
    assert second.outputs["status"] == "completed", second.log[-3000:]
    assert second.outputs["pr-number"] == first.outputs["pr-number"]
    pulls = job.gh.pulls(REPO)
    assert len(pulls) == 1
    assert sorted(pulls[0].labels) == ["claude-e2b", "nightly"]
    assert job.gh.git(REPO, "rev-parse", "claude-e2b/PLAN") != head_before
    result = json.loads(Path(second.outputs["result-path"]).read_text())
    assert result["pr"]["operation"] == "updated"


def test_comment_from_read_only_user_is_refused_without_a_sandbox(job):
    """A read-only commenter (even an OWNER by association) gets a reply; nothing runs."""
    payload = comment_payload(job.gh, "rita", "/claude-e2b run PLAN.md", "OWNER")
    run = job.run("add_edit_delete.yaml", event_name="issue_comment", payload=payload)
    assert run.conclusion == "success", run.log[-3000:]
    assert run.outputs["status"] == ""
    number = payload["issue"]["number"]
    replies = [c for c in job.gh.comments(REPO, number) if c.user != "rita"]
    assert len(replies) == 1
    assert "write access" in replies[0].body
    assert job.gh.pulls(REPO) == []
    assert not (job.tmp / "state" / "localbox").exists() or not any(
        (job.tmp / "state" / "localbox").iterdir()
    )
    assert job.model_requests == 0


def test_comment_from_write_user_runs_reacts_and_answers_once(job):
    """A CONTRIBUTOR with write permission: 👀, a PR, one result comment with its link."""
    payload = comment_payload(job.gh, "alice", "Could you?\n/claude-e2b run PLAN.md", "CONTRIBUTOR")
    number, comment_id = payload["issue"]["number"], payload["comment"]["id"]
    run = job.run("add_edit_delete.yaml", event_name="issue_comment", payload=payload)
    assert run.outputs["status"] == "completed", run.log[-3000:]
    assert [r.content for r in job.gh.reactions(REPO, comment_id=comment_id)] == ["eyes"]
    ours = [c for c in job.gh.comments(REPO, number) if c.user != "alice"]
    assert len(ours) == 1
    assert run.outputs["pr-url"] in ours[0].body
    # The same command again: the same comment is updated, no second PR.
    again = job.run("add_edit_delete.yaml", event_name="issue_comment", payload=payload)
    assert again.outputs["pr-number"] == run.outputs["pr-number"], again.log[-3000:]
    assert len([c for c in job.gh.comments(REPO, number) if c.user != "alice"]) == 1
    assert len(job.gh.pulls(REPO)) == 1


def test_timeout_opens_a_draft_pr_with_the_partial_work(job):
    """A run stopped by its time limit publishes its partial work as a draft."""
    run = job.run("slow.yaml", {"timeout-minutes": "0.15"})
    assert run.outputs["status"] == "timed_out", run.log[-3000:]
    assert run.conclusion == "failure"  # exit 1: incomplete
    pull = job.gh.pulls(REPO)[0]
    assert pull.pull is not None
    assert pull.pull.draft
    assert branch_changes(job.gh, pull.pull.head_ref) == {"ticks.txt": "A"}


def test_no_changes_opens_no_pr(job):
    """An agent that changes nothing: status no_changes, no PR, no branch."""
    run = job.run("no_changes.yaml")
    assert run.conclusion == "success", run.log[-3000:]
    assert run.outputs["status"] == "no_changes"
    assert run.outputs["pr-url"] == ""
    assert job.gh.pulls(REPO) == []
    assert "claude-e2b/PLAN" not in job.gh.git(REPO, "branch", "--list")


def test_github_faults_are_survived_without_duplicates(job):
    """Secondary rate limit and a 500 after creating the PR, a 422 on labels: one PR."""
    job.gh.add_fault(Fault.secondary_rate_limit("POST", "/repos/*/*/pulls", retry_after=1))
    job.gh.add_fault(Fault.status("POST", "/repos/*/*/pulls", 500, when="after"))
    job.gh.add_fault(Fault.status("POST", "/repos/*/*/issues/*/labels", 422))
    run = job.run("add_edit_delete.yaml")
    assert run.outputs["status"] == "completed", run.log[-3000:]
    assert run.conclusion == "success"
    pulls = job.gh.pulls(REPO)
    assert len(pulls) == 1
    assert pulls[0].labels == ["claude-e2b"]


def test_sign_commits_goes_through_the_git_data_api(job):
    """sign-commits: the commit is made by the API, verified, and its tree is git's."""
    run = job.run("add_edit_delete.yaml", {"sign-commits": "true"})
    assert run.outputs["status"] == "completed", run.log[-3000:]
    head = job.gh.git(REPO, "rev-parse", "claude-e2b/PLAN")
    verification = job.gh.verification(REPO, head)
    assert verification is not None
    assert verification["verified"] is True
    assert job.gh.requests_to("POST", "/repos/*/*/git/commits")
    # git's view of the applied checkout gives the same tree.
    git(job.workspace, "add", "-A")
    local_tree = git(job.workspace, "write-tree").strip()
    assert job.gh.git(REPO, "rev-parse", f"{head}^{{tree}}") == local_tree


def test_entrypoint_directly_with_the_runners_input_spelling(job, tmp_path):
    """./entrypoint alone, inputs as INPUT_TIMEOUT-MINUTES etc.: a bad value exits 2 and says so."""
    event = tmp_path / "event.json"
    event.write_text("{}")
    summary = tmp_path / "summary.md"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "GITHUB_ACTIONS": "true",
        "GITHUB_API_URL": job.gh.api_url,
        "GITHUB_SERVER_URL": job.gh.server_url,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_EVENT_NAME": "workflow_dispatch",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_WORKSPACE": str(job.workspace),
        "GITHUB_STEP_SUMMARY": str(summary),
        "INPUT_PLAN": "PLAN.md",
        "INPUT_GITHUB-TOKEN": job.gh.token,
        "INPUT_TIMEOUT-MINUTES": "soon",
    }
    done = subprocess.run(
        [str(job.action_dir / "entrypoint")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "::add-mask::" + job.gh.token in done.stdout
    assert "::error" in done.stdout
    assert "timeout-minutes must be a number" in done.stdout
    assert "timeout-minutes must be a number" in summary.read_text()
