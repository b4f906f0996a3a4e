"""Writing the accepted changes into the checkout, through directory descriptors.

Every write walks the checkout from a descriptor of its root, one directory at a
time, each opened ``O_NOFOLLOW``: no symlink, old or new, can redirect a write
outside the checkout. Files are written to a temporary name and renamed over the
old one, so a reader never sees half a file. A rename's old path is backed up
first and put back when its new path cannot be written: nothing is lost.

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
        written = [c for c in ready if writer.write_new(c)]
        writer.result.applied = [c for c in written if writer.link_stays_inside(checkout, c)]
    finally:
        os.close(root)
    return writer.result


def removed_paths(changes: Iterable[Change]) -> Iterable[str]:
    """The paths the changes delete or rename away."""
    for change in changes:
        if change.status == "deleted":
            yield change.path
        elif change.old_path is not None:
            yield change.old_path


@dataclass
class _Writer:
    """One pass of writes from the checkout's root descriptor, with the renames' backups."""

    root: int
    contents: Mapping[str, Staged]
    staging: Path
    backups: dict[str, Staged | None] = field(default_factory=dict)
    result: Written = field(default_factory=Written)

    def remove_old(self, change: Change) -> bool:
        """Delete a deleted path, or a rename's old path after backing it up."""
        old = change.path if change.status == "deleted" else change.old_path
        if old is None:
            return True
        try:
            if change.status == "renamed":
                self.backups[old] = _backup(self.root, old, self.staging)
            _delete(self.root, old)
        except OSError as exc:
            kept = "" if old == change.path else f" (renamed from {old!r}, which was kept)"
            self.result.failed.append(
                (change.path, f"could not delete {old!r}: {os_reason(exc)}{kept}")
            )
            return False
        return True

    def write_new(self, change: Change) -> bool:
        if not change.has_content:
            return True
        try:
            _write(self.root, change.path, self.contents[change.path])
        except OSError as exc:
            reason = f"could not write: {os_reason(exc)}{self._restore(change)}"
            self.result.failed.append((change.path, reason))
            return False
        return True

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

    def link_stays_inside(self, checkout: Path, change: Change) -> bool:
        """Check a new symlink as the kernel resolves it, through every other link."""
        if change.mode != MODE_SYMLINK:
            return True
        root = os.path.realpath(checkout)
        resolved = os.path.realpath(checkout / change.path)
        if resolved == root or resolved.startswith(root + os.sep):
            return True
        with suppress(OSError):
            (checkout / change.path).unlink()
        self.result.failed.append((change.path, "symlink resolves outside the checkout: removed"))
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


def _write(root: int, path: str, content: Staged) -> None:
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
    parent = _open_parent(root, path, create=False)
    name = path.rsplit("/", 1)[-1]
    try:
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
        if stat.S_ISLNK(info.st_mode):
            return Staged(kind="symlink", target=os.readlink(name, dir_fd=parent))
        staged = staging / f"backup-{secrets.token_hex(8)}"
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        with os.fdopen(fd, "rb") as source, staged.open("wb") as out:
            shutil.copyfileobj(source, out)
        return Staged(kind="file", staged=staged, mode=stat.S_IMODE(info.st_mode))
    except FileNotFoundError:
        return None
    finally:
        os.close(parent)


def _prune(root: int, deleted: Iterable[str]) -> None:
    """Remove directories our deletions left empty, deepest first, never the root."""
    parents = {parent for path in deleted for parent in ancestors(path)}
    for directory in sorted(parents, key=lambda d: d.count("/"), reverse=True):
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
