"""Send the selected files up while the sandbox takes them in, then the baseline commit.

Two kinds of *pieces* travel, each file of a piece with its sha256, and each file
resent alone if it fails (see pieces):

- **packs** (see gitpack): tracked files whose bytes are exactly their committed
  blob go as the runner's own git objects, a pack of about 64 MiB of content at a
  time with its index and the list of its paths. The sandbox installs each pack
  and checks its files out: no hashing there, and no compression on the runner.
  Where the link is slow, packs after the first go as *zpacks* instead (stored
  objects through zstd: fewer bytes, more CPU here; see rawpack and linkfit).
- **chunks** (see tarstream): every other file (edited, untracked, converted by
  attributes, or all of them when the repository cannot give objects) goes as one
  tar + zstd stream, cut into chunks spooled to a temporary directory on the runner.

A sender thread uploads piece N while piece N+1 is made; after a piece's files it
writes its sums file. In the sandbox a background script (see upload_scripts)
waits for each sums file, checks the piece and takes it in (checkout, or
``zstd -d | tar -x``) while the next ones travel, so little is left when the
upload ends. If a check fails there, every piece is checked, the bad files are
sent again and the script runs once more over all of them (the slow path: it only
costs time). See BENCHMARKS.md for the figures behind the sizes, level and git
settings.

Raises:
    SyncError: when the files cannot be verified or taken in.
    SandboxError: when the sandbox fails a command or an upload.

"""

from __future__ import annotations

import contextlib
import queue
import shlex
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from claude_e2b.errors import SandboxError, SyncError
from claude_e2b.log import get_logger
from claude_e2b.sandbox.session import BackgroundCommand, SandboxSession
from claude_e2b.sync.formats import Codec, Transfer
from claude_e2b.sync.gitpack import (
    GROUP_BYTES,
    Cleared,
    Pack,
    PackError,
    Split,
    all_raw,
    write_packs,
)
from claude_e2b.sync.linkfit import Chooser, Meter
from claude_e2b.sync.pieces import (
    COMMAND_TIMEOUT_S,
    Note,
    Outgoing,
    Piece,
    Sender,
    SentHook,
    pack_piece,
    resend_bad,
)
from claude_e2b.sync.prepared import PreparedSplit
from claude_e2b.sync.screen import ScreenBlockedError, ScreeningUnderway
from claude_e2b.sync.select import Selection
from claude_e2b.sync.tarstream import (
    CHUNK_BYTES,
    ZSTD_LEVEL,
    ChunkSpool,
    SpoolStoppedError,
    write_tar,
)
from claude_e2b.sync.upload_scripts import baseline_script, transfer_script

# Pieces made but not yet sent: how far making may run ahead of the sender (disk, not memory).
QUEUE_DEPTH = 2

log = get_logger(__name__)


@dataclass(frozen=True)
class UploadReport:
    """What went up and how long it took (logged as ``upload.done``)."""

    files: int
    raw_bytes: int
    sent_bytes: int
    chunks: int
    resends: int  # files of pieces sent again: failed uploads, and bad sums in the sandbox
    codec: Codec
    seconds: float
    baseline: str
    phases: dict[str, float] = field(default_factory=dict)
    packs: int = 0
    packed_files: int = 0
    transfer: str = "tar"  # how the objects went: packs, zpacks, packs+zpacks, or tar
    link_mbit: float | None = None  # the link's rate as the first pack measured it


