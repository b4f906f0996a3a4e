"""The pieces of an upload: their files and sums, a sender thread, retries and resends.

A *piece* is what the sandbox checks and takes in at once: a *pack* (see gitpack:
the pack, its index and its index entries) or a *chunk* of the tar stream (see
tarstream). Each *file* of a piece travels with its sha256 in the piece's sums
file, sent after the files: the sandbox takes the piece once that file is whole. A
file whose upload fails is retried alone; one the sandbox finds wrong is sent again
(see resend_bad).

Raises:
    SyncError: when files keep failing their checksum in the sandbox.
    SandboxError: when an upload keeps failing.

"""

from __future__ import annotations

import functools
import hashlib
import queue
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from claude_e2b.errors import SyncError
from claude_e2b.log import get_logger
from claude_e2b.sandbox.session import SandboxSession
from claude_e2b.sync.gitpack import Pack
from claude_e2b.sync.linkfit import Meter
from claude_e2b.sync.upload_scripts import verify_script

COMMAND_TIMEOUT_S = 600.0
READ_BLOCK = 2**20
# Told the bytes of each file of a piece once it is up (for a progress bar).
SentHook = Callable[[int], None]

log = get_logger(__name__)


@dataclass(frozen=True)
class PieceFile:
    """One file of a piece: its name in the upload directory, where it is here, its sha256."""

    name: str
    path: Path
    size: int
    sha256: str


@dataclass(frozen=True)
class Piece:
    """What the sandbox checks and takes in at once: a tar chunk, or a pack with index and entries.

    The sums file, sent after the files, lists their sha256 and ends with ``end``;
    the sandbox takes a piece once that line is there.
    """

    files: tuple[PieceFile, ...]
    sums_name: str

    @property
    def size(self) -> int:
        """Bytes of the piece's files."""
        return sum(f.size for f in self.files)

    def sums(self) -> bytes:
        """The sums file: ``<sha256>  <name>`` lines in sending order, then ``end``."""
        return "".join(f"{f.sha256}  {f.name}\n" for f in self.files).encode() + b"end\n"


@dataclass(frozen=True)
class Note:
    """A small file the sandbox waits on (how many packs or chunks there were)."""

    name: str
    text: str


# What the sender takes from its queue; None ends it.
Outgoing = Piece | Note


# Opens a file to send (the link's meter counts its reads: see linkfit).
Opener = Callable[[Path], BinaryIO]


def _hashed(name: str, path: Path) -> PieceFile:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(functools.partial(handle.read, READ_BLOCK), b""):
            digest.update(block)
    return PieceFile(name, path, path.stat().st_size, digest.hexdigest())


def pack_piece(pack: Pack, number: int) -> Piece:
    """The piece for the ``number``-th pack (from 1): its pack, index and entries files."""
    entries = pack.idx.with_suffix(".entries")
    entries.write_bytes(pack.entries)
    suffix = ".pack.zst" if pack.compressed else ".pack"
    files = (
        _hashed(f"{pack.name}{suffix}", pack.pack),
        _hashed(f"{pack.name}.idx", pack.idx),
        _hashed(f"{pack.name}.entries", entries),
    )
    return Piece(files, f"pack-{number:04d}.sha256")


class Sender(threading.Thread):
    """Uploads queued pieces and notes in order; remembers the pieces for verification.

    ``on_sent`` is called from this thread with the size of each file sent;
    ``meter`` (see linkfit) hears the reads of the files and each piece's time.
    """

    def __init__(
        self,
        session: SandboxSession,
        remote_dir: str,
        inbox: queue.Queue[Outgoing | None],
        on_sent: SentHook | None = None,
        meter: Meter | None = None,
    ) -> None:
        super().__init__(name="claude-e2b-upload", daemon=True)
        self._session = session
        self._remote_dir = remote_dir
        self._inbox = inbox
        self._on_sent = on_sent
        self._meter = meter
        self.sent: list[Piece] = []
        self.retries = 0
        self.error: BaseException | None = None

    def failed(self) -> bool:
        """Whether the sender gave up: it then only drains its queue."""
        return self.error is not None

    def run(self) -> None:
        """Send until the queue yields None; after an error, only drain it."""
        while (outgoing := self._inbox.get()) is not None:
            if self.error is None:
                try:
                    self._send(outgoing)
                except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                    self.error = exc

    def _send(self, outgoing: Outgoing) -> None:
        if isinstance(outgoing, Note):
            self._session.write_file(f"{self._remote_dir}/{outgoing.name}", outgoing.text.encode())
            return
        started = time.monotonic()
        opener = self._meter.open if self._meter is not None else _open
        self.retries += send_piece(
            self._session, self._remote_dir, outgoing, self._on_sent, opener=opener
        )
        if self._meter is not None:
            self._meter.piece_sent(outgoing.size, time.monotonic() - started)
        self.sent.append(outgoing)


def _open(path: Path) -> BinaryIO:
    return path.open("rb")


def send_file(
    session: SandboxSession, remote_dir: str, file: PieceFile, opener: Opener = _open
) -> int:
    """Upload one file; returns 0 (resent files are counted by ``resend_bad``).

    The session retries a failed write of it alone (a whole-file write is
    idempotent: the file is rewound). Raises SandboxError when its retries give up.
    """
    with opener(file.path) as data:
        session.write_file(f"{remote_dir}/{file.name}", data)
    return 0


def send_piece(
    session: SandboxSession,
    remote_dir: str,
    piece: Piece,
    on_sent: SentHook | None = None,
    *,
    opener: Opener = _open,
) -> int:
    """Upload a piece's files, then its sums file (which says "complete" to the sandbox).

    ``on_sent`` hears each file's size once it is up; returns how many were resent.
    """
    retries = 0
    for file in piece.files:
        retries += send_file(session, remote_dir, file, opener)
        if on_sent is not None:
            on_sent(file.size)
    session.write_file(f"{remote_dir}/{piece.sums_name}", piece.sums())
    return retries


def _verify_command(remote_dir: str, pieces: list[Piece]) -> str:
    """Prints the sums files that are not whole and the files that fail their sum."""
    names = " ".join(shlex.quote(p.sums_name) for p in pieces)
    return f"bash -c {shlex.quote(verify_script(remote_dir))} verify {names}"


def resend_bad(session: SandboxSession, remote_dir: str, pieces: list[Piece]) -> int:
    """Check every piece's files in the sandbox; resend the bad ones (twice at most).

    Returns how many files were sent again. Raises SyncError when some still fail.
    """
    resent = 0
    for _round in range(2):
        out = session.run(_verify_command(remote_dir, pieces), timeout=COMMAND_TIMEOUT_S)
        bad = {line.strip() for line in out.stdout.splitlines() if line.strip()}
        if not bad:
            return resent
        for piece in pieces:
            resent += _resend_piece(session, remote_dir, piece, bad)
    raise SyncError(f"{len(bad)} uploaded file(s) kept failing their checksum: {sorted(bad)[:5]}")


def _resend_piece(session: SandboxSession, remote_dir: str, piece: Piece, bad: set[str]) -> int:
    """Send again the piece's files named in ``bad`` (all when its sums file is), then its sums."""
    whole = piece.sums_name in bad
    files = [f for f in piece.files if whole or f.name in bad]
    for file in files:
        send_file(session, remote_dir, file)
    if files or whole:
        session.write_file(f"{remote_dir}/{piece.sums_name}", piece.sums())
    return len(files)
