"""The tar of the files that do not travel as git objects, compressed and cut into chunks.

GNU tar and the compressor's CLI make the tar when both are on the runner (as on
GitHub's runners): several times faster than Python's tarfile, and multi-threaded.
Otherwise ``tarfile`` and the ``zstandard`` module do it. The compressed stream
goes into a ChunkSpool, which cuts it into chunk files in a temporary directory on
the runner and hands each on as a piece (see pieces) while the next is made: memory
stays bounded whatever the repository's size.

Raises:
    SyncError: when tar or the compressor fails.
    SpoolStoppedError: when the spool is told to stop (the sender gave up).

"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import zstandard

from claude_e2b.errors import InternalError, SyncError
from claude_e2b.log import get_logger
from claude_e2b.sync.formats import Codec
from claude_e2b.sync.pieces import READ_BLOCK, Piece, PieceFile
from claude_e2b.sync.select import Selection

CHUNK_BYTES = 16 * 2**20
ZSTD_LEVEL = 3

log = get_logger(__name__)


class SpoolStoppedError(Exception):
    """Stops the tar once the sender gave up: there is no point compressing the rest."""


class ChunkSpool:
    """A write-only file object that cuts the stream into chunk files and hands each on."""

    def __init__(
        self,
        directory: Path,
        deliver: Callable[[Piece], None],
        chunk_bytes: int,
        stopped: Callable[[], bool] = lambda: False,
    ) -> None:
        self._dir = directory
        self._deliver = deliver
        self._stopped = stopped
        self._chunk_bytes = chunk_bytes
        self._index = 0
        self._file: IO[bytes] | None = None
        self._hash = hashlib.sha256()
        self._size = 0
        self.total = 0
        self.count = 0

    def write(self, data: bytes) -> int:
        """Append to the current chunk, sealing each one that fills up."""
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
            self._file = (self._dir / f"chunk-{self._index:06d}").open("wb")
        return self._file

    def _seal(self) -> None:
        if self._stopped():
            raise SpoolStoppedError
        if self._file is None:
            return
        self._file.close()
        name = Path(self._file.name).name
        file = PieceFile(name, Path(self._file.name), self._size, self._hash.hexdigest())
        self._file, self._hash, self._size = None, hashlib.sha256(), 0
        self.count += 1
        self._deliver(Piece((file,), f"{name}.sha256"))

    def flush(self) -> None:
        """Nothing to do: chunks are flushed when sealed."""

    def close(self) -> None:
        """Seal the last, partial chunk."""
        self._seal()


def write_tar(
    selection: Selection, spool: ChunkSpool, work: Path, codec: Codec, level: int
) -> None:
    """Write the selection's files as a compressed tar into ``spool``, and close it.

    ``work`` holds the tools' file list and error output. Raises SyncError when tar
    or the compressor fails, SpoolStoppedError when the spool stops.
    """
    tools = runner_tools(codec)
    if tools is None:
        _tar_in_python(selection, spool, codec, level)
    else:
        _tar_with_tools(selection, spool, work, tools=tools, codec=codec, level=level)


@functools.cache
def runner_tools(codec: Codec) -> tuple[str, str] | None:
    """GNU tar and the compressor's CLI on this machine, or None to make the tar in Python."""
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


def _tar_with_tools(
    selection: Selection,
    spool: ChunkSpool,
    work: Path,
    *,
    tools: tuple[str, str],
    codec: Codec,
    level: int,
) -> None:
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


def _pump(tar: subprocess.Popen[bytes], comp: subprocess.Popen[bytes], spool: ChunkSpool) -> None:
    """Copy the compressor's output into the spool; both processes have ended on return."""
    out = comp.stdout
    if tar.stdout is None or out is None:
        raise InternalError("the tar processes were started without pipes")
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


def _tar_in_python(selection: Selection, spool: ChunkSpool, codec: Codec, level: int) -> None:
    if codec == "zstd":
        # threads=-1: one worker per CPU; the frame checksum lets `zstd -d` catch corruption too.
        compressor = zstandard.ZstdCompressor(level=level, threads=-1, write_checksum=True)
        with (
            compressor.stream_writer(spool, closefd=False) as writer,  # type: ignore[arg-type]
            tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar,
        ):
            _add_entries(tar, selection)
    else:
        with tarfile.open(fileobj=spool, mode="w|gz", compresslevel=1) as tar:  # type: ignore[call-overload]
            _add_entries(tar, selection)
    spool.close()


def _add_entries(tar: tarfile.TarFile, selection: Selection) -> None:
    for entry in selection.files:
        full = selection.root / entry.path
        info = tar.gettarinfo(str(full), arcname=entry.path)
        # Ownership is the sandbox's business; names and ids from the runner leak nothing useful.
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        if info.isreg():
            with full.open("rb") as handle:
                tar.addfile(info, handle)
        else:
            tar.addfile(info)
