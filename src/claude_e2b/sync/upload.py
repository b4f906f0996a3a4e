"""Send the selected files up in one streaming pass: tar → zstd → chunks → sandbox.

The archive is cut into chunks spooled to a temporary directory on the runner,
so memory stays bounded whatever the repository's size and a chunk that fails
can be sent again alone. A sender thread uploads chunk N while chunk N+1 is
being compressed. In the sandbox the chunks are checked against their sha256
sums before anything is extracted; then a baseline commit makes change
detection exact.
"""

from __future__ import annotations

import hashlib
import queue
import shlex
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import zstandard

from claude_e2b.errors import SandboxError, SyncError
from claude_e2b.log import get_logger
from claude_e2b.sandbox.session import SandboxSession
from claude_e2b.sync.select import Selection

Codec = Literal["zstd", "gzip"]

CHUNK_BYTES = 16 * 2**20
ZSTD_LEVEL = 3
CHUNK_ATTEMPTS = 4
QUEUE_DEPTH = 2
COMMAND_TIMEOUT_S = 600.0
BASELINE_NAME = "claude-e2b"
BASELINE_EMAIL = "claude-e2b@localhost"

log = get_logger(__name__)


@dataclass(frozen=True)
class UploadReport:
    """What went up and how long it took."""

    files: int
    raw_bytes: int
    sent_bytes: int
    chunks: int
    resent_chunks: int
    codec: Codec
    seconds: float
    baseline: str


@dataclass(frozen=True)
class _Chunk:
    index: int
    path: Path
    size: int
    sha256: str

    @property
    def name(self) -> str:
        return f"part-{self.index:06d}"


class _ChunkSpool:
    """A write-only file object that cuts the stream into chunk files and queues them."""

    def __init__(self, directory: Path, out: queue.Queue[_Chunk | None], chunk_bytes: int) -> None:
        self._dir = directory
        self._out = out
        self._chunk_bytes = chunk_bytes
        self._index = 0
        self._file: IO[bytes] | None = None
        self._hash = hashlib.sha256()
        self._size = 0
        self.total = 0

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            room = self._chunk_bytes - self._size
            self._current().write(view[:room])
            self._hash.update(view[:room])
            taken = min(room, len(view))
            self._size += taken
            self.total += taken
            view = view[taken:]
            if self._size >= self._chunk_bytes:
                self._seal()
        return len(data)

    def _current(self) -> IO[bytes]:
        if self._file is None:
            self._index += 1
            self._file = (self._dir / f"part-{self._index:06d}").open("wb")
        return self._file

    def _seal(self) -> None:
        if self._file is None:
            return
        self._file.close()
        chunk = _Chunk(self._index, Path(self._file.name), self._size, self._hash.hexdigest())
        self._file, self._hash, self._size = None, hashlib.sha256(), 0
        self._out.put(chunk)

    def flush(self) -> None:
        """Nothing to do: chunks are flushed when sealed."""

    def close(self) -> None:
        """Seal the last, partial chunk."""
        self._seal()


class _Sender(threading.Thread):
    """Uploads queued chunks in order; remembers them for verification and resends."""

    def __init__(
        self, session: SandboxSession, remote_dir: str, inbox: queue.Queue[_Chunk | None]
    ) -> None:
        super().__init__(name="claude-e2b-upload", daemon=True)
        self._session = session
        self._remote_dir = remote_dir
        self._inbox = inbox
        self.sent: list[_Chunk] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        while (chunk := self._inbox.get()) is not None:
            if self.error is None:
                try:
                    send_chunk(self._session, self._remote_dir, chunk)
                    self.sent.append(chunk)
                except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                    self.error = exc


def send_chunk(session: SandboxSession, remote_dir: str, chunk: _Chunk) -> None:
    """Upload one chunk from its spool file, retrying it alone on failure."""
    for attempt in range(1, CHUNK_ATTEMPTS + 1):
        try:
            with chunk.path.open("rb") as data:
                session.write_file(f"{remote_dir}/{chunk.name}", data)
        except SandboxError as exc:
            if attempt == CHUNK_ATTEMPTS:
                raise
            log.warning("upload.chunk_retry", chunk=chunk.name, attempt=attempt, error=str(exc))
            time.sleep(0.5 * 2 ** (attempt - 1))
        else:
            return


def _add_entries(tar: tarfile.TarFile, selection: Selection) -> int:
    raw = 0
    for entry in selection.files:
        full = selection.root / entry.path
        info = tar.gettarinfo(str(full), arcname=entry.path)
        # Ownership is the sandbox's business; names and ids from the runner leak nothing useful.
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        if info.isreg():
            with full.open("rb") as handle:
                tar.addfile(info, handle)
            raw += info.size
        else:
            tar.addfile(info)
    return raw


