"""How the packed objects travel: as git stored them (packs), or recompressed (zpacks).

A pack as git stored it costs the runner almost nothing to make, but zlib leaves
it larger than zstd -3 would; a zpack (see rawpack) is smaller on compressible
files and costs CPU to make. Which is faster depends on the link: on a fast one
the CPU is the time, on a slow one the bytes are. With ``auto`` the first pack
always goes as git stored it (its weight is what packs cost); while it travels, the
sender's reads are timed (a ``Meter``), and before the second group is made the
chooser compares, per byte of file content:

- packs: as-stored bytes / link rate;
- zpacks: the larger of zstd's bytes / link rate and 1 / the rate zpacks are made,

the bytes of git's packs per byte of content from the first pack, zstd's ratio and
speed from a sample of the group about to be made. It picks zpacks only when they
are clearly faster (``MARGIN``) and sticks to the choice. The figures behind it are
in BENCHMARKS.md.
"""

from __future__ import annotations

import io
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from claude_e2b.errors import SyncError
from claude_e2b.log import get_logger
from claude_e2b.sync.formats import Transfer
from claude_e2b.sync.git import git_output
from claude_e2b.sync.rawpack import read_blob

GroupMode = Literal["packs", "zpacks"]

# The link's rate is taken over MEASURE_BYTES read after the first WARMUP_BYTES
# (what the socket's buffers swallow at once does not tell the link's rate).
WARMUP_BYTES = 8 * 2**20
MEASURE_BYTES = 8 * 2**20
SAMPLE_BYTES = 8 * 2**20
SAMPLE_RUNS = 4
MIN_PIECE_BYTES = 2**20
# zpacks must be at least this much faster (per byte) to be chosen.
MARGIN = 0.9
# How long the chooser waits for the first measurement before keeping packs.
WAIT_S = 120.0
SAMPLE_TIMEOUT_S = 60.0

log = get_logger(__name__)


class Meter:
    """How fast the sender's bytes leave, from the reads of the files it uploads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._changed = threading.Condition()
        self._total = 0
        self._mark: tuple[float, int] | None = None
        self._done = False
        self.rate: float | None = None  # bytes per second, once measured

    def add(self, count: int) -> None:
        """``count`` more bytes were read by the sender."""
        with self._changed:
            self._total += count
            if self._mark is None:
                if self._total >= WARMUP_BYTES:
                    self._mark = (self._clock(), self._total)
            elif self.rate is None and self._total - self._mark[1] >= MEASURE_BYTES:
                elapsed = max(self._clock() - self._mark[0], 1e-6)
                self.rate = (self._total - self._mark[1]) / elapsed
                self._changed.notify_all()

    def piece_sent(self, size: int, seconds: float) -> None:
        """A whole piece went up: its rate stands in when it was too small to measure.

        Not below MIN_PIECE_BYTES: the time of a small request is its round trips.
        """
        with self._changed:
            if self.rate is None and seconds > 0 and size >= MIN_PIECE_BYTES:
                self.rate = size / seconds
            self._done = True
            self._changed.notify_all()

    def wait(self, timeout: float) -> float | None:
        """The rate, once measured (or the first piece is up); None after ``timeout``."""
        with self._changed:
            self._changed.wait_for(lambda: self.rate is not None or self._done, timeout)
            return self.rate

    def open(self, path: Path) -> io.FileIO:
        """``path`` opened for reading, its reads counted."""
        return _MeteredFile(path, self)


class _MeteredFile(io.FileIO):
    """A file whose reads the meter hears (httpx streams it with ``read``)."""

    def __init__(self, path: Path, meter: Meter) -> None:
        super().__init__(path, "rb")
        self._meter = meter

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        if data:
            self._meter.add(len(data))
        return data or b""

    def readinto(self, buffer: bytearray | memoryview, /) -> int:  # type: ignore[override]
        count = super().readinto(buffer) or 0
        self._meter.add(count)
        return count


@dataclass(frozen=True)
class Estimate:
    """Seconds per byte of file content each way, from what was measured."""

    link_rate: float  # bytes per second
    packed_ratio: float  # bytes of git's stored objects per byte of content
    zpack_ratio: float  # bytes after zstd per byte of content
    zpack_rate: float  # bytes of content made into zpacks per second

    @property
    def packs_cost(self) -> float:
        """Seconds per content byte sending the objects as git stored them."""
        return self.packed_ratio / self.link_rate

    @property
    def zpacks_cost(self) -> float:
        """Seconds per content byte as zpacks: the link or the making, the slower."""
        return max(self.zpack_ratio / self.link_rate, 1 / self.zpack_rate)

    def choice(self) -> GroupMode:
        """The zpacks when clearly faster, else the packs."""
        return "zpacks" if self.zpacks_cost < MARGIN * self.packs_cost else "packs"


@dataclass
class Chooser:
    """Picks each group's mode (asked before every group but the first)."""

    transfer: Transfer
    root: Path
    object_env: dict[str, str]
    blob_paths: dict[str, list[str]]
    sizes: dict[str, int]
    meter: Meter
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)
    decided: GroupMode | None = None
    estimate: Estimate | None = None
    first_pack: tuple[int, int] | None = None  # its bytes and the content they hold

    def observe(self, pack_bytes: int, content_bytes: int) -> None:
        """The first pack as git stored it: what packs cost here, per byte of content."""
        if self.first_pack is None and content_bytes > 0:
            self.first_pack = (pack_bytes, content_bytes)

    def __call__(self, group: list[str]) -> GroupMode:
        """The mode for the group about to be made (its object names)."""
        if self.transfer in ("packs", "zpacks"):
            return "packs" if self.transfer == "packs" else "zpacks"
        if self.decided is not None:
            return self.decided
        rate = self.meter.wait(WAIT_S)
        if rate is None:
            return "packs"  # not measured yet (small pieces): ask again next group
        self.decided = self._decide(rate, group)
        return self.decided

    def _decide(self, rate: float, group: list[str]) -> GroupMode:
        try:
            self.estimate = self._estimate(rate, group)
        except (SyncError, OSError, subprocess.SubprocessError) as exc:
            log.warning("upload.transfer_sample_failed", error=str(exc))
            return "packs"
        choice = self.estimate.choice()
        found = self.estimate
        log.info(
            "upload.transfer_chosen", choice=choice, link_mbit=round(rate * 8 / 1e6, 1),
            packed_ratio=round(found.packed_ratio, 3), zpack_ratio=round(found.zpack_ratio, 3),
            zpack_mb_s=round(found.zpack_rate / 1e6),
            packs_s_per_mb=round(found.packs_cost * 1e6, 4),
            zpacks_s_per_mb=round(found.zpacks_cost * 1e6, 4),
        )  # fmt: skip
        return choice

    def _estimate(self, rate: float, group: list[str]) -> Estimate:
        sample = _sample(group, self.sizes)
        content, packed = bytearray(), 0.0  # one buffer: the sample is read once, never copied
        disk = {} if self.first_pack else _disk_sizes(self.root, sample, self.object_env)
        for blob in sample:
            read = _read_blob_into(self.root / self.blob_paths[blob][0], content)
            packed += disk.get(blob, read) * read / max(self.sizes[blob], 1)
        if self.first_pack:  # what the first pack really weighed beats the sample's sizes
            packed = len(content) * self.first_pack[0] / self.first_pack[1]
        spawn = _zstd_seconds(b"")[1]  # what starting zstd costs, apart from its work
        squeezed, seconds = _zstd_seconds(content)
        seconds = max(seconds - spawn, 1e-6)
        size = max(len(content), 1)
        # zstd -T0 spreads the work over the cores; the pack writer takes part of one.
        return Estimate(rate, packed / size, len(squeezed) / size,
                        size / seconds * max(1.0, 0.8 * self.cpus))  # fmt: skip