def upload_repository(
    session: SandboxSession,
    selection: Selection,
    *,
    repo_dir: str,
    work_dir: str,
    chunk_bytes: int = CHUNK_BYTES,
    group_bytes: int = GROUP_BYTES,
    codec: Codec | None = None,
    zstd_level: int = ZSTD_LEVEL,
    stream_extract: bool = True,
    transfer: Transfer = "auto",
    prepared: PreparedSplit | None = None,
    screening: ScreeningUnderway | None = None,
    on_sent: SentHook | None = None,
    on_total: Callable[[int], None] | None = None,
) -> UploadReport:
    """Send the selection into ``repo_dir`` in the sandbox and make the baseline commit.

    Clean tracked files go as git objects (see gitpack), as the runner's packs or
    zpacks as ``transfer`` says ("auto": chosen for the link, see linkfit; zpacks
    need zstd in the sandbox). "tar" sends everything in the tar; so does a second
    try when git cannot make the packs.
    ``prepared`` is the split made ahead (see prepared; used when it was made for
    these files, closed by its owner). ``screening`` is the secret scan of
    ``selection`` while it runs: each pack waits until the scan has passed its files
    and leaves without those it excluded, the tar waits for the scan's end (nothing
    leaves unscanned); it raises ScreenBlockedError under `secrets: fail`.
    ``group_bytes`` is the file content per pack, ``chunk_bytes`` a tar chunk's size;
    ``codec`` None asks the sandbox which one it can decompress (see probe_codec);
    ``stream_extract`` False takes the upload in only after all of it was sent
    (slower; for measuring the phases apart). For a progress bar, ``on_sent`` hears
    the size of each file of a piece once it is up (from the sender thread; a pack
    or chunk at a time, never per byte), and ``on_total`` the sum of them all once
    the last piece is made — before the last ones are sent. Raises SyncError when
    the files cannot be verified or taken in, and the sandbox errors of the session.
    """
    clock = _Phases()
    codec = codec or probe_codec(session)
    settings = _Settings(
        repo_dir, work_dir, codec, chunk_bytes, group_bytes, zstd_level, stream_extract,
        transfer if codec == "zstd" or transfer == "tar" else "packs",
        on_sent=on_sent, on_total=on_total,
    )  # fmt: skip
    scan = _Scan(selection, screening)
    sent, resends, split = _transfer_or_tar(session, scan, settings, clock, prepared)
    script = baseline_script(repo_dir, stat_cache_path(work_dir))
    # Run again from the start if its stream drops: add + commit-tree + update-ref again.
    baseline = _run_checked(session, script, "make the baseline commit", idempotent=True)
    clock.lap("baseline_s")
    sent_selection = scan.final()
    report = UploadReport(
        files=len(sent_selection.files),
        raw_bytes=sent_selection.total_bytes,
        sent_bytes=sent.sent_bytes,
        chunks=len(sent.pieces) - sent.packs,
        resends=resends,
        codec=settings.codec,
        seconds=clock.total(),
        baseline=baseline.strip().splitlines()[-1] if baseline.strip() else "",
        phases=clock.laps,
        packs=sent.packs,
        packed_files=split.packed_files,
        transfer=sent.transfer,
        link_mbit=sent.link_mbit,
    )
    log.info("upload.done", **{k: v for k, v in report.__dict__.items() if k != "baseline"})
    return report


def stat_cache_path(work_dir: str) -> str:
    """Where the baseline's index copy lives in the sandbox (see baseline_script)."""
    return f"{work_dir}/baseline.index"


def probe_codec(session: SandboxSession) -> Codec:
    """Pick zstd when the sandbox can decompress it, else gzip (slower, but always there)."""
    found = session.run("command -v zstd", timeout=60, idempotent=True)
    return "zstd" if found.ok else "gzip"


@dataclass(frozen=True)
class _Settings:
    """Where the upload goes, how it travels, and who hears of its progress."""

    repo_dir: str
    work_dir: str
    codec: Codec
    chunk_bytes: int
    group_bytes: int
    level: int
    stream_extract: bool
    transfer: Transfer
    on_sent: SentHook | None = None
    on_total: Callable[[int], None] | None = None

    @property
    def remote_dir(self) -> str:
        return f"{self.work_dir}/upload"

    def script(self, split: Split, *, fresh: bool = False) -> str:
        """The sandbox side of this upload (see transfer_script)."""
        return transfer_script(
            self.remote_dir, self.repo_dir, self.codec,
            packs=bool(split.blobs), raw=bool(split.raw), fresh=fresh,
        )  # fmt: skip


@dataclass(frozen=True)
class _Scan:
    """The files to send, and the secret scan of them if it is still running."""

    selection: Selection
    underway: ScreeningUnderway | None = None

    def cleared(self) -> Cleared | None:
        """What a pack waits on before it is made (None: everything was scanned)."""
        return self.underway.cleared if self.underway else None

    def final(self) -> Selection:
        """The files that may go up, once the scan has ended (waits for it)."""
        if self.underway is None:
            return self.selection
        screening = self.underway.result()
        if screening.blocked:
            raise ScreenBlockedError(len(screening.hits))
        return screening.selection


