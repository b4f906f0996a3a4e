"""Writing the accepted changes into the checkout, through directory descriptors.

Every write walks the checkout from a descriptor of its root, one directory at a
time, each opened ``O_NOFOLLOW``: no symlink, old or new, can redirect a write
outside the checkout. Files are written to a temporary name and renamed over the
old one, so a reader never sees half a file. A rename's old path, and whatever a
new symlink replaces, is backed up first and put back when the change cannot be
kept (its new path cannot be written, or the link resolves outside): nothing is lost.
The directories a write made for a change that is not kept are removed again
(when empty) before anything is put back, so a rename from ``d`` to ``d/f`` that
is refused finds ``d`` free for its old content.

Raises:
    SyncError: the checkout cannot be opened.

"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from claude_e2b.errors import SyncError
from claude_e2b.sync.apply_archive import Staged
from claude_e2b.sync.apply_paths import ancestors
from claude_e2b.sync.changes import Change
from claude_e2b.sync.formats import MODE_SYMLINK

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_BACKUP_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


@dataclass
class Written:
    """The changes that reached the checkout, and (path, reason) for those that failed."""

    applied: list[Change] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def write_changes(
    checkout: Path, changes: Sequence[Change], contents: Mapping[str, Staged], staging: Path
) -> Written:
    """Delete, then write, every change; ``contents`` holds each write's staged content.

    Raises:
        SyncError: the checkout cannot be opened (nothing is written then).

    """
    try:
        root = os.open(checkout, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise SyncError(f"the checkout {checkout} cannot be opened: {exc.strerror}") from exc
    writer = _Writer(root, contents, staging)
    try:
        ready = [c for c in changes if writer.remove_old(c)]
        _prune(root, removed_paths(ready))
        kept = writer.settle(checkout, [c for c in ready if writer.write_new(c)])
    finally:
        os.close(root)
    return writer.written(kept)


def removed_paths(changes: Iterable[Change]) -> Iterable[str]:
    """The paths the changes delete or rename away."""
    for change in changes:
        if change.status == "deleted":
            yield change.path
        elif change.old_path is not None:
            yield change.old_path


@dataclass
class _Failure:
    """A change that could not be kept; ``settled`` once its old path is dealt with."""

    change: Change
    reason: str
    settled: bool = False


@dataclass
class _Writer:
    """One pass of writes from the checkout's root descriptor, with the backups to undo them."""

    root: int
    contents: Mapping[str, Staged]
    staging: Path
    backups: dict[str, Staged | None] = field(default_factory=dict)  # old paths removed
    replaced: dict[str, Staged | None] = field(default_factory=dict)  # under new symlinks
    made: dict[str, list[str]] = field(default_factory=dict)  # directories made per write
    failures: list[_Failure] = field(default_factory=list)

    def remove_old(self, change: Change) -> bool:
        """Delete a deleted path, or the old path of a change that writes a new one, backed up."""
        old = change.path if change.status == "deleted" else change.old_path
        if old is None:
            return True
        try:
            if change.status != "deleted":  # a new path follows: keep the old one until it lands
                self.backups[old] = _backup(self.root, old, self.staging)
            _delete(self.root, old)
        except OSError as exc:
            kept = "" if old == change.path else f" (renamed from {old!r}, which was kept)"
            reason = f"could not delete {old!r}: {os_reason(exc)}{kept}"
            self.failures.append(_Failure(change, reason, settled=True))
            return False
        return True

    def write_new(self, change: Change) -> bool:
        if not change.has_content:
            return True
        try:
            if change.mode == MODE_SYMLINK:
                # The link may have to be taken back (see settle): keep what it replaces.
                self.replaced[change.path] = _backup(self.root, change.path, self.staging)
            self.made[change.path] = _write(self.root, change.path, self.contents[change.path])
        except OSError as exc:
            self.failures.append(_Failure(change, f"could not write: {os_reason(exc)}"))
            return False
        return True

    def settle(self, checkout: Path, kept: list[Change]) -> list[Change]:
        """Restore what failed changes removed, take back links that leave; until it holds.

        Each restore or take-back can change where another link resolves, so the
        links are checked again on the tree as it then is.
        """
        while True:
            self._restore_failed(kept)
            leaving = {c.path: why for c in kept if (why := _link_problem(checkout, c))}
            if not leaving:
                return kept
            for change in kept:
                if change.path in leaving:
                    self._take_back(change, leaving[change.path])
            kept = [c for c in kept if c.path not in leaving]

    def _restore_failed(self, kept: list[Change]) -> None:
        landed = {c.path for c in kept if c.has_content}
        for failure in self.failures:
            old = failure.change.old_path
            if failure.settled or old in landed:
                continue  # another change's new content there stays
            failure.reason += self._restore(failure.change)
            failure.settled = True

    def _restore(self, change: Change) -> str:
        """Put a rename's old path back after its new path failed: nothing is lost."""
        backup = self.backups.get(change.old_path or "")
        if change.old_path is None or backup is None:
            return ""
        try:
            _write(self.root, change.old_path, backup)
        except OSError as exc:
            return f"; the old path {change.old_path!r} could not be restored: {os_reason(exc)}"
        return f" (renamed from {change.old_path!r}, which was restored)"

    def _take_back(self, change: Change, why: str) -> None:
        """Remove a new symlink that may not stay, and the directories made for it.

        What it replaced is put back; the old path of a rename is put back by
        :meth:`settle` next, once the directories made for the link are gone.
        """
        reason = f"symlink {why}: removed"
        with suppress(OSError):
            _delete(self.root, change.path)
        _remove_empty_dirs(self.root, self.made.pop(change.path, []))
        before = self.replaced.get(change.path)
        if before is not None:
            try:
                _write(self.root, change.path, before)
            except OSError as exc:
                reason += f"; what it replaced could not be restored: {os_reason(exc)}"
            else:
                reason += "; what it replaced was restored"
        self.failures.append(_Failure(change, reason))

    def written(self, kept: list[Change]) -> Written:
        """The result: the changes kept, and every failure with its reason."""
        result = Written(applied=list(kept))
        for failure in self.failures:
            old = failure.change.old_path
            if not failure.settled and old is not None:
                failure.reason += f" (renamed from {old!r}, which another change wrote)"
            result.failed.append((failure.change.path, failure.reason))
        return result