def _zstd_seconds(content: bytes | bytearray) -> tuple[bytes, float]:
    """``zstd -3`` of the content on one thread, and how long it took."""
    started = time.monotonic()
    squeezed = subprocess.run(
        ["zstd", "-3", "-T1", "-q", "-c"],
        input=content, capture_output=True, check=True, timeout=SAMPLE_TIMEOUT_S,
    ).stdout  # fmt: skip
    return squeezed, time.monotonic() - started


def _sample(group: list[str], sizes: dict[str, int]) -> list[str]:
    """Runs of neighbouring blobs spread over the group, about SAMPLE_BYTES in all.

    Neighbours, not every n-th blob: files side by side (one directory, one kind)
    share text that zstd's window finds in the real zpack; a sample of strangers
    showed a ratio of 0.29-0.32 where the zpacks made 0.25.
    """
    blobs = [b for b in group if b in sizes]
    picked: dict[str, None] = {}
    for run in range(SAMPLE_RUNS):
        taken = 0
        for blob in blobs[len(blobs) * run // SAMPLE_RUNS :]:
            if taken >= SAMPLE_BYTES // SAMPLE_RUNS:
                break
            picked[blob] = None
            taken += sizes[blob]
    return list(picked)


def _read_blob_into(path: Path, content: bytearray) -> int:
    """Append the blob's bytes from the work tree (at most SAMPLE_BYTES); how many."""
    before = len(content)
    for block in read_blob(path):
        content += block[: SAMPLE_BYTES - (len(content) - before)]
        if len(content) - before >= SAMPLE_BYTES:
            break
    return len(content) - before


def _disk_sizes(root: Path, blobs: list[str], env: dict[str, str]) -> dict[str, int]:
    """Bytes each blob takes in git's packs (compressed, as it would travel)."""
    query = "".join(f"{b}\n" for b in blobs).encode()
    fmt = "--batch-check=%(objectname) %(objectsize:disk)"
    out = git_output(root, "cat-file", fmt, stdin=query, env=env).decode()
    sizes: dict[str, int] = {}
    for line in out.splitlines():
        name, _, size = line.partition(" ")
        if size.isdigit():
            sizes[name] = int(size)
    return sizes
