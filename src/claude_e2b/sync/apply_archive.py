"""The archive of changes on the runner: its capped download, its check, its capped reading.

The archive comes from a sandbox where a hostile agent may have replaced tar,
zstd and the pack script's own report, so nothing it says is trusted: the
download stops at a byte cap, the decompressed stream is counted as it is read
(a few kilobytes of zstd can expand to gigabytes), every member's data counts
against the total cap before it is staged, and the member count against the file
cap. Crossing any cap raises :class:`UnsafeChangeError` before anything reaches
the checkout; members are only ever staged in a private temporary directory.

Raises:
    SyncError: the archive is unreadable, not zstd/gzip, or fails verification.
    UnsafeChangeError: the archive is over a cap.

"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import tarfile
import zlib
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal, Protocol, cast

import zstandard

from claude_e2b.errors import SyncError, UnsafeChangeError
from claude_e2b.sync.changes import Change, PackedArchive
from claude_e2b.sync.formats import MODE_EXECUTABLE, MODE_SYMLINK
from claude_e2b.sync.select import human_size

if TYPE_CHECKING:
    from collections.abc import Container, Iterable, Mapping

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_GZIP_MAGIC = b"\x1f\x8b"
# Tar bytes around one member's data: its header, a GNU long-name entry for a name
# up to PATH_MAX, and the padding to 512 bytes. Generous on purpose.
_PER_MEMBER_OVERHEAD = 8 * 2**10
# The end-of-archive blocks and the record padding, with room to spare.
_STREAM_SLACK = 2**20
# zstd and gzip grow incompressible data by well under 1/64 (frame and block headers).
_COMPRESSION_GROWTH = 64
_BLOCK = 2**20


@dataclass(frozen=True)
class ArchiveCaps:
    """How much the archive may hold: per file, in total, and how many members."""

    max_file_bytes: int
    max_total_bytes: int
    max_files: int

    @property
    def stream_bytes(self) -> int:
        """Bytes of uncompressed tar that ``max_files`` members within the caps can take."""
        return self.max_total_bytes + _PER_MEMBER_OVERHEAD * (self.max_files + 1) + _STREAM_SLACK

    @property
    def download_bytes(self) -> int:
        """Bytes of compressed archive that such a tar can take: the download cap."""
        stream = self.stream_bytes
        return stream + stream // _COMPRESSION_GROWTH + _STREAM_SLACK


@dataclass(frozen=True)
class Staged:
    """New content for one path: a staged regular file or a symlink target."""

    kind: Literal["file", "symlink"]
    staged: Path | None = None
    target: str | None = None
    mode: int = 0o644


@dataclass
class ArchiveRead:
    """What the archive gave: staged contents, refused members, members nobody announced."""

    contents: dict[str, Staged] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    strays: list[str] = field(default_factory=list)
    staged_bytes: int = 0


def write_capped(chunks: Iterable[bytes], path: Path, limit: int) -> int:
    """Write ``chunks`` to ``path`` as they come; return the number of bytes written.

    Raises:
        UnsafeChangeError: more than ``limit`` bytes arrived; the download is stopped
            and the partial file removed.

    """
    iterator = iter(chunks)
    total = 0
    try:
        with path.open("wb") as out:
            for chunk in iterator:
                total += len(chunk)
                if total > limit:
                    raise _over_download(limit)
                out.write(chunk)
    except UnsafeChangeError:
        path.unlink(missing_ok=True)
        raise
    finally:
        _close(iterator)
    return total


def _close(iterator: object) -> None:
    # Closing a generator stops the stream it reads (the sandbox's file download).
    close = getattr(iterator, "close", None)
    if callable(close):
        close()


def _over_download(limit: int) -> UnsafeChangeError:
    return UnsafeChangeError(
        f"the archive of changes is over {human_size(limit)}: the download was stopped"
        " and nothing was applied",
        hint="a code change is far smaller: check what the agent wrote in the sandbox",
    )


def verify_archive(archive: Path, expected: PackedArchive) -> None:
    """Check the downloaded archive against what the pack script reported.

    Raises:
        SyncError: the size or the sha256 differ.

    """
    digest = hashlib.sha256()
    with archive.open("rb") as src:
        for block in iter(lambda: src.read(_BLOCK), b""):
            digest.update(block)
    size = archive.stat().st_size
    if size != expected.bytes or digest.hexdigest() != expected.sha256:
        raise SyncError(
            f"the downloaded archive ({size} bytes, sha256 {digest.hexdigest()}) differs from"
            f" the one packed in the sandbox ({expected.bytes} bytes, sha256 {expected.sha256})",
            hint="the download was corrupted or cut short; run again",
        )


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _CountedStream:
    """A read-only stream that raises once more than ``limit`` bytes were read from it."""

    def __init__(self, raw: _Readable, limit: int) -> None:
        self._raw = raw
        self._left = limit

    def read(self, size: int = -1) -> bytes:
        # Refuse before reading: tarfile asks for a whole pax header at once.
        if size < 0 or size > self._left:
            size = self._left + 1
        data = self._raw.read(size)
        self._left -= len(data)
        if self._left < 0:
            raise UnsafeChangeError("the archive expands past the caps")
        return data


def read_archive(
    archive: Path | None,
    wanted: Mapping[str, Change],
    staging: Path,
    caps: ArchiveCaps,
    *,
    refused: Container[str] = (),
) -> ArchiveRead:
    """Stage the wanted members' contents in ``staging``; refuse the members that disagree.

    Members of paths in ``refused`` are passed over silently (their change is
    already listed with its reason).

    Raises:
        SyncError: the archive is unreadable or in an unknown format.
        UnsafeChangeError: the archive is over a cap (nothing is applied then).

    """
    read = ArchiveRead()
    if archive is None:
        return read
    reader = _Reader(dict(wanted), staging, caps, refused, read)
    try:
        with ExitStack() as stack:
            tar = _open_tar(archive, stack, caps.stream_bytes)
            for index, member in enumerate(tar):
                reader.take(tar, member, index)
    except (tarfile.TarError, zstandard.ZstdError, zlib.error, EOFError, OSError) as exc:
        raise SyncError(f"the archive of changes could not be read: {exc}") from exc
    return read


def _open_tar(archive: Path, stack: ExitStack, limit: int) -> tarfile.TarFile:
    raw: IO[bytes] = stack.enter_context(archive.open("rb"))
    magic = raw.read(4)
    raw.seek(0)
    stream: _Readable
    if magic == _ZSTD_MAGIC:
        stream = stack.enter_context(zstandard.ZstdDecompressor().stream_reader(raw))
    elif magic.startswith(_GZIP_MAGIC):
        stream = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
    else:
        raise SyncError(f"the archive of changes is neither zstd nor gzip (starts {magic!r})")
    # tarfile's stream mode only ever calls read() on it.
    counted = cast("IO[bytes]", _CountedStream(stream, limit))
    return stack.enter_context(tarfile.open(fileobj=counted, mode="r|"))


@dataclass
class _Reader:
    """The walk over the members: which to stage, which to refuse, and the running totals."""

    wanted: dict[str, Change]
    staging: Path
    caps: ArchiveCaps
    known: Container[str]
    read: ArchiveRead
    members: int = 0

    def take(self, tar: tarfile.TarFile, member: tarfile.TarInfo, index: int) -> None:
        self.members += 1
        if self.members > self.caps.max_files:
            raise UnsafeChangeError(f"the archive holds more than {self.caps.max_files} members")
        change = self.wanted.get(member.name)
        if change is None:
            if member.name not in self.known and member.name not in self.read.refused:
                self.read.strays.append(member.name)
            return
        problem = _member_problem(member, change, self.read, self.caps)
        if problem is not None:
            del self.wanted[member.name]
            self.read.contents.pop(member.name, None)
            self.read.refused[member.name] = problem
            return
        self._count(member)
        self.read.contents[member.name] = _stage(tar, member, index, change, self.staging)

    def _count(self, member: tarfile.TarInfo) -> None:
        self.read.staged_bytes += member.size
        if self.read.staged_bytes > self.caps.max_total_bytes:
            raise UnsafeChangeError(
                f"the archive holds more than {human_size(self.caps.max_total_bytes)}"
                " of new content"
            )


def _member_problem(
    member: tarfile.TarInfo, change: Change, read: ArchiveRead, caps: ArchiveCaps
) -> str | None:
    if member.name in read.contents:
        return "the archive holds this path twice"
    expected_link = change.mode == MODE_SYMLINK
    if member.issym() != expected_link or not (member.issym() or member.isreg()):
        return f"archive member is a {_kind(member)}, the changeset announced a {_kind(change)}"
    if member.size > caps.max_file_bytes:
        return f"{member.size} bytes, over the limit of {caps.max_file_bytes}"
    return None


def _kind(item: tarfile.TarInfo | Change) -> str:
    if isinstance(item, Change):
        return "symlink" if item.mode == MODE_SYMLINK else "regular file"
    kinds = {tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hard link", tarfile.DIRTYPE: "directory"}
    return "regular file" if item.isreg() else kinds.get(item.type, "device or special file")


def _stage(
    tar: tarfile.TarFile, member: tarfile.TarInfo, index: int, change: Change, staging: Path
) -> Staged:
    if member.issym():
        return Staged(kind="symlink", target=member.linkname)
    staged = staging / str(index)
    source = tar.extractfile(member)
    with staged.open("wb") as out:
        if source is not None:
            shutil.copyfileobj(source, out)
    mode = 0o755 if change.mode == MODE_EXECUTABLE else 0o644
    return Staged(kind="file", staged=staged, mode=mode)
