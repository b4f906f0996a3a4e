"""Validate the changes brought back from the sandbox and apply them to the checkout.

Both the changeset and the archive come from a sandbox where an agent ran with
full control, so both are untrusted. Every entry is checked before anything is
written; a bad entry is refused and listed in ``ApplyResult.skipped`` with its
reason (never dropped silently, never raising for one entry). Writes walk the
checkout with directory file descriptors opened ``O_NOFOLLOW``, so no symlink,
old or new, can redirect a write outside the checkout.

Path patterns (``allowed_paths``, ``protected_paths``) are globs matched with
wcmatch: ``**`` spans directories, ``*`` stays within one, dot files match, and a
pattern that matches a directory covers everything under it (as in .gitignore).
Protected patterns match case-insensitively, so a case-insensitive file system
cannot be used to slip past them.

Raises:
    SyncError: the archive is unreadable, not zstd/gzip, or fails verification; the
        checkout cannot be opened.

"""

from __future__ import annotations

import errno
import hashlib
import os
import posixpath
import secrets
import shutil
import stat
import tarfile
import tempfile
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal

import zstandard
from wcmatch import glob

from claude_e2b.errors import SyncError
from claude_e2b.sync.changes import Change, Changeset, PackedArchive
from claude_e2b.sync.formats import MODE_EXECUTABLE, MODE_FILE, MODE_GITLINK, MODE_SYMLINK

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_GZIP_MAGIC = b"\x1f\x8b"
_GLOB_FLAGS = glob.GLOBSTAR | glob.DOTGLOB | glob.FORCEUNIX
# Characters HFS+ ignores in names, so ".g\u200cit" is ".git" on a Mac runner.
_HFS_IGNORED = dict.fromkeys(
    [*range(0x200C, 0x2010), *range(0x202A, 0x202F), *range(0x206A, 0x2070), 0xFEFF]
)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_WRITABLE_MODES = (MODE_FILE, MODE_EXECUTABLE, MODE_SYMLINK)


