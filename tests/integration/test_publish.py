"""Publishing against the GitHub stand-in: real git over smart HTTP, PyGithub on the REST API."""

from __future__ import annotations

import base64
import http.server
import json
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from claude_e2b import audit
from claude_e2b.errors import GitHubAuthError, GitHubRateLimitError, PublishError, PushError
from claude_e2b.github.api import (
    BOT_LOGIN,
    GitHubApi,
    GitHubTarget,
    RetryPolicy,
    basic_credential,
)
from claude_e2b.github.commit import build_tree, push_commit
from claude_e2b.github.publish import PullRequestSpec, default_branch_name, publish
from tests.gitrepo import commit_all, git, make_repo
from tests.stand_ins.github_server import Fault, GitHubStandIn

REPO = "acme/widgets"
BRANCH = default_branch_name("plans/add-feature.md")
FAST = RetryPolicy(base_delay_s=0.01, max_delay_s=0.05, max_wait_s=5, secondary_wait_s=0.2)
BINARY = bytes(range(256)) * 8


@pytest.fixture(autouse=True)
def _no_git_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    """A git that is refused fails at once instead of asking for a password."""
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "0")


@pytest.fixture
def gh(tmp_path: Path) -> Iterator[GitHubStandIn]:
    """The stand-in with acme/widgets (main: files of every kind) and two users."""
    source = make_repo(
        tmp_path / "source",
        {
            "README.md": b"widgets\n",
            "src/app.py": b"print('app')\n",
            "src/old_name.py": b"moved\n",
            "data/blob.bin": BINARY,
            "run.sh": b"#!/bin/sh\necho run\n",
            "gone.txt": b"to delete\n",
            "notes.txt": b"user notes\n",
        },
        executable=("run.sh",),
    )
    commit_all(source, "initial")
    with GitHubStandIn(tmp_path / "gh") as stand_in:
        stand_in.create_repo(REPO, source=source)
        stand_in.add_user("bob", permission="write")
        stand_in.add_user("alice", permission="read")
        yield stand_in


