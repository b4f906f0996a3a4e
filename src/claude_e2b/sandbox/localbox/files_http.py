"""envd's HTTP ``/files`` API: streamed download (GET) and upload (POST).

Bodies go through in chunks both ways, so memory stays flat whatever the file
size. Errors are envd's JSON ``{"message", "code"}`` with the status the SDK maps:
400 bad path, 401 unknown user, 404 missing file, 500 (injected) server error.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from .faults import Faults
from .filesystem import chown_to, make_dirs
from .multipart import MultipartError, MultipartParser, PartData, PartEnd, PartStart, boundary_of
from .paths import PathEscapeError, SandboxFS, absolute

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
OwnerOf = Callable[[str], "int | None"]

_CHUNK = 1024 * 1024


class EnvdHTTPError(Exception):
    """An error answer in envd's shape."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def send_json(send: Send, status: int, body: object) -> None:
    """Answer with a JSON body."""
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def send_failure(send: Send, failure: EnvdHTTPError) -> None:
    """Answer with envd's error JSON."""
    await send_json(send, failure.status, {"message": failure.message, "code": failure.status})


class Body:
    """The request body, chunk by chunk as the server receives it."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.finished = False

    async def chunks(self) -> AsyncIterator[bytes]:
        """Yield the chunks still to come."""
        while not self.finished:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.finished = True
                raise EnvdHTTPError(400, "client disconnected during upload")
            self.finished = not message.get("more_body", False)
            if chunk := message.get("body", b""):
                yield chunk

    async def drain(self) -> None:
        """Read the rest, so the client gets our answer instead of a broken pipe."""
        async for _chunk in self.chunks():
            pass


def query(scope: Scope) -> dict[str, str]:
    """The first value of each query parameter."""
    parsed = parse_qs(scope.get("query_string", b"").decode(), keep_blank_values=True)
    return {key: values[0] for key, values in parsed.items()}


def header(scope: Scope, name: bytes) -> str:
    """A request header's value ("" if absent)."""
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return ""


def user_of(params: dict[str, str]) -> str:
    """The sandbox user of a /files call. Raises EnvdHTTPError(401) for unknown ones."""
    user = params.get("username") or "user"
    if user not in {"user", "root"}:
        raise EnvdHTTPError(401, f"invalid user: '{user}'")
    return user


