"""The GitHub stand-in, driven as the publisher will drive it: PyGithub and the git CLI."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from github import (
    Auth,
    BadCredentialsException,
    Github,
    GithubException,
    GithubRetry,
    InputGitAuthor,
    InputGitTreeElement,
    RateLimitExceededException,
    UnknownObjectException,
)

from tests.gitrepo import commit_all, git, make_repo
from tests.stand_ins.github_server import SECONDARY_RATE_LIMIT_MESSAGE, Fault, GitHubStandIn

REPO = "acme/widgets"
GIT_TIMEOUT_S = 60


@pytest.fixture(autouse=True)
def _no_git_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    """A git that is refused fails at once instead of asking for a password."""
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "0")


@pytest.fixture
def gh(tmp_path: Path) -> Iterator[GitHubStandIn]:
    """A running stand-in with acme/widgets (main: README.md) and users of each role."""
    source = make_repo(tmp_path / "source", {"README.md": b"widgets\n"})
    commit_all(source, "initial")
    with GitHubStandIn(tmp_path / "gh") as stand_in:
        stand_in.create_repo(REPO, source=source)
        stand_in.add_user("alice", permission="read")
        stand_in.add_user("bob", permission="write")
        stand_in.add_user("mallory")
        yield stand_in


def client(gh: GitHubStandIn, token: str | None = None, **kwargs: object) -> Github:
    """PyGithub as the action will build it, without its client-side throttling."""
    return Github(
        base_url=gh.api_url,
        auth=Auth.Token(token or gh.token),
        seconds_between_requests=0,
        seconds_between_writes=0,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
def work(gh: GitHubStandIn, tmp_path: Path) -> Path:
    """A clone of acme/widgets (anonymous: the repository is public)."""
    target = tmp_path / "work"
    run_git(tmp_path, "clone", "-q", gh.clone_url(REPO), str(target))
    return target


def run_git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=check
    )


def run_git_bytes(cwd: Path, *args: str) -> bytes:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, timeout=GIT_TIMEOUT_S, check=True
    ).stdout


def push(
    gh: GitHubStandIn,
    work: Path,
    branch: str,
    files: dict[str, str],
    *,
    token: str | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Commit ``files`` on top of HEAD and push to ``branch`` with the token in an extraheader."""
    for rel, text in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(text)
    commit_all(work, f"change {branch}")
    header = ["-c", f"http.extraheader={gh.extraheader(token)}"] if token != "" else []
    refspec = f"HEAD:refs/heads/{branch}"
    return run_git(work, *header, "push", "-q", gh.clone_url(REPO), refspec, check=check)


def open_pr(gh: GitHubStandIn, work: Path, branch: str = "feature", **kwargs: object) -> int:
    push(gh, work, branch, {f"{branch}.txt": f"{branch}\n"})
    repo = client(gh).get_repo(REPO)
    return repo.create_pull(base="main", head=branch, title=f"PR {branch}", **kwargs).number  # type: ignore[arg-type]


# -- repository and git transport


def test_repository_metadata_lives_on_the_stand_in(gh: GitHubStandIn, work: Path) -> None:
    """The repository answers with the default branch and URLs on the stand-in's own host."""
    repo = client(gh).get_repo(REPO)
    assert repo.default_branch == "main"
    assert repo.full_name == REPO
    assert repo.html_url == f"{gh.server_url}/{REPO}"
    assert repo.clone_url == gh.clone_url(REPO)
    assert repo.get_branch("main").commit.sha == git(work, "rev-parse", "HEAD")
    assert requests.get(repo.html_url, timeout=10).status_code == 200


def test_push_needs_the_token_and_lands_in_the_bare_repo(gh: GitHubStandIn, work: Path) -> None:
    """A push without credentials gets 401 and fails; with the extraheader it lands as is."""
    refused = push(gh, work, "claude/run-1", {"a.txt": "a\n"}, token="", check=False)
    assert refused.returncode != 0
    pushes = gh.requests_to("GET", "/acme/widgets.git/info/refs")
    assert pushes[-1].status == 401

    push(gh, work, "claude/run-1", {"b.txt": "b\n"})
    local = git(work, "rev-parse", "HEAD")
    assert gh.git(REPO, "rev-parse", "refs/heads/claude/run-1") == local
    branch = client(gh).get_repo(REPO).get_branch("claude/run-1")
    assert branch.commit.sha == local
    assert gh.requests_to("POST", "/acme/widgets.git/git-receive-pack")[-1].login == (
        "github-actions[bot]"
    )


