"""Publishing a run: the branch, the commit of its changes, and the pull request.

    target = GitHubTarget(api_url, server_url, "owner/name", token)
    spec = PullRequestSpec(branch=plan.branch or default_branch_name(plan_path), base="main",
                           title=..., body=rendered_pr_body, draft=status != "completed",
                           labels=(...), reviewers=(...), commit_message=..., sign_commits=False)
    with GitHubApi.open(target) as api:
        pr = publish(repo_dir, result.changes, target, spec, api, on_warning=warnings.append)

The commit holds exactly the paths in ``changes`` (see commit.py) on top of the checkout's
HEAD. It reaches GitHub by ``git push --force`` to the run's branch, or, with
``sign_commits``, through the Git Data API (blobs, tree, commit, ref) so that GitHub signs
it; the API's tree must then equal the tree git builds locally. Then the open pull request
of the branch is updated, or one is created: a re-run updates the same pull request.
Callers publish nothing for a run without changes (status ``no_changes``).

When publishing fails once the commit is built, the commit is kept on a local branch of
the run's name (when none exists) and the error's hint says so: nothing is lost, and
the work can be pushed by hand.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any

from claude_e2b.errors import InternalError, PublishError
from claude_e2b.github.commit import (
    BuiltTree,
    TreeChange,
    base_commit,
    build_tree,
    commit_tree,
    is_valid_branch,
    keep_commit,
    push_commit,
    read_blob,
)
from claude_e2b.github.target import GitHubTarget
from claude_e2b.log import get_logger
from claude_e2b.result import PrInfo

if TYPE_CHECKING:  # the API (PyGithub) is loaded by whoever opens one, not by importing this
    from claude_e2b.github.api import GitHubApi, PullRequestRef, TreeEntry

__all__ = [
    "GitHubTarget",
    "PullRequestSpec",
    "default_branch_name",
    "is_valid_branch",
    "publish",
]

BRANCH_PREFIX = "claude-e2b/"
MAX_STEM = 80
_NOT_IN_BRANCH = re.compile(r"[^A-Za-z0-9._-]+")

log = get_logger(__name__)
Warn = Callable[[str], None]


@dataclass(frozen=True)
class PullRequestSpec:
    """What to publish: branch, base, the pull request's text and settings, the commit."""

    branch: str
    base: str
    title: str
    body: str
    draft: bool
    labels: tuple[str, ...] = ()
    reviewers: tuple[str, ...] = ()
    commit_message: str = "Apply changes from claude-e2b"
    sign_commits: bool = False
    author: tuple[str, str] | None = None  # (name, email) of git commits; default: the bot


def default_branch_name(plan_path: str) -> str:
    """``claude-e2b/<plan stem>``, made a valid branch name (git check-ref-format rules)."""
    name = PureWindowsPath(PurePosixPath(plan_path).name).name
    stem = name.removesuffix(".md") if name.endswith(".md") else PurePosixPath(name).stem
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    clean = _NOT_IN_BRANCH.sub("-", ascii_stem)
    clean = re.sub(r"\.{2,}", ".", clean)[:MAX_STEM].strip(".-")
    while clean.endswith(".lock"):  # git reserves it for its lock files
        clean = clean.removesuffix(".lock").strip(".-")
    return BRANCH_PREFIX + (clean or "plan")


def publish(
    repo_dir: Path,
    changes: Sequence[Mapping[str, Any]],
    target: GitHubTarget,
    spec: PullRequestSpec,
    api: GitHubApi,
    *,
    on_warning: Warn | None = None,
) -> PrInfo:
    """Commit ``changes`` onto the checkout's HEAD, push the branch, open or update the PR.

    Raises PublishError (exit 1) with a hint saying what to do; the changes stay applied
    to the checkout whatever fails, and once the commit is built it is kept on a local
    branch (the hint says which, or names the commit). Problems that leave a usable pull
    request behind (a label, a reviewer, the draft flag) go to ``on_warning`` and the log.
    """
    warn = _warner(on_warning)
    _check_spec(spec, changes)
    built = build_tree(repo_dir, base_commit(repo_dir), changes)
    if built.tree == built.base_tree:
        raise PublishError(
            "the run's changes make no difference to the checked-out commit: nothing to publish",
            hint="the changes may already be on the base branch",
        )
    if spec.sign_commits and spec.author is not None:  # GitHub signs commits without one
        warn("sign-commits: the commit is by the token's identity; `author` is ignored")
    local = None if spec.sign_commits else commit_tree(repo_dir, built, spec.commit_message,
                                                       spec.author)  # fmt: skip
    try:
        if local is None:
            head = _push_through_api(repo_dir, built, spec, api)
        else:
            push_commit(repo_dir, target.clone_url, target.token, local, spec.branch)
            head = local
        pull, created = api.upsert_pull(
            branch=spec.branch, base=spec.base, title=spec.title, body=spec.body, draft=spec.draft
        )
    except PublishError as exc:
        _keep_locally(repo_dir, built, spec, local, exc)
        raise
    log.info("publish.pull", number=pull.number, created=created, branch=spec.branch, head=head)
    draft = _finish_pull(api, pull, spec, created=created, warn=warn)
    return PrInfo(pull.url, pull.number, spec.branch, draft, "created" if created else "updated")