def _transfer_or_tar(
    session: SandboxSession,
    scan: _Scan,
    settings: _Settings,
    clock: _Phases,
    prepared: PreparedSplit | None,
) -> tuple[_Sent, int, Split]:
    """The transfer; when git cannot make the packs, the transfer again with all in the tar."""
    try:
        return _transfer(session, scan, settings, clock, prepared)
    except PackError as exc:
        # The packs come from the user's repository: if git cannot make them, the tar can.
        log.warning("upload.objects_failed", error=str(exc), then="sending every file in the tar")
        _remove_quietly(session, settings.repo_dir)
        return _transfer(session, scan, replace(settings, transfer="tar"), clock, None)


@dataclass(frozen=True)
class _Sent:
    pieces: list[Piece]
    packs: int
    retries: int
    sent_bytes: int
    transfer: str = "tar"
    link_mbit: float | None = None


def _transfer(
    session: SandboxSession,
    scan: _Scan,
    settings: _Settings,
    clock: _Phases,
    prepared: PreparedSplit | None,
) -> tuple[_Sent, int, Split]:
    """Send the files and let the sandbox take them in; return what went and the resends."""
    remote_dir = settings.remote_dir
    session.run(f"rm -rf {shlex.quote(remote_dir)}", timeout=COMMAND_TIMEOUT_S, idempotent=True)
    session.make_dir(remote_dir)
    with contextlib.ExitStack() as owned:
        tmp, split = _split(scan.selection, settings, prepared, owned)
        clock.lap("split_s")
        streamer = (
            _start_streamer(session, settings.script(split)) if settings.stream_extract else None
        )
        try:
            sent = _make_and_send(session, split, Path(tmp), settings, scan)
            clock.lap("pack_send_s")
            resends = sent.retries + _finish(
                session, streamer, sent.pieces, settings, split, clock=clock
            )
        except BaseException:
            if streamer is not None:
                streamer.kill_quietly()
            raise
        finally:
            _remove_quietly(session, remote_dir)
    return sent, resends, split


def _split(
    selection: Selection,
    settings: _Settings,
    prepared: PreparedSplit | None,
    owned: contextlib.ExitStack,
) -> tuple[Path, Split]:
    """Where to spool, and the split: the one made ahead when it serves, else made now."""
    if settings.transfer == "tar":
        spool = owned.enter_context(tempfile.TemporaryDirectory(prefix="claude-e2b-upload-"))
        return Path(spool), all_raw(selection)
    if prepared is None or not prepared.serves(selection):
        prepared = owned.enter_context(PreparedSplit(selection))
    return prepared.spool_dir, prepared.split()


def _make_and_send(
    session: SandboxSession, split: Split, spool_dir: Path, settings: _Settings, scan: _Scan
) -> _Sent:
    """Make the packs, then the tar of the other files, while a sender thread uploads them.

    Each pack once the scan has passed its files; the tar once the scan has ended.
    """
    outbox: queue.Queue[Outgoing | None] = queue.Queue(maxsize=QUEUE_DEPTH)
    meter = Meter()
    sender = Sender(session, settings.remote_dir, outbox, settings.on_sent, meter)
    sender.start()
    spool = ChunkSpool(
        spool_dir / "chunks", outbox.put, settings.chunk_bytes, stopped=sender.failed
    )
    chooser = Chooser(
        settings.transfer, split.root, split.object_env, split.blobs, split.sizes, meter
    )
    packs: list[Pack] = []
    try:
        packs, pack_bytes = _queue_packs(
            split, spool_dir / "packs", outbox, sender,
            chooser=chooser, group_bytes=settings.group_bytes, cleared=scan.cleared(),
        )  # fmt: skip
        raw = _raw_to_send(split, scan)
        if raw.files and not sender.failed():
            (spool_dir / "chunks").mkdir()
            write_tar(raw, spool, spool_dir, settings.codec, settings.level)
        outbox.put(Note("CHUNKS", f"{spool.count}\n"))
        if settings.on_total is not None:
            settings.on_total(pack_bytes + spool.total)
    except SpoolStoppedError:
        pass
    finally:
        outbox.put(None)
        sender.join()
    if sender.error is not None:
        raise sender.error
    rate = meter.rate if packs else None
    return _Sent(
        sender.sent, len(packs), sender.retries, sum(p.size for p in sender.sent),
        _transfer_name(packs), round(rate * 8 / 1e6, 1) if rate else None,
    )  # fmt: skip