@dataclass(frozen=True)
class Skipped:
    """A change (or archive member) that was not applied, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class ApplyResult:
    """What reached the checkout and what was refused."""

    applied: tuple[Change, ...]
    skipped: tuple[Skipped, ...]

    def skipped_result_list(self) -> list[dict[str, str]]:
        """Return the "skipped_changes" list of result.json."""
        return [{"path": item.path, "reason": item.reason} for item in self.skipped]


@dataclass(frozen=True)
class ApplyPolicy:
    """Limits on what the agent may change in the checkout."""

    max_file_bytes: int = 50 * 2**20
    allowed_paths: tuple[str, ...] = ()  # empty: everything not protected is allowed
    protected_paths: tuple[str, ...] = (".github/workflows/**",)
    # Returns the names of the secret rules the new content of a path hits.
    secret_check: Callable[[bytes, str], list[str]] | None = None


@dataclass(frozen=True)
class _Content:
    """New content for one path: a staged regular file or a symlink target."""

    kind: Literal["file", "symlink"]
    staged: Path | None = None
    target: str | None = None
    mode: int = 0o644


@dataclass
class _Run:
    """The mutable bookkeeping of one apply: refusals and staged contents."""

    policy: ApplyPolicy
    staging: Path
    skipped: list[Skipped] = field(default_factory=list)
    refused: set[str] = field(default_factory=set)
    contents: dict[str, _Content] = field(default_factory=dict)
    backups: dict[str, _Content | None] = field(default_factory=dict)

    def refuse(self, change: Change, reason: str) -> None:
        if change.status == "renamed" and change.old_path is not None:
            reason = f"{reason} (renamed from {change.old_path!r}, which was kept)"
        self.refused.add(change.path)
        self.skipped.append(Skipped(path=change.path, reason=reason))


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
        unique = list(_unique(changeset.changes, run))
        accepted = [c for c in _without_nested(unique, run) if _accept(c, run)]
        _read_archive(archive, {c.path: c for c in accepted if c.has_content}, run)
        accepted = [c for c in accepted if _accept_content(c, run)]
        accepted = _accept_in_checkout(checkout, accepted, run)
        applied = _execute(checkout, accepted, run)
    return ApplyResult(applied=tuple(applied), skipped=tuple(run.skipped))


def verify_archive(archive: Path, expected: PackedArchive) -> None:
    """Check the downloaded archive against what the pack script reported.

    Raises:
        SyncError: the size or the sha256 differ.

    """
    digest = hashlib.sha256()
    with archive.open("rb") as src:
        for block in iter(lambda: src.read(2**20), b""):
            digest.update(block)
    size = archive.stat().st_size
    if size != expected.bytes or digest.hexdigest() != expected.sha256:
        raise SyncError(
            f"the downloaded archive ({size} bytes, sha256 {digest.hexdigest()}) differs from"
            f" the one packed in the sandbox ({expected.bytes} bytes, sha256 {expected.sha256})",
            hint="the download was corrupted or cut short; run again",
        )


# --- paths and policy -------------------------------------------------------------


def path_problem(path: str) -> str | None:
    """Say why ``path`` may never be written in a checkout, or None when it may."""
    if not path or "\0" in path:
        return "empty path or NUL in path"
    if path.startswith("/"):
        return "absolute path"
    if "\\" in path:
        return "backslash in path (a separator on Windows)"
    return _segment_problem(path.split("/"))


def _segment_problem(parts: list[str]) -> str | None:
    if any(part in ("", ".") for part in parts):
        return "path is not normalized (empty or '.' segment)"
    if ".." in parts:
        return "path has a '..' segment"
    if any(_is_dotgit(part) for part in parts):
        return "path is inside .git"
    return None


def _is_dotgit(part: str) -> bool:
    # Windows drops trailing dots and spaces and knows ".git" as "git~1" too.
    name = part.translate(_HFS_IGNORED).rstrip(". ").lower()
    return name in (".git", "git~1")


def _ancestors(path: str) -> list[str]:
    """Return the directories above ``path``, outermost first: "a/b/c" gives a, a/b."""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _first_match(path: str, patterns: Iterable[str], flags: int) -> str | None:
    candidates = [*_ancestors(path), path]
    for pattern in patterns:
        if any(glob.globmatch(c, pattern, flags=flags) for c in candidates):
            return pattern
    return None


def _policy_problem(path: str, policy: ApplyPolicy) -> str | None:
    protected = _first_match(path, policy.protected_paths, _GLOB_FLAGS | glob.IGNORECASE)
    if protected is not None:
        return f"protected path (matches {protected!r})"
    if policy.allowed_paths and _first_match(path, policy.allowed_paths, _GLOB_FLAGS) is None:
        return "outside allowed paths"
    return None


def _link_problem(path: str, target: str) -> str | None:
    if not target or "\0" in target:
        return "symlink with an empty target"
    if target.startswith("/"):
        return f"symlink to an absolute path ({target!r})"
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if resolved == ".." or resolved.startswith("../"):
        return f"symlink target {target!r} points outside the checkout"
    if resolved != "." and path_problem(resolved) is not None:
        return f"symlink target {target!r} points into .git"
    return None


# --- validation, before anything is written ------------------------------------------


def _unique(changes: Iterable[Change], run: _Run) -> Iterator[Change]:
    """Drop a second change to the same path: git never produces one."""
    seen: set[str] = set()
    for change in changes:
        if change.path in seen:
            run.refuse(change, "the changeset names this path twice")
            continue
        seen.add(change.path)
        yield change


def _without_nested(changes: list[Change], run: _Run) -> list[Change]:
    """Refuse a write under another written file or symlink: git never produces one."""
    files = {c.path for c in changes if c.has_content}
    accepted = []
    for change in changes:
        clash = next((p for p in _ancestors(change.path) if p in files), None)
        clash = clash if change.has_content else None
        if clash is None:
            accepted.append(change)
        else:
            run.refuse(change, f"parent {clash!r} is a file or symlink in the same changeset")
    return accepted


def _accept(change: Change, run: _Run) -> bool:
    problem = _static_problem(change, run.policy)
    if problem is not None:
        run.refuse(change, problem)
    return problem is None


def _static_problem(change: Change, policy: ApplyPolicy) -> str | None:
    if MODE_GITLINK in (change.mode, change.old_mode):
        return "nested git repository (gitlink): apply it in its own repository"
    if change.has_content and change.mode not in _WRITABLE_MODES:
        return f"unsupported file mode {change.mode!r}"
    for path in (change.path, change.old_path):
        problem = None if path is None else path_problem(path) or _policy_problem(path, policy)
        if problem is not None:
            return problem if path == change.path else f"{problem}: {path!r}"
    if change.link_target is not None:
        return _link_problem(change.path, change.link_target)
    return None


def _accept_content(change: Change, run: _Run) -> bool:
    if change.path in run.refused or not change.has_content:
        return change.path not in run.refused
    content = run.contents.get(change.path)
    problem = "missing from the archive" if content is None else _content_problem(change, content)
    if problem is None and content is not None and content.kind == "file":
        problem = _secret_problem(change.path, content, run.policy)
    if problem is not None:
        run.refuse(change, problem)
    return problem is None


def _content_problem(change: Change, content: _Content) -> str | None:
    if content.kind == "symlink" and content.target is not None:
        if change.link_target is not None and change.link_target != content.target:
            return "the archive's symlink target differs from the changeset's"
        return _link_problem(change.path, content.target)
    return None


def _secret_problem(path: str, content: _Content, policy: ApplyPolicy) -> str | None:
    if policy.secret_check is None or content.staged is None:
        return None
    rules = policy.secret_check(content.staged.read_bytes(), path)
    return f"secret: {', '.join(rules)}" if rules else None


def _accept_in_checkout(checkout: Path, changes: list[Change], run: _Run) -> list[Change]:
    """Refuse paths whose parents in the checkout are symlinks or files that stay."""
    removed = set(_removed_paths(changes))
    accepted = []
    for change in changes:
        problem = _parent_problem(checkout, change.path, removed)
        if problem is None and change.old_path is not None:
            problem = _parent_problem(checkout, change.old_path, removed)
        if problem is not None:
            run.refuse(change, problem)
        else:
            accepted.append(change)
    return accepted


def _removed_paths(changes: Iterable[Change]) -> Iterator[str]:
    for change in changes:
        if change.status == "deleted":
            yield change.path
        elif change.old_path is not None:
            yield change.old_path


def _parent_problem(checkout: Path, path: str, removed: set[str]) -> str | None:
    for parent in _ancestors(path):
        if parent in removed:
            return None  # deleted first; what lies below is then created afresh
        try:
            mode = (checkout / parent).lstat().st_mode
        except FileNotFoundError:
            return None
        except OSError as exc:
            return f"parent {parent!r} cannot be used: {_os_reason(exc)}"
        if stat.S_ISLNK(mode):
            return f"parent {parent!r} is a symlink in the checkout"
        if not stat.S_ISDIR(mode):
            return f"parent {parent!r} is not a directory in the checkout"
    return None


# --- the archive -----------------------------------------------------------------------


def _read_archive(archive: Path | None, wanted: dict[str, Change], run: _Run) -> None:
    """Stage the wanted members' contents; refuse the members that disagree."""
    if archive is None:
        return
    try:
        with ExitStack() as stack:
            tar = _open_tar(archive, stack)
            for index, member in enumerate(tar):
                _take_member(tar, member, index, wanted, run)
    except (tarfile.TarError, zstandard.ZstdError, EOFError, OSError) as exc:
        raise SyncError(f"the archive of changes could not be read: {exc}") from exc


