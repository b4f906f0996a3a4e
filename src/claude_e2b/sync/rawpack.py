r"""Packs of stored (uncompressed) blobs read from the work tree, sent through zstd.

The runner's packs hold git's zlib-compressed objects: sending them as they are
costs the runner almost nothing, but zlib leaves them about a third larger than
zstd -3 would (on text). Where the link is the bottleneck, the bytes are the time:
then a group of blobs goes as a *zpack* instead, a pack whose objects are zlib
"stored" blocks (no compression; git reads them as any other) written here from
the work tree, compressed as a whole by ``zstd -3 -T0`` on its way out. The
sandbox decompresses it into its object store and checks the files out without
inflating anything.

Each file is read once and checked against its blob name (git's SHA-1 of
``blob <size>\0<content>``): a file that changed since the split does not match
and its group is packed by git instead (see gitpack). The pack's index (version 2)
is written here too, from the names, offsets and CRC-32s of the entries.
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from claude_e2b.errors import SyncError

# Per subprocess: zstd compresses a group of 64 MiB in well under a second here.
ZSTD_TIMEOUT_S = 600.0
ZPACK_LEVEL = 3
_OBJ_BLOB = 3
_STORED = 65535  # the largest deflate stored block
_READ = 2**20
_LARGE_OFFSET = 2**31


class BlobMismatchError(SyncError):
    """A work-tree file no longer holds its blob's bytes (it changed since the split)."""


@dataclass(frozen=True)
class RawBlob:
    """One blob to pack: its name, the work-tree path that holds it, its size."""

    name: str
    path: Path
    size: int


@dataclass(frozen=True)
class ZPack:
    """A written zpack: the zstd-compressed pack file, its index, the pack's name."""

    name: str  # pack-<sha1 of the uncompressed pack>
    pack_zst: Path
    idx: Path
    raw_bytes: int  # bytes of the uncompressed pack


def object_header(kind: int, size: int) -> bytes:
    """A pack entry's header: type and size, 4 bits then 7 bits a byte (git's varint)."""
    out = bytearray()
    byte = (kind << 4) | (size & 0x0F)
    size >>= 4
    while size:
        out.append(byte | 0x80)
        byte = size & 0x7F
        size >>= 7
    out.append(byte)
    return bytes(out)


class _Entry:
    """Writes one pack entry as stored deflate blocks, hashing on the way."""

    def __init__(self, out: _PackOut, blob: RawBlob) -> None:
        self.out = out
        self.crc = 0
        self.adler = 1
        self.git_sha = hashlib.sha1(b"blob %d\0" % blob.size, usedforsecurity=False)
        self.left = blob.size

    def put(self, data: bytes | memoryview) -> None:
        self.crc = zlib.crc32(data, self.crc)
        self.out.write(data)

    def content(self, block: memoryview) -> None:
        """Content bytes (any length): stored blocks of at most 65,535 bytes each."""
        self.git_sha.update(block)
        self.adler = zlib.adler32(block, self.adler)
        for start in range(0, len(block), _STORED):
            piece = block[start : start + _STORED]
            self.left -= len(piece)
            final = 1 if self.left == 0 else 0
            self.put(struct.pack("<BHH", final, len(piece), len(piece) ^ 0xFFFF))
            self.put(piece)


class _PackOut:
    """The uncompressed pack stream: into zstd, with its SHA-1 and length kept."""

    def __init__(self, sink: IO[bytes]) -> None:
        self.sink = sink
        self.sha = hashlib.sha1(usedforsecurity=False)
        self.offset = 0

    def write(self, data: bytes | memoryview) -> None:
        self.sha.update(data)
        self.sink.write(data)
        self.offset += len(data)


def read_blob(path: Path) -> Iterator[memoryview]:
    """A blob's bytes from the work tree: a symlink's target, or the file's content.

    The blocks are views of one reused buffer: each is valid until the next.
    """
    if path.is_symlink():
        yield memoryview(os.fsencode(path.readlink()))
        return
    buffer = bytearray(_READ)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            yield view[:count]


