"""File operations confined to a directory tree that a hostile process keeps changing.

The local sandbox server runs outside the sandbox (as root in CI), while commands
inside it may turn any file or directory under the root into a symlink at any
moment. So no path string is handed to the kernel after it was checked: the root
is held open as a descriptor, every path is walked from it one component at a time
with ``O_NOFOLLOW``, and the final operation is made relative to the descriptor of
the last directory (``*at`` calls), again without following a link.

Symlinks met on the way are followed by hand, the way the sandbox sees them, like
openat2's RESOLVE_IN_ROOT: an absolute target starts again at the root, a ".."
pops a directory already opened, one above the root is refused, and the kernel's
limit of 40 hops (ELOOP) applies. A link can never lead out of the root, and a
directory swapped for a link after we opened it changes nothing: we hold the
directory, not its name.
"""

from __future__ import annotations

import errno
import os
import stat
import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

# Linux gives up after 40 links as well (ELOOP).
MAX_HOPS = 40
# A walk makes at most this many directories: a process deleting them as fast as we
# make them cannot keep us busy (a path of PATH_MAX bytes has fewer components).
MAX_MKDIRS = 4096
_STEP = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO a command made must not hang the server.
_FILE = os.O_NONBLOCK | os.O_CLOEXEC
_NEW_FILE_MODE = 0o666
_NEW_DIR_MODE = 0o777


class PathEscapeError(ValueError):
    """A sandbox path that leaves the sandbox's root or cannot be a path at all."""


class NotRegularFileError(OSError):
    """A FIFO, socket or device where a regular file was expected."""


@dataclass(frozen=True)
class Entry:
    """A resolved path: ``name`` in the open directory ``dir_fd`` ("." for that directory).

    The descriptor is valid only inside the ``locate`` block that produced it.
    """

    dir_fd: int
    name: str
    parts: tuple[str, ...]

    @property
    def path(self) -> str:
        """The sandbox path it resolved to."""
        return "/" + "/".join(self.parts)

    @property
    def basename(self) -> str:
        """Its last component ("/" for the root)."""
        return self.parts[-1] if self.parts else "/"

    def child(self, dir_fd: int, name: str) -> Entry:
        """The entry ``name`` of this directory, open as ``dir_fd``."""
        return Entry(dir_fd, name, (*self.parts, name))


class SafeRoot:
    """A directory held open; every path below it is walked from that descriptor."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.path = root
        self._fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self._closer = weakref.finalize(self, os.close, self._fd)

    def close(self) -> None:
        """Release the root's descriptor (also done when the object is collected)."""
        self._closer()

    @contextmanager
    def locate(
        self,
        path: str,
        *,
        follow_last: bool = True,
        make_parents: bool = False,
        owner: int | None = None,
    ) -> Iterator[Entry]:
        """Resolve an absolute, normalised sandbox path to an ``Entry``.

        ``follow_last=False`` leaves a final symlink alone (stat, remove or rename the
        link itself). ``make_parents`` creates missing directories on the way, given to
        ``owner`` when not None. The final component need not exist.
        Raises PathEscapeError (a ".." in ``path``, a link out of the root, too many
        links), FileNotFoundError or NotADirectoryError (a directory on the way).
        """
        walk = _Walk(self._fd, path, make_parents=make_parents, owner=owner)
        try:
            yield walk.run(_components(path), follow_last=follow_last)
        finally:
            walk.close()


def _components(path: str) -> list[str]:
    """The names of an absolute sandbox path; anything not normalised is refused."""
    if not path.startswith("/") or "\0" in path:
        raise PathEscapeError(f"invalid path {path!r}")
    parts = [part for part in path.split("/") if part]
    if {".", ".."} & set(parts):
        raise PathEscapeError(f"path {path!r} is not normalised")
    return parts