@pytest.fixture
def checkout(gh: GitHubStandIn, tmp_path: Path) -> Path:
    """A clone as actions/checkout leaves it: the token's header persisted in .git/config."""
    target = tmp_path / "checkout"
    subprocess.run(
        ["git", "clone", "-q", gh.clone_url(REPO), str(target)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    git(target, "config", "--local", f"http.{gh.server_url}/.extraheader", gh.extraheader())
    return target


@pytest.fixture
def target(gh: GitHubStandIn) -> GitHubTarget:
    return GitHubTarget(gh.api_url, gh.server_url, REPO, gh.token)


@pytest.fixture
def waits() -> list[float]:
    """Every wait the API client asked for (it does not really sleep in these tests)."""
    return []


@pytest.fixture
def api(target: GitHubTarget, waits: list[float]) -> Iterator[GitHubApi]:
    with GitHubApi.open(target, pace=False, policy=FAST, sleep=waits.append) as client:
        yield client


def spec(**overrides: Any) -> PullRequestSpec:
    fields: dict[str, Any] = {
        "branch": BRANCH,
        "base": "main",
        "title": "Add the feature",
        "body": "First body",
        "draft": False,
        "labels": ("claude", "automated"),
        "reviewers": ("bob",),
        "commit_message": "Add the feature\n\nBy claude-e2b.",
    }
    return PullRequestSpec(**(fields | overrides))


def change(path: str, status: str, mode: str = "100644", old_path: str | None = None) -> dict:
    return {"path": path, "status": status, "old_path": old_path, "mode": mode}


def agent_changes(repo: Path) -> list[dict[str, Any]]:
    """Working-tree edits of every kind, as apply.py leaves them, and the changes list."""
    (repo / "README.md").write_text("widgets, improved\n")
    (repo / "src" / "old_name.py").rename(repo / "src" / "new name ü.py")
    (repo / "gone.txt").unlink()
    (repo / "data" / "blob.bin").write_bytes(BINARY[::-1] + b"\0\xff\xfe")
    (repo / "run.sh").chmod(0o644)
    (repo / "tool.sh").write_text("#!/bin/sh\n")
    (repo / "tool.sh").chmod(0o755)
    (repo / "docs").mkdir()
    (repo / "docs" / "link.md").symlink_to("../README.md")
    return [
        change("README.md", "modified"),
        change("src/new name ü.py", "renamed", old_path="src/old_name.py"),
        change("gone.txt", "deleted", mode=""),
        change("data/blob.bin", "modified"),
        change("run.sh", "modified"),
        change("tool.sh", "added", "100755"),
        change("docs/link.md", "added", "120000"),
    ]


EXPECTED = {
    ("M", "README.md"),
    ("D", "src/old_name.py"),
    ("A", "src/new name ü.py"),
    ("D", "gone.txt"),
    ("M", "data/blob.bin"),
    ("M", "run.sh"),
    ("A", "tool.sh"),
    ("A", "docs/link.md"),
}


def branch_diff(gh: GitHubStandIn, branch: str = BRANCH) -> set[tuple[str, ...]]:
    """`git diff --name-status main <branch>` in the stand-in's bare repository."""
    out = gh.git(
        REPO,
        "-c",
        "core.quotepath=off",
        "diff",
        "--name-status",
        "--no-renames",
        "main",
        f"refs/heads/{branch}",
    )
    return {tuple(line.split("\t")) for line in out.splitlines()}


def branch_modes(gh: GitHubStandIn, branch: str = BRANCH) -> dict[str, str]:
    out = gh.git(REPO, "-c", "core.quotepath=off", "ls-tree", "-r", f"refs/heads/{branch}")
    return {line.split("\t")[1]: line.split()[0] for line in out.splitlines()}


def statuses(gh: GitHubStandIn, method: str, pattern: str) -> list[int | None]:
    return [r.status for r in gh.requests_to(method, pattern)]


# -- the main path


def test_first_publish_opens_a_pr_holding_exactly_the_changes(
    gh: GitHubStandIn, checkout: Path, target: GitHubTarget, api: GitHubApi
) -> None:
    """A pushed branch with exactly the agent's changes, and a PR with labels and reviewers."""
    changes = agent_changes(checkout)
    (checkout / "notes.txt").write_text("the user's own edit, not the agent's\n")
    head = git(checkout, "rev-parse", "HEAD")

    pr = publish(checkout, changes, target, spec(), api)

    assert (pr.number, pr.branch, pr.draft, pr.operation) == (1, BRANCH, False, "created")
    assert pr.url == f"{gh.server_url}/{REPO}/pull/1"
    assert branch_diff(gh) == EXPECTED
    modes = branch_modes(gh)
    assert (modes["tool.sh"], modes["run.sh"], modes["docs/link.md"]) == (
        "100755",
        "100644",
        "120000",
    )
    assert gh.git(REPO, "cat-file", "blob", f"refs/heads/{BRANCH}:docs/link.md") == "../README.md"
    assert gh.git(REPO, "rev-parse", f"refs/heads/{BRANCH}^") == head
    assert gh.git(REPO, "log", "-1", "--format=%an|%B", f"refs/heads/{BRANCH}") == (
        "github-actions[bot]|Add the feature\n\nBy claude-e2b."
    )
    [pull] = gh.pulls(REPO)
    assert (pull.title, pull.body, pull.user) == ("Add the feature", "First body", BOT_LOGIN)
    assert pull.pull is not None
    assert (pull.pull.head_ref, pull.pull.base_ref, pull.pull.draft) == (BRANCH, "main", False)
    assert gh.labels(REPO, 1) == ["claude", "automated"]
    assert gh.reviewers(REPO, 1) == ["bob"]
    assert git(checkout, "rev-parse", "HEAD") == head  # the checkout's HEAD did not move


def test_second_run_updates_the_same_pr(
    gh: GitHubStandIn, checkout: Path, target: GitHubTarget, api: GitHubApi
) -> None:
    """The same run again: one PR, updated; the branch moves to the new commit."""
    changes = agent_changes(checkout)
    first = publish(checkout, changes, target, spec(), api)
    first_tip = gh.git(REPO, "rev-parse", f"refs/heads/{BRANCH}")
    (checkout / "README.md").write_text("widgets, improved twice\n")

    second = publish(checkout, changes, target, spec(title="Better", body="Second body"), api)

    assert (second.number, second.operation) == (first.number, "updated")
    assert [p.number for p in gh.pulls(REPO)] == [1]
    assert (gh.pull(REPO, 1).title, gh.pull(REPO, 1).body) == ("Better", "Second body")
    tip = gh.git(REPO, "rev-parse", f"refs/heads/{BRANCH}")
    assert tip != first_tip
    assert gh.pull(REPO, 1).pull.head_sha == tip  # type: ignore[union-attr]
    assert gh.git(REPO, "show", f"{tip}:README.md") == "widgets, improved twice"
    assert branch_diff(gh) == EXPECTED
    assert gh.labels(REPO, 1) == ["claude", "automated"]
    assert statuses(gh, "POST", "/repos/*/*/pulls") == [201]


def test_comment_is_upserted_not_repeated(
    gh: GitHubStandIn, checkout: Path, target: GitHubTarget, api: GitHubApi
) -> None:
    """upsert_comment edits our marked comment in place; others' comments are left alone."""
    number = gh.add_issue(REPO, "Please do it", user="alice")
    gh.add_comment(REPO, number, "/claude <!-- claude-e2b -->", user="alice")
    first = api.upsert_comment(number, "<!-- claude-e2b -->", "Working on it")
    second = api.upsert_comment(number, "<!-- claude-e2b -->", "Done: #1")
    ours = [c for c in gh.comments(REPO, number) if c.user == BOT_LOGIN]
    assert len(ours) == 1
    assert ours[0].body == "Done: #1\n\n<!-- claude-e2b -->"
    assert first == second == f"{gh.server_url}/{REPO}/issues/{number}#issuecomment-{ours[0].id}"
    assert len(gh.comments(REPO, number)) == 2


def test_draft_follows_the_spec(
    gh: GitHubStandIn, checkout: Path, target: GitHubTarget, api: GitHubApi
) -> None:
    """An incomplete run opens a draft; a completed re-run marks the same PR ready."""
    changes = agent_changes(checkout)
    pr = publish(checkout, changes, target, spec(draft=True), api)
    assert pr.draft is True
    assert gh.pull(REPO, 1).pull.draft is True  # type: ignore[union-attr]
    again = publish(checkout, changes, target, spec(draft=False), api)
    assert (again.number, again.draft) == (1, False)
    assert gh.pull(REPO, 1).pull.draft is False  # type: ignore[union-attr]


def test_no_drafts_in_the_repository_opens_a_ready_pr_and_warns(
    gh: GitHubStandIn, checkout: Path, target: GitHubTarget, api: GitHubApi
) -> None:
    """GitHub's 422 for drafts: the PR is opened ready, and the caller hears about it."""
    gh.configure_repo(REPO, drafts_supported=False)
    warnings: list[str] = []
    pr = publish(
        checkout, agent_changes(checkout), target, spec(draft=True), api, on_warning=warnings.append
    )
    assert (pr.number, pr.draft) == (1, False)
    assert any("draft" in w for w in warnings)


def test_refused_reviewers_warn_but_keep_the_pr(
    gh: GitHubStandIn, checkout: Path, target: GitHubTarget, api: GitHubApi
) -> None:
    """A non-collaborator and the bot itself as reviewers: warnings, the PR stands."""
    gh.add_user("mallory")
    gh.configure_repo(REPO, private=True)
    warnings: list[str] = []
    pr = publish(
        checkout,
        agent_changes(checkout),
        target,
        spec(reviewers=("mallory", BOT_LOGIN)),
        api,
        on_warning=warnings.append,
    )
    assert pr.operation == "created"
    assert gh.reviewers(REPO, 1) == []
    assert len(warnings) == 2
    assert any("collaborators" in w for w in warnings)
    assert any("cannot review" in w for w in warnings)


def test_the_token_leaks_nowhere(
    gh: GitHubStandIn, checkout: Path, target: GitHubTarget, api: GitHubApi
) -> None:
    """No request path or body carries the token; neither does any log event."""
    gh.add_fault(Fault.secondary_rate_limit("POST", "/repos/*/*/pulls"))
    with capture_logs() as logs:
        publish(checkout, agent_changes(checkout), target, spec(), api)
    assert gh.leaks(gh.token) == []
    assert gh.leaks(basic_credential(gh.token)) == []
    assert any(e["event"] == "github.retry" for e in logs)  # the capture did see our events
    text = repr(logs)
    assert gh.token not in text
    assert basic_credential(gh.token) not in text
    pushes = gh.requests_to("POST", f"/{REPO}.git/git-receive-pack")
    assert pushes
    assert pushes[-1].login == BOT_LOGIN


@pytest.fixture
def audit_file(tmp_path: Path) -> Iterator[Path]:
    """Audit lines of the test go to a file of its own (and nowhere after it)."""
    path = tmp_path / "audit" / "audit.jsonl"
    audit.set_audit_file(path, run_id="run-audit-1")
    yield path
    audit.set_audit_file(None)


def audit_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def route_regex(template: str) -> re.Pattern[str]:
    """``GET /repos/{owner}/{repo}/git/refs/{ref}`` → a regex over "METHOD route"."""
    parts = re.split(r"(\{[^}]+\})", template)
    body = "".join(
        ".+" if part == "{ref}" else "[^/]+" if part.startswith("{") else re.escape(part)
        for part in parts
    )
    return re.compile(body)


def test_every_github_operation_leaves_one_audit_line_without_the_token(
    gh: GitHubStandIn,
    checkout: Path,
    target: GitHubTarget,
    api: GitHubApi,
    audit_file: Path,
) -> None:
    """API calls and the push: one line each with route, outcome, attempts; no token."""
    gh.add_fault(Fault.status("GET", "/repos/*/*/pulls", 502))
    publish(checkout, agent_changes(checkout), target, spec(), api)
    api.upsert_comment(gh.add_issue(REPO, "x", user="alice"), "<!-- m -->", "hello")

    text = audit_file.read_text()
    assert gh.token not in text
    assert basic_credential(gh.token) not in text
    lines = audit_lines(audit_file)
    assert all(line["run_id"] == "run-audit-1" for line in lines)
    outcomes = {(line.get("route"), line["outcome"], line.get("status")) for line in lines}
    # GET /user is refused to a workflow's token (it is then the bot): the only non-ok line.
    assert {o for o in outcomes if o[1] != "ok"} == {("GET /user", "GitHubAuthError", 403)}
    assert all(isinstance(line["duration_ms"], float) and line["ts"] for line in lines)
    calls = [line for line in lines if line["audit"] == "github.api"]
    routes = [line["route"] for line in calls]
    for route in (
        "GET /repos/{owner}/{repo}/pulls",
        "POST /repos/{owner}/{repo}/pulls",
        "POST /repos/{owner}/{repo}/issues/{issue_number}/labels",
        "POST /repos/{owner}/{repo}/pulls/{pull_number}/requested_reviewers",
        "GET /repos/{owner}/{repo}/issues/{issue_number}/comments",
        "POST /repos/{owner}/{repo}/issues/{issue_number}/comments",
    ):
        assert route in routes, route
    # Each line's route names requests that really reached GitHub, in the same number.
    seen = [f"{r.method} {r.route}" for r in gh.requests if r.kind == "rest"]
    for call in calls:
        for one in call["route"].split(" + "):
            assert any(route_regex(one).fullmatch(s) for s in seen), one
    made = sum(call["attempts"] for call in calls if " + " not in call["route"])
    assert made == len(seen)
    lookup = next(c for c in calls if c["route"] == "GET /repos/{owner}/{repo}/pulls")
    assert lookup["attempts"] == 2  # the 502, then the answer
    assert {c["target"] for c in calls} >= {REPO, f"{REPO}#1"}
    [push] = [line for line in lines if line["audit"] == "git.push"]
    assert push["target"] == gh.clone_url(REPO)
    assert (push["branch"], push["attempts"]) == (BRANCH, 1)
    assert push["commit"] == gh.git(REPO, "rev-parse", f"refs/heads/{BRANCH}")


def test_failed_operations_are_audited_with_their_outcome(
    gh: GitHubStandIn, checkout: Path, api: GitHubApi, audit_file: Path
) -> None:
    """A refused push and a refused API call: their lines say how they ended, token-free."""
    weak = gh.add_token(
        "ghs_audit_weak_token_0123456789",
        BOT_LOGIN,
        kind="app",
        permissions={"contents": "read", "pull-requests": "read"},
    )
    with pytest.raises(PushError):
        push_commit(checkout, gh.clone_url(REPO), weak, git(checkout, "rev-parse", "HEAD"), "b")
    with (
        GitHubApi.open(
            GitHubTarget(gh.api_url, gh.server_url, REPO, weak), pace=False, policy=FAST
        ) as refused,
        pytest.raises(GitHubAuthError),
    ):
        refused.create_pull(branch="main", base="main", title="t", body="b", draft=False)
    lines = audit_lines(audit_file)
    assert [(line["audit"], line["outcome"]) for line in lines] == [
        ("git.push", "PushError"),
        ("github.api", "GitHubAuthError"),
    ]
    assert lines[1]["status"] == 403
    assert lines[1]["route"] == "POST /repos/{owner}/{repo}/pulls"
    assert weak not in audit_file.read_text()
    assert basic_credential(weak) not in audit_file.read_text()


def test_audit_lines_reach_the_log_too(gh: GitHubStandIn, api: GitHubApi) -> None:
    """Without a file the lines still go through structlog as "audit" events."""
    with capture_logs() as logs:
        api.find_open_pull(BRANCH, "main")
    [line] = [e for e in logs if e["event"] == "audit"]
    assert (line["audit"], line["route"], line["outcome"]) == (
        "github.api",
        "GET /repos/{owner}/{repo}/pulls",
        "ok",
    )


def test_push_sends_one_authorization_header(tmp_path: Path, checkout: Path) -> None:
    """Checkout's persisted header is replaced, not doubled; the token is not in argv."""
    seen: list[list[str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get_all("Authorization") or [])
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/acme/widgets.git"
        git(
            checkout,
            "config",
            "--local",
            f"http.http://127.0.0.1:{server.server_address[1]}/.extraheader",
            "AUTHORIZATION: basic c3RhbGU=",
        )
        with pytest.raises(PushError):
            push_commit(
                checkout,
                url,
                "ghs_fresh_token",
                git(checkout, "rev-parse", "HEAD"),
                "b",
                attempts=1,
            )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert seen
    assert all(h == [f"basic {basic_credential('ghs_fresh_token')}"] for h in seen)


# -- faults


def test_secondary_rate_limit_on_pr_creation_waits_retry_after(
    gh: GitHubStandIn, checkout: Path, target: GitHubTarget, api: GitHubApi, waits: list[float]
) -> None:
    """403 secondary rate limit with Retry-After: 3 on POST /pulls: wait 3 s, then one PR."""
    gh.add_fault(Fault.secondary_rate_limit("POST", "/repos/*/*/pulls", retry_after=3))
    pr = publish(checkout, agent_changes(checkout), target, spec(), api)
    assert pr.operation == "created"
    assert statuses(gh, "POST", "/repos/*/*/pulls") == [403, 201]
    assert 3.0 in waits
    assert [p.number for p in gh.pulls(REPO)] == [1]


def test_lost_answer_on_pr_creation_makes_no_duplicate(
    gh: GitHubStandIn, checkout: Path, target: GitHubTarget, api: GitHubApi
) -> None:
    """500 after the PR was made: the lookup finds it; nothing is posted again."""
    gh.add_fault(Fault.status("POST", "/repos/*/*/pulls", 500, when="after"))
    pr = publish(checkout, agent_changes(checkout), target, spec(), api)
    assert (pr.number, pr.operation) == (1, "created")
    assert statuses(gh, "POST", "/repos/*/*/pulls") == [500]
    assert [p.number for p in gh.pulls(REPO)] == [1]
    assert gh.labels(REPO, 1) == ["claude", "automated"]


def test_dropped_connection_on_pr_creation_makes_no_duplicate(
    gh: GitHubStandIn, checkout: Path, target: GitHubTarget, api: GitHubApi
) -> None:
    """A connection dropped after the PR was made: found by the lookup, not posted again."""
    gh.add_fault(Fault.drop("POST", "/repos/*/*/pulls", when="after"))
    pr = publish(checkout, agent_changes(checkout), target, spec(), api)
    assert (pr.number, pr.operation) == (1, "created")
    assert statuses(gh, "POST", "/repos/*/*/pulls") == [None]
    assert len(gh.pulls(REPO)) == 1


def test_server_errors_before_creation_are_retried(
    gh: GitHubStandIn, checkout: Path, target: GitHubTarget, api: GitHubApi
) -> None:
    """500s on the lookup and on the POST (nothing made): retried until the PR exists once."""
    gh.add_fault(Fault.status("GET", "/repos/*/*/pulls", 502, times=2))
    gh.add_fault(Fault.status("POST", "/repos/*/*/pulls", 500, times=2))
    pr = publish(checkout, agent_changes(checkout), target, spec(), api)
    assert pr.operation == "created"
    assert statuses(gh, "POST", "/repos/*/*/pulls") == [500, 500, 201]
    assert len(gh.pulls(REPO)) == 1


def test_eventual_consistency_after_creation(
    gh: GitHubStandIn, checkout: Path, target: GitHubTarget, api: GitHubApi
) -> None:
    """422 on labels and reviewers right after creation: retried until they are set."""
    gh.add_fault(Fault.status("POST", "/repos/*/*/issues/*/labels", 422, times=2))
    gh.add_fault(Fault.status("POST", "/repos/*/*/pulls/*/requested_reviewers", 422))
    warnings: list[str] = []
    publish(checkout, agent_changes(checkout), target, spec(), api, on_warning=warnings.append)
    assert gh.labels(REPO, 1) == ["claude", "automated"]
    assert gh.reviewers(REPO, 1) == ["bob"]
    assert statuses(gh, "POST", "/repos/*/*/issues/*/labels") == [422, 422, 200]
    assert warnings == []


def test_update_survives_a_server_error_on_patch(
    gh: GitHubStandIn, checkout: Path, target: GitHubTarget, api: GitHubApi
) -> None:
    """PATCH of the whole title and body is safe to repeat: a 500 is retried."""
    changes = agent_changes(checkout)
    publish(checkout, changes, target, spec(), api)
    gh.add_fault(Fault.status("PATCH", "/repos/*/*/pulls/*", 500))
    pr = publish(checkout, changes, target, spec(body="Second body"), api)
    assert pr.operation == "updated"
    assert gh.pull(REPO, 1).body == "Second body"
    assert statuses(gh, "PATCH", "/repos/*/*/pulls/*") == [500, 200]


def test_push_is_retried_after_a_bad_gateway(
    gh: GitHubStandIn, checkout: Path, target: GitHubTarget, api: GitHubApi
) -> None:
    """502 on git-receive-pack: the same commit is pushed again and lands."""
    gh.add_fault(Fault.status("POST", f"/{REPO}.git/git-receive-pack", 502))
    publish(checkout, agent_changes(checkout), target, spec(), api)
    assert statuses(gh, "POST", f"/{REPO}.git/git-receive-pack") == [502, 200]
    assert branch_diff(gh) == EXPECTED


def test_push_without_write_permission_says_what_to_do(
    gh: GitHubStandIn, checkout: Path, api: GitHubApi
) -> None:
    """A token with contents: read cannot push: PushError naming the permission, exit 1."""
    weak = gh.add_token(
        "ghs_read_only_token",
        BOT_LOGIN,
        kind="app",
        permissions={"contents": "read", "pull-requests": "write"},
    )
    target = GitHubTarget(gh.api_url, gh.server_url, REPO, weak)
    with pytest.raises(PushError) as raised:
        publish(checkout, agent_changes(checkout), target, spec(), api)
    assert raised.value.exit_code == 1
    assert "contents: write" in (raised.value.hint or "")
    assert weak not in str(raised.value)
    assert gh.pulls(REPO) == []


def test_bad_token_and_missing_permission_map_to_auth_errors(
    gh: GitHubStandIn, checkout: Path, target: GitHubTarget, api: GitHubApi
) -> None:
    """401 and 'not permitted to create pull requests' become GitHubAuthError with hints."""
    gh.configure_repo(REPO, actions_can_open_prs=False)
    with pytest.raises(GitHubAuthError) as raised:
        publish(checkout, agent_changes(checkout), target, spec(), api)
    assert "Allow GitHub Actions" in (raised.value.hint or "")
    bad = GitHubTarget(gh.api_url, gh.server_url, REPO, "ghp_not_a_real_token")
    with (
        GitHubApi.open(bad, pace=False, policy=FAST) as stranger,
        pytest.raises(GitHubAuthError) as raised,
    ):
        stranger.find_open_pull(BRANCH, "main")
    assert raised.value.status == 401


def test_a_long_rate_limit_is_reported_not_waited(
    gh: GitHubStandIn, api: GitHubApi, waits: list[float]
) -> None:
    """A primary rate limit resetting in an hour: GitHubRateLimitError at once, no wait."""
    gh.add_fault(Fault.primary_rate_limit("GET", "/repos/*/*/pulls", reset_in=3600))
    with pytest.raises(GitHubRateLimitError) as raised:
        api.find_open_pull(BRANCH, "main")
    assert waits == []
    assert raised.value.exit_code == 1


def test_endless_secondary_rate_limit_gives_up(
    gh: GitHubStandIn, api: GitHubApi, waits: list[float]
) -> None:
    """A secondary rate limit that never lifts: a few waits, then GitHubRateLimitError."""
    gh.add_fault(Fault.secondary_rate_limit("GET", "/repos/*/*/pulls", retry_after=1, times=50))
    with pytest.raises(GitHubRateLimitError) as raised:
        api.find_open_pull(BRANCH, "main")
    assert waits == [1.0] * (FAST.attempts - 1)
    assert "later" in (raised.value.hint or "")


def test_secondary_rate_limit_without_retry_after_waits_the_default(
    gh: GitHubStandIn, api: GitHubApi, waits: list[float]
) -> None:
    """No Retry-After: wait GitHub's advised minute (the policy's secondary_wait_s), then go."""
    gh.add_fault(Fault.secondary_rate_limit("GET", "/repos/*/*/pulls", retry_after=None))
    assert api.find_open_pull(BRANCH, "main") is None
    assert waits == [FAST.secondary_wait_s]


def test_existing_pr_missed_by_the_lookup_is_updated(
    gh: GitHubStandIn, checkout: Path, target: GitHubTarget, api: GitHubApi, mocker
) -> None:
    """POST says the PR exists (the lookup lagged behind): it is found and updated."""
    changes = agent_changes(checkout)
    publish(checkout, changes, target, spec(), api)
    existing = api.find_open_pull(BRANCH, "main")
    mocker.patch.object(api, "find_open_pull", side_effect=[None, existing])
    pr = publish(checkout, changes, target, spec(body="Second body"), api)
    assert (pr.number, pr.operation) == (1, "updated")
    assert statuses(gh, "POST", "/repos/*/*/pulls") == [201, 422]
    assert gh.pull(REPO, 1).body == "Second body"
    assert len(gh.pulls(REPO)) == 1


# -- sign-commits: the Git Data API


def test_signed_commit_goes_through_the_api_and_matches_git(
    gh: GitHubStandIn, checkout: Path, target: GitHubTarget, api: GitHubApi
) -> None:
    """Blobs, tree, commit and ref via the API; GitHub verifies it; the tree is git's own."""
    changes = agent_changes(checkout)
    local = build_tree(checkout, git(checkout, "rev-parse", "HEAD"), changes)

    pr = publish(checkout, changes, target, spec(sign_commits=True), api)

    tip = gh.git(REPO, "rev-parse", f"refs/heads/{BRANCH}")
    assert gh.git(REPO, "rev-parse", f"{tip}^{{tree}}") == local.tree
    assert branch_diff(gh) == EXPECTED
    assert (gh.verification(REPO, tip) or {}).get("verified") is True
    assert gh.requests_to("POST", f"/{REPO}.git/git-receive-pack") == []
    assert statuses(gh, "POST", "/repos/*/*/git/commits") == [201]
    # The renamed file's blob is on GitHub already: only new content is uploaded.
    assert len(gh.requests_to("POST", "/repos/*/*/git/blobs")) == 4
    assert pr.operation == "created"

    (checkout / "README.md").write_text("signed twice\n")
    again = publish(checkout, changes, target, spec(sign_commits=True), api)
    new_tip = gh.git(REPO, "rev-parse", f"refs/heads/{BRANCH}")
    assert (again.number, again.operation) == (1, "updated")
    assert new_tip != tip
    assert gh.git(REPO, "rev-parse", f"{new_tip}^") == git(checkout, "rev-parse", "HEAD")
    assert statuses(gh, "PATCH", "/repos/*/*/git/refs/**") == [422, 200]


def test_signed_commit_needs_the_base_on_github(
    gh: GitHubStandIn, checkout: Path, target: GitHubTarget, api: GitHubApi
) -> None:
    """A local commit GitHub never saw cannot be built on through the API: a clear error."""
    (checkout / "local.txt").write_text("never pushed\n")
    commit_all(checkout, "local only")
    with pytest.raises(PublishError, match="not on GitHub") as raised:
        publish(checkout, agent_changes(checkout), target, spec(sign_commits=True), api)
    assert "push that commit" in (raised.value.hint or "")
    assert gh.requests_to("POST", "/repos/*/*/git/blobs") == []


def test_signed_commit_survives_server_errors(
    gh: GitHubStandIn, checkout: Path, target: GitHubTarget, api: GitHubApi
) -> None:
    """5xx on blob, tree and commit creation: content-addressed, so retried safely."""
    for route in ("blobs", "trees", "commits"):
        gh.add_fault(Fault.status("POST", f"/repos/*/*/git/{route}", 502))
    publish(checkout, agent_changes(checkout), target, spec(sign_commits=True), api)
    assert branch_diff(gh) == EXPECTED


# -- the rest of the adapter


def test_whoami_permissions_and_reactions(gh: GitHubStandIn, api: GitHubApi) -> None:
    """GITHUB_TOKEN is the bot; roles come back by name; a reaction is added once."""
    assert api.whoami() == BOT_LOGIN
    gh.set_permission(REPO, "carol", "maintain")
    assert api.permission_of("carol") == "maintain"
    assert api.permission_of("alice") == "read"
    assert api.permission_of("nobody-at-all") == "none"
    number = gh.add_issue(REPO, "x", user="alice")
    comment_id = gh.add_comment(REPO, number, "/claude go", user="alice")
    api.add_reaction(comment_id)
    api.add_reaction(comment_id)
    assert [(r.content, r.user) for r in gh.reactions(REPO, comment_id=comment_id)] == [
        ("eyes", BOT_LOGIN)
    ]


def test_whoami_with_a_user_token(gh: GitHubStandIn, target: GitHubTarget) -> None:
    """A personal token answers GET /user with its own login."""
    pat = gh.add_token("ghp_bob_token_123", "bob")
    bob = GitHubTarget(target.api_url, target.server_url, REPO, pat)
    with GitHubApi.open(bob, pace=False, policy=FAST) as client:
        assert client.whoami() == "bob"


def test_lost_comment_is_not_posted_twice(gh: GitHubStandIn, api: GitHubApi) -> None:
    """A connection dropped after the comment was made: the lookup finds it, one comment."""
    number = gh.add_issue(REPO, "x", user="alice")
    gh.add_fault(Fault.drop("POST", "/repos/*/*/issues/*/comments", when="after"))
    api.upsert_comment(number, "<!-- m -->", "hello")
    assert [c.body for c in gh.comments(REPO, number)] == ["hello\n\n<!-- m -->"]


def test_repr_of_the_target_hides_the_token(target: GitHubTarget) -> None:
    """A target printed in a traceback or log shows no token."""
    assert target.token not in repr(target)
    assert base64.b64encode(target.token.encode()).decode() not in repr(target)
