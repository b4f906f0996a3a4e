"""Validate the changes brought back from the sandbox and apply them to the checkout.

Both the changeset and the archive come from a sandbox where an agent ran with
full control, so both are untrusted. The apply must never touch what the pull
request would not show. Every entry is checked before anything is written; a bad
entry is refused and listed in ``ApplyResult.skipped`` with its reason (never
dropped silently, never raising for one entry). The checks, in order:

- the changeset itself: a path twice, or two paths that are one file where case,
  trailing dots or invisible characters are ignored; writes under another write;
- the caps: more than ``max_files`` files to write or ``max_total_bytes`` of new
  content (declared, then counted as the archive is read) refuse the *whole*
  changeset, every change listed, since half a code change is worse than none;
- the path rules (``apply_paths.py``): ``..``, absolute, ``.git`` in any spelling,
  protected and allowed globs, matched after folding the names;
- the checkout: parents that are symlinks or files there;
- the runner (``apply_runner.py``): deletions of paths that were not uploaded, new
  paths that exist on the runner but were never uploaded, or lie in a directory
  nothing of which was uploaded, or that git ignores there; names with invisible
  characters or trailing dots; the plan file's front matter (``apply_plan.py``);
- what git ignores on the runner (``apply_ignore.py``);
- the archive (``apply_archive.py``): members that disagree with the changeset,
  per-file cap, and the secret check on the new content.

Writes (``apply_write.py``) walk the checkout with directory file descriptors
opened ``O_NOFOLLOW``, so no symlink, old or new, can redirect a write outside it.

Raises:
    SyncError: the archive is unreadable, not zstd/gzip, or fails verification; the
        checkout cannot be opened.

"""

from __future__ import annotations

import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from claude_e2b.errors import UnsafeChangeError
from claude_e2b.sync.apply_archive import (
    ArchiveCaps,
    Staged,
    read_archive,
    verify_archive,
    write_capped,
)
from claude_e2b.sync.apply_ignore import IgnoreCheck, git_ignored
from claude_e2b.sync.apply_paths import (
    ancestors,
    fold_path,
    link_problem,
    path_problem,
    policy_problem,
)
from claude_e2b.sync.apply_plan import plan_change_problem, plan_content_problem, touches_plan
from claude_e2b.sync.apply_runner import FOLDED, RunnerView
from claude_e2b.sync.apply_write import os_reason, removed_paths, write_changes
from claude_e2b.sync.changes import Change, Changeset
from claude_e2b.sync.formats import MODE_EXECUTABLE, MODE_FILE, MODE_GITLINK, MODE_SYMLINK
from claude_e2b.sync.select import human_size

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

__all__ = [
    "ApplyPolicy",
    "ApplyResult",
    "IgnoreCheck",
    "Skipped",
    "apply_changes",
    "git_ignored",
    "verify_archive",
    "write_capped",
]

_WRITABLE_MODES = (MODE_FILE, MODE_EXECUTABLE, MODE_SYMLINK)
_NOTHING_APPLIED = "nothing was applied"


@dataclass(frozen=True)
class Skipped:
    """A change (or archive member) that was not applied, and why."""

    path: str
    reason: str


SECRET_REFUSAL = "secret"  # noqa: S105 - how a reason for a refused secret begins


@dataclass(frozen=True)
class ApplyResult:
    """What reached the checkout and what was refused."""

    applied: tuple[Change, ...]
    skipped: tuple[Skipped, ...]

    def skipped_result_list(self) -> list[dict[str, str]]:
        """Return the "skipped_changes" list of result.json."""
        return [{"path": item.path, "reason": item.reason} for item in self.skipped]

    @property
    def refused_secrets(self) -> bool:
        """Whether a change was refused because it holds a secret (in its content or name)."""
        return any(item.reason.startswith(SECRET_REFUSAL) for item in self.skipped)


@dataclass(frozen=True)
class ApplyPolicy:
    """Limits on what the agent may change in the checkout.

    ``uploaded`` holds the repository-relative path of every file that went up
    (``Selection.files``); ``ignored`` says which paths git ignores on the runner
    (:func:`git_ignored`); ``plan_path`` is the plan file's repository-relative
    path when it lives in the checkout. None means unknown: that check is skipped.
    """

    max_file_bytes: int = 50 * 2**20
    max_total_bytes: int = 100 * 2**20
    max_files: int = 5_000
    allowed_paths: tuple[str, ...] = ()  # empty: everything not protected is allowed
    protected_paths: tuple[str, ...] = (".github/workflows/**",)
    # Returns the names of the secret rules the new content of a path hits.
    secret_check: Callable[[bytes, str], list[str]] | None = None
    uploaded: frozenset[str] | None = None
    ignored: IgnoreCheck | None = None
    plan_path: str | None = None

    @property
    def caps(self) -> ArchiveCaps:
        """The caps the archive is read under."""
        return ArchiveCaps(self.max_file_bytes, self.max_total_bytes, self.max_files)

    @property
    def max_archive_bytes(self) -> int:
        """The download cap of the compressed archive (for :func:`write_capped`)."""
        return self.caps.download_bytes


