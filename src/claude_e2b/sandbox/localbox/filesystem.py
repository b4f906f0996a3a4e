"""envd's Filesystem service (stat, mkdir, move, list, remove) over ``SandboxFS``.

Every operation works on descriptors from ``SandboxFS.locate`` (see safe_fs), never
on a host path: commands in the sandbox may swap any file or directory for a
symlink while the server (root on the host, in CI) works on it.
Directory watching (WatchDir and the watcher RPCs) answers UNIMPLEMENTED.
"""
# ruff: noqa: ARG002 - the RPC signatures are fixed by envd's generated protocol

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from e2b.envd.filesystem import filesystem_pb as pb
from e2b.envd.filesystem.filesystem_connect import Filesystem
from protobuf import DescService
from protobuf.wkt.google.protobuf.timestamp_pb import Timestamp

from . import safe_fs
from .paths import PathEscapeError, SandboxFS
from .processes import request_user
from .safe_fs import Entry

OwnerOf = Callable[[str], "int | None"]
NameOf = Callable[[int], str]


def entry_info(fs: SandboxFS, entry: Entry, name_of: NameOf) -> pb.EntryInfo:
    """Envd's EntryInfo of an entry (a symlink reports its target's type, in the root).

    Raises FileNotFoundError when the entry does not exist.
    """
    link = safe_fs.lstat(entry)
    is_link = stat.S_ISLNK(link.st_mode)
    st = (_target_stat(fs, entry) or link) if is_link else link
    info = pb.EntryInfo(
        name=entry.basename,
        type=_file_type(st.st_mode),
        path=entry.path,
        size=st.st_size,
        mode=stat.S_IMODE(st.st_mode),
        permissions=stat.filemode(st.st_mode),
        owner=name_of(st.st_uid),
        group=name_of(st.st_gid),
        modified_time=Timestamp(seconds=int(st.st_mtime), nanos=st.st_mtime_ns % 1_000_000_000),
        is_symlink=is_link,
    )
    if is_link:
        info.symlink_target = _link_text(entry)
    return info


def _target_stat(fs: SandboxFS, link: Entry) -> os.stat_result | None:
    """What a link points to, resolved inside the root (None: dangling or leaving it)."""
    try:
        with fs.safe.locate(link.path) as target:
            return safe_fs.lstat(target)
    except (OSError, PathEscapeError):
        return None


def _link_text(link: Entry) -> str:
    try:
        return safe_fs.readlink(link)
    except OSError:  # replaced by something else since the lstat
        return ""


def _file_type(mode: int) -> pb.FileType:
    if stat.S_ISDIR(mode):
        return pb.FileType.DIRECTORY
    if stat.S_ISREG(mode):
        return pb.FileType.FILE
    return pb.FileType.UNSPECIFIED