class FilesAPI:
    """The /files endpoint."""

    def __init__(self, fs: SandboxFS, owner_of: OwnerOf, faults: Faults) -> None:
        self._fs = fs
        self._owner_of = owner_of
        self._faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch GET (download) and POST (upload)."""
        method = scope["method"]
        try:
            if method == "GET":
                await self._download(scope, send)
            elif method == "POST":
                await self._upload(scope, Body(receive), send)
        except EnvdHTTPError as failure:
            await send_failure(send, failure)
        if method not in {"GET", "POST"}:
            await send_failure(send, EnvdHTTPError(405, "method not allowed"))

    def _host(self, path: str, user: str) -> Path:
        try:
            return self._fs.host(path, user)
        except PathEscapeError as exc:
            raise EnvdHTTPError(400, str(exc)) from exc

    async def _download(self, scope: Scope, send: Send) -> None:
        params = query(scope)
        host = self._host(params.get("path", ""), user_of(params))
        if not host.exists():
            raise EnvdHTTPError(404, f"path '{params.get('path')}' does not exist")
        if not host.is_file():
            raise EnvdHTTPError(400, f"path '{params.get('path')}' is not a file")
        with host.open("rb") as handle:
            size = host.stat().st_size
            await send(_download_start(host.name, size))
            while chunk := await asyncio.to_thread(handle.read, _CHUNK):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _upload(self, scope: Scope, body: Body, send: Send) -> None:
        params = query(scope)
        try:
            user = user_of(params)
            if header(scope, b"content-type").startswith("multipart/form-data"):
                written = await self._upload_multipart(scope, body, params, user)
            else:
                written = [await self._upload_raw(scope, body, params, user)]
        except EnvdHTTPError:
            await body.drain()
            raise
        answer = [{"name": p.rsplit("/", 1)[-1], "type": "file", "path": p} for p in written]
        await send_json(send, 200, answer)

    async def _upload_raw(self, scope: Scope, body: Body, params: dict[str, str], user: str) -> str:
        if not params.get("path"):
            raise EnvdHTTPError(400, "the path parameter is required")
        chunks = body.chunks()
        if header(scope, b"content-encoding").lower() == "gzip":
            chunks = _gunzip(chunks)
        return await self._write(params["path"], user, chunks)

    async def _upload_multipart(
        self, scope: Scope, body: Body, params: dict[str, str], user: str
    ) -> list[str]:
        try:
            parser = MultipartParser(boundary_of(header(scope, b"content-type")))
        except MultipartError as exc:
            raise EnvdHTTPError(400, str(exc)) from exc
        parts = _Parts(self, params.get("path"), user)
        try:
            async for chunk in body.chunks():
                for event in parser.feed(chunk):
                    parts.handle(event)
        except MultipartError as exc:
            raise EnvdHTTPError(400, str(exc)) from exc
        finally:
            parts.abort()
        return parts.written

    def open_part(self, path: str, user: str) -> _PartWriter:
        """The writer for one multipart file (a failing one under an upload fault)."""
        if not path:
            raise EnvdHTTPError(400, "a multipart file without a path")
        if self._faults.take_upload_error(self._sandbox_path(path, user)):
            return _PartWriter.failing(self._sandbox_path(path, user))
        return _PartWriter.open(self._target(path, user), self._sandbox_path(path, user))

    def _sandbox_path(self, path: str, user: str) -> str:
        try:
            return absolute(path, user)
        except PathEscapeError as exc:
            raise EnvdHTTPError(400, str(exc)) from exc

    def _target(self, path: str, user: str) -> Path:
        host = self._host(path, user)
        if host.is_dir():
            raise EnvdHTTPError(400, f"path '{path}' is a directory")
        owner = self._owner_of(user)
        try:
            make_dirs(host.parent, owner)
        except (NotADirectoryError, FileExistsError) as exc:
            raise EnvdHTTPError(400, f"cannot create the parent directories of '{path}'") from exc
        host.touch()
        chown_to(host, owner)
        return host

    async def _write(self, path: str, user: str, chunks: AsyncIterator[bytes]) -> str:
        sandbox_path = self._sandbox_path(path, user)
        if self._faults.take_upload_error(sandbox_path):
            raise EnvdHTTPError(500, "injected upload failure")
        writer = _PartWriter.open(self._target(path, user), sandbox_path)
        try:
            async for chunk in chunks:
                writer.write(chunk)
        finally:
            writer.abort()
        return writer.close()


class _Parts:
    """The files of one multipart upload, written as their parts arrive."""

    def __init__(self, api: FilesAPI, path: str | None, user: str) -> None:
        self._api = api
        self._path = path
        self._user = user
        self._writer: _PartWriter | None = None
        self.written: list[str] = []

    def handle(self, event: PartStart | PartData | PartEnd) -> None:
        """Open, fill or finish the file of the current part."""
        if isinstance(event, PartStart):
            self._writer = self._api.open_part(self._path or event.filename or "", self._user)
        elif isinstance(event, PartData) and self._writer is not None:
            self._writer.write(event.data)
        elif isinstance(event, PartEnd) and self._writer is not None:
            self.written.append(self._writer.close())
            self._writer = None

    def abort(self) -> None:
        """Close a file left half-written by a failed upload."""
        if self._writer is not None:
            self._writer.abort()


class _PartWriter:
    """Writes one uploaded file; a failing writer swallows data, then answers 500."""

    def __init__(self, handle: Any, sandbox_path: str) -> None:
        self._handle = handle
        self._path = sandbox_path

    @classmethod
    def open(cls, host: Path, sandbox_path: str) -> _PartWriter:
        return cls(host.open("wb"), sandbox_path)

    @classmethod
    def failing(cls, sandbox_path: str) -> _PartWriter:
        return cls(None, sandbox_path)

    def write(self, data: bytes) -> None:
        if self._handle is not None:
            self._handle.write(data)

    def close(self) -> str:
        if self._handle is None:
            raise EnvdHTTPError(500, "injected upload failure")
        self._handle.close()
        return self._path

    def abort(self) -> None:
        if self._handle is not None and not self._handle.closed:
            self._handle.close()


async def _gunzip(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    inflater = zlib.decompressobj(wbits=31)
    async for chunk in body:
        # max_length bounds the output of a small, highly compressed chunk.
        data = inflater.decompress(chunk, _CHUNK)
        while data:
            yield data
            data = inflater.decompress(inflater.unconsumed_tail, _CHUNK)
    if tail := inflater.flush():
        yield tail


def _download_start(name: str, size: int) -> Message:
    disposition = f'attachment; filename="{name}"'.encode("latin-1", "replace")
    return {
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", b"application/octet-stream"),
            (b"content-length", str(size).encode()),
            (b"content-disposition", disposition),
        ],
    }
