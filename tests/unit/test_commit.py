"""The commit of a run's changes, built on real git repositories, and branch names."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claude_e2b.errors import InternalError, PublishError, PushError
from claude_e2b.github.api import GitHubTarget, basic_credential
from claude_e2b.github.commit import (
    BOT_IDENTITY,
    base_commit,
    build_tree,
    commit_tree,
    is_valid_branch,
    keep_commit,
    public_url,
    push_commit,
    push_env,
)
from claude_e2b.github.publish import PullRequestSpec, default_branch_name, publish
from tests.gitrepo import commit_all, git, make_repo

BINARY = bytes(range(256)) * 4


def change(path: str, status: str, mode: str = "100644", old_path: str | None = None) -> dict:
    return {"path": path, "status": status, "old_path": old_path, "mode": mode}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A committed repository with text, binary, executable and nested files."""
    root = make_repo(
        tmp_path / "repo",
        {
            "README.md": b"hello\n",
            "src/app.py": b"print('app')\n",
            "src/old_name.py": b"moved\n",
            "data/blob.bin": BINARY,
            "run.sh": b"#!/bin/sh\necho run\n",
            "gone.txt": b"to delete\n",
            "notes.txt": b"user notes\n",
        },
        executable=("run.sh",),
    )
    commit_all(root, "initial")
    return root


def name_status(repo: Path, base: str, commit: str) -> set[tuple[str, ...]]:
    out = git(
        repo, "-c", "core.quotepath=off", "diff", "--name-status", "--no-renames", base, commit
    )
    return {tuple(line.split("\t")) for line in out.splitlines()}


def modes(repo: Path, commit: str) -> dict[str, str]:
    out = git(repo, "-c", "core.quotepath=off", "ls-tree", "-r", commit)
    return {line.split("\t")[1]: line.split()[0] for line in out.splitlines()}


def state(repo: Path) -> tuple[str, str, str]:
    """HEAD, the index's entries and `git status`: what the user sees of the checkout."""
    index = git(repo, "ls-files", "--stage")
    return git(repo, "rev-parse", "HEAD"), index, git(repo, "status", "--porcelain")


def index_digest(repo: Path) -> str:
    return hashlib.sha256((repo / ".git" / "index").read_bytes()).hexdigest()


def git_add_tree(repo: Path, tmp: Path, paths: list[str]) -> str:
    """The tree `git add` of exactly ``paths`` onto HEAD gives, in a copy of the repository."""
    copy = tmp / "oracle"
    shutil.copytree(repo, copy, symlinks=True)
    git(copy, "read-tree", "HEAD")
    git(copy, "add", "-A", "--", *paths)
    return git(copy, "write-tree")


def apply_agent_changes(repo: Path) -> list[dict[str, Any]]:
    """The working-tree edits of one agent run, of every kind, and its changes list."""
    (repo / "README.md").write_bytes(b"hello, world\n")
    (repo / "src" / "old_name.py").rename(repo / "src" / "new_name.py")
    (repo / "gone.txt").unlink()
    (repo / "data" / "blob.bin").write_bytes(BINARY[::-1] + b"\0\xff")
    (repo / "run.sh").chmod(0o644)
    (repo / "tool.sh").write_bytes(b"#!/bin/sh\n")
    (repo / "tool.sh").chmod(0o755)
    (repo / "docs").mkdir()
    (repo / "docs" / "link.md").symlink_to("../README.md")
    return [
        change("README.md", "modified"),
        change("src/new_name.py", "renamed", old_path="src/old_name.py"),
        change("gone.txt", "deleted", mode=""),
        change("data/blob.bin", "modified"),
        change("run.sh", "modified"),
        change("tool.sh", "added", "100755"),
        change("docs/link.md", "added", "120000"),
    ]