def test_push_with_read_only_or_unknown_token_is_refused(gh: GitHubStandIn, work: Path) -> None:
    """contents: read gives 403 "Permission ... denied"; an unknown token gives 401."""
    read_only = gh.add_token("ghs_readonly", "github-actions[bot]", kind="app",
                             permissions={"contents": "read"})  # fmt: skip
    denied = push(gh, work, "x", {"x.txt": "x\n"}, token=read_only, check=False)
    assert denied.returncode != 0
    assert "denied to github-actions[bot]" in denied.stderr
    unknown = push(gh, work, "x", {"y.txt": "y\n"}, token="ghs_nobody", check=False)
    assert unknown.returncode != 0
    assert gh.requests[-1].status == 401
    assert "refs/heads/x" not in gh.git(REPO, "for-each-ref")


def test_private_repository_clones_only_with_a_token(gh: GitHubStandIn, tmp_path: Path) -> None:
    """Reading a private repository needs credentials; fetch with the extraheader works."""
    gh.configure_repo(REPO, private=True)
    anonymous = run_git(tmp_path, "clone", "-q", gh.clone_url(REPO), "a", check=False)
    assert anonymous.returncode != 0
    header = f"http.extraheader={gh.extraheader()}"
    run_git(tmp_path, "-c", header, "clone", "-q", gh.clone_url(REPO), "b")
    assert (tmp_path / "b" / "README.md").read_text() == "widgets\n"


def test_bad_token_is_bad_credentials(gh: GitHubStandIn) -> None:
    """An unknown token gets 401 "Bad credentials"; Basic with the token in either half works."""
    with pytest.raises(BadCredentialsException):
        client(gh, "ghp_unknown").get_repo(REPO)
    url = f"{gh.api_url}/repos/{REPO}"
    for auth in ((gh.token, "x-oauth-basic"), ("x-access-token", gh.token)):
        assert requests.get(url, auth=auth, timeout=10).status_code == 200
    assert requests.get(url, auth=("x-access-token", "nope"), timeout=10).status_code == 401