def _link_problem(checkout: Path, change: Change) -> str | None:
    """Say why a new symlink, resolved through every other link, may not stay; or None."""
    if change.mode != MODE_SYMLINK:
        return None
    root = os.path.realpath(checkout)
    try:
        resolved = os.path.realpath(checkout / change.path)
    except RecursionError:  # realpath recurses once per link it follows
        return "is a chain of links too long to follow"
    if resolved == root or resolved.startswith(root + os.sep):
        return None
    return "resolves outside the checkout"


def _open_parent(root: int, path: str, *, create: bool, made: list[str] | None = None) -> int:
    """Open the directory holding ``path``, refusing to pass through any symlink.

    With ``create``, missing directories are made; each one made is added to ``made``.
    """
    fd = os.dup(root)
    parts = path.split("/")[:-1]
    try:
        for depth, part in enumerate(parts, start=1):
            if create and _make_dir(fd, part) and made is not None:
                made.append("/".join(parts[:depth]))
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _make_dir(parent: int, name: str) -> bool:
    """Make the directory ``name`` in ``parent``; False when something is there already."""
    try:
        os.mkdir(name, 0o755, dir_fd=parent)
    except FileExistsError:
        return False
    return True


def _write(root: int, path: str, content: Staged) -> list[str]:
    """Write ``content`` at ``path``; return the directories made for it, outermost first.

    When the write fails, the directories it made are removed again.
    """
    made: list[str] = []
    try:
        parent = _open_parent(root, path, create=True, made=made)
        try:
            _replace_at(parent, path.rsplit("/", 1)[-1], content)
        finally:
            os.close(parent)
    except BaseException:
        _remove_empty_dirs(root, made)
        raise
    return made


def _replace_at(parent: int, name: str, content: Staged) -> None:
    """Put ``content`` at ``name`` in ``parent`` through a temporary name."""
    temp = f".claude-e2b-{secrets.token_hex(6)}.tmp"
    try:
        if content.kind == "symlink" and content.target is not None:
            os.symlink(content.target, temp, dir_fd=parent)
        elif content.staged is not None:
            _write_temp_file(parent, temp, content)
        os.replace(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
    except BaseException:
        with suppress(OSError):
            os.unlink(temp, dir_fd=parent)
        raise


def _write_temp_file(parent: int, temp: str, content: Staged) -> None:
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


def _backup(root: int, path: str, staging: Path) -> Staged | None:
    """Copy what is at ``path`` to ``staging``; None when nothing is there.

    Raises:
        OSError: it cannot be read, or is a directory, a FIFO or another special file.

    """
    try:
        parent = _open_parent(root, path, create=False)
    except FileNotFoundError:
        return None
    name = path.rsplit("/", 1)[-1]
    try:
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
        if stat.S_ISLNK(info.st_mode):
            return Staged(kind="symlink", target=os.readlink(name, dir_fd=parent))
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory in the checkout")
        # Non-blocking: a FIFO swapped in after the stat must not hang the open.
        fd = os.open(name, _BACKUP_FLAGS, dir_fd=parent)
        with os.fdopen(fd, "rb") as source:
            if not stat.S_ISREG(os.fstat(source.fileno()).st_mode):
                raise OSError(errno.EINVAL, "not a regular file in the checkout")
            staged = staging / f"backup-{secrets.token_hex(8)}"
            with staged.open("wb") as out:
                shutil.copyfileobj(source, out)
        return Staged(kind="file", staged=staged, mode=stat.S_IMODE(info.st_mode))
    except FileNotFoundError:
        return None
    finally:
        os.close(parent)


def _prune(root: int, deleted: Iterable[str]) -> None:
    """Remove directories our deletions left empty, never the root."""
    _remove_empty_dirs(root, {parent for path in deleted for parent in ancestors(path)})


def _remove_empty_dirs(root: int, directories: Iterable[str]) -> None:
    """Remove those of ``directories`` that are empty, deepest first; keep the others."""
    for directory in sorted(set(directories), key=lambda d: d.count("/"), reverse=True):
        with suppress(OSError):
            parent = _open_parent(root, directory, create=False)
            try:
                os.rmdir(directory.rsplit("/", 1)[-1], dir_fd=parent)
            finally:
                os.close(parent)


def os_reason(exc: OSError) -> str:
    """Say why a file call failed, in the words of a refusal."""
    if exc.errno == errno.ELOOP:
        return "a parent directory is a symlink"
    if exc.errno == errno.ENOTDIR:
        return "a parent path is not a directory"
    return exc.strerror or str(exc)