def _open_tar(archive: Path, stack: ExitStack) -> tarfile.TarFile:
    raw: IO[bytes] = stack.enter_context(archive.open("rb"))
    magic = raw.read(4)
    raw.seek(0)
    if magic == _ZSTD_MAGIC:
        stream = stack.enter_context(zstandard.ZstdDecompressor().stream_reader(raw))
        return stack.enter_context(tarfile.open(fileobj=stream, mode="r|"))
    if magic.startswith(_GZIP_MAGIC):
        return stack.enter_context(tarfile.open(fileobj=raw, mode="r|gz"))
    raise SyncError(f"the archive of changes is neither zstd nor gzip (starts {magic!r})")


def _take_member(
    tar: tarfile.TarFile, member: tarfile.TarInfo, index: int, wanted: dict[str, Change], run: _Run
) -> None:
    change = wanted.get(member.name)
    if change is None and member.name in run.refused:
        return  # its change is already listed as skipped, with the reason
    if change is None:
        run.skipped.append(Skipped(member.name, "archive member not in the changeset: ignored"))
        return
    problem = _member_problem(member, change, run)
    if problem is not None:
        del wanted[member.name]
        run.contents.pop(member.name, None)
        run.refuse(change, problem)
        return
    run.contents[member.name] = _stage(tar, member, index, change, run.staging)