class _Walk:
    """One resolution: the directories opened so far, below the root."""

    def __init__(self, root_fd: int, path: str, *, make_parents: bool, owner: int | None) -> None:
        self._root = root_fd
        self._path = path
        self._make = make_parents
        self._owner = owner
        self._stack: list[tuple[str, int]] = []
        self._hops = 0
        self._mkdirs = 0

    @property
    def _here(self) -> int:
        return self._stack[-1][1] if self._stack else self._root

    def _entry(self, name: str) -> Entry:
        names = tuple(part for part, _fd in self._stack)
        if name == ".":
            return Entry(self._here, ".", names)
        return Entry(self._here, name, (*names, name))

    def run(self, parts: Sequence[str], *, follow_last: bool) -> Entry:
        pending = deque(parts)
        while pending:
            part = pending.popleft()
            if part == "..":
                self._up()
            elif not pending and not follow_last:
                return self._entry(part)
            elif (leaf := self._step(part, pending)) is not None:
                return leaf
        # Everything resolved to a directory already open (the root, or a link to "..").
        return self._entry(".")

    def _step(self, part: str, pending: deque[str]) -> Entry | None:
        """Walk into ``part``; the final Entry when it is the last one and no link."""
        try:
            fd = os.open(part, _STEP, dir_fd=self._here)
        except FileNotFoundError:
            return self._missing(part, pending)
        mode = os.fstat(fd).st_mode
        if stat.S_ISLNK(mode):
            try:
                target = os.readlink("", dir_fd=fd)  # the very link we inspected
            finally:
                os.close(fd)
            self._jump(target, pending)
            return None
        if pending and stat.S_ISDIR(mode):
            self._stack.append((part, fd))
            return None
        os.close(fd)
        if pending:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", self._path)
        return self._entry(part)

    def _missing(self, part: str, pending: deque[str]) -> Entry | None:
        if not pending:
            return self._entry(part)
        if not self._make:
            raise FileNotFoundError(errno.ENOENT, "no such file or directory", self._path)
        self._mkdir(part)
        pending.appendleft(part)
        return None

    def _jump(self, target: str, pending: deque[str]) -> None:
        """Splice a link's target into the walk: an absolute one restarts at the root."""
        self._hop()
        if target.startswith("/"):
            self._close_stack()
        names = [name for name in target.split("/") if name not in {"", "."}]
        pending.extendleft(reversed(names))

    def _up(self) -> None:
        if not self._stack:
            raise PathEscapeError(f"a symlink in {self._path!r} leaves the sandbox root")
        os.close(self._stack.pop()[1])

    def _mkdir(self, name: str) -> None:
        self._mkdirs += 1
        if self._mkdirs > MAX_MKDIRS:
            raise PathEscapeError(f"{self._path!r} keeps vanishing while it is made")
        try:
            os.mkdir(name, _NEW_DIR_MODE, dir_fd=self._here)
        except FileExistsError:
            return  # made meanwhile by someone else: walked like any other
        if self._owner is not None:
            fd = _open_final(self._entry(name), _DIR)
            try:
                os.fchown(fd, self._owner, self._owner)
            finally:
                os.close(fd)

    def _hop(self) -> None:
        self._hops += 1
        if self._hops > MAX_HOPS:
            raise PathEscapeError(f"too many levels of symbolic links in {self._path!r}")

    def _close_stack(self) -> None:
        while self._stack:
            os.close(self._stack.pop()[1])

    def close(self) -> None:
        self._close_stack()


