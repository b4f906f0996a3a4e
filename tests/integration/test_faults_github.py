"""GitHub faults at the end of a run, against the GitHub stand-in (real git, PyGithub).

A finished run's changes are applied to a real checkout; ``delivery.publish_run``
then commits, pushes and opens the pull request while the stand-in fails. For each
fault: the work stays (the changes in the checkout, the commit on a local branch),
result.json is still written with the reason, the exit code is 1 (or 0 when the
fault was survived), the message says what to do, and there is never a second PR.

| fault                                   | what the user sees                                  |
|-----------------------------------------|-----------------------------------------------------|
| one 502 on the PR lookup                | nothing: retried, PR opened                         |
| 502 after the PR was made (answer lost) | nothing: looked up, not posted again, one PR        |
| 503 on every lookup                     | GitHubUnavailableError "after 5 attempts", exit 1   |
| 502 on every PR creation                | "could not create or find the pull request", exit 1 |
| 502 on every git push                   | PushError after 3 tries, exit 1                     |
| dropped connection on every PR update   | GitHubUnavailableError, the old PR kept, exit 1     |
| 403: token without pull-requests: write | GitHubAuthError naming `pull-requests: write`       |
| 403: token without contents: write      | PushError naming `contents: write`                  |
| 403: token without issues: write        | GitHubAuthError naming `issues: write` (comment)    |
| 422: the base branch does not exist     | GitHubValidationError quoting GitHub's error        |
| 422 injected with GitHub's errors list  | the same, quoting every entry                       |
| push to a protected branch (GH006)      | PushError: protected, set another `branch`          |
| 502 on every API tree (sign-commits)    | GitHubUnavailableError, commit kept locally         |
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from github import GithubException

from claude_e2b import delivery as delivery_module
from claude_e2b.config import Credentials, Overrides, PublishSettings, build_run_config
from claude_e2b.delivery import Delivery, publish_run, write_run_files
from claude_e2b.errors import (
    GitHubAuthError,
    GitHubUnavailableError,
    GitHubValidationError,
    PushError,
)
from claude_e2b.github import commit as commit_module
from claude_e2b.github.api import (
    BOT_LOGIN,
    LABELS,
    PULL_CREATE,
    GitHubApi,
    GitHubTarget,
    RetryPolicy,
    map_error,
)
from claude_e2b.plan import load_plan
from claude_e2b.report import ReportContext
from claude_e2b.result import AgentInfo, PlanInfo, RunResult, SandboxInfo, TimingInfo
from tests.gitrepo import commit_all, git
from tests.stand_ins.github_server import Fault, GitHubStandIn

REPO = "octo/app"
BRANCH = "claude-e2b/PLAN"
FAST = RetryPolicy(base_delay_s=0.01, max_delay_s=0.02, max_wait_s=5, secondary_wait_s=0.1)
PLAN = "---\ntitle: Greet\nlabels: [claude-e2b]\n---\nGreet the world.\n"
CHANGES = (
    {"path": "hello.py", "status": "added", "old_path": None, "mode": "100644"},
    {"path": "README.md", "status": "modified", "old_path": None, "mode": "100644"},
)
HELLO = "print('hello')\n"
README = "# App\n\nHello, world.\n"


@pytest.fixture(autouse=True)
def _quick_push_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The push's wait between tries (a clock, not the behaviour) made short."""
    monkeypatch.setattr(commit_module, "PUSH_RETRY_DELAY_S", 0.01)
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "0")


@pytest.fixture
def gh(tmp_path: Path) -> Iterator[GitHubStandIn]:
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "README.md").write_text("# App\n")
    (seed / "PLAN.md").write_text(PLAN)
    git(seed, "init", "-q", "-b", "main")
    commit_all(seed, "init")
    with GitHubStandIn(tmp_path / "github") as stand_in:
        stand_in.create_repo(REPO, source=seed)
        yield stand_in


@dataclass
class Finished:
    """A run that changed two files in its checkout, ready to be delivered."""

    gh: GitHubStandIn
    checkout: Path
    out: Path
    token: str

    def deliver(self, *, base: str = "main", sign: bool = False) -> Delivery:
        settings = PublishSettings(sign_commits=sign)
        config = build_run_config(
            load_plan(self.checkout / "PLAN.md"),
            Overrides(publish=settings),
            repo_dir=self.checkout,
            output_dir=self.out,
            credentials=Credentials(anthropic_api_key="sk-ant-test-key-0000"),
            run_id="run-faults-1",
        )
        target = GitHubTarget(self.gh.api_url, self.gh.server_url, REPO, self.token)
        with GitHubApi.open(target, pace=False, policy=FAST, sleep=lambda _s: None) as api:
            return publish_run(config, run_result(), target, api, base=base, ctx=ReportContext())

    def result_json(self, delivery: Delivery) -> dict:
        path = write_run_files(delivery.result, self.out, ReportContext())
        return json.loads(path.read_text())

    def work_is_kept(self) -> None:
        """The changes are in the working tree and in a commit on the local run branch."""
        assert (self.checkout / "hello.py").read_text() == HELLO
        assert (self.checkout / "README.md").read_text() == README
        assert git(self.checkout, "rev-parse", "--abbrev-ref", "HEAD") == "main"
        tip = f"refs/heads/{BRANCH}"
        assert git(self.checkout, "show", f"{tip}:hello.py") == HELLO.strip()
        assert git(self.checkout, "rev-parse", f"{tip}^") == git(self.checkout, "rev-parse", "HEAD")