def _pack(selection: Selection, spool: _ChunkSpool, codec: Codec) -> int:
    if codec == "zstd":
        compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=-1)
        with (
            compressor.stream_writer(spool, closefd=False) as writer,  # type: ignore[arg-type]
            tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar,
        ):
            raw = _add_entries(tar, selection)
    else:
        with tarfile.open(fileobj=spool, mode="w|gz", compresslevel=1) as tar:  # type: ignore[call-overload]
            raw = _add_entries(tar, selection)
    spool.close()
    return int(raw)


def probe_codec(session: SandboxSession) -> Codec:
    """Pick zstd when the sandbox can decompress it, else gzip (slower, but always there)."""
    found = session.run("command -v zstd", timeout=60)
    return "zstd" if found.ok else "gzip"


def _verify_script(remote_dir: str, chunks: list[_Chunk]) -> str:
    sums = "".join(f"{c.sha256}  {c.name}\n" for c in chunks)
    return (
        f"cd {shlex.quote(remote_dir)} && printf %s {shlex.quote(sums)} > SHA256SUMS && "
        "sha256sum --quiet -c SHA256SUMS 2>/dev/null | sed -n 's/: FAILED.*//p'"
    )


def _resend_bad(session: SandboxSession, remote_dir: str, chunks: list[_Chunk]) -> int:
    """Check every chunk's sha256 in the sandbox; resend the bad ones once."""
    resent = 0
    for _round in range(2):
        out = session.run(_verify_script(remote_dir, chunks), timeout=COMMAND_TIMEOUT_S)
        bad = {line.strip() for line in out.stdout.splitlines() if line.strip()}
        if not bad:
            return resent
        for chunk in chunks:
            if chunk.name in bad:
                send_chunk(session, remote_dir, chunk)
                resent += 1
    raise SyncError(f"{len(bad)} upload chunk(s) kept failing their checksum: {sorted(bad)[:5]}")


def _extract_script(remote_dir: str, repo_dir: str, codec: Codec) -> str:
    decompress = "zstd -dcq" if codec == "zstd" else "gzip -dc"
    q_remote, q_repo = shlex.quote(remote_dir), shlex.quote(repo_dir)
    return (
        f"set -euo pipefail; mkdir -p {q_repo}; "
        f"cat {q_remote}/part-* | {decompress} | tar -x --no-same-owner -C {q_repo}; "
        f"rm -rf {q_remote}"
    )


def baseline_script(repo_dir: str) -> str:
    """Script for git init + add + commit with a fixed identity, printing the baseline sha."""
    ident = f"-c user.name={BASELINE_NAME} -c user.email={BASELINE_EMAIL}"
    return (
        f"set -euo pipefail; cd {shlex.quote(repo_dir)}; "
        "rm -rf .git; git init -q -b claude-e2b-baseline; "
        # -f: every uploaded file is tracked upstream, even one that .gitignore matches.
        "git add -A -f; "
        f"git {ident} -c commit.gpgsign=false commit -q --no-verify --allow-empty -m baseline; "
        "git rev-parse HEAD"
    )


def upload_repository(
    session: SandboxSession,
    selection: Selection,
    *,
    repo_dir: str,
    work_dir: str,
    chunk_bytes: int = CHUNK_BYTES,
) -> UploadReport:
    """Stream the selection into ``repo_dir`` in the sandbox and make the baseline commit.

    Raises SyncError when the chunks cannot be verified or extraction fails, and the
    sandbox errors of the session.
    """
    started = time.monotonic()
    codec = probe_codec(session)
    remote_dir = f"{work_dir}/upload"
    session.make_dir(remote_dir)
    with tempfile.TemporaryDirectory(prefix="claude-e2b-upload-") as tmp:
        inbox: queue.Queue[_Chunk | None] = queue.Queue(maxsize=QUEUE_DEPTH)
        sender = _Sender(session, remote_dir, inbox)
        sender.start()
        spool = _ChunkSpool(Path(tmp), inbox, chunk_bytes)
        try:
            raw = _pack(selection, spool, codec)
        finally:
            inbox.put(None)
            sender.join()
        if sender.error is not None:
            raise sender.error
        resent = _resend_bad(session, remote_dir, sender.sent)
        _run_checked(session, _extract_script(remote_dir, repo_dir, codec), "extract the upload")
    baseline = _run_checked(session, baseline_script(repo_dir), "make the baseline commit")
    report = UploadReport(
        files=len(selection.files),
        raw_bytes=raw,
        sent_bytes=spool.total,
        chunks=len(sender.sent),
        resent_chunks=resent,
        codec=codec,
        seconds=time.monotonic() - started,
        baseline=baseline.strip().splitlines()[-1] if baseline.strip() else "",
    )
    log.info("upload.done", **{k: v for k, v in report.__dict__.items() if k != "baseline"})
    return report


def _run_checked(session: SandboxSession, script: str, what: str) -> str:
    out = session.run(f"bash -c {shlex.quote(script)}", timeout=COMMAND_TIMEOUT_S)
    if not out.ok:
        tail = (out.stderr or out.stdout)[-2000:]
        raise SyncError(f"could not {what} in the sandbox (exit {out.exit_code}): {tail}")
    return out.stdout