def _open_final(entry: Entry, flags: int, mode: int = 0o777) -> int:
    """Open ``entry`` without following a link. Raises PathEscapeError if it is one."""
    try:
        return os.open(entry.name, flags | os.O_NOFOLLOW, mode, dir_fd=entry.dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PathEscapeError(f"{entry.path} is a symbolic link (changed meanwhile?)") from exc
        if exc.errno == errno.ENXIO:  # a FIFO nobody reads
            raise NotRegularFileError(errno.ENXIO, "not a regular file", entry.path) from exc
        raise


def lstat(entry: Entry) -> os.stat_result:
    """The entry's own status (a link is not followed). Raises FileNotFoundError."""
    return os.stat(entry.name, dir_fd=entry.dir_fd, follow_symlinks=False)


def readlink(entry: Entry) -> str:
    """The target of a symlink entry, as written."""
    return os.readlink(entry.name, dir_fd=entry.dir_fd)


def open_read(entry: Entry) -> IO[bytes]:
    """A regular file, open for reading.

    Raises FileNotFoundError, IsADirectoryError, NotRegularFileError, PathEscapeError.
    """
    return _regular(_open_final(entry, os.O_RDONLY | _FILE), entry, "rb")


def open_write(entry: Entry, owner: int | None) -> IO[bytes]:
    """A regular file, created or truncated, given to ``owner`` when not None.

    Raises IsADirectoryError, NotRegularFileError, PathEscapeError.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _FILE
    handle = _regular(_open_final(entry, flags, _NEW_FILE_MODE), entry, "wb")
    if owner is not None:
        os.fchown(handle.fileno(), owner, owner)
    return handle


def _regular(fd: int, entry: Entry, mode: str) -> IO[bytes]:
    kind = os.fstat(fd).st_mode
    if stat.S_ISREG(kind):
        return os.fdopen(fd, mode)
    os.close(fd)
    if stat.S_ISDIR(kind):
        raise IsADirectoryError(errno.EISDIR, "is a directory", entry.path)
    raise NotRegularFileError(errno.EINVAL, "not a regular file", entry.path)


@contextmanager
def open_dir(entry: Entry) -> Iterator[int]:
    """A readable descriptor of a directory entry (for ``names`` and ``Entry.child``).

    Raises FileNotFoundError, NotADirectoryError, PathEscapeError (a link).
    """
    fd = _open_final(entry, _DIR)
    try:
        yield fd
    finally:
        os.close(fd)


def names(dir_fd: int) -> list[str]:
    """The names in an open directory, sorted."""
    return sorted(os.listdir(dir_fd))


def make_dir(entry: Entry, owner: int | None) -> None:
    """Mkdir, given to ``owner`` when not None. Raises FileExistsError."""
    os.mkdir(entry.name, _NEW_DIR_MODE, dir_fd=entry.dir_fd)
    if owner is not None:
        with open_dir(entry) as fd:
            os.fchown(fd, owner, owner)


def remove(entry: Entry) -> None:
    """Remove a file, a link (not its target) or a whole directory tree.

    Raises FileNotFoundError, PathEscapeError for the root or a directory swapped
    for a link meanwhile.
    """
    _require_name(entry)
    if stat.S_ISDIR(lstat(entry).st_mode):
        _remove_tree(entry)
    else:
        os.unlink(entry.name, dir_fd=entry.dir_fd)


def _remove_tree(entry: Entry) -> None:
    # Not shutil.rmtree: it opens what it inspected without O_NOFOLLOW or O_NONBLOCK,
    # so a FIFO swapped in at the right moment would hang the server.
    with open_dir(entry) as fd:
        for name in names(fd):
            child = entry.child(fd, name)
            if stat.S_ISDIR(lstat(child).st_mode):
                _remove_tree(child)
            else:
                os.unlink(name, dir_fd=fd)
    os.rmdir(entry.name, dir_fd=entry.dir_fd)


def rename(source: Entry, target: Entry) -> None:
    """Rename ``source`` (a link itself, not its target) to ``target``, replacing it."""
    _require_name(source)
    _require_name(target)
    os.rename(source.name, target.name, src_dir_fd=source.dir_fd, dst_dir_fd=target.dir_fd)


def _require_name(entry: Entry) -> None:
    if entry.name == ".":
        raise PathEscapeError(f"{entry.path} cannot be removed or moved")