def test_every_kind_of_change_lands_in_the_commit(repo: Path, tmp_path: Path) -> None:
    """Added, modified, deleted, renamed, mode change, binary and symlink: git sees each."""
    changes = apply_agent_changes(repo)
    base = base_commit(repo)
    built = build_tree(repo, base, changes)
    commit = commit_tree(repo, built, "Apply changes\n\nDetails.")

    assert name_status(repo, base, commit) == {
        ("M", "README.md"),
        ("D", "src/old_name.py"),
        ("A", "src/new_name.py"),
        ("D", "gone.txt"),
        ("M", "data/blob.bin"),
        ("M", "run.sh"),
        ("A", "tool.sh"),
        ("A", "docs/link.md"),
    }
    tree_modes = modes(repo, commit)
    assert tree_modes["run.sh"] == "100644"
    assert tree_modes["tool.sh"] == "100755"
    assert tree_modes["docs/link.md"] == "120000"
    assert git(repo, "cat-file", "blob", f"{commit}:docs/link.md") == "../README.md"
    blob = subprocess.run(
        ["git", "-C", str(repo), "cat-file", "blob", f"{commit}:data/blob.bin"],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    assert blob == BINARY[::-1] + b"\0\xff"
    paths = ["README.md", "src", "gone.txt", "data", "run.sh", "tool.sh", "docs"]
    assert built.tree == git_add_tree(repo, tmp_path, paths)
    assert git(repo, "rev-parse", f"{commit}^") == base
    assert git(repo, "log", "-1", "--format=%B", commit) == "Apply changes\n\nDetails."


def test_commit_is_by_the_bot_unless_an_author_is_given(repo: Path) -> None:
    """Author and committer default to github-actions[bot]; a given identity replaces both."""
    (repo / "README.md").write_text("x\n")
    built = build_tree(repo, base_commit(repo), [change("README.md", "modified")])
    by_bot = commit_tree(repo, built, "m")
    assert git(repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>", by_bot) == (
        f"{BOT_IDENTITY[0]} <{BOT_IDENTITY[1]}>|{BOT_IDENTITY[0]} <{BOT_IDENTITY[1]}>"
    )
    by_claude = commit_tree(repo, built, "m", ("Claude", "claude@example.com"))
    assert git(repo, "log", "-1", "--format=%an <%ae>|%cn", by_claude) == (
        "Claude <claude@example.com>|Claude"
    )


def test_user_edits_and_index_stay_out_and_untouched(repo: Path) -> None:
    """The user's own staged and unstaged edits are not committed; HEAD and index unchanged."""
    (repo / "notes.txt").write_text("my own unstaged edit\n")
    (repo / "staged.txt").write_text("staged by the user\n")
    git(repo, "add", "staged.txt")
    (repo / "untracked.txt").write_text("scratch\n")
    changes = [change("README.md", "modified")]
    (repo / "README.md").write_text("agent\n")
    before, index_before = state(repo), index_digest(repo)

    base = base_commit(repo)
    commit = commit_tree(repo, build_tree(repo, base, changes), "m")

    assert index_digest(repo) == index_before  # not even rewritten
    assert name_status(repo, base, commit) == {("M", "README.md")}
    assert state(repo) == before
    assert git(repo, "show", f"{commit}:notes.txt") == "user notes"


def test_unicode_spaces_and_odd_names(repo: Path, tmp_path: Path) -> None:
    """Names with spaces, accents, CJK, a leading dash and a newline are committed as is."""
    names = [
        "dir with space/file name.txt",
        "ünïcödé/ça va.md",
        "日本語.txt",
        "-dash.txt",
        "new\nline.txt",
    ]
    for name in names:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(f"{name}\n")
    base = base_commit(repo)
    built = build_tree(repo, base, [change(n, "added") for n in names])
    listed = git(
        repo, "-c", "core.quotepath=off", "ls-tree", "-r", "-z", "--name-only", built.tree
    ).split("\0")
    assert set(names) <= set(listed)
    assert {c.path for c in built.changes} == set(names)
    assert built.tree == git_add_tree(repo, tmp_path, names)


def test_file_becomes_directory_and_back(repo: Path) -> None:
    """A deleted file may reappear as a directory of the same name, and the reverse."""
    (repo / "gone.txt").unlink()
    (repo / "gone.txt").mkdir()
    (repo / "gone.txt" / "inside.txt").write_text("inside\n")
    shutil.rmtree(repo / "src")
    (repo / "src").write_text("now a file\n")
    changes = [
        change("gone.txt/inside.txt", "added"),
        change("gone.txt", "deleted", mode=""),
        change("src", "added"),
        change("src/app.py", "deleted", mode=""),
        change("src/old_name.py", "deleted", mode=""),
    ]
    base = base_commit(repo)
    built = build_tree(repo, base, changes)
    assert set(modes(repo, built.tree)) == {
        "README.md",
        "data/blob.bin",
        "run.sh",
        "notes.txt",
        "gone.txt/inside.txt",
        "src",
    }


def test_deleted_means_deleted_even_if_the_file_is_back(repo: Path) -> None:
    """The changes list decides: a path it deletes goes, whatever the working tree holds."""
    built = build_tree(repo, base_commit(repo), [change("gone.txt", "deleted", mode="")])
    assert "gone.txt" not in modes(repo, built.tree)
    assert [(c.path, c.sha) for c in built.changes] == [("gone.txt", None)]


def test_the_exec_bit_follows_the_changes_list(repo: Path) -> None:
    """With core.fileMode off the disk's bits are unreliable: the reported mode wins."""
    (repo / "README.md").write_text("now a script\n")
    built = build_tree(repo, base_commit(repo), [change("README.md", "modified", "100755")])
    assert modes(repo, built.tree)["README.md"] == "100755"
    no_mode = build_tree(repo, base_commit(repo), [change("run.sh", "modified", "")])
    assert modes(repo, no_mode.tree)["run.sh"] == "100755"


def test_clean_filters_apply_as_in_git_add(repo: Path, tmp_path: Path) -> None:
    """A path with eol=lf in .gitattributes is stored with LF endings, as `git add` would."""
    (repo / ".gitattributes").write_text("*.txt text eol=lf\n")
    commit_all(repo, "attributes")
    (repo / "crlf.txt").write_bytes(b"one\r\ntwo\r\n")
    built = build_tree(repo, base_commit(repo), [change("crlf.txt", "added")])
    assert git(repo, "cat-file", "blob", f"{built.tree}:crlf.txt") == "one\ntwo"
    assert built.tree == git_add_tree(repo, tmp_path, ["crlf.txt"])


@pytest.mark.parametrize(
    ("setup", "entry", "message"),
    [
        (lambda r: None, change("missing.txt", "added"), "no file or symlink"),
        (lambda r: (r / "d").mkdir(), change("d", "added"), "no file or symlink"),
        (lambda r: (r / "l").symlink_to("README.md"), change("l", "added", "100644"), "symlink"),
        (lambda r: (r / "f").write_text("f"), change("f", "added", "120000"), "symlink"),
        (lambda r: (r / "m").mkdir(), change("m", "added", "160000"), "submodules"),
    ],
)
def test_inconsistent_changes_are_refused(repo: Path, setup, entry, message: str) -> None:
    """A path missing, a directory, of the wrong kind or a gitlink: PublishError, no commit."""
    setup(repo)
    with pytest.raises(PublishError, match=message):
        build_tree(repo, base_commit(repo), [entry])


def test_a_repository_without_commits_is_refused(tmp_path: Path) -> None:
    """Without a HEAD commit there is nothing to build on: PublishError with a hint."""
    empty = make_repo(tmp_path / "empty", {"a.txt": b"a\n"})
    with pytest.raises(PublishError, match="no commit checked out") as raised:
        base_commit(empty)
    assert raised.value.exit_code == 1
    assert raised.value.hint


def test_push_force_updates_the_branch(repo: Path, tmp_path: Path) -> None:
    """Pushing a second, unrelated commit to the same branch replaces the first."""
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True, timeout=30)
    base = base_commit(repo)
    (repo / "README.md").write_text("first\n")
    first = commit_tree(repo, build_tree(repo, base, [change("README.md", "modified")]), "1")
    push_commit(repo, str(remote), "ghs_unused_here", first, "claude-e2b/x")
    (repo / "README.md").write_text("second\n")
    second = commit_tree(repo, build_tree(repo, base, [change("README.md", "modified")]), "2")
    push_commit(repo, str(remote), "ghs_unused_here", second, "claude-e2b/x")
    assert git(remote, "rev-parse", "refs/heads/claude-e2b/x") == second
    assert git(repo, "rev-parse", "HEAD") == base


