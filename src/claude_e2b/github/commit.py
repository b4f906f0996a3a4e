"""The commit of the agent's changes, built with git plumbing, and the push of it.

The user's index, HEAD and working tree are never touched: a temporary index
(``GIT_INDEX_FILE``) starts from the base commit's tree and takes exactly the paths the
run changed, read from the working tree (regular files through git's clean filters,
symlinks as their target). Anything else that differs in the working tree, such as the
user's own uncommitted edits, stays out of the commit.

The push sends the token only as an ``http.extraheader`` through ``GIT_CONFIG_*``
environment variables, keyed on the exact remote URL with an empty value first: that
both keeps it out of argv, URLs and logs, and replaces (rather than duplicates) the
header that actions/checkout persists for the server. Each push writes one audit line
(``git.push``: the remote URL without credentials, branch, commit, attempts, outcome).

When publishing fails after the commit was built, :func:`keep_commit` leaves it on a local
branch of the run's name (only if no such branch exists: a branch of the user's is never
moved), so the work can be pushed by hand.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from claude_e2b import audit
from claude_e2b.errors import PublishError, PushError, SyncError
from claude_e2b.github.target import basic_credential
from claude_e2b.log import REDACTOR, get_logger
from claude_e2b.sync.formats import MODE_EXECUTABLE, MODE_FILE, MODE_GITLINK, MODE_SYMLINK
from claude_e2b.sync.git import run_git

ZERO_SHA = "0" * 40
PUSH_TIMEOUT_S = 600.0  # a big first push over a slow runner link
PUSH_ATTEMPTS = 3
PUSH_RETRY_DELAY_S = 2.0
BOT_IDENTITY = ("github-actions[bot]", "41898282+github-actions[bot]@users.noreply.github.com")
# What git prints when the failure was the network or the server, not the request.
_TRANSIENT_PUSH = re.compile(
    r"returned error: (5\d\d|429)|HTTP (5\d\d|429)|RPC failed|early EOF|hung up unexpectedly"
    r"|Could not resolve host|Failed to connect|Connection (reset|refused|timed out)"
    r"|Operation timed out|SSL_ERROR|gnutls",
    re.IGNORECASE,
)

log = get_logger(__name__)


@dataclass(frozen=True)
class TreeChange:
    """One path that differs between the base tree and the new tree."""

    path: str
    mode: str  # the new mode; the old one when deleted
    sha: str | None  # the new blob; None when the path is deleted
    old_sha: str | None  # the blob in the base tree; None when the path is new


@dataclass(frozen=True)
class BuiltTree:
    """The base commit, its tree, the new tree and what differs between the two."""

    base: str
    base_tree: str
    tree: str
    changes: tuple[TreeChange, ...]


def git_bytes(
    repo: Path, *args: str, stdin: bytes | None = None, env: Mapping[str, str] | None = None
) -> bytes:
    """Git's stdout; PublishError when git fails or hangs."""
    try:
        done = run_git(repo, *args, stdin=stdin, env=env)
    except SyncError as exc:
        raise PublishError(exc.message) from exc
    if done.returncode != 0:
        said = os.fsdecode(done.stderr).strip()
        raise PublishError(f"`git {args[0]}` failed in {repo}: {said}")
    return done.stdout


