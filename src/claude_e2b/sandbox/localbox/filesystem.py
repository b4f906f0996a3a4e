"""envd's Filesystem service (stat, mkdir, move, list, remove) over ``SandboxFS``.

Directory watching (WatchDir and the watcher RPCs) answers UNIMPLEMENTED.
"""
# ruff: noqa: ARG002 - the RPC signatures are fixed by envd's generated protocol

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from e2b.envd.filesystem import filesystem_pb as pb
from e2b.envd.filesystem.filesystem_connect import Filesystem
from protobuf import DescService
from protobuf.wkt.google.protobuf.timestamp_pb import Timestamp

from .paths import PathEscapeError, SandboxFS
from .processes import request_user

OwnerOf = Callable[[str], "int | None"]
NameOf = Callable[[int], str]


def chown_to(path: Path, uid: int | None) -> None:
    """Give a file we created to the sandbox user it was created for."""
    if uid is not None:
        os.chown(path, uid, uid, follow_symlinks=False)


def make_dirs(path: Path, uid: int | None) -> None:
    """Mkdir -p, with each new directory owned by ``uid``."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        directory.mkdir()
        chown_to(directory, uid)


def entry_info(fs: SandboxFS, host: Path, name_of: NameOf) -> pb.EntryInfo:
    """Envd's EntryInfo of a host path (a symlink reports its target's type)."""
    link = host.lstat()
    is_link = stat.S_ISLNK(link.st_mode)
    st = host.stat() if is_link and host.exists() else link
    info = pb.EntryInfo(
        name=host.name,
        type=_file_type(st.st_mode),
        path=fs.sandbox_path(host),
        size=st.st_size,
        mode=stat.S_IMODE(st.st_mode),
        permissions=stat.filemode(st.st_mode),
        owner=name_of(st.st_uid),
        group=name_of(st.st_gid),
        modified_time=Timestamp(seconds=int(st.st_mtime), nanos=st.st_mtime_ns % 1_000_000_000),
        is_symlink=is_link,
    )
    if is_link:
        info.symlink_target = str(host.readlink())
    return info


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

    def _host(self, path: str, ctx: RequestContext[Any, Any], *, follow: bool = True) -> Path:
        try:
            return self._fs.host(path, request_user(ctx), follow_last=follow)
        except PathEscapeError as exc:
            raise ConnectError(Code.INVALID_ARGUMENT, str(exc)) from exc

    def _info(self, host: Path) -> pb.EntryInfo:
        return entry_info(self._fs, host, self._name_of)

    async def stat(self, request: pb.StatRequest, ctx: RequestContext[Any, Any]) -> pb.StatResponse:
        """Stat a path (a final symlink is reported as a link)."""
        host = self._host(request.path, ctx, follow=False)
        _must_exist(host, request.path)
        return pb.StatResponse(entry=self._info(host))

    async def make_dir(
        self, request: pb.MakeDirRequest, ctx: RequestContext[Any, Any]
    ) -> pb.MakeDirResponse:
        """Mkdir -p; ALREADY_EXISTS when the directory is there already."""
        host = self._host(request.path, ctx)
        if host.is_dir():
            raise ConnectError(Code.ALREADY_EXISTS, f"directory {request.path} already exists")
        if host.exists():
            raise ConnectError(Code.INVALID_ARGUMENT, f"{request.path} exists and is not a dir")
        try:
            make_dirs(host, self._owner_of(request_user(ctx)))
        except NotADirectoryError as exc:
            raise ConnectError(Code.INVALID_ARGUMENT, f"cannot create {request.path}") from exc
        return pb.MakeDirResponse(entry=self._info(host))

    async def move(self, request: pb.MoveRequest, ctx: RequestContext[Any, Any]) -> pb.MoveResponse:
        """Rename, creating the destination's parent directories."""
        source = self._host(request.source, ctx, follow=False)
        target = self._host(request.destination, ctx, follow=False)
        _must_exist(source, request.source)
        make_dirs(target.parent, self._owner_of(request_user(ctx)))
        source.rename(target)
        return pb.MoveResponse(entry=self._info(target))

    async def list_dir(
        self, request: pb.ListDirRequest, ctx: RequestContext[Any, Any]
    ) -> pb.ListDirResponse:
        """Entries of a directory, down to ``depth`` levels (at least 1)."""
        host = self._host(request.path, ctx)
        _must_exist(host, request.path)
        if not host.is_dir():
            raise ConnectError(Code.INVALID_ARGUMENT, f"path {request.path} is not a directory")
        entries: list[pb.EntryInfo] = []
        self._walk(host, max(request.depth, 1), entries)
        return pb.ListDirResponse(entries=entries)

    def _walk(self, directory: Path, depth: int, out: list[pb.EntryInfo]) -> None:
        for child in sorted(directory.iterdir()):
            out.append(self._info(child))
            if depth > 1 and child.is_dir() and not child.is_symlink():
                self._walk(child, depth - 1, out)

    async def remove(
        self, request: pb.RemoveRequest, ctx: RequestContext[Any, Any]
    ) -> pb.RemoveResponse:
        """Remove a file, link or whole directory tree."""
        host = self._host(request.path, ctx, follow=False)
        _must_exist(host, request.path)
        if host.is_dir() and not host.is_symlink():
            shutil.rmtree(host)
        else:
            host.unlink()
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


def _must_exist(host: Path, path: str) -> None:
    if not host.is_symlink() and not host.exists():
        raise ConnectError(Code.NOT_FOUND, f"path {path} does not exist")