def _write_entry(out: _PackOut, blob: RawBlob) -> tuple[int, int]:
    """Write one blob's entry; return its offset and CRC-32. Raises BlobMismatchError."""
    offset = out.offset
    entry = _Entry(out, blob)
    entry.put(object_header(_OBJ_BLOB, blob.size))
    entry.put(b"\x78\x01")  # zlib header: deflate, 32 KiB window, no dictionary
    if blob.size == 0:
        entry.put(b"\x01\x00\x00\xff\xff")  # one empty final stored block
    for block in read_blob(blob.path):
        if len(block) > entry.left:
            raise BlobMismatchError(f"{blob.path} is larger than its blob")
        entry.content(block)
    if entry.left or entry.git_sha.hexdigest() != blob.name:
        raise BlobMismatchError(f"{blob.path} no longer holds blob {blob.name}")
    entry.put(struct.pack(">I", entry.adler))
    return offset, entry.crc


def _index(entries: dict[str, tuple[int, int]], pack_sha: bytes) -> bytes:
    """The pack's index, version 2: fan-out, names, CRC-32s, offsets, checksums."""
    names = sorted(bytes.fromhex(n) for n in entries)
    counts = [0] * 256
    for name in names:
        counts[name[0]] += 1
    fanout, total = [], 0
    for count in counts:
        total += count
        fanout.append(total)
    small: list[int] = []
    large: list[int] = []
    for name in names:
        offset = entries[name.hex()][0]
        if offset < _LARGE_OFFSET:
            small.append(offset)
        else:
            small.append(_LARGE_OFFSET | len(large))
            large.append(offset)
    body = b"".join([
        b"\xfftOc", struct.pack(">I", 2), struct.pack(">256I", *fanout), *names,
        struct.pack(f">{len(names)}I", *(entries[n.hex()][1] for n in names)),
        struct.pack(f">{len(small)}I", *small), struct.pack(f">{len(large)}Q", *large),
        pack_sha,
    ])  # fmt: skip
    return body + hashlib.sha1(body, usedforsecurity=False).digest()


def write_zpack(blobs: list[RawBlob], out: Path, level: int = ZPACK_LEVEL) -> ZPack:
    """Write the blobs as a pack of stored objects through ``zstd -<level> -T0``.

    Raises BlobMismatchError when a file no longer holds its blob (the caller packs
    the group with git instead), SyncError when zstd fails.
    """
    out.mkdir(parents=True, exist_ok=True)
    partial = out / "zpack.partial"
    with partial.open("wb") as target:
        zstd = subprocess.Popen(
            ["zstd", f"-{level}", "-T0", "-q", "-c"], stdin=subprocess.PIPE, stdout=target
        )
        try:
            pack_sha, entries, raw_bytes = _stream_pack(blobs, zstd)
        except BaseException:
            zstd.kill()
            zstd.wait(timeout=ZSTD_TIMEOUT_S)
            partial.unlink(missing_ok=True)
            raise
        if zstd.wait(timeout=ZSTD_TIMEOUT_S) != 0:
            raise SyncError(f"zstd failed (exit {zstd.returncode}) compressing a pack")
    name = f"pack-{pack_sha.hex()}"
    pack_zst = out / f"z-{pack_sha.hex()}.pack.zst"
    partial.rename(pack_zst)
    idx = out / f"z-{pack_sha.hex()}.idx"
    idx.write_bytes(_index(entries, pack_sha))
    return ZPack(name, pack_zst, idx, raw_bytes)


def _stream_pack(
    blobs: list[RawBlob], zstd: subprocess.Popen[bytes]
) -> tuple[bytes, dict[str, tuple[int, int]], int]:
    """Write the pack into zstd's input; return its SHA-1, the entries and its length."""
    assert zstd.stdin is not None  # noqa: S101 - Popen with stdin=PIPE
    with zstd.stdin as sink:
        out = _PackOut(sink)
        out.write(b"PACK" + struct.pack(">II", 2, len(blobs)))
        entries = {blob.name: _write_entry(out, blob) for blob in blobs}
        pack_sha = out.sha.digest()
        sink.write(pack_sha)
    return pack_sha, entries, out.offset + len(pack_sha)
