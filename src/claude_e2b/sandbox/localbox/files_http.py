"""envd's HTTP ``/files`` API: streamed download (GET) and upload (POST).

Bodies go through in chunks both ways, so memory stays flat whatever the file
size (python-multipart's streaming parser hands each part's bytes straight to its
file). Files are opened through ``SandboxFS.locate`` (see safe_fs): by descriptors,
so a symlink a command swaps in meanwhile cannot send a byte outside the sandbox.
Errors are envd's JSON ``{"message", "code"}`` with the status the SDK maps:
400 bad path or body, 401 unknown user, 404 missing file, 507 no space left on the
disk (as envd), and the statuses a test injects (faults.py). A server started with a
simulated link (link.py) paces both bodies through it; without one, nothing is added.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import parse_qs

from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header

from . import safe_fs
from .faults import DISK_FULL_MESSAGE, DISK_FULL_STATUS, Faults
from .link import Link
from .paths import PathEscapeError, SandboxFS, absolute

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
OwnerOf = Callable[[str], "int | None"]

_CHUNK = 1024 * 1024
# A part's headers are a few hundred bytes; a long path with escapes stays far below.
_MAX_HEADER_BYTES = 64 * 1024
_MAX_HEADERS = 64
# httpx (HTML5 form encoding) writes these as %XX in a filename; parse_options_header
# already undid its other escape (a doubled backslash).
_ESCAPED = re.compile(r"%(22|[01][0-9A-Fa-f])")


class EnvdHTTPError(Exception):
    """An error answer in envd's shape."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    @classmethod
    def injected(cls, status: int, what: str) -> EnvdHTTPError:
        """The answer of an injected fault (envd's own words for a full disk)."""
        if status == DISK_FULL_STATUS:
            return cls(status, DISK_FULL_MESSAGE)
        return cls(status, f"injected {what} failure")