def test_refused_push_is_not_retried(repo: Path, tmp_path: Path) -> None:
    """A push git refuses for good fails at once with PushError and no token in the text."""
    waits: list[float] = []
    token = "ghs_secret_token_value"
    missing = tmp_path / "no-such-remote.git"
    with pytest.raises(PushError) as raised:
        push_commit(repo, str(missing), token, base_commit(repo), "b", sleep=waits.append)
    assert waits == []
    assert "does not appear to be a git repository" in str(raised.value)
    assert token not in str(raised.value)


def test_push_env_carries_the_header_after_existing_config(monkeypatch) -> None:
    """The header goes in GIT_CONFIG_* after entries already there, keyed on the exact URL."""
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "core.editor")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "true")
    env = push_env("https://ghe.example/o/r.git", "ghs_abc")
    assert env["GIT_CONFIG_COUNT"] == "3"
    assert env["GIT_CONFIG_KEY_0"] == "core.editor"
    assert (
        env["GIT_CONFIG_KEY_1"]
        == env["GIT_CONFIG_KEY_2"]
        == ("http.https://ghe.example/o/r.git.extraheader")
    )
    assert env["GIT_CONFIG_VALUE_1"] == ""
    assert env["GIT_CONFIG_VALUE_2"] == f"AUTHORIZATION: basic {basic_credential('ghs_abc')}"
    assert env["GIT_TERMINAL_PROMPT"] == "0"