def _keep_locally(
    repo_dir: Path, built: BuiltTree, spec: PullRequestSpec, local: str | None, exc: PublishError
) -> None:
    """Leave the commit on a local branch and say where in ``exc``'s hint."""
    try:
        commit = local or commit_tree(repo_dir, built, spec.commit_message, spec.author)
    except PublishError:
        return  # the changes are still in the working tree; the first error is the story
    where = keep_commit(repo_dir, spec.branch, commit)
    exc.hint = f"{exc.hint}; {where}" if exc.hint else where


def _warner(on_warning: Warn | None) -> Warn:
    def warn(message: str) -> None:
        log.warning("publish.warning", message=message)
        if on_warning is not None:
            on_warning(message)

    return warn


def _check_spec(spec: PullRequestSpec, changes: Sequence[Mapping[str, Any]]) -> None:
    if not changes:
        raise InternalError("publish was called without changes (a no_changes run has no PR)")
    if not is_valid_branch(spec.branch):
        raise PublishError(
            f"{spec.branch!r} is not a valid branch name",
            hint="fix `branch` in the plan or the branch input (see git check-ref-format)",
        )
    if spec.branch == spec.base:
        raise PublishError(
            f"the run's branch and the base branch are both {spec.base!r}",
            hint="name a branch of its own for the run: it is force-pushed on every run",
        )


# -- sign-commits: the Git Data API


def _push_through_api(
    repo_dir: Path, built: BuiltTree, spec: PullRequestSpec, api: GitHubApi
) -> str:
    """Blobs, tree, commit and ref through the API; the commit's sha (GitHub signs it)."""
    remote_base = api.remote_commit(built.base)
    if remote_base is None:
        raise PublishError(
            f"the checked-out commit {built.base[:12]} is not on GitHub, so the API cannot "
            "build on it",
            hint="push that commit first, or check out a commit of the remote (actions/checkout)",
        )
    on_github = {c.old_sha for c in built.changes if c.old_sha}  # blobs of the base tree
    entries = [_api_entry(repo_dir, change, api, on_github) for change in built.changes]
    tree = api.create_tree(remote_base.tree, entries)
    if tree != built.tree:
        raise PublishError(
            f"GitHub built tree {tree[:12]} from the changes, git built {built.tree[:12]}",
            hint="nothing was published; report this, or set sign-commits: false",
        )
    commit = api.create_commit(spec.commit_message, tree, [built.base])
    api.set_branch(spec.branch, commit.sha)
    log.info("publish.api_commit", commit=commit.sha, verified=commit.verified)
    return commit.sha


def _api_entry(
    repo_dir: Path, change: TreeChange, api: GitHubApi, on_github: set[str]
) -> TreeEntry:
    """The tree entry of one change, uploading its blob unless GitHub has it (a rename)."""
    from claude_e2b.github.api import TreeEntry  # noqa: PLC0415 - loaded with ``api`` already

    if change.sha is not None and change.sha not in on_github:
        uploaded = api.create_blob(read_blob(repo_dir, change.sha))
        if uploaded != change.sha:
            raise PublishError(
                f"{change.path}: GitHub stored blob {uploaded}, git has {change.sha}"
            )
        on_github.add(uploaded)  # the same content at two paths goes up once
    return TreeEntry(change.path, change.mode, change.sha)


# -- after the pull request exists


def _finish_pull(
    api: GitHubApi, pull: PullRequestRef, spec: PullRequestSpec, *, created: bool, warn: Warn
) -> bool:
    """Labels, reviewers and the draft flag; the pull request's draft state at the end."""
    settling = created  # right after creation GitHub may not know the PR everywhere yet
    if spec.labels:
        labels = partial(api.add_labels, pull.number, spec.labels, settling=settling)
        _try(warn, "could not add the labels", labels)
    reviewers = _reviewers(api, spec, warn)
    if reviewers:
        request = partial(api.request_reviewers, pull.number, reviewers, settling=settling)
        _try(warn, "could not request reviewers", request)
    if pull.draft == spec.draft:
        return pull.draft
    if created:  # the repository has no drafts: create_pull fell back to a ready PR
        warn("draft pull requests are not available in this repository: opened a ready one")
        return pull.draft
    flip = partial(api.set_draft, pull.number, spec.draft)
    return spec.draft if _try(warn, "could not change the draft state", flip) else pull.draft


def _reviewers(api: GitHubApi, spec: PullRequestSpec, warn: Warn) -> tuple[str, ...]:
    """The reviewers to request: GitHub refuses a review by the pull request's author."""
    if not spec.reviewers:
        return ()
    me = api.whoami().lower()
    if any(r.lower() == me for r in spec.reviewers):
        warn(f"{me} opened the pull request and cannot review it: not requested")
    return tuple(r for r in spec.reviewers if r.lower() != me)


def _try(warn: Warn, what: str, call: Callable[[], object]) -> bool:
    """Run ``call``; a PublishError becomes a warning (the pull request is usable anyway)."""
    try:
        call()
    except PublishError as exc:
        warn(f"{what}: {exc.message}")
        return False
    return True