def test_large_push_arrives_in_chunks(gh: GitHubStandIn, work: Path) -> None:
    """A pack above git's postBuffer is sent chunked and still lands byte for byte."""
    (work / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    push(gh, work, "big", {})
    assert gh.git(REPO, "rev-parse", "refs/heads/big") == git(work, "rev-parse", "HEAD")
    pack = gh.requests_to("POST", "/acme/widgets.git/git-receive-pack")[-1]
    assert pack.headers.get("transfer-encoding") == "chunked"


def test_repository_from_a_plain_directory(gh: GitHubStandIn, tmp_path: Path) -> None:
    """A directory that is no git repository becomes one commit, modes and links kept."""
    source = tmp_path / "plain"
    (source / "bin").mkdir(parents=True)
    (source / "bin" / "run").write_text("#!/bin/sh\n")
    (source / "bin" / "run").chmod(0o755)
    (source / "link").symlink_to("bin/run")
    gh.create_repo("acme/plain", source=source, default_branch="trunk")
    listing = gh.git("acme/plain", "ls-tree", "-r", "trunk")
    assert [line.split()[0] for line in listing.splitlines()] == ["100755", "120000"]
    assert client(gh).get_repo("acme/plain").default_branch == "trunk"


# -- users and permissions


def test_collaborator_permission_by_role(gh: GitHubStandIn) -> None:
    """permission collapses roles as GitHub does; role_name keeps them."""
    gh.set_permission(REPO, "carol", "maintain")
    repo = client(gh).get_repo(REPO)
    assert repo.get_collaborator_permission("alice") == "read"
    assert repo.get_collaborator_permission("bob") == "write"
    assert repo.get_collaborator_permission("acme") == "admin"
    assert repo.get_collaborator_permission("carol") == "write"
    assert repo.get_collaborator_role_name("carol") == "maintain"
    assert repo.get_collaborator_permission("mallory") == "read"  # public repository
    with pytest.raises(UnknownObjectException):
        repo.get_collaborator_permission("nobody-at-all")
    gh.configure_repo(REPO, private=True)
    assert repo.get_collaborator_permission("mallory") == "none"


def test_user_endpoint_depends_on_the_kind_of_token(gh: GitHubStandIn) -> None:
    """GITHUB_TOKEN cannot read /user (403, as on GitHub); a user token can; /users works."""
    with pytest.raises(GithubException) as raised:
        _ = client(gh).get_user().login
    assert raised.value.status == 403
    assert "Resource not accessible by integration" in str(raised.value)
    pat = gh.add_token("ghp_alice", "alice")
    assert client(gh, pat).get_user().login == "alice"
    bot = client(gh).get_user("github-actions[bot]")
    assert (bot.login, bot.type, bot.id) == ("github-actions[bot]", "Bot", 41898282)


def test_token_permissions_and_repository_settings_gate_pull_creation(
    gh: GitHubStandIn, work: Path
) -> None:
    """pull-requests: read gives 403 by integration; the Actions setting gives its own 403."""
    push(gh, work, "feature", {"f.txt": "f\n"})
    weak = gh.add_token("ghs_weak", "github-actions[bot]", kind="app",
                        permissions={"contents": "write", "pull-requests": "read"})  # fmt: skip
    with pytest.raises(GithubException) as raised:
        client(gh, weak).get_repo(REPO).create_pull(base="main", head="feature", title="t")
    assert (raised.value.status, raised.value.data["message"]) == (
        403,
        "Resource not accessible by integration",
    )
    gh.configure_repo(REPO, actions_can_open_prs=False)
    with pytest.raises(GithubException) as raised:
        client(gh).get_repo(REPO).create_pull(base="main", head="feature", title="t")
    assert "not permitted to create or approve pull requests" in raised.value.data["message"]


# -- pull requests


def test_create_pull_and_find_it_by_head(gh: GitHubStandIn, work: Path) -> None:
    """A created PR carries what PyGithub reads; `head=owner:branch` finds exactly it."""
    push(gh, work, "feature", {"f.txt": "f\n"})
    sha = git(work, "rev-parse", "HEAD")
    repo = client(gh).get_repo(REPO)
    pr = repo.create_pull(base="main", head="feature", title="Add f", body="Body", draft=True)
    assert (pr.number, pr.state, pr.draft, pr.title, pr.body) == (1, "open", True, "Add f", "Body")
    assert pr.html_url == f"{gh.server_url}/{REPO}/pull/1"
    assert (pr.head.ref, pr.head.sha, pr.head.label, pr.base.ref) == (
        "feature",
        sha,
        "acme:feature",
        "main",
    )
    assert (pr.user.login, pr.user.type) == ("github-actions[bot]", "Bot")
    open_pr(gh, work, "other")

    found = repo.get_pulls(state="open", head="acme:feature", base="main")
    assert [p.number for p in found] == [1]
    assert [p.number for p in repo.get_pulls(head="someone-else:feature")] == []
    # GitHub ignores a head filter without the owner prefix: both PRs come back.
    assert sorted(p.number for p in repo.get_pulls(head="feature")) == [1, 2]
    assert gh.pull(REPO, 1).pull is not None


def test_duplicate_and_empty_pulls_are_422(gh: GitHubStandIn, work: Path) -> None:
    """A second PR for the same head, an empty branch or a missing head: Validation Failed."""
    open_pr(gh, work)
    repo = client(gh).get_repo(REPO)
    with pytest.raises(GithubException) as raised:
        repo.create_pull(base="main", head="feature", title="again")
    assert raised.value.status == 422
    assert (
        raised.value.data["errors"][0]["message"]
        == "A pull request already exists for acme:feature."
    )
    with pytest.raises(GithubException) as raised:
        repo.create_pull(base="main", head="main", title="empty")
    assert raised.value.data["errors"][0]["message"] == "No commits between main and main"
    with pytest.raises(GithubException) as raised:
        repo.create_pull(base="main", head="missing", title="no branch")
    assert raised.value.data["errors"][0] == {
        "resource": "PullRequest",
        "field": "head",
        "code": "invalid",
    }
    assert len(gh.pulls(REPO)) == 1


def test_bodies_over_the_limit_are_refused(gh: GitHubStandIn, work: Path) -> None:
    """PR bodies and comments longer than 65536 characters get 422, as on GitHub."""
    push(gh, work, "feature", {"f.txt": "f\n"})
    repo = client(gh).get_repo(REPO)
    with pytest.raises(GithubException) as raised:
        repo.create_pull(base="main", head="feature", title="t", body="x" * 65537)
    assert raised.value.status == 422
    pr = repo.create_pull(base="main", head="feature", title="t", body="x" * 65536)
    with pytest.raises(GithubException):
        pr.create_issue_comment("y" * 65537)
    assert gh.comments(REPO, pr.number) == []


def test_update_close_and_reopen(gh: GitHubStandIn, work: Path) -> None:
    """PATCH changes title, body and state; a closed PR can be reopened."""
    number = open_pr(gh, work)
    pr = client(gh).get_repo(REPO).get_pull(number)
    pr.edit(title="New title", body="New body")
    assert (pr.title, gh.pull(REPO, number).body) == ("New title", "New body")
    pr.edit(state="closed")
    assert gh.pull(REPO, number).state == "closed"
    assert gh.pull(REPO, number).closed_at is not None
    pr.edit(state="open")
    assert gh.pull(REPO, number).state == "open"


def test_head_follows_the_branch_and_deleting_it_closes(gh: GitHubStandIn, work: Path) -> None:
    """A new push moves head.sha; deleting the head branch closes the PR."""
    number = open_pr(gh, work)
    push(gh, work, "feature", {"more.txt": "more\n"})
    repo = client(gh).get_repo(REPO)
    assert repo.get_pull(number).head.sha == git(work, "rev-parse", "HEAD")
    repo.get_git_ref("heads/feature").delete()
    assert repo.get_pull(number).state == "closed"


def test_draft_flips_only_through_graphql(gh: GitHubStandIn, work: Path) -> None:
    """convert_to_draft / mark_ready_for_review go to /api/graphql and change `draft`."""
    number = open_pr(gh, work)
    pr = client(gh).get_repo(REPO).get_pull(number)
    assert pr.draft is False
    pr.convert_to_draft()
    assert gh.pull(REPO, number).pull.draft is True  # type: ignore[union-attr]
    pr.mark_ready_for_review()
    assert client(gh).get_repo(REPO).get_pull(number).draft is False
    assert gh.requests_to("POST", "/graphql")[-1].status == 200


def test_drafts_unsupported_is_422(gh: GitHubStandIn, work: Path) -> None:
    """A repository without draft support refuses draft=True."""
    gh.configure_repo(REPO, drafts_supported=False)
    push(gh, work, "feature", {"f.txt": "f\n"})
    with pytest.raises(GithubException) as raised:
        client(gh).get_repo(REPO).create_pull(base="main", head="feature", title="t", draft=True)
    assert raised.value.status == 422
    assert "Draft pull requests are not supported" in raised.value.data["message"]


# -- the issue side: labels, comments, reactions, reviewers


def test_labels_comments_and_reactions(gh: GitHubStandIn, work: Path) -> None:
    """Labels are created on first use; comments edit in place; a reaction counts once."""
    number = open_pr(gh, work)
    pr = client(gh).get_repo(REPO).get_pull(number)
    pr.add_to_labels("claude", "automated")
    pr.add_to_labels("claude")
    assert gh.labels(REPO, number) == ["claude", "automated"]

    comment = pr.create_issue_comment("Working on it")
    assert comment.user.login == "github-actions[bot]"
    assert comment.html_url == f"{gh.server_url}/{REPO}/pull/{number}#issuecomment-{comment.id}"
    comment.edit("Done")
    assert [c.body for c in pr.get_issue_comments()] == ["Done"]
    comment.create_reaction("rocket")
    comment.create_reaction("rocket")
    pr.as_issue().create_reaction("eyes")
    assert [r.content for r in gh.reactions(REPO, comment_id=comment.id)] == ["rocket"]
    assert [r.content for r in gh.reactions(REPO, number=number)] == ["eyes"]
    with pytest.raises(GithubException) as raised:
        comment.create_reaction("shrug")
    assert raised.value.status == 422


def test_comment_on_a_seeded_issue(gh: GitHubStandIn) -> None:
    """A seeded issue and comment (a comment command) can be answered and reacted to."""
    number = gh.add_issue(REPO, "Please fix", "details", user="alice")
    comment_id = gh.add_comment(REPO, number, "/claude fix it", user="alice")
    repo = client(gh).get_repo(REPO)
    command = repo.get_issue(number).get_comment(comment_id)
    assert (command.body, command.user.login) == ("/claude fix it", "alice")
    command.create_reaction("eyes")
    repo.get_issue(number).create_comment("On it")
    assert [c.body for c in gh.comments(REPO, number)] == ["/claude fix it", "On it"]
    assert gh.reactions(REPO, comment_id=comment_id)[0].user == "github-actions[bot]"


def test_reviewers_must_be_collaborators(gh: GitHubStandIn, work: Path) -> None:
    """Collaborators can be requested; others and the author get GitHub's 422s."""
    number = open_pr(gh, work)
    pr = client(gh).get_repo(REPO).get_pull(number)
    pr.create_review_request(reviewers=["bob", "alice"])
    assert gh.reviewers(REPO, number) == ["bob", "alice"]
    with pytest.raises(GithubException) as raised:
        pr.create_review_request(reviewers=["mallory"])
    assert "may only be requested from collaborators" in raised.value.data["message"]
    with pytest.raises(GithubException) as raised:
        pr.create_review_request(reviewers=["github-actions[bot]"])
    assert raised.value.data["message"] == "Review cannot be requested from pull request author."
    users, _ = pr.get_review_requests()
    assert [u.login for u in users] == ["bob", "alice"]


# -- the Git Data API


def test_git_data_commit_is_what_fetch_sees(gh: GitHubStandIn, work: Path) -> None:
    """Blobs, a tree on base_tree (add, exec, symlink, delete) and a commit, fetched by git."""
    (work / "old.txt").write_text("old\n")
    commit_all(work, "add old")
    push(gh, work, "base", {})
    repo = client(gh).get_repo(REPO)
    parent = repo.get_git_commit(git(work, "rev-parse", "HEAD"))
    binary = bytes(range(256))
    text_blob = repo.create_git_blob("héllo\n", "utf-8")
    bin_blob = repo.create_git_blob(base64.b64encode(binary).decode(), "base64")
    tree = repo.create_git_tree(
        [
            InputGitTreeElement("src/deep/hello.txt", "100644", "blob", sha=text_blob.sha),
            InputGitTreeElement("bin/data.bin", "100644", "blob", sha=bin_blob.sha),
            InputGitTreeElement("run.sh", "100755", "blob", content="#!/bin/sh\n"),
            InputGitTreeElement("link", "120000", "blob", content="README.md"),
            InputGitTreeElement("old.txt", "100644", "blob", sha=None),
        ],
        base_tree=parent.tree,
    )
    commit = repo.create_git_commit("Apply changes\n\nBody.", tree, [parent])
    repo.create_git_ref("refs/heads/api-branch", commit.sha)

    run_git(work, "fetch", "-q", gh.clone_url(REPO), "api-branch")
    assert git(work, "rev-parse", "FETCH_HEAD") == commit.sha
    assert git(work, "rev-parse", "FETCH_HEAD^{tree}") == tree.sha
    assert git(work, "log", "-1", "--format=%B", "FETCH_HEAD") == "Apply changes\n\nBody."
    listing = git(work, "ls-tree", "-r", "FETCH_HEAD").splitlines()
    modes = {line.split("\t")[1]: line.split()[0] for line in listing}
    assert modes == {
        "README.md": "100644",
        "bin/data.bin": "100644",
        "link": "120000",
        "run.sh": "100755",
        "src/deep/hello.txt": "100644",
    }
    data = run_git_bytes(work, "cat-file", "blob", "FETCH_HEAD:bin/data.bin")
    assert data == binary
    api_paths = {
        e.path for e in repo.get_git_tree(tree.sha, recursive=True).tree if e.type == "blob"
    }
    assert api_paths == set(modes)


def test_bot_commit_without_identity_is_verified(gh: GitHubStandIn) -> None:
    """No author/committer with GITHUB_TOKEN: the bot authors, GitHub commits, verified."""
    repo = client(gh).get_repo(REPO)
    parent = repo.get_git_commit(repo.get_branch("main").commit.sha)
    commit = repo.create_git_commit("signed", parent.tree, [parent])
    assert commit.verification.verified is True
    assert commit.author.name == "github-actions[bot]"
    assert commit.author.email == "41898282+github-actions[bot]@users.noreply.github.com"
    assert (commit.committer.name, commit.committer.email) == ("GitHub", "noreply@github.com")
    assert repo.get_git_commit(commit.sha).verification.reason == "valid"
    assert "committer GitHub <noreply@github.com>" in gh.git(REPO, "cat-file", "commit", commit.sha)


def test_commit_with_an_author_is_unsigned(gh: GitHubStandIn) -> None:
    """A custom author turns signing off; the committer defaults to the author."""
    repo = client(gh).get_repo(REPO)
    parent = repo.get_git_commit(repo.get_branch("main").commit.sha)
    author = InputGitAuthor("Claude", "claude@example.com", "2024-05-01T12:00:00+02:00")
    commit = repo.create_git_commit("by claude", parent.tree, [parent], author=author)
    assert (commit.verification.verified, commit.verification.reason) == (False, "unsigned")
    assert commit.committer.name == "Claude"
    assert commit.author.date.isoformat() == "2024-05-01T10:00:00+00:00"
    raw = gh.git(REPO, "cat-file", "commit", commit.sha)
    assert "author Claude <claude@example.com> 1714557600 +0200" in raw


def test_refs_move_fast_forward_unless_forced(gh: GitHubStandIn, work: Path) -> None:
    """PATCH refuses a non-fast-forward without force; POST refuses an existing ref."""
    push(gh, work, "feature", {"f.txt": "f\n"})
    repo = client(gh).get_repo(REPO)
    main_sha = repo.get_branch("main").commit.sha
    ref = repo.get_git_ref("heads/feature")
    with pytest.raises(GithubException) as raised:
        ref.edit(main_sha)
    assert raised.value.data["message"] == "Update is not a fast forward"
    ref.edit(main_sha, force=True)
    assert gh.git(REPO, "rev-parse", "refs/heads/feature") == main_sha
    with pytest.raises(GithubException) as raised:
        repo.create_git_ref("refs/heads/feature", main_sha)
    assert raised.value.data["message"] == "Reference already exists"
    with pytest.raises(UnknownObjectException):
        repo.get_git_ref("heads/absent")


# -- faults, as PyGithub meets them


def test_secondary_rate_limit_is_retried_after_retry_after(gh: GitHubStandIn, work: Path) -> None:
    """403 secondary rate limit + Retry-After: PyGithub's default retry waits, then succeeds."""
    push(gh, work, "feature", {"f.txt": "f\n"})
    fault = gh.add_fault(Fault.secondary_rate_limit("POST", "/repos/*/*/pulls"))
    started = time.monotonic()
    pr = client(gh).get_repo(REPO).create_pull(base="main", head="feature", title="t")
    assert time.monotonic() - started >= 1.0
    assert pr.number == 1
    assert fault.fired == 1
    assert [r.status for r in gh.requests_to("POST", "/repos/*/*/pulls")] == [403, 201]


def test_secondary_rate_limit_without_retry_raises(gh: GitHubStandIn) -> None:
    """Without a retry policy PyGithub raises RateLimitExceededException with the message."""
    gh.add_fault(Fault.secondary_rate_limit("GET", "/repos/*/*"))
    with pytest.raises(RateLimitExceededException) as raised:
        client(gh, retry=None).get_repo(REPO)
    assert raised.value.data["message"] == SECONDARY_RATE_LIMIT_MESSAGE
    assert (raised.value.headers or {})["retry-after"] == "1"


def test_primary_rate_limit_sets_remaining_zero(gh: GitHubStandIn) -> None:
    """A primary rate limit answers X-RateLimit-Remaining: 0, which PyGithub records."""
    gh.add_fault(Fault.primary_rate_limit("GET", "/repos/*/*"))
    g = client(gh, retry=None)
    with pytest.raises(RateLimitExceededException):
        g.get_repo(REPO)
    assert g.rate_limiting[0] == 0


def test_502_after_creation_makes_the_retry_a_duplicate(gh: GitHubStandIn, work: Path) -> None:
    """POST /pulls creates the PR, answers 502; PyGithub's retry then meets 422 duplicate."""
    push(gh, work, "feature", {"f.txt": "f\n"})
    gh.add_fault(Fault.status("POST", "/repos/*/*/pulls", 502, when="after"))
    with pytest.raises(GithubException) as raised:
        client(gh).get_repo(REPO).create_pull(base="main", head="feature", title="t")
    assert raised.value.status == 422
    assert "already exists" in raised.value.data["errors"][0]["message"]
    assert [p.number for p in gh.pulls(REPO)] == [1]
    assert [r.status for r in gh.requests_to("POST", "/repos/*/*/pulls")] == [502, 422]


def test_502_without_retry_leaves_the_pr_behind(gh: GitHubStandIn, work: Path) -> None:
    """Without retries the client sees 502 although the PR exists: it must look it up."""
    push(gh, work, "feature", {"f.txt": "f\n"})
    gh.add_fault(Fault.status("POST", "/repos/*/*/pulls", 502, when="after"))
    repo = client(gh, retry=None).get_repo(REPO)
    with pytest.raises(GithubException) as raised:
        repo.create_pull(base="main", head="feature", title="t")
    assert raised.value.status == 502
    assert [p.number for p in repo.get_pulls(head="acme:feature")] == [1]


def test_eventual_consistency_right_after_creation(gh: GitHubStandIn, work: Path) -> None:
    """A 422 on labels and a 404 on the new PR, once each, then the same calls succeed."""
    number = open_pr(gh, work)
    gh.add_fault(Fault.status("POST", "/repos/*/*/issues/*/labels", 422))
    gh.add_fault(Fault.status("GET", "/repos/*/*/pulls/*", 404))
    repo = client(gh).get_repo(REPO)
    with pytest.raises(UnknownObjectException):
        repo.get_pull(number)
    pr = repo.get_pull(number)
    with pytest.raises(GithubException) as raised:
        pr.add_to_labels("claude")
    assert (raised.value.status, raised.value.data["message"]) == (422, "Validation Failed")
    assert gh.labels(REPO, number) == []
    pr.add_to_labels("claude")
    assert gh.labels(REPO, number) == ["claude"]


def test_dropped_connection_after_comment(gh: GitHubStandIn, work: Path) -> None:
    """A drop after the work: no retry raises ConnectionError; the default retry duplicates."""
    number = open_pr(gh, work)
    gh.add_fault(Fault.drop("POST", "/repos/*/*/issues/*/comments", when="after"))
    with pytest.raises(requests.exceptions.ConnectionError):
        client(gh, retry=None).get_repo(REPO).get_issue(number).create_comment("once")
    assert [c.body for c in gh.comments(REPO, number)] == ["once"]
    gh.add_fault(Fault.drop("POST", "/repos/*/*/issues/*/comments", when="after"))
    client(gh).get_repo(REPO).get_issue(number).create_comment("twice")
    assert [c.body for c in gh.comments(REPO, number)] == ["once", "twice", "twice"]
    assert gh.requests_to("POST", "/repos/*/*/issues/*/comments")[0].status is None


def test_patch_is_not_retried_by_pygithub(gh: GitHubStandIn, work: Path) -> None:
    """GithubRetry does not retry PATCH: a 500 reaches the caller at once."""
    number = open_pr(gh, work)
    pr = client(gh).get_repo(REPO).get_pull(number)
    gh.add_fault(Fault.status("PATCH", "/repos/*/*/pulls/*", 500))
    with pytest.raises(GithubException) as raised:
        pr.edit(title="new")
    assert raised.value.status == 500
    assert len(gh.requests_to("PATCH", "/repos/*/*/pulls/*")) == 1


def test_5xx_is_retried_for_get(gh: GitHubStandIn) -> None:
    """Two 503s on a GET are absorbed by GithubRetry(backoff_factor=0)."""
    gh.add_fault(Fault.status("GET", "/repos/*/*", 503, times=2))
    repo = client(gh, retry=GithubRetry(total=3, backoff_factor=0)).get_repo(REPO)
    assert repo.name == "widgets"
    assert [r.status for r in gh.requests_to("GET", "/repos/*/*")] == [503, 503, 200]


def test_git_push_fault_then_success(gh: GitHubStandIn, work: Path) -> None:
    """A 503 on receive-pack fails that push; the next push goes through."""
    gh.add_fault(Fault.status("POST", "/*/*.git/git-receive-pack", 503))
    failed = push(gh, work, "feature", {"f.txt": "f\n"}, check=False)
    assert failed.returncode != 0
    run_git(work, "-c", f"http.extraheader={gh.extraheader()}", "push", "-q",
            gh.clone_url(REPO), "HEAD:refs/heads/feature")  # fmt: skip
    assert gh.git(REPO, "rev-parse", "refs/heads/feature") == git(work, "rev-parse", "HEAD")


# -- pagination, headers, records


def test_pagination_follows_link_headers(gh: GitHubStandIn) -> None:
    """35 comments come in pages of 30 linked by `Link: rel="next"`; totalCount uses "last"."""
    number = gh.add_issue(REPO, "busy", user="alice")
    for i in range(35):
        gh.add_comment(REPO, number, f"c{i}", user="alice")
    issue = client(gh).get_repo(REPO).get_issue(number)
    assert [c.body for c in issue.get_comments()] == [f"c{i}" for i in range(35)]
    pages = gh.requests_to("GET", "/repos/*/*/issues/*/comments")
    assert len(pages) == 2
    assert issue.get_comments().totalCount == 35
    big = client(gh, per_page=100).get_repo(REPO).get_issue(number)
    before = len(gh.requests_to("GET", "/repos/*/*/issues/*/comments"))
    assert len(list(big.get_comments())) == 35
    assert len(gh.requests_to("GET", "/repos/*/*/issues/*/comments")) == before + 1


def test_link_header_shape(gh: GitHubStandIn) -> None:
    """The first page links next and last with absolute URLs keeping the query."""
    number = gh.add_issue(REPO, "busy", user="alice")
    for i in range(5):
        gh.add_comment(REPO, number, f"c{i}", user="alice")
    url = f"{gh.api_url}/repos/{REPO}/issues/{number}/comments?per_page=2"
    answer = requests.get(url, headers={"Authorization": f"token {gh.token}"}, timeout=10)
    assert len(answer.json()) == 2
    assert answer.links["next"]["url"] == f"{url}&page=2"
    assert answer.links["last"]["url"] == f"{url}&page=3"
    assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
    assert int(answer.headers["X-RateLimit-Remaining"]) < int(answer.headers["X-RateLimit-Limit"])


def test_records_keep_the_token_out_of_bodies(gh: GitHubStandIn, work: Path) -> None:
    """Every call is recorded with its auth header; the token is in no path or body."""
    number = open_pr(gh, work, body="Fixes things")
    client(gh).get_repo(REPO).get_issue(number).create_comment("done")
    assert gh.leaks(gh.token) == []
    last = gh.requests[-1]
    assert last.headers["authorization"] == f"token {gh.token}"
    assert last.redacted_headers([gh.token])["authorization"] == "token ***"
    pushes = gh.requests_to("POST", "/acme/widgets.git/git-receive-pack")
    assert gh.token not in str(pushes[0].redacted_headers([gh.token]))
    leaky = gh.add_issue(REPO, "oops", user="alice")
    client(gh).get_repo(REPO).get_issue(leaky).create_comment(f"token={gh.token}")
    assert [r.route for r in gh.leaks(gh.token)] == [f"/repos/{REPO}/issues/{leaky}/comments"]


def test_stop_cuts_idle_keep_alive_connections(tmp_path: Path) -> None:
    """After the block, no handler thread lingers on a client's idle keep-alive connection."""
    before = set(threading.enumerate())
    with GitHubStandIn(tmp_path / "gh") as stand_in:
        stand_in.create_repo(REPO)
        g = client(stand_in)
        assert g.get_repo(REPO).name == "widgets"  # PyGithub keeps the connection open
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and set(threading.enumerate()) - before:
        time.sleep(0.05)
    assert [t.name for t in set(threading.enumerate()) - before] == []
    g.close()


def test_script_mode_serves_until_terminated(tmp_path: Path) -> None:
    """`python -m tests.stand_ins.github_server` serves the API and stops on SIGTERM."""
    port_file = tmp_path / "port"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.stand_ins.github_server", "--root", str(tmp_path / "r"),
         "--repo", "acme/empty", "--token", "ghs_script", "--port-file", str(port_file),
         "--quiet"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        port = int(port_file.read_text())
        answer = requests.get(
            f"http://127.0.0.1:{port}/api/v3/repos/acme/empty",
            headers={"Authorization": "token ghs_script"},
            timeout=10,
        )
        assert answer.json()["full_name"] == "acme/empty"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert b"GITHUB_TOKEN=ghs_script" in out
