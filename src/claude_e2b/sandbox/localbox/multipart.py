"""A streaming multipart/form-data parser: bounded memory, whatever the part size."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_HEADER_END = b"\r\n\r\n"
_MAX_HEADER_BYTES = 64 * 1024
# httpx (HTML5 form encoding) escapes these in a filename; undo it.
_ESCAPED = re.compile(r"%(22|[01][0-9A-Fa-f])|\\\\")


class MultipartError(ValueError):
    """The body is not valid multipart/form-data."""


@dataclass(frozen=True)
class PartStart:
    """A new part begins; ``filename`` from its Content-Disposition, if any."""

    filename: str | None


@dataclass(frozen=True)
class PartData:
    """A piece of the current part's content."""

    data: bytes


@dataclass(frozen=True)
class PartEnd:
    """The current part is complete."""


Event = PartStart | PartData | PartEnd


def boundary_of(content_type: str) -> bytes:
    """The boundary parameter of a multipart Content-Type. Raises MultipartError."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if match is None:
        raise MultipartError("multipart body without boundary")
    return match.group(1).encode("latin-1")


@dataclass
class MultipartParser:
    """Feed body chunks in, get PartStart/PartData/PartEnd events out."""

    boundary: bytes
    _buf: bytearray = field(default_factory=bytearray)
    _state: str = "preamble"

    @property
    def done(self) -> bool:
        """Whether the closing boundary was seen."""
        return self._state == "done"

    def feed(self, chunk: bytes) -> list[Event]:
        """Parse a chunk; the events it completes."""
        self._buf.extend(chunk)
        events: list[Event] = []
        while True:
            step = getattr(self, f"_step_{self._state}")()
            if step is None:
                return events
            events.extend(step)

    def _step_preamble(self) -> list[Event] | None:
        delim = b"--" + self.boundary
        index = self._buf.find(delim)
        if index < 0 or len(self._buf) < index + len(delim) + 2:
            return None
        del self._buf[: index + len(delim)]
        return self._after_delimiter()

    def _after_delimiter(self) -> list[Event] | None:
        tail = bytes(self._buf[:2])
        del self._buf[:2]
        self._state = "done" if tail == b"--" else "headers"
        return []

    def _step_headers(self) -> list[Event] | None:
        index = self._buf.find(_HEADER_END)
        if index < 0:
            if len(self._buf) > _MAX_HEADER_BYTES:
                raise MultipartError("multipart part headers too long")
            return None
        headers = bytes(self._buf[:index]).decode("utf-8", "replace")
        del self._buf[: index + len(_HEADER_END)]
        self._state = "body"
        return [PartStart(_filename(headers))]

    def _step_body(self) -> list[Event] | None:
        delim = b"\r\n--" + self.boundary
        index = self._buf.find(delim)
        if index < 0:
            # Keep a tail that could be the start of a delimiter split across chunks.
            safe = len(self._buf) - len(delim)
            if safe <= 0:
                return None
            data = bytes(self._buf[:safe])
            del self._buf[:safe]
            return [PartData(data)]
        if len(self._buf) < index + len(delim) + 2:
            return None
        data = bytes(self._buf[:index])
        del self._buf[: index + len(delim)]
        events: list[Event] = [PartData(data)] if data else []
        self._after_delimiter()
        return [*events, PartEnd()]

    def _step_done(self) -> list[Event] | None:
        self._buf.clear()
        return None


def _filename(headers: str) -> str | None:
    for line in headers.split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() != "content-disposition":
            continue
        match = re.search(r'filename="((?:[^"\\]|\\.)*)"', value)
        if match is None:
            match = re.search(r"filename=([^;\s]+)", value)
        return _unescape(match.group(1)) if match else None
    return None


def _unescape(value: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "\\\\":
            return "\\"
        return chr(int(match.group(1), 16))

    return _ESCAPED.sub(replace, value)