def _member_problem(member: tarfile.TarInfo, change: Change, run: _Run) -> str | None:
    if member.name in run.contents:
        return "the archive holds this path twice"
    expected_link = change.mode == MODE_SYMLINK
    if member.issym() != expected_link or not (member.issym() or member.isreg()):
        return f"archive member is a {_kind(member)}, the changeset announced a {_kind(change)}"
    if member.size > run.policy.max_file_bytes:
        return f"{member.size} bytes, over the limit of {run.policy.max_file_bytes}"
    return None


def _kind(item: tarfile.TarInfo | Change) -> str:
    if isinstance(item, Change):
        return "symlink" if item.mode == MODE_SYMLINK else "regular file"
    kinds = {tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hard link", tarfile.DIRTYPE: "directory"}
    return "regular file" if item.isreg() else kinds.get(item.type, "device or special file")


def _stage(
    tar: tarfile.TarFile, member: tarfile.TarInfo, index: int, change: Change, staging: Path
) -> _Content:
    if member.issym():
        return _Content(kind="symlink", target=member.linkname)
    staged = staging / str(index)
    source = tar.extractfile(member)
    with staged.open("wb") as out:
        if source is not None:
            shutil.copyfileobj(source, out)
    mode = 0o755 if change.mode == MODE_EXECUTABLE else 0o644
    return _Content(kind="file", staged=staged, mode=mode)


# --- writing, through directory descriptors that never follow symlinks ---------------


def _execute(checkout: Path, changes: list[Change], run: _Run) -> list[Change]:
    try:
        root = os.open(checkout, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise SyncError(f"the checkout {checkout} cannot be opened: {exc.strerror}") from exc
    try:
        ready = [c for c in changes if _remove_old(root, c, run)]
        _prune(root, _removed_paths(ready))
        written = [c for c in ready if _write_new(root, c, run)]
        return [c for c in written if _link_stays_inside(checkout, c, run)]
    finally:
        os.close(root)


def _remove_old(root: int, change: Change, run: _Run) -> bool:
    """Delete a deleted path, or a rename's old path after backing it up."""
    old = change.path if change.status == "deleted" else change.old_path
    if old is None:
        return True
    try:
        if change.status == "renamed":
            run.backups[old] = _backup(root, old, run.staging)
        _delete(root, old)
    except OSError as exc:
        run.refuse(change, f"could not delete {old!r}: {_os_reason(exc)}")
        return False
    return True


def _write_new(root: int, change: Change, run: _Run) -> bool:
    if not change.has_content:
        return True
    try:
        _write(root, change.path, run.contents[change.path])
    except OSError as exc:
        reason = f"could not write: {_os_reason(exc)}"
        run.skipped.append(Skipped(change.path, reason + _restore(root, change, run)))
        return False
    return True


def _restore(root: int, change: Change, run: _Run) -> str:
    """Put a rename's old path back after its new path failed: nothing is lost."""
    backup = run.backups.get(change.old_path or "")
    if change.old_path is None or backup is None:
        return ""
    try:
        _write(root, change.old_path, backup)
    except OSError as exc:
        return f"; the old path {change.old_path!r} could not be restored: {_os_reason(exc)}"
    return f" (renamed from {change.old_path!r}, which was restored)"


def _link_stays_inside(checkout: Path, change: Change, run: _Run) -> bool:
    """Check a new symlink as the kernel resolves it, through every other link."""
    if change.mode != MODE_SYMLINK:
        return True
    root = os.path.realpath(checkout)
    resolved = os.path.realpath(checkout / change.path)
    if resolved == root or resolved.startswith(root + os.sep):
        return True
    with suppress(OSError):
        (checkout / change.path).unlink()
    run.skipped.append(Skipped(change.path, "symlink resolves outside the checkout: removed"))
    return False


def _open_parent(root: int, path: str, *, create: bool) -> int:
    """Open the directory holding ``path``, refusing to pass through any symlink."""
    fd = os.dup(root)
    try:
        for part in path.split("/")[:-1]:
            if create:
                with suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write(root: int, path: str, content: _Content) -> None:
    parent = _open_parent(root, path, create=True)
    temp = f".claude-e2b-{secrets.token_hex(6)}.tmp"
    try:
        if content.kind == "symlink" and content.target is not None:
            os.symlink(content.target, temp, dir_fd=parent)
        elif content.staged is not None:
            _write_temp_file(parent, temp, content)
        os.replace(temp, path.rsplit("/", 1)[-1], src_dir_fd=parent, dst_dir_fd=parent)
    except BaseException:
        with suppress(OSError):
            os.unlink(temp, dir_fd=parent)
        raise
    finally:
        os.close(parent)


def _write_temp_file(parent: int, temp: str, content: _Content) -> None:
    fd = os.open(temp, _NEW_FILE_FLAGS, 0o600, dir_fd=parent)
    with os.fdopen(fd, "wb") as out, Path(str(content.staged)).open("rb") as source:
        shutil.copyfileobj(source, out)
        os.fchmod(out.fileno(), content.mode)


def _delete(root: int, path: str) -> None:
    try:
        parent = _open_parent(root, path, create=False)
    except FileNotFoundError:
        return  # already gone: the deletion is done
    name = path.rsplit("/", 1)[-1]
    try:
        if stat.S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory in the checkout")
        os.unlink(name, dir_fd=parent)
    except FileNotFoundError:
        pass
    finally:
        os.close(parent)


def _backup(root: int, path: str, staging: Path) -> _Content | None:
    parent = _open_parent(root, path, create=False)
    name = path.rsplit("/", 1)[-1]
    try:
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
        if stat.S_ISLNK(info.st_mode):
            return _Content(kind="symlink", target=os.readlink(name, dir_fd=parent))
        staged = staging / f"backup-{secrets.token_hex(8)}"
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        with os.fdopen(fd, "rb") as source, staged.open("wb") as out:
            shutil.copyfileobj(source, out)
        return _Content(kind="file", staged=staged, mode=stat.S_IMODE(info.st_mode))
    except FileNotFoundError:
        return None
    finally:
        os.close(parent)


def _prune(root: int, deleted: Iterable[str]) -> None:
    """Remove directories our deletions left empty, deepest first, never the root."""
    parents = {parent for path in deleted for parent in _ancestors(path)}
    for directory in sorted(parents, key=lambda d: d.count("/"), reverse=True):
        with suppress(OSError):
            parent = _open_parent(root, directory, create=False)
            try:
                os.rmdir(directory.rsplit("/", 1)[-1], dir_fd=parent)
            finally:
                os.close(parent)


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "a parent directory is a symlink"
    if exc.errno == errno.ENOTDIR:
        return "a parent path is not a directory"
    return exc.strerror or str(exc)