def git_text(repo: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    """Git's stdout as text, stripped."""
    return os.fsdecode(git_bytes(repo, *args, env=env)).strip()


def base_commit(repo: Path) -> str:
    """The checkout's HEAD commit, the parent of the commit we make."""
    done = run_git(repo, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    if done.returncode != 0:
        raise PublishError(
            f"{repo} has no commit checked out",
            hint="publish from a checkout of the repository (actions/checkout)",
        )
    return os.fsdecode(done.stdout).strip()


def is_valid_branch(name: str) -> bool:
    """Whether git accepts ``name`` as a branch name (``git check-ref-format --branch``)."""
    if not name or name.startswith("-") or name == "HEAD":
        return False
    done = subprocess.run(
        ["git", "check-ref-format", "--branch", name],
        capture_output=True,
        timeout=30,
        check=False,
        cwd=tempfile.gettempdir(),  # `@{-1}` and friends mean nothing outside a repository
    )
    return done.returncode == 0 and os.fsdecode(done.stdout).strip() == name


# -- the tree


def build_tree(repo: Path, base: str, changes: Sequence[Mapping[str, Any]]) -> BuiltTree:
    """The tree of ``base`` with the changed paths taken from the working tree."""
    with _temporary_index() as env:
        git_bytes(repo, "read-tree", base, env=env)
        removals, writes = _plan(repo, changes)
        lines = [f"0 {ZERO_SHA}\t{path}" for path in removals]  # first: a file may become a dir
        lines += [f"{mode} {sha}\t{path}" for path, (mode, sha) in writes.items()]
        if lines:
            stdin = "".join(f"{line}\0" for line in lines).encode("utf-8", "surrogateescape")
            git_bytes(repo, "update-index", "-z", "--index-info", stdin=stdin, env=env)
        tree = git_text(repo, "write-tree", env=env)
    base_tree = git_text(repo, "rev-parse", f"{base}^{{tree}}")
    return BuiltTree(base, base_tree, tree, tuple(diff_trees(repo, base_tree, tree)))


@contextmanager
def _temporary_index() -> Iterator[dict[str, str]]:
    with tempfile.TemporaryDirectory(prefix="claude-e2b-index-") as tmp:
        yield {"GIT_INDEX_FILE": str(Path(tmp) / "index")}


def _plan(
    repo: Path, changes: Sequence[Mapping[str, Any]]
) -> tuple[list[str], dict[str, tuple[str, str]]]:
    """Paths to remove, and (mode, blob) for paths to write, from the changes list."""
    removals: list[str] = []
    modes: dict[str, str] = {}
    for change in changes:
        path, status = str(change["path"]), str(change["status"])
        if status == "renamed" and change.get("old_path"):
            removals.append(str(change["old_path"]))
        if status == "deleted":
            removals.append(path)
        else:
            modes[path] = _checked_mode(repo, path, change.get("mode"))
    shas = _hash_paths(repo, modes)
    writes = {path: (mode, shas[path]) for path, mode in modes.items()}
    return [p for p in removals if p not in writes], writes


def _checked_mode(repo: Path, path: str, mode: Any) -> str:
    """The mode to commit ``path`` with; PublishError when it is no file or symlink now."""
    if mode == MODE_GITLINK:
        raise PublishError(f"{path}: changes to submodules (gitlinks) are not published")
    try:
        info = (repo / path).lstat()
    except FileNotFoundError:
        info = None
    if info is None or not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
        raise PublishError(
            f"{path} is listed as changed but is no file or symlink in the checkout",
            hint="the checkout changed after the run's changes were applied; re-run the job",
        )
    return _mode(info, path, mode)


def _hash_paths(repo: Path, modes: Mapping[str, str]) -> dict[str, str]:
    """Blob shas of the paths, written to the object store; files cleaned as `git add` does."""
    files = [p for p, m in modes.items() if m != MODE_SYMLINK and "\n" not in p]
    listing = "".join(f"{p}\n" for p in files).encode("utf-8", "surrogateescape")
    batch = git_bytes(repo, "hash-object", "-w", "--stdin-paths", stdin=listing) if files else b""
    shas = dict(zip(files, batch.decode().split(), strict=True))
    return {p: shas.get(p) or _hash_one(repo, p, m) for p, m in modes.items()}


def _hash_one(repo: Path, path: str, mode: str) -> str:
    """A symlink's target as a blob, or a file whose name --stdin-paths cannot carry."""
    if mode == MODE_SYMLINK:
        target = os.fsencode((repo / path).readlink())
        return git_bytes(repo, "hash-object", "-w", "--stdin", stdin=target).decode().strip()
    return git_text(repo, "hash-object", "-w", "--", path)


def _mode(info: os.stat_result, path: str, mode: Any) -> str:
    """The mode to commit: the change's own, when it agrees with what is on disk."""
    on_disk = MODE_SYMLINK if stat.S_ISLNK(info.st_mode) else MODE_FILE
    if on_disk == MODE_FILE and info.st_mode & stat.S_IXUSR:
        on_disk = MODE_EXECUTABLE
    if mode not in {MODE_FILE, MODE_EXECUTABLE, MODE_SYMLINK}:
        return on_disk  # no mode given: trust the disk
    if (mode == MODE_SYMLINK) != (on_disk == MODE_SYMLINK):
        made, found = ("symlink", "file") if mode == MODE_SYMLINK else ("file", "symlink")
        raise PublishError(
            f"{path}: the run made it a {made} but the checkout has a {found}",
            hint="the checkout changed after the run's changes were applied; re-run the job",
        )
    return str(mode)  # the exec bit as the run reported it (core.fileMode may be off)


def diff_trees(repo: Path, old: str, new: str) -> list[TreeChange]:
    """Every path whose mode or blob differs between two trees (no rename detection)."""
    out = git_bytes(repo, "diff-tree", "-r", "-z", "--no-renames", old, new)
    fields = out.split(b"\0")
    found = []
    for meta, raw_path in zip(fields[0::2], fields[1::2], strict=False):
        old_mode, new_mode, old_sha, new_sha, _status = meta.decode().lstrip(":").split(" ")
        deleted = new_mode == "000000"
        found.append(
            TreeChange(
                path=raw_path.decode("utf-8", "surrogateescape"),
                mode=old_mode if deleted else new_mode,
                sha=None if deleted else new_sha,
                old_sha=None if old_mode == "000000" else old_sha,
            )
        )
    return found


def read_blob(repo: Path, sha: str) -> bytes:
    """The content of a blob in the checkout's object store."""
    return git_bytes(repo, "cat-file", "blob", sha)


# -- the commit and the push


def commit_tree(
    repo: Path, built: BuiltTree, message: str, author: tuple[str, str] | None = None
) -> str:
    """Write the commit of ``built.tree`` on ``built.base``; its sha (HEAD does not move)."""
    name, email = author or BOT_IDENTITY
    env = {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }
    stdin = message.encode()
    out = git_bytes(
        repo, "commit-tree", built.tree, "-p", built.base, "-F", "-", stdin=stdin, env=env
    )
    return out.decode().strip()


def push_env(remote_url: str, token: str) -> dict[str, str]:
    """Environment that authenticates one push to ``remote_url`` with ``token``."""
    count = int(os.environ.get("GIT_CONFIG_COUNT", "0") or 0)
    key = f"http.{remote_url}.extraheader"
    header = f"AUTHORIZATION: basic {basic_credential(token)}"
    env = {
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_COUNT": str(count + 2),
        # An empty value clears the headers collected so far for this URL (checkout's own).
        f"GIT_CONFIG_KEY_{count}": key,
        f"GIT_CONFIG_VALUE_{count}": "",
        f"GIT_CONFIG_KEY_{count + 1}": key,
        f"GIT_CONFIG_VALUE_{count + 1}": header,
    }
    return {**os.environ, **env}


def public_url(url: str) -> str:
    """``url`` without user or password: what may be logged and shown."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def push_commit(
    repo: Path,
    remote_url: str,
    token: str,
    commit: str,
    branch: str,
    *,
    attempts: int = PUSH_ATTEMPTS,
    delay_s: float | None = None,
    timeout_s: float = PUSH_TIMEOUT_S,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Force ``refs/heads/<branch>`` on the remote to ``commit``; retried on network trouble.

    A push of the same commit is idempotent, so a failure that looks transient (5xx, a
    dropped connection) is tried again; a refusal (401, 403, a hook) is not. Raises
    PushError saying what git said (token-free) and what to do. ``delay_s`` (the wait
    before the second try, growing linearly) defaults to ``PUSH_RETRY_DELAY_S``.
    """
    argv = ["git", "-C", str(repo), "push", "--force", "--no-verify", "--porcelain", remote_url,
            f"{commit}:refs/heads/{branch}"]  # fmt: skip
    env = push_env(remote_url, token)
    began, tries, outcome = time.monotonic(), [0], "PushError"
    try:
        said = _push_attempts(
            argv, env, token, tries=tries, attempts=attempts, timeout_s=timeout_s,
            delay_s=PUSH_RETRY_DELAY_S if delay_s is None else delay_s, sleep=sleep,
        )  # fmt: skip
        if said is None:
            outcome = "ok"
            log.info("publish.pushed", branch=branch, commit=commit, attempts=tries[0])
    except BaseException as exc:
        outcome = type(exc).__name__
        raise
    finally:
        audit.record("git.push", target=public_url(remote_url), outcome=outcome,
                     duration_s=time.monotonic() - began, branch=branch, commit=commit,
                     attempts=tries[0])  # fmt: skip
    if said is not None:
        raise PushError(
            f"git push of {branch} to {public_url(remote_url)} failed: {said}",
            hint=_push_hint(said, branch),
        )


def _push_attempts(
    argv: list[str],
    env: dict[str, str],
    token: str,
    *,
    tries: list[int],
    attempts: int,
    timeout_s: float,
    delay_s: float,
    sleep: Callable[[float], None],
) -> str | None:
    """Push until it lands (None) or fails for good (git's last words); counts in ``tries``."""
    said: str | None = "no push was attempted"
    for attempt in range(1, attempts + 1):
        tries[0] = attempt
        said = _push_once(argv, env, timeout_s, token)
        if said is None or attempt == attempts or not _TRANSIENT_PUSH.search(said):
            return said
        log.warning("publish.push_retry", attempt=attempt, error=said)
        sleep(delay_s * attempt)
    return said


def _push_once(argv: list[str], env: dict[str, str], timeout_s: float, token: str) -> str | None:
    """None when the push went through, else what git said (token-free)."""
    try:
        done = subprocess.run(argv, env=env, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return f"no answer within {timeout_s:.0f} s (Operation timed out)"
    if done.returncode == 0:
        return None
    said = os.fsdecode(done.stderr + done.stdout).strip()
    return REDACTOR.redact(said.replace(basic_credential(token), "***").replace(token, "***"))


def _push_hint(said: str, branch: str) -> str:
    if re.search(r"\b(401|403)\b|denied|Authentication failed|Invalid username", said):
        return (
            "the token may not push: give the workflow `permissions: contents: write`, or pass "
            "a token with write access as github-token"
        )
    if re.search(r"protected branch|GH006", said, re.IGNORECASE):
        return (
            f"{branch} is a protected branch on GitHub: set another `branch` (plan key or "
            "input), or let the token push to it"
        )
    if "hook declined" in said or "remote rejected" in said:
        return f"GitHub refused the push of {branch} (see its reason above); fix that and re-run"
    return "the push did not get through (a server error or no answer): try again later"


def keep_commit(repo: Path, branch: str, commit: str) -> str:
    """Leave ``commit`` on local branch ``branch`` if it has none yet; where it is, in words.

    A branch of that name that exists already is left alone (it may hold the user's
    work): the commit is then named by its sha. Never raises: this is a last resort.
    """
    try:
        done = run_git(repo, "update-ref", f"refs/heads/{branch}", commit, ZERO_SHA)
    except SyncError:
        done = None
    if done is not None and done.returncode == 0:
        log.info("publish.kept_locally", branch=branch, commit=commit)
        push = f"git push --force origin {branch}"
        return f"committed on the local branch {branch}: push it with `{push}`"
    return (
        f"committed as {commit[:12]} (the local branch {branch} exists and was left alone): "
        f"push it with `git push --force origin {commit}:refs/heads/{branch}`"
    )
