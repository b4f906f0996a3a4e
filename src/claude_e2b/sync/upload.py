"""Send the selected files up in one streaming pass: tar → zstd → chunks → sandbox.

The archive is cut into chunks spooled to a temporary directory on the runner,
so memory stays bounded whatever the repository's size and a chunk that fails
can be sent again alone. A sender thread uploads chunk N while chunk N+1 is
being compressed; after each chunk it writes the chunk's sha256 next to it.

In the sandbox, extraction runs *while* the upload goes on: a background script
waits for each chunk's checksum file, checks the chunk against it and feeds it
to ``zstd -d | tar -x``, so only the last chunk's extraction is left when the
upload ends. If a chunk fails its check there, the whole tree is extracted
again from the verified chunks (the slow path: it only costs time). Then a
baseline commit makes change detection exact.

On the runner, GNU tar and the zstd CLI do the packing when both are there (as
on GitHub's runners): several times faster than Python's tarfile and
multi-threaded. Otherwise ``tarfile`` and the ``zstandard`` module do it. See
BENCHMARKS.md for the figures behind the chunk size, level and git settings.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import queue
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

import zstandard

from claude_e2b.errors import InternalError, SandboxError, SyncError
from claude_e2b.log import get_logger
from claude_e2b.sandbox.session import BackgroundCommand, SandboxSession
from claude_e2b.sync.select import Selection

Codec = Literal["zstd", "gzip"]

CHUNK_BYTES = 16 * 2**20
ZSTD_LEVEL = 3
CHUNK_ATTEMPTS = 4
RETRY_DELAY_S = 0.5
QUEUE_DEPTH = 2
COMMAND_TIMEOUT_S = 600.0
READ_BLOCK = 2**20
# Loose objects stored, not deflated: the baseline commit's `git add` spends most
# of its time in zlib otherwise (figures in BENCHMARKS.md); costs disk, not time.
BASELINE_GIT_CONFIG: tuple[str, ...] = ("core.looseCompression=0",)
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
    phases: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Chunk:
    index: int
    path: Path
    size: int
    sha256: str

    @property
    def name(self) -> str:
        return f"part-{self.index:06d}"


class _SenderFailedError(Exception):
    """Stops packing once the sender gave up: there is no point compressing the rest."""


class _ChunkSpool:
    """A write-only file object that cuts the stream into chunk files and queues them."""

    def __init__(
        self,
        directory: Path,
        out: queue.Queue[_Chunk | None],
        chunk_bytes: int,
        failed: Callable[[], bool] = lambda: False,
    ) -> None:
        self._dir = directory
        self._out = out
        self._failed = failed
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
        if self._failed():
            raise _SenderFailedError
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
        self.retries = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        while (chunk := self._inbox.get()) is not None:
            if self.error is None:
                try:
                    self.retries += send_chunk(self._session, self._remote_dir, chunk)
                    self.sent.append(chunk)
                except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                    self.error = exc


def send_chunk(session: SandboxSession, remote_dir: str, chunk: _Chunk) -> int:
    """Upload one chunk and then its sum file, retrying it alone; return how often it was resent."""
    for attempt in range(1, CHUNK_ATTEMPTS + 1):
        try:
            with chunk.path.open("rb") as data:
                session.write_file(f"{remote_dir}/{chunk.name}", data)
        except SandboxError as exc:
            if attempt == CHUNK_ATTEMPTS:
                raise
            log.warning("upload.chunk_retry", chunk=chunk.name, attempt=attempt, error=str(exc))
            time.sleep(RETRY_DELAY_S * 2 ** (attempt - 1))
        else:
            # The sum file says "complete" to the extractor waiting in the sandbox.
            session.write_file(
                f"{remote_dir}/{chunk.name}.sha256", f"{chunk.sha256}  {chunk.name}\n".encode()
            )
            return attempt - 1
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class _Sent:
    chunks: list[_Chunk]
    retries: int
    raw_bytes: int
    sent_bytes: int


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


@functools.cache
def runner_tools(codec: Codec) -> tuple[str, str] | None:
    """GNU tar and the compressor's CLI on this machine, or None to pack in Python."""
    tar, compressor = shutil.which("tar"), shutil.which(codec)
    if tar is None or compressor is None:
        return None
    try:
        version = subprocess.run(
            [tar, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (tar, compressor) if "GNU tar" in version.stdout else None


def _tool_argv(
    selection: Selection, listing: Path, tools: tuple[str, str], codec: Codec, level: int
) -> tuple[list[str], list[str]]:
    tar, compressor = tools
    tar_argv = [
        tar, "--create", "--file=-", "--format=gnu", "--null", "--verbatim-files-from",
        "--no-recursion", "--owner=0", "--group=0", "--numeric-owner",
        f"--directory={selection.root}", f"--files-from={listing}",
    ]  # fmt: skip
    if codec == "zstd":
        return tar_argv, [compressor, f"-{level}", "-T0", "-q", "-c"]
    return tar_argv, [compressor, "-1", "-c"]


def _pack_with_tools(
    selection: Selection,
    spool: _ChunkSpool,
    work: Path,
    *,
    tools: tuple[str, str],
    codec: Codec,
    level: int,
) -> int:
    listing = work / "files.list"
    listing.write_bytes(b"".join(os.fsencode(f.path) + b"\0" for f in selection.files))
    tar_argv, comp_argv = _tool_argv(selection, listing, tools, codec, level)
    with (work / "tar.err").open("w+b") as tar_err, (work / "comp.err").open("w+b") as comp_err:
        tar = subprocess.Popen(tar_argv, stdout=subprocess.PIPE, stderr=tar_err)
        comp = subprocess.Popen(
            comp_argv, stdin=tar.stdout, stdout=subprocess.PIPE, stderr=comp_err
        )
        _pump(tar, comp, spool)
        _check_tools(tar.returncode, comp.returncode, tar_err, comp_err)
    spool.close()
    return selection.total_bytes


def _pump(tar: subprocess.Popen[bytes], comp: subprocess.Popen[bytes], spool: _ChunkSpool) -> None:
    """Copy the compressor's output into the spool; both processes have ended on return."""
    out = comp.stdout
    if tar.stdout is None or out is None:
        raise InternalError("the packing processes were started without pipes")
    tar.stdout.close()  # only the compressor reads it now
    try:
        for block in iter(functools.partial(out.read, READ_BLOCK), b""):
            spool.write(block)
    except BaseException:
        tar.kill()
        comp.kill()
        raise
    finally:
        out.close()
        tar.wait()
        comp.wait()


def _check_tools(tar_rc: int, comp_rc: int, tar_err: IO[bytes], comp_err: IO[bytes]) -> None:
    tar_err.seek(0)
    said = tar_err.read()[-2000:].decode(errors="replace").strip()
    # GNU tar exits 1 for "file changed as we read it": the archive is whole, the file is not.
    if tar_rc == 1:
        log.warning("upload.tar_warning", message=said)
    elif tar_rc != 0:
        raise SyncError(
            f"tar could not pack the files (exit {tar_rc}): {said}",
            hint="a file may have been removed while uploading; run again",
        )
    if comp_rc != 0:
        comp_err.seek(0)
        raise SyncError(f"the compressor failed (exit {comp_rc}): {comp_err.read()[-2000:]!r}")


def _pack_in_python(selection: Selection, spool: _ChunkSpool, codec: Codec, level: int) -> int:
    if codec == "zstd":
        # threads=-1: one worker per CPU; the frame checksum lets `zstd -d` catch corruption too.
        compressor = zstandard.ZstdCompressor(level=level, threads=-1, write_checksum=True)
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


def _pack(selection: Selection, spool: _ChunkSpool, work: Path, codec: Codec, level: int) -> int:
    tools = runner_tools(codec)
    if tools is None:
        return _pack_in_python(selection, spool, codec, level)
    return _pack_with_tools(selection, spool, work, tools=tools, codec=codec, level=level)


def _pack_and_send(
    session: SandboxSession,
    selection: Selection,
    remote_dir: str,
    spool_dir: Path,
    *,
    chunk_bytes: int,
    codec: Codec,
    level: int,
) -> _Sent:
    """Compress into chunk files while a sender thread uploads the finished ones."""
    (spool_dir / "parts").mkdir()
    inbox: queue.Queue[_Chunk | None] = queue.Queue(maxsize=QUEUE_DEPTH)
    sender = _Sender(session, remote_dir, inbox)
    sender.start()
    spool = _ChunkSpool(
        spool_dir / "parts", inbox, chunk_bytes, failed=lambda: sender.error is not None
    )
    try:
        raw = _pack(selection, spool, spool_dir, codec, level)
    except _SenderFailedError:
        raw = 0
    finally:
        inbox.put(None)
        sender.join()
    if sender.error is not None:
        raise sender.error
    return _Sent(sender.sent, sender.retries, raw, spool.total)


def probe_codec(session: SandboxSession) -> Codec:
    """Pick zstd when the sandbox can decompress it, else gzip (slower, but always there)."""
    found = session.run("command -v zstd", timeout=60)
    return "zstd" if found.ok else "gzip"


_PARTS = "part-[0-9][0-9][0-9][0-9][0-9][0-9]"

# Waits for each chunk's sum file (written after the chunk), checks the chunk and
# feeds it on; END holds the number of chunks once all were sent. A file can exist
# before its bytes have landed, so a sum file counts once its line is whole (it ends
# in a newline) and END once it holds a number and a newline.
_STREAM_TEMPLATE = r"""set -euo pipefail
cd -- {remote}
mkdir -p -- {repo}
git -C {repo} init -q -b claude-e2b-baseline
complete() {{  # read fails on a missing file or a line without its newline
  local line
  IFS= read -r line 2>/dev/null < "$1"
}}
feed() {{
  local i=1 part
  while :; do
    printf -v part 'part-%06d' "$i"
    until complete "$part.sha256"; do
      if complete END && [ "$(< END)" -lt "$i" ]; then return 0; fi
      sleep 0.02
    done
    if ! sha256sum --quiet --status -c "$part.sha256"; then
      echo "claude-e2b: $part failed its checksum" >&2
      return 3
    fi
    cat -- "$part"
    i=$((i + 1))
  done
}}
# tar lists each member as it starts it, so a regular file is complete once the next
# one is listed: hashed then into the index, the baseline commit finds the work done.
# Only regular files ("-" lines; their C-quoted name ends the line): tar may create
# symlinks late, through placeholders. Best effort: a name git cannot take ends the
# hashing, and `git add` in the baseline commit does the rest.
regular() {{ awk '/^-/ {{ print substr($0, index($0, "\"")) }}'; }}
lagged() {{ awk 'NR > 1 {{ print prev }} {{ prev = $0 }} END {{ if (NR) print prev }}'; }}
hash_into_index() {{
  git -C {repo} {git_config} update-index --add --stdin 2>/dev/null || true
  cat > /dev/null
}}
feed | {decompress} | tar -x -vv --quoting-style=c --no-same-owner -C {repo} \
  | regular | lagged | hash_into_index
"""


def _decompress(codec: Codec) -> str:
    return "zstd -dcq" if codec == "zstd" else "gzip -dc"


def stream_extract_script(remote_dir: str, repo_dir: str, codec: Codec) -> str:
    """Script that extracts chunks into ``repo_dir`` as they arrive, each checked first."""
    return _STREAM_TEMPLATE.format(
        remote=shlex.quote(remote_dir),
        repo=shlex.quote(repo_dir),
        decompress=_decompress(codec),
        git_config=_git_config(),
    )


def _verify_script(remote_dir: str) -> str:
    # The sum files the sender wrote after each chunk; a chunk without one is missing.
    return (
        f"cd {shlex.quote(remote_dir)} && "
        f'for p in {_PARTS}; do [ -e "$p.sha256" ] || echo "$p"; done; '
        f"cat {_PARTS}.sha256 2>/dev/null | sha256sum --quiet -c 2>/dev/null "
        "| sed -n 's/: FAILED.*//p'"
    )


def _resend_bad(session: SandboxSession, remote_dir: str, chunks: list[_Chunk]) -> int:
    """Check every chunk's sha256 in the sandbox; resend the bad ones once."""
    resent = 0
    for _round in range(2):
        out = session.run(_verify_script(remote_dir), timeout=COMMAND_TIMEOUT_S)
        bad = {line.strip() for line in out.stdout.splitlines() if line.strip()}
        if not bad:
            return resent
        for chunk in chunks:
            if chunk.name in bad:
                send_chunk(session, remote_dir, chunk)
                resent += 1
    raise SyncError(f"{len(bad)} upload chunk(s) kept failing their checksum: {sorted(bad)[:5]}")


def _extract_script(remote_dir: str, repo_dir: str, codec: Codec) -> str:
    q_remote, q_repo = shlex.quote(remote_dir), shlex.quote(repo_dir)
    return (
        f"set -euo pipefail; rm -rf -- {q_repo}; mkdir -p -- {q_repo}; cd -- {q_remote}; "
        f"cat {_PARTS} | {_decompress(codec)} | tar -x --no-same-owner -C {q_repo}"
    )


def _git_config() -> str:
    return " ".join(f"-c {shlex.quote(c)}" for c in BASELINE_GIT_CONFIG)


def baseline_script(repo_dir: str, stat_cache: str = "") -> str:
    """Script for git init + add + commit with a fixed identity, printing the baseline sha.

    With ``stat_cache``, a copy of the index goes there: change detection uses it to
    hash only the files that changed.
    """
    keep = f"cp -- .git/index {shlex.quote(stat_cache)}; " if stat_cache else ""
    ident = f"-c user.name={BASELINE_NAME} -c user.email={BASELINE_EMAIL}"
    return (
        f"set -euo pipefail; cd {shlex.quote(repo_dir)}; "
        # The streamed extraction may have started the repository and hashed the files.
        "[ -d .git ] || git init -q -b claude-e2b-baseline; "
        # -f: every uploaded file is tracked upstream, even one that .gitignore matches.
        f"git {_git_config()} add -A -f; "
        f"git {ident} -c commit.gpgsign=false commit -q --no-verify --allow-empty -m baseline; "
        f"{keep}git rev-parse HEAD"
    )


def stat_cache_path(work_dir: str) -> str:
    """Where the baseline's index copy lives in the sandbox (see baseline_script)."""
    return f"{work_dir}/baseline.index"


def upload_repository(
    session: SandboxSession,
    selection: Selection,
    *,
    repo_dir: str,
    work_dir: str,
    chunk_bytes: int = CHUNK_BYTES,
    codec: Codec | None = None,
    zstd_level: int = ZSTD_LEVEL,
    stream_extract: bool = True,
) -> UploadReport:
    """Stream the selection into ``repo_dir`` in the sandbox and make the baseline commit.

    ``codec`` None asks the sandbox which one it can decompress (see probe_codec);
    ``stream_extract`` False extracts only after the whole upload (slower; for
    measuring the phases apart). Raises SyncError when the chunks cannot be
    verified or extraction fails, and the sandbox errors of the session.
    """
    clock = _Phases()
    codec = codec or probe_codec(session)
    remote_dir = f"{work_dir}/upload"
    session.run(f"rm -rf {shlex.quote(remote_dir)}", timeout=COMMAND_TIMEOUT_S)
    session.make_dir(remote_dir)
    streamer = _start_streamer(session, remote_dir, repo_dir, codec) if stream_extract else None
    try:
        with tempfile.TemporaryDirectory(prefix="claude-e2b-upload-") as tmp:
            sent = _pack_and_send(
                session, selection, remote_dir, Path(tmp),
                chunk_bytes=chunk_bytes, codec=codec, level=zstd_level,
            )  # fmt: skip
            session.write_file(f"{remote_dir}/END", f"{len(sent.chunks)}\n".encode())
            clock.lap("pack_send_s")
            resent = sent.retries + _finish_extract(
                session, streamer, sent.chunks,
                remote_dir=remote_dir, repo_dir=repo_dir, codec=codec, clock=clock,
            )  # fmt: skip
    except BaseException:
        if streamer is not None:
            streamer.kill_quietly()
        raise
    finally:
        _remove_quietly(session, remote_dir)
    script = baseline_script(repo_dir, stat_cache_path(work_dir))
    baseline = _run_checked(session, script, "make the baseline commit")
    clock.lap("baseline_s")
    report = UploadReport(
        files=len(selection.files),
        raw_bytes=sent.raw_bytes,
        sent_bytes=sent.sent_bytes,
        chunks=len(sent.chunks),
        resent_chunks=resent,
        codec=codec,
        seconds=clock.total(),
        baseline=baseline.strip().splitlines()[-1] if baseline.strip() else "",
        phases=clock.laps,
    )
    log.info("upload.done", **{k: v for k, v in report.__dict__.items() if k != "baseline"})
    return report


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


def _start_streamer(
    session: SandboxSession, remote_dir: str, repo_dir: str, codec: Codec
) -> BackgroundCommand:
    script = stream_extract_script(remote_dir, repo_dir, codec)
    return session.start(f"bash -c {shlex.quote(script)}", timeout=COMMAND_TIMEOUT_S)


def _finish_extract(
    session: SandboxSession,
    streamer: BackgroundCommand | None,
    chunks: list[_Chunk],
    *,
    remote_dir: str,
    repo_dir: str,
    codec: Codec,
    clock: _Phases,
) -> int:
    """Wait for the streaming extraction; when it failed (or there was none), verify and extract."""
    if streamer is not None:
        outcome = streamer.wait()
        clock.lap("extract_tail_s")
        if outcome.ok:
            return 0
        log.warning("upload.stream_extract_failed", exit_code=outcome.exit_code,
                    error=(outcome.stderr or outcome.stdout)[-500:])  # fmt: skip
    resent = _resend_bad(session, remote_dir, chunks)
    clock.lap("verify_s")
    _run_checked(session, _extract_script(remote_dir, repo_dir, codec), "extract the upload")
    clock.lap("extract_s")
    return resent


def _remove_quietly(session: SandboxSession, path: str) -> None:
    # Cleanup on the way out must not hide the error that got us here.
    with contextlib.suppress(SandboxError):
        session.run(f"rm -rf {shlex.quote(path)}", timeout=COMMAND_TIMEOUT_S)


def _run_checked(session: SandboxSession, script: str, what: str) -> str:
    out = session.run(f"bash -c {shlex.quote(script)}", timeout=COMMAND_TIMEOUT_S)
    if not out.ok:
        tail = (out.stderr or out.stdout)[-2000:]
        raise SyncError(f"could not {what} in the sandbox (exit {out.exit_code}): {tail}")
    return out.stdout