def run_result() -> RunResult:
    return RunResult(
        run_id="run-faults-1",
        status="completed",
        plan=PlanInfo("PLAN.md", "Greet", 0, 0, 0),
        sandbox=SandboxInfo("local", "sbx-1", "anthropic-claude-code", 12.0),
        agent=AgentInfo(0, 3, "session-1", "Greeted the world."),
        verify=None,
        changes=CHANGES,
        skipped_changes=(),
        cost={
            "claude_usd": 0.01,
            "sandbox_usd": 0.0,
            "total_usd": 0.01,
            "input_tokens": 100,
            "output_tokens": 10,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
            "by_model": {},
        },
        timing=TimingInfo(total_s=30.0),
    )


@pytest.fixture
def run(gh: GitHubStandIn, tmp_path: Path) -> Finished:
    checkout = tmp_path / "checkout"
    subprocess.run(
        ["git", "clone", "-q", gh.clone_url(REPO), str(checkout)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    (checkout / "hello.py").write_text(HELLO)
    (checkout / "README.md").write_text(README)
    (tmp_path / "out").mkdir()
    return Finished(gh, checkout, tmp_path / "out", gh.token)


def weak_token(gh: GitHubStandIn, **permissions: str) -> str:
    """A workflow token whose `permissions:` lack something (the rest stays write)."""
    given = {"contents": "write", "pull-requests": "write", "issues": "write"}
    given.update({k.replace("_", "-"): v for k, v in permissions.items()})
    return gh.add_token(f"ghs_weak_{'_'.join(sorted(permissions))}_0000", BOT_LOGIN,
                        kind="app", permissions=given)  # fmt: skip


def statuses(gh: GitHubStandIn, method: str, pattern: str) -> list[int | None]:
    return [r.status for r in gh.requests_to(method, pattern)]


def failed_delivery(run: Finished, delivery: Delivery, kind: type) -> dict:
    """What every failed delivery shares: exit 1, the work kept, result.json with the reason."""
    assert isinstance(delivery.error, kind), delivery.error
    assert delivery.exit_code == 1
    run.work_is_kept()
    data = run.result_json(delivery)
    assert data["status"] == "completed"
    assert data["pr"] is None
    [note] = [w for w in data["warnings"] if w.startswith("no pull request:")]
    assert delivery.error.message in note
    assert "the changes are applied to the checkout" in note
    assert f"git push --force origin {BRANCH}" in note  # how to publish the kept commit
    assert len(run.gh.pulls(REPO)) <= 1
    return data


# -- survived


def test_one_bad_gateway_on_the_lookup_is_retried(run: Finished) -> None:
    """An idempotent GET that fails once is repeated; the PR is opened, exit 0."""
    run.gh.add_fault(Fault.status("GET", "/repos/*/*/pulls", 502))
    delivery = run.deliver()
    assert delivery.error is None
    assert delivery.exit_code == 0
    assert delivery.result.pr is not None
    assert statuses(run.gh, "GET", "/repos/*/*/pulls")[:2] == [502, 200]
    assert len(run.gh.pulls(REPO)) == 1


def test_a_lost_answer_to_the_pr_creation_is_looked_up_not_repeated(run: Finished) -> None:
    """502 after GitHub made the PR: the lookup finds it; one POST, one PR, exit 0."""
    run.gh.add_fault(Fault.status("POST", "/repos/*/*/pulls", 502, when="after"))
    delivery = run.deliver()
    assert delivery.exit_code == 0
    assert delivery.result.pr is not None
    assert delivery.result.pr.number == 1
    assert statuses(run.gh, "POST", "/repos/*/*/pulls") == [502]
    assert len(run.gh.pulls(REPO)) == 1


# -- 5xx that does not end


def test_persistent_server_errors_say_what_to_do(run: Finished) -> None:
    """503 on every lookup: GitHubUnavailableError after the retries, the work kept."""
    run.gh.add_fault(Fault.status("GET", "/repos/*/*/pulls", 503, times=100))
    delivery = run.deliver()
    failed_delivery(run, delivery, GitHubUnavailableError)
    error = delivery.error
    assert error is not None
    assert f"after {FAST.attempts} attempts" in error.message
    assert "try again later" in (error.hint or "")
    assert statuses(run.gh, "GET", "/repos/*/*/pulls") == [503] * FAST.attempts
    assert run.gh.requests_to("POST", "/repos/*/*/pulls") == []
    # The push went through before: the branch is on GitHub too.
    assert run.gh.git(REPO, "rev-parse", BRANCH) == git(run.checkout, "rev-parse", BRANCH)


def test_a_creation_that_keeps_failing_never_makes_two_prs(run: Finished) -> None:
    """502 on every POST /pulls: looked up before each new try; no PR, exit 1."""
    run.gh.add_fault(Fault.status("POST", "/repos/*/*/pulls", 502, times=100))
    delivery = run.deliver()
    failed_delivery(run, delivery, GitHubUnavailableError)
    assert "could not create or find the pull request" in str(delivery.error)
    posts = len(run.gh.requests_to("POST", "/repos/*/*/pulls"))
    assert posts == FAST.attempts
    assert len(run.gh.requests_to("GET", "/repos/*/*/pulls")) == posts  # a lookup before each
    assert run.gh.pulls(REPO) == []


def test_a_push_that_keeps_failing_is_retried_then_reported(run: Finished) -> None:
    """502 on every git-receive-pack: three tries, PushError, no PR, the commit kept."""
    run.gh.add_fault(Fault.status("POST", f"/{REPO}.git/git-receive-pack", 502, times=100))
    delivery = run.deliver()
    failed_delivery(run, delivery, PushError)
    assert statuses(run.gh, "POST", f"/{REPO}.git/git-receive-pack") == [502] * 3
    assert run.gh.token not in str(delivery.error)
    assert run.gh.pulls(REPO) == []


def test_an_update_whose_connection_keeps_dropping_keeps_the_old_pr(run: Finished) -> None:
    """A second run whose PATCH never answers: exit 1, the first PR untouched, not doubled."""
    assert run.deliver().exit_code == 0
    (run.checkout / "hello.py").write_text(HELLO)  # the same work, run again
    run.gh.add_fault(Fault.drop("PATCH", "/repos/*/*/pulls/*", times=100))
    delivery = run.deliver()
    assert isinstance(delivery.error, GitHubUnavailableError)
    assert "no answer from GitHub" in delivery.error.message
    assert delivery.exit_code == 1
    assert len(run.gh.pulls(REPO)) == 1
    assert len(run.gh.requests_to("POST", "/repos/*/*/pulls")) == 1


# -- 403: a permission the workflow did not grant


def test_without_pull_requests_write_the_message_names_it(run: Finished) -> None:
    """The push lands; POST /pulls is refused: GitHubAuthError naming `pull-requests: write`."""
    run.token = weak_token(run.gh, pull_requests="read")
    delivery = run.deliver()
    failed_delivery(run, delivery, GitHubAuthError)
    error = delivery.error
    assert error is not None
    assert error.status == 403
    assert "(the token needs pull-requests: write)" in error.message
    assert "`pull-requests: write`" in (error.hint or "")
    assert "permissions:" in (error.hint or "")
    assert statuses(run.gh, "POST", "/repos/*/*/pulls") == [403]  # a refusal is not retried
    assert run.gh.git(REPO, "rev-parse", BRANCH)  # the branch got there


def test_without_contents_write_the_push_says_so(run: Finished) -> None:
    """A read-only token cannot push: PushError naming `contents: write`, nothing on GitHub."""
    run.token = weak_token(run.gh, contents="read")
    delivery = run.deliver()
    failed_delivery(run, delivery, PushError)
    assert "contents: write" in (delivery.error.hint or "")  # type: ignore[union-attr]
    assert BRANCH not in run.gh.git(REPO, "branch", "--list")
    refused = [s for s in statuses(run.gh, "GET", f"/{REPO}.git/info/refs") if s == 403]
    assert refused == [403]  # a refusal is not retried


def test_without_issues_write_a_comment_names_it(gh: GitHubStandIn) -> None:
    """The result comment refused: GitHubAuthError naming `issues: write` (GitHub's header)."""
    number = gh.add_issue(REPO, "Please", user="octocat")
    token = weak_token(gh, issues="read", pull_requests="read")
    target = GitHubTarget(gh.api_url, gh.server_url, REPO, token)
    with (
        GitHubApi.open(target, pace=False, policy=FAST) as api,
        pytest.raises(GitHubAuthError) as raised,
    ):
        api.upsert_comment(number, "<!-- claude-e2b -->", "Done")
    assert "(the token needs issues: write)" in raised.value.message
    assert "`issues: write`" in (raised.value.hint or "")
    assert gh.comments(REPO, number) == []


# -- 422: GitHub refused the content


def test_a_base_branch_that_does_not_exist_quotes_github(run: Finished) -> None:
    """base: release (no such branch): GitHub's 422 and its errors list reach the user."""
    delivery = run.deliver(base="release")
    failed_delivery(run, delivery, GitHubValidationError)
    assert "Validation Failed; PullRequest base invalid" in str(delivery.error)
    assert statuses(run.gh, "POST", "/repos/*/*/pulls") == [422]


def test_an_injected_validation_error_is_quoted_in_full(run: Finished) -> None:
    """A 422 with a custom message: every entry of GitHub's errors list is in the message."""
    run.gh.add_fault(
        Fault.status(
            "POST",
            "/repos/*/*/pulls",
            422,
            errors=[
                {"resource": "PullRequest", "code": "custom", "message": "title is too long"},
                {"resource": "Issue", "field": "body", "code": "invalid"},
            ],
        )
    )
    delivery = run.deliver()
    failed_delivery(run, delivery, GitHubValidationError)
    text = str(delivery.error)
    assert "GitHub answered 422 Validation Failed" in text
    assert "title is too long" in text
    assert "Issue body invalid" in text
    assert len(run.gh.requests_to("POST", "/repos/*/*/pulls")) == 1


# -- the push refused by GitHub


def test_a_protected_branch_refuses_the_push_and_says_what_to_do(run: Finished) -> None:
    """GH006 from a pre-receive hook: PushError (not retried) saying to pick another branch."""
    run.gh.protect_branch(REPO, BRANCH)
    delivery = run.deliver()
    failed_delivery(run, delivery, PushError)
    error = delivery.error
    assert error is not None
    assert "GH006" in error.message
    assert "protected branch" in (error.hint or "")
    assert "`branch`" in (error.hint or "")
    assert len(run.gh.requests_to("POST", f"/{REPO}.git/git-receive-pack")) == 1
    assert BRANCH not in run.gh.git(REPO, "branch", "--list")


def test_a_local_branch_of_the_user_is_never_moved(run: Finished) -> None:
    """A local branch of the run's name exists: left alone, the commit named by its sha."""
    git(run.checkout, "branch", BRANCH)
    before = git(run.checkout, "rev-parse", BRANCH)
    run.gh.protect_branch(REPO, BRANCH)
    delivery = run.deliver()
    assert isinstance(delivery.error, PushError)
    assert git(run.checkout, "rev-parse", BRANCH) == before
    hint = delivery.error.hint or ""
    assert "exists and was left alone" in hint
    sha = hint.split("git push --force origin ")[1].split(":")[0]
    assert git(run.checkout, "show", f"{sha}:hello.py") == HELLO.strip()


def test_sign_commits_failure_keeps_a_local_commit(run: Finished) -> None:
    """sign-commits with the API's trees failing: nothing published, the commit kept here."""
    run.gh.add_fault(Fault.status("POST", "/repos/*/*/git/trees", 502, times=100))
    delivery = run.deliver(sign=True)
    failed_delivery(run, delivery, GitHubUnavailableError)
    assert run.gh.requests_to("POST", f"/{REPO}.git/git-receive-pack") == []
    assert BRANCH not in run.gh.git(REPO, "branch", "--list")


def test_the_note_names_the_reason_and_the_way_out() -> None:
    """The warning carries the message and the hint, once each."""
    note = delivery_module.no_pr_note(PushError("push refused", hint="push it by hand"))
    assert note == (
        "no pull request: push refused; the changes are applied to the checkout; push it by hand"
    )


@pytest.mark.parametrize(
    ("header", "endpoint", "needed"),
    [
        ("issues=write; pull_requests=write", LABELS, "pull-requests: write"),  # ours is accepted
        ("contents=write; workflows=write", PULL_CREATE, "contents: write"),  # GitHub knows best
        ("contents=read,pull_requests=write", None, "contents: read, pull-requests: write"),
        (None, PULL_CREATE, "pull-requests: write"),
        (None, None, "contents: write, pull-requests: write, issues: write"),
    ],
)
def test_the_permission_named_in_a_403(header, endpoint, needed) -> None:
    """The endpoint's own permission when GitHub accepts it, else GitHub's first set."""
    headers = {"X-Accepted-GitHub-Permissions": header} if header else {}
    exc = GithubException(403, {"message": "Resource not accessible by integration"}, headers)
    error = map_error("do it", exc, endpoint)
    assert isinstance(error, GitHubAuthError)
    assert error.message.endswith(f"(the token needs {needed})")
    assert f"`{needed}`" in (error.hint or "")