class FilesystemService:
    """Implements envd's filesystem.Filesystem."""

    def __init__(self, fs: SandboxFS, owner_of: OwnerOf, name_of: NameOf) -> None:
        self._fs = fs
        self._owner_of = owner_of
        self._name_of = name_of

    @classmethod
    def desc(cls) -> DescService:
        """The service descriptor (part of the generated protocol)."""
        return Filesystem.desc()

    @contextmanager
    def _located(
        self,
        path: str,
        ctx: RequestContext[Any, Any],
        *,
        follow: bool = True,
        make_parents: bool = False,
    ) -> Iterator[Entry]:
        """The entry of a request's path; errors in the block are envd's codes too.

        Missing anywhere → NOT_FOUND; leaving the root → INVALID_ARGUMENT.
        """
        user = request_user(ctx)
        owner = self._owner_of(user) if make_parents else None
        try:
            with self._fs.locate(
                path, user, follow_last=follow, make_parents=make_parents, owner=owner
            ) as entry:
                yield entry
        except PathEscapeError as exc:
            raise ConnectError(Code.INVALID_ARGUMENT, str(exc)) from exc
        except (NotADirectoryError, FileExistsError) as exc:
            if make_parents:
                raise ConnectError(Code.INVALID_ARGUMENT, f"cannot create {path}") from exc
            raise ConnectError(Code.NOT_FOUND, f"path {path} does not exist") from exc
        except FileNotFoundError as exc:
            raise ConnectError(Code.NOT_FOUND, f"path {path} does not exist") from exc

    def _info(self, entry: Entry) -> pb.EntryInfo:
        return entry_info(self._fs, entry, self._name_of)

    async def stat(self, request: pb.StatRequest, ctx: RequestContext[Any, Any]) -> pb.StatResponse:
        """Stat a path (a final symlink is reported as a link)."""
        with self._located(request.path, ctx, follow=False) as entry:
            return pb.StatResponse(entry=self._info(entry))

    async def make_dir(
        self, request: pb.MakeDirRequest, ctx: RequestContext[Any, Any]
    ) -> pb.MakeDirResponse:
        """Mkdir -p; ALREADY_EXISTS when the directory is there already."""
        with self._located(request.path, ctx, make_parents=True) as entry:
            try:
                safe_fs.make_dir(entry, self._owner_of(request_user(ctx)))
            except FileExistsError as exc:
                if stat.S_ISDIR(safe_fs.lstat(entry).st_mode):
                    message = f"directory {request.path} already exists"
                    raise ConnectError(Code.ALREADY_EXISTS, message) from exc
                message = f"{request.path} exists and is not a dir"
                raise ConnectError(Code.INVALID_ARGUMENT, message) from exc
            return pb.MakeDirResponse(entry=self._info(entry))

    async def move(self, request: pb.MoveRequest, ctx: RequestContext[Any, Any]) -> pb.MoveResponse:
        """Rename, creating the destination's parent directories."""
        with self._located(request.source, ctx, follow=False) as source:
            safe_fs.lstat(source)  # NOT_FOUND before any directory is made
            with self._located(request.destination, ctx, follow=False, make_parents=True) as target:
                safe_fs.rename(source, target)
                return pb.MoveResponse(entry=self._info(target))

    async def list_dir(
        self, request: pb.ListDirRequest, ctx: RequestContext[Any, Any]
    ) -> pb.ListDirResponse:
        """Entries of a directory, down to ``depth`` levels (at least 1)."""
        entries: list[pb.EntryInfo] = []
        with self._located(request.path, ctx) as entry:
            if not stat.S_ISDIR(safe_fs.lstat(entry).st_mode):
                message = f"path {request.path} is not a directory"
                raise ConnectError(Code.INVALID_ARGUMENT, message)
            self._walk(entry, max(request.depth, 1), entries)
        return pb.ListDirResponse(entries=entries)

    def _walk(self, directory: Entry, depth: int, out: list[pb.EntryInfo]) -> None:
        with safe_fs.open_dir(directory) as fd:
            for name in safe_fs.names(fd):
                child = directory.child(fd, name)
                try:
                    info = self._info(child)
                except FileNotFoundError:
                    continue  # removed since the directory was read
                out.append(info)
                if depth > 1 and info.type == pb.FileType.DIRECTORY and not info.is_symlink:
                    self._walk(child, depth - 1, out)

    async def remove(
        self, request: pb.RemoveRequest, ctx: RequestContext[Any, Any]
    ) -> pb.RemoveResponse:
        """Remove a file, link or whole directory tree."""
        with self._located(request.path, ctx, follow=False) as entry:
            safe_fs.remove(entry)
        return pb.RemoveResponse()

    def watch_dir(self, request: Any, ctx: RequestContext[Any, Any]) -> AsyncIterator[Any]:
        """Not implemented."""
        raise ConnectError(Code.UNIMPLEMENTED, "the local sandbox cannot watch directories")

    async def create_watcher(self, request: Any, ctx: RequestContext[Any, Any]) -> Any:
        """Not implemented."""
        raise ConnectError(Code.UNIMPLEMENTED, "the local sandbox cannot watch directories")

    async def get_watcher_events(self, request: Any, ctx: RequestContext[Any, Any]) -> Any:
        """Not implemented."""
        raise ConnectError(Code.UNIMPLEMENTED, "the local sandbox cannot watch directories")

    async def remove_watcher(self, request: Any, ctx: RequestContext[Any, Any]) -> Any:
        """Not implemented."""
        raise ConnectError(Code.UNIMPLEMENTED, "the local sandbox cannot watch directories")