# -- branch names


@pytest.mark.parametrize(
    ("plan", "branch"),
    [
        ("plans/fix-login.md", "claude-e2b/fix-login"),
        ("Fix Login Bug.md", "claude-e2b/Fix-Login-Bug"),
        ("a/b/café crème.md", "claude-e2b/cafe-creme"),
        ("..hidden..name.md", "claude-e2b/hidden.name"),
        ("x.lock.md", "claude-e2b/x"),
        ("日本語.md", "claude-e2b/plan"),
        ("C:\\plans\\win.md", "claude-e2b/win"),
        ("weird@{1}~^:?*[name.md", "claude-e2b/weird-1-name"),
        ("notes.txt", "claude-e2b/notes"),
    ],
)
def test_default_branch_names(plan: str, branch: str) -> None:
    """The plan's stem, reduced to characters every git and every URL accept."""
    assert default_branch_name(plan) == branch


def check_ref_format(*args: str) -> bool:
    done = subprocess.run(
        ["git", "check-ref-format", *args], capture_output=True, timeout=30, check=False, cwd="/"
    )
    return done.returncode == 0


@settings(max_examples=150, deadline=None)
@given(st.text(min_size=0, max_size=120))
def test_every_default_branch_name_is_valid(plan: str) -> None:
    """Whatever the plan path, git accepts the branch name and the full ref."""
    branch = default_branch_name(plan)
    assert branch.startswith("claude-e2b/")
    assert check_ref_format("--branch", branch)
    assert check_ref_format(f"refs/heads/{branch}")
    assert is_valid_branch(branch)


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("claude-e2b/x", True),
        ("feature/ok-1", True),
        ("bad..name", False),
        ("-x", False),
        ("a b", False),
        ("x.lock", False),
        ("@{-1}", False),
        ("HEAD", False),
        ("", False),
        ("trailing/", False),
    ],
)
def test_is_valid_branch(name: str, valid: bool) -> None:
    """Names git refuses as branches are refused, whatever the current directory."""
    assert is_valid_branch(name) is valid


def test_nothing_to_publish_is_a_caller_bug(repo: Path) -> None:
    """publish() without changes is an InternalError: a no_changes run opens no PR."""
    target = GitHubTarget("http://127.0.0.1:9/api/v3", "http://127.0.0.1:9", "o/r", "t" * 12)
    spec = PullRequestSpec("claude-e2b/x", "main", "t", "b", draft=False)
    with pytest.raises(InternalError):
        publish(repo, [], target, spec, api=None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://x-access-token:ghs_SECRET@github.com/o/r.git", "https://github.com/o/r.git"),
        ("https://user@ghe.example.test:8443/o/r.git", "https://ghe.example.test:8443/o/r.git"),
        ("http://127.0.0.1:8080/o/r.git", "http://127.0.0.1:8080/o/r.git"),
    ],
)
def test_public_url_drops_credentials(url: str, shown: str) -> None:
    """What the audit line and messages show of a remote: never its user or password."""
    assert public_url(url) == shown


def test_keep_commit_makes_a_branch_only_where_none_is(repo: Path) -> None:
    """A new local branch at the commit; an existing one is never moved."""
    head = git(repo, "rev-parse", "HEAD")
    (repo / "README.md").write_text("changed\n")
    built = build_tree(repo, head, [change("README.md", "modified")])
    commit = commit_tree(repo, built, "msg")
    said = keep_commit(repo, "claude-e2b/plan", commit)
    assert git(repo, "rev-parse", "claude-e2b/plan") == commit
    assert "git push --force origin claude-e2b/plan" in said
    other = keep_commit(repo, "main", commit)
    assert git(repo, "rev-parse", "main") == head
    assert f"git push --force origin {commit}:refs/heads/main" in other