@dataclass
class _Run:
    """The mutable bookkeeping of one apply: refusals and staged contents."""

    policy: ApplyPolicy
    staging: Path
    skipped: list[Skipped] = field(default_factory=list)
    refused: set[str] = field(default_factory=set)
    contents: dict[str, Staged] = field(default_factory=dict)

    def refuse(self, change: Change, reason: str) -> None:
        if change.status == "renamed" and change.old_path is not None:
            reason = f"{reason} (renamed from {change.old_path!r}, which was kept)"
        self.refused.add(change.path)
        self.skipped.append(Skipped(path=change.path, reason=reason))

    def accept_if(self, change: Change, problem: str | None) -> bool:
        """Refuse ``change`` when there is a problem; say whether it is still accepted."""
        if problem is not None:
            self.refuse(change, problem)
        return problem is None

    def refuse_all(self, changes: Iterable[Change], reason: str) -> list[Change]:
        """Refuse every change not refused yet; nothing is accepted."""
        for change in changes:
            if change.path not in self.refused:
                self.refuse(change, reason)
        self.contents.clear()
        return []


def apply_changes(
    checkout: Path, changeset: Changeset, archive: Path | None, *, policy: ApplyPolicy
) -> ApplyResult:
    """Apply ``changeset`` to ``checkout``, taking new contents from ``archive``.

    Raises:
        SyncError: the archive is corrupt or in an unknown format, or the checkout
            cannot be opened (in both cases nothing is written).

    """
    with tempfile.TemporaryDirectory(prefix="claude-e2b-apply-") as staging:
        run = _Run(policy=policy, staging=Path(staging))
        accepted = _validate(checkout, changeset.changes, archive, run)
        written = write_changes(checkout, accepted, run.contents, run.staging)
    run.skipped.extend(Skipped(path, reason) for path, reason in written.failed)
    return ApplyResult(applied=tuple(written.applied), skipped=tuple(run.skipped))


def _validate(
    checkout: Path, changes: Sequence[Change], archive: Path | None, run: _Run
) -> list[Change]:
    """Every check, before anything is written; returns the changes that passed."""
    unique = list(_unique(changes, run))
    over = _cap_problem(unique, run.policy)
    if over is not None:
        return run.refuse_all(unique, over)
    accepted = [c for c in _without_nested(unique, run) if _accept(c, run)]
    accepted = _accept_in_checkout(checkout, accepted, run)
    accepted = _accept_on_runner(checkout, accepted, run)
    try:
        _stage_contents(archive, accepted, run)
    except UnsafeChangeError as exc:
        cap = human_size(run.policy.max_total_bytes)
        why = f"over the caps ({cap}, {run.policy.max_files} files): {exc.message}"
        return run.refuse_all(unique, f"{why}; {_NOTHING_APPLIED}")
    accepted = [c for c in accepted if _accept_content(checkout, c, run)]
    # Again: a rename refused for its content no longer frees its old path for others.
    return _accept_in_checkout(checkout, accepted, run)


# --- the changeset as a whole ----------------------------------------------------------


def _unique(changes: Iterable[Change], run: _Run) -> Iterator[Change]:
    """Drop a second change to the same path, or a second write to the same file."""
    seen: set[str] = set()
    written: dict[str, str] = {}  # folded path -> the path first written under it
    for change in changes:
        if change.path in seen:
            run.refuse(change, "the changeset names this path twice")
            continue
        seen.add(change.path)
        if change.has_content:
            first = written.setdefault(fold_path(change.path), change.path)
            if first != change.path:
                run.refuse(change, f"the same file as {first!r}, also written here, {FOLDED}")
                continue
        yield change


def _cap_problem(changes: Sequence[Change], policy: ApplyPolicy) -> str | None:
    """Say why the whole changeset is over a cap, from what it declares, or None."""
    writes = [c for c in changes if c.has_content]
    if len(writes) > policy.max_files:
        return (
            f"over the file count cap ({policy.max_files}): the changes write"
            f" {len(writes)} files; {_NOTHING_APPLIED}"
        )
    total = sum(c.bytes for c in writes)
    if total > policy.max_total_bytes:
        return (
            f"over the total size cap ({human_size(policy.max_total_bytes)}): the changes"
            f" hold {human_size(total)}; {_NOTHING_APPLIED}"
        )
    return None


def _without_nested(changes: list[Change], run: _Run) -> list[Change]:
    """Refuse a write under another written file or symlink: git never produces one."""
    files = {c.path for c in changes if c.has_content}
    accepted = []
    for change in changes:
        clash = next((p for p in ancestors(change.path) if p in files), None)
        clash = clash if change.has_content else None
        if clash is None:
            accepted.append(change)
        else:
            run.refuse(change, f"parent {clash!r} is a file or symlink in the same changeset")
    return accepted


# --- each change on its own ------------------------------------------------------------


def _accept(change: Change, run: _Run) -> bool:
    return run.accept_if(change, _static_problem(change, run.policy))