def _raw_to_send(split: Split, scan: _Scan) -> Selection:
    """The split's tar files that the scan kept (waits for the scan's end)."""
    kept = {f.path for f in scan.final().files} if scan.underway else None
    files = tuple(f for f in split.raw if kept is None or f.path in kept)
    return Selection(split.root, files, (), (), ())


def _transfer_name(packs: list[Pack]) -> str:
    """How the objects went: "packs", "zpacks", both joined by "+", or "tar" (none)."""
    kinds = dict.fromkeys("zpacks" if p.compressed else "packs" for p in packs)
    return "+".join(kinds) or "tar"


def _queue_packs(
    split: Split,
    out: Path,
    outbox: queue.Queue[Outgoing | None],
    sender: Sender,
    *,
    chooser: Chooser,
    group_bytes: int,
    cleared: Cleared | None,
) -> tuple[list[Pack], int]:
    """Queue a piece per pack as they are made, then the PACKS note; the packs, their bytes."""
    packs: list[Pack] = []
    pack_bytes = 0
    for pack in write_packs(split, out, group_bytes, chooser, cleared):
        if sender.failed():
            break
        packs.append(pack)
        piece = pack_piece(pack, len(packs))
        if not pack.compressed:
            chooser.observe(piece.files[0].size, pack.content_bytes)
        pack_bytes += piece.size
        outbox.put(piece)
    outbox.put(Note("PACKS", f"{len(packs)}\n"))
    return packs, pack_bytes


class _Phases:
    """Wall-clock laps of the upload, for the report."""

    def __init__(self) -> None:
        self.started = self.last = time.monotonic()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name] = round(now - self.last, 3)
        self.last = now

    def total(self) -> float:
        return time.monotonic() - self.started


def _start_streamer(session: SandboxSession, script: str) -> BackgroundCommand:
    # Its exit code is what counts: a dropped output stream is followed again by pid.
    return session.start(f"bash -c {shlex.quote(script)}", timeout=COMMAND_TIMEOUT_S, reattach=True)


def _finish(
    session: SandboxSession,
    streamer: BackgroundCommand | None,
    pieces: list[Piece],
    settings: _Settings,
    split: Split,
    *,
    clock: _Phases,
) -> int:
    """Wait for the streaming script; when it failed (or there was none), verify and rerun it."""
    if streamer is not None:
        outcome = streamer.wait()
        clock.lap("extract_tail_s")
        if outcome.ok:
            return 0
        log.warning("upload.stream_extract_failed", exit_code=outcome.exit_code,
                    error=(outcome.stderr or outcome.stdout)[-500:])  # fmt: skip
    resent = resend_bad(session, settings.remote_dir, pieces)
    clock.lap("verify_s")
    script = settings.script(split, fresh=streamer is not None)
    _run_checked(session, script, "take the upload in")
    clock.lap("extract_s")
    return resent


def _remove_quietly(session: SandboxSession, path: str) -> None:
    # Cleanup on the way out must not hide the error that got us here.
    with contextlib.suppress(SandboxError):
        session.run(f"rm -rf {shlex.quote(path)}", timeout=COMMAND_TIMEOUT_S, idempotent=True)


def _run_checked(
    session: SandboxSession, script: str, what: str, *, idempotent: bool = False
) -> str:
    out = session.run(
        f"bash -c {shlex.quote(script)}", timeout=COMMAND_TIMEOUT_S, idempotent=idempotent
    )
    if not out.ok:
        tail = (out.stderr or out.stdout)[-2000:]
        raise SyncError(f"could not {what} in the sandbox (exit {out.exit_code}): {tail}")
    return out.stdout