@contextmanager
def disk_full_as_507() -> Iterator[None]:
    """Answer 507, as envd does, when the sandbox's disk is full."""
    try:
        yield
    except OSError as exc:
        if exc.errno in {errno.ENOSPC, errno.EDQUOT}:
            raise EnvdHTTPError(DISK_FULL_STATUS, DISK_FULL_MESSAGE) from exc
        raise


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
    """The /files endpoint, behind a simulated link when ``link`` is given."""

    def __init__(
        self, fs: SandboxFS, owner_of: OwnerOf, faults: Faults, link: Link | None = None
    ) -> None:
        self._fs = fs
        self._owner_of = owner_of
        self._faults = faults
        self._link = link

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch GET (download) and POST (upload)."""
        method = scope["method"]
        if self._link is not None:
            receive, send = await self._link.shape(receive, send)
        try:
            if method == "GET":
                await self._download(scope, send)
            elif method == "POST":
                await self._upload(scope, Body(receive), send)
        except EnvdHTTPError as failure:
            await send_failure(send, failure)
        if method not in {"GET", "POST"}:
            await send_failure(send, EnvdHTTPError(405, "method not allowed"))

    async def _download(self, scope: Scope, send: Send) -> None:
        params = query(scope)
        user = user_of(params)
        path = params.get("path", "")
        if status := self._faults.take_download_error(self._sandbox_path(path, user)):
            raise EnvdHTTPError.injected(status, "download")
        with self._readable(path, user) as (handle, name):
            size = os.fstat(handle.fileno()).st_size
            await send(_download_start(name, size))
            while chunk := await asyncio.to_thread(handle.read, _CHUNK):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @contextmanager
    def _readable(self, path: str, user: str) -> Iterator[tuple[IO[bytes], str]]:
        """The open file to download and its name. Raises EnvdHTTPError (400, 404)."""
        try:
            with self._fs.locate(path, user) as entry:
                handle = safe_fs.open_read(entry)
        except PathEscapeError as exc:
            raise EnvdHTTPError(400, str(exc)) from exc
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise EnvdHTTPError(404, f"path '{path}' does not exist") from exc
        except (IsADirectoryError, safe_fs.NotRegularFileError) as exc:
            raise EnvdHTTPError(400, f"path '{path}' is not a file") from exc
        with handle:
            yield handle, entry.basename

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
        parts = _Parts(self, params.get("path"), user)
        try:
            parser = multipart_parser(header(scope, b"content-type"), parts.callbacks())
            async for chunk in body.chunks():
                parser.write(chunk)
            parser.finalize()
        except FormParserError as exc:
            raise EnvdHTTPError(400, str(exc)) from exc
        finally:
            parts.abort()
        return parts.written

    def open_part(self, path: str, user: str) -> _PartWriter:
        """The writer for one multipart file (a failing one under an upload fault)."""
        if not path:
            raise EnvdHTTPError(400, "a multipart file without a path")
        if status := self._faults.take_upload_error(self._sandbox_path(path, user)):
            return _PartWriter.failing(self._sandbox_path(path, user), status)
        return _PartWriter(self._target(path, user), self._sandbox_path(path, user))

    def _sandbox_path(self, path: str, user: str) -> str:
        try:
            return absolute(path, user)
        except PathEscapeError as exc:
            raise EnvdHTTPError(400, str(exc)) from exc

    def _target(self, path: str, user: str) -> IO[bytes]:
        """The file to upload into, created with its parents for the sandbox user.

        Raises EnvdHTTPError(400) for a path that leaves the root or cannot be a file.
        """
        owner = self._owner_of(user)
        try:
            with self._fs.locate(path, user, make_parents=True, owner=owner) as entry:
                return safe_fs.open_write(entry, owner)
        except PathEscapeError as exc:
            raise EnvdHTTPError(400, str(exc)) from exc
        except IsADirectoryError as exc:
            raise EnvdHTTPError(400, f"path '{path}' is a directory") from exc
        except safe_fs.NotRegularFileError as exc:
            raise EnvdHTTPError(400, f"path '{path}' is not a regular file") from exc
        except (NotADirectoryError, FileExistsError, FileNotFoundError) as exc:
            raise EnvdHTTPError(400, f"cannot create the parent directories of '{path}'") from exc

    async def _write(self, path: str, user: str, chunks: AsyncIterator[bytes]) -> str:
        sandbox_path = self._sandbox_path(path, user)
        if status := self._faults.take_upload_error(sandbox_path):
            raise EnvdHTTPError.injected(status, "upload")
        writer = _PartWriter(self._target(path, user), sandbox_path)
        try:
            async for chunk in chunks:
                writer.write(chunk)
        finally:
            writer.abort()
        return writer.close()


class _Parts:
    """The files of one multipart upload, written as the parser hands over their parts."""

    def __init__(self, api: FilesAPI, path: str | None, user: str) -> None:
        self._api = api
        self._path = path
        self._user = user
        self._name = bytearray()
        self._value = bytearray()
        self._disposition: bytes | None = None
        self._writer: _PartWriter | None = None
        self.written: list[str] = []

    def callbacks(self) -> MultipartCallbacks:
        """The parser callbacks that fill this upload's files."""
        return {
            "on_part_begin": self._begin_part,
            "on_header_begin": self._begin_header,
            "on_header_field": lambda data, start, end: self._name.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._value.extend(data[start:end]),
            "on_header_end": self._end_header,
            "on_headers_finished": self._open,
            "on_part_data": self._write,
            "on_part_end": self._close,
        }

    def _begin_part(self) -> None:
        self._disposition = None

    def _begin_header(self) -> None:
        self._name.clear()
        self._value.clear()

    def _end_header(self) -> None:
        # The first Content-Disposition counts, as before.
        if self._name.lower() == b"content-disposition" and self._disposition is None:
            self._disposition = bytes(self._value)

    def _open(self) -> None:
        filename = filename_of(self._disposition or b"")
        self._writer = self._api.open_part(self._path or filename or "", self._user)

    def _write(self, data: bytes, start: int, end: int) -> None:
        if self._writer is not None:
            self._writer.write(memoryview(data)[start:end])

    def _close(self) -> None:
        if self._writer is not None:
            self.written.append(self._writer.close())
            self._writer = None

    def abort(self) -> None:
        """Close a file left half-written by a failed upload."""
        if self._writer is not None:
            self._writer.abort()


def multipart_parser(content_type: str, callbacks: MultipartCallbacks) -> MultipartParser:
    """A streaming parser for a multipart/form-data body.

    Raises FormParserError when the Content-Type has no usable boundary.
    """
    boundary = parse_options_header(content_type)[1].get(b"boundary")
    if not boundary:
        raise FormParserError("multipart body without boundary")
    return MultipartParser(
        boundary, callbacks, max_header_count=_MAX_HEADERS, max_header_size=_MAX_HEADER_BYTES
    )


def filename_of(disposition: bytes) -> str | None:
    """The filename parameter of a part's Content-Disposition, unescaped (None if absent)."""
    raw = parse_options_header(disposition)[1].get(b"filename")
    if raw is None:
        return None
    # httpx sends the header as UTF-8; parse_options_header decoded it as latin-1.
    name = raw.decode("utf-8", "replace")
    return _ESCAPED.sub(lambda match: chr(int(match.group(1), 16)), name)


class _PartWriter:
    """Writes one uploaded file; a failing writer swallows data, then answers its status."""

    def __init__(self, handle: IO[bytes] | None, sandbox_path: str, status: int = 0) -> None:
        self._handle = handle
        self._path = sandbox_path
        self._status = status

    @classmethod
    def failing(cls, sandbox_path: str, status: int) -> _PartWriter:
        return cls(None, sandbox_path, status)

    def write(self, data: bytes | memoryview) -> None:
        if self._handle is not None:
            with disk_full_as_507():
                self._handle.write(data)

    def close(self) -> str:
        if self._handle is None:
            raise EnvdHTTPError.injected(self._status, "upload")
        with disk_full_as_507():
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