def _static_problem(change: Change, policy: ApplyPolicy) -> str | None:
    if MODE_GITLINK in (change.mode, change.old_mode):
        return "nested git repository (gitlink): apply it in its own repository"
    if change.has_content and change.mode not in _WRITABLE_MODES:
        return f"unsupported file mode {change.mode!r}"
    for path in (change.path, change.old_path):
        if path is None:
            continue
        problem = path_problem(path) or policy_problem(
            path, policy.protected_paths, policy.allowed_paths
        )
        if problem is not None:
            return problem if path == change.path else f"{problem}: {path!r}"
    if change.link_target is not None:
        return link_problem(change.path, change.link_target)
    return _name_secret_problem(change, policy)


def _name_secret_problem(change: Change, policy: ApplyPolicy) -> str | None:
    """A file name that holds a secret would publish it in the commit and the PR."""
    if policy.secret_check is None:
        return None
    names = "\n".join(p for p in (change.path, change.old_path) if p)
    rules = policy.secret_check(names.encode("utf-8", "surrogateescape"), "")
    return f"{SECRET_REFUSAL} in the file name: {', '.join(rules)}" if rules else None


def _accept_on_runner(checkout: Path, changes: list[Change], run: _Run) -> list[Change]:
    """Refuse what would touch the runner's own files, or what the pull request cannot show."""
    view = RunnerView(checkout, run.policy.uploaded, frozenset(removed_paths(changes)))
    plan = run.policy.plan_path
    kept = [
        c
        for c in changes
        if run.accept_if(c, plan_change_problem(c, plan) or view.change_problem(c))
    ]
    check = run.policy.ignored
    unsure = [c.path for c in kept if c.has_content and not view.was_uploaded(c.path)]
    ignored = check(unsure) if check is not None and unsure else {}
    return [c for c in kept if run.accept_if(c, ignored.get(c.path))]


def _stage_contents(archive: Path | None, changes: list[Change], run: _Run) -> None:
    """Read the archive into the staging directory; list the members that disagree."""
    wanted = {c.path: c for c in changes if c.has_content}
    read = read_archive(archive, wanted, run.staging, run.policy.caps, refused=run.refused)
    run.contents.update(read.contents)
    for path, problem in read.refused.items():
        run.refuse(wanted[path], problem)
    for path in read.strays:
        run.skipped.append(Skipped(path, "archive member not in the changeset: ignored"))


def _accept_content(checkout: Path, change: Change, run: _Run) -> bool:
    if change.path in run.refused or not change.has_content:
        return change.path not in run.refused
    content = run.contents.get(change.path)
    problem = "missing from the archive" if content is None else _content_problem(change, content)
    if problem is None and content is not None and content.kind == "file":
        problem = _secret_problem(change.path, content, run.policy)
        problem = problem or _plan_problem(checkout, change, content, run.policy)
    return run.accept_if(change, problem)


def _content_problem(change: Change, content: Staged) -> str | None:
    if content.kind == "symlink" and content.target is not None:
        if change.link_target is not None and change.link_target != content.target:
            return "the archive's symlink target differs from the changeset's"
        return link_problem(change.path, content.target)
    return None


def _secret_problem(path: str, content: Staged, policy: ApplyPolicy) -> str | None:
    if policy.secret_check is None or content.staged is None:
        return None
    rules = policy.secret_check(content.staged.read_bytes(), path)
    return f"{SECRET_REFUSAL}: {', '.join(rules)}" if rules else None


def _plan_problem(
    checkout: Path, change: Change, content: Staged, policy: ApplyPolicy
) -> str | None:
    if (
        policy.plan_path is None
        or content.staged is None
        or not touches_plan(change, policy.plan_path)
    ):
        return None
    return plan_content_problem(checkout, policy.plan_path, content.staged.read_bytes())


# --- the checkout ------------------------------------------------------------------------


def _accept_in_checkout(checkout: Path, changes: list[Change], run: _Run) -> list[Change]:
    """Refuse paths whose parents in the checkout are symlinks or files that stay."""
    removed = set(removed_paths(changes))
    accepted = []
    for change in changes:
        problem = _parent_problem(checkout, change.path, removed)
        if problem is None and change.old_path is not None:
            problem = _parent_problem(checkout, change.old_path, removed)
        if run.accept_if(change, problem):
            accepted.append(change)
    return accepted


def _parent_problem(checkout: Path, path: str, removed: set[str]) -> str | None:
    for parent in ancestors(path):
        if parent in removed:
            return None  # deleted first; what lies below is then created afresh
        try:
            mode = (checkout / parent).lstat().st_mode
        except FileNotFoundError:
            return None
        except OSError as exc:
            return f"parent {parent!r} cannot be used: {os_reason(exc)}"
        if stat.S_ISLNK(mode):
            return f"parent {parent!r} is a symlink in the checkout"
        if not stat.S_ISDIR(mode):
            return f"parent {parent!r} is not a directory in the checkout"
    return None
