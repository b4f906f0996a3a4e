"""Send the selected files up while the sandbox takes them in, then the baseline commit.

Two kinds of pieces travel, each with its sha256, and each resent alone if it fails:

- **packs** (see gitpack): tracked files whose bytes are exactly their committed
  blob go as the runner's own git objects, a pack of about 64 MiB of content at a
  time with its index and the list of its paths. The sandbox installs each pack
  and checks its files out: no hashing there, and no compression on the runner.
- **tar chunks**: every other file (edited, untracked, converted by attributes, or
  all of them when the repository cannot give objects) goes as one tar + zstd
  stream, cut into chunks spooled to a temporary directory on the runner.

Memory stays bounded whatever the repository's size. A sender thread uploads
piece N while piece N+1 is made; after a piece's files it writes its sums file.
In the sandbox a background script waits for each sums file, checks the piece
and takes it in (checkout, or ``zstd -d | tar -x``) while the next ones travel,
so little is left when the upload ends. If a check fails there, every piece is
checked, the bad ones are sent again and the script runs once more over all of
them (the slow path: it only costs time).

On the runner, GNU tar and the zstd CLI make the tar when both are there (as on
GitHub's runners): several times faster than Python's tarfile and multi-threaded.
Otherwise ``tarfile`` and the ``zstandard`` module do it. See BENCHMARKS.md for
the figures behind the piece sizes, level and git settings.
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
from claude_e2b.sync.gitpack import (
    Pack,
    PackError,
    Split,
    all_raw,
    scratch_dir,
    split_selection,
    write_packs,
)
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
    packs: int = 0
    packed_files: int = 0


@dataclass(frozen=True)
class _Item:
    """One file to upload: its name in the upload directory, where it is here, its sha256."""

    name: str
    path: Path
    size: int
    sha256: str


@dataclass(frozen=True)
class _Group:
    """Files checked together in the sandbox: a tar chunk, or a pack with its index and paths.

    The sums file, sent after the items, lists their sha256 and ends with ``end``;
    the sandbox takes a group once that line is there.
    """

    items: tuple[_Item, ...]
    sums_name: str

    def sums(self) -> bytes:
        """The sums file: ``<sha256>  <name>`` lines in sending order, then ``end``."""
        return "".join(f"{i.sha256}  {i.name}\n" for i in self.items).encode() + b"end\n"


@dataclass(frozen=True)
class _Note:
    """A small file the sandbox waits on (how many groups there were)."""

    name: str
    text: str


def _item(name: str, path: Path) -> _Item:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(functools.partial(handle.read, READ_BLOCK), b""):
            digest.update(block)
    return _Item(name, path, path.stat().st_size, digest.hexdigest())


class _SenderFailedError(Exception):
    """Stops packing once the sender gave up: there is no point compressing the rest."""


class _ChunkSpool:
    """A write-only file object that cuts the stream into chunk files and queues them."""

    def __init__(
        self,
        directory: Path,
        out: queue.Queue[_Group | _Note | None],
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
        self.count = 0

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
        name = Path(self._file.name).name
        item = _Item(name, Path(self._file.name), self._size, self._hash.hexdigest())
        self._file, self._hash, self._size = None, hashlib.sha256(), 0
        self.count += 1
        self._out.put(_Group((item,), f"{name}.sha256"))

    def flush(self) -> None:
        """Nothing to do: chunks are flushed when sealed."""

    def close(self) -> None:
        """Seal the last, partial chunk."""
        self._seal()


class _Sender(threading.Thread):
    """Uploads queued groups in order; remembers them for verification and resends."""

    def __init__(
        self,
        session: SandboxSession,
        remote_dir: str,
        inbox: queue.Queue[_Group | _Note | None],
    ) -> None:
        super().__init__(name="claude-e2b-upload", daemon=True)
        self._session = session
        self._remote_dir = remote_dir
        self._inbox = inbox
        self.sent: list[_Group] = []
        self.retries = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        while (job := self._inbox.get()) is not None:
            if self.error is None:
                try:
                    self._send(job)
                except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                    self.error = exc

    def _send(self, job: _Group | _Note) -> None:
        if isinstance(job, _Note):
            self._session.write_file(f"{self._remote_dir}/{job.name}", job.text.encode())
            return
        self.retries += send_group(self._session, self._remote_dir, job)
        self.sent.append(job)


def send_item(session: SandboxSession, remote_dir: str, item: _Item) -> int:
    """Upload one file, retrying it alone; return how often it was resent."""
    for attempt in range(1, CHUNK_ATTEMPTS + 1):
        try:
            with item.path.open("rb") as data:
                session.write_file(f"{remote_dir}/{item.name}", data)
        except SandboxError as exc:
            if attempt == CHUNK_ATTEMPTS:
                raise
            log.warning("upload.chunk_retry", chunk=item.name, attempt=attempt, error=str(exc))
            time.sleep(RETRY_DELAY_S * 2 ** (attempt - 1))
        else:
            return attempt - 1
    raise AssertionError("unreachable")  # pragma: no cover


def send_group(session: SandboxSession, remote_dir: str, group: _Group) -> int:
    """Upload a group's files, then its sums file (which says "complete" to the sandbox)."""
    retries = sum(send_item(session, remote_dir, item) for item in group.items)
    session.write_file(f"{remote_dir}/{group.sums_name}", group.sums())
    return retries


@dataclass(frozen=True)
class _Sent:
    groups: list[_Group]
    packs: int
    retries: int
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
    split: Split,
    remote_dir: str,
    spool_dir: Path,
    *,
    chunk_bytes: int,
    codec: Codec,
    level: int,
) -> _Sent:
    """Make the packs, then the tar of the other files, while a sender thread uploads them."""
    inbox: queue.Queue[_Group | _Note | None] = queue.Queue(maxsize=QUEUE_DEPTH)
    sender = _Sender(session, remote_dir, inbox)
    sender.start()

    def failed() -> bool:
        return sender.error is not None

    spool = _ChunkSpool(spool_dir / "parts", inbox, chunk_bytes, failed=failed)
    packs, pack_bytes = 0, 0
    try:
        for pack in write_packs(split, spool_dir / "packs"):
            if failed():
                break
            packs += 1
            group = _group_for(pack, packs)
            pack_bytes += sum(i.size for i in group.items)
            inbox.put(group)
        inbox.put(_Note("PACKS", f"{packs}\n"))
        if split.raw and not failed():
            (spool_dir / "parts").mkdir()
            selection = Selection(split.root, split.raw, (), (), ())
            _pack(selection, spool, spool_dir, codec, level)
        inbox.put(_Note("END", f"{spool.count}\n"))
    except _SenderFailedError:
        pass
    finally:
        inbox.put(None)
        sender.join()
    if sender.error is not None:
        raise sender.error
    return _Sent(sender.sent, packs, sender.retries, pack_bytes + spool.total)


def _group_for(pack: Pack, number: int) -> _Group:
    paths = pack.idx.with_suffix(".paths")
    paths.write_bytes(pack.paths)
    items = (
        _item(f"{pack.name}.pack", pack.pack),
        _item(f"{pack.name}.idx", pack.idx),
        _item(f"{pack.name}.paths", paths),
    )
    return _Group(items, f"pack-{number:04d}.sha256")


def probe_codec(session: SandboxSession) -> Codec:
    """Pick zstd when the sandbox can decompress it, else gzip (slower, but always there)."""
    found = session.run("command -v zstd", timeout=60)
    return "zstd" if found.ok else "gzip"


# The script that receives the upload in the sandbox, run in the background while
# the groups arrive (or once, after all of them, on the slow path). A group counts
# once its sums file ends with "end"; PACKS and END hold the number of pack groups
# and tar chunks once all were sent (a number and a newline).
_TRANSFER_TEMPLATE = r"""set -euo pipefail
cd -- {remote}
repo={repo}
tree={tree}
raw={raw}
if [ {fresh} = 1 ]; then rm -rf -- "$repo"; fi
mkdir -p -- "$repo"
git -C "$repo" init -q -b claude-e2b-baseline
complete() {{  # read fails on a missing file or a line without its newline
  local line
  IFS= read -r line 2>/dev/null < "$1"
}}
{sums_functions}
wait_for() {{  # 0 once the sums file $1 is whole, 1 once count file $2 says fewer than $3
  until ended "$1"; do
    if complete "$2" && [ "$(< "$2")" -lt "$3" ]; then return 1; fi
    sleep 0.02
  done
}}
install_pack() {{  # hard links: the upload directory keeps its copy for a second try
  local to="$repo/.git/objects/pack/$1"
  ln -f -- "$1" "$to" 2> /dev/null || cp -f -- "$1" "$to"
}}
# Git re-hashes "racily clean" files, those written in the second the index was
# last written (Documentation/technical/racy-git.txt): here, the files it has just
# checked out itself, every time. Until the agent starts nobody else writes in the
# repository, so the index's time goes ahead while git writes and stats the files,
# and back to the real time after: from then on git checks every file written in
# the last second again, as it should.
trusting() {{
  (cd -- "$repo" && {trust_index})
  "$@"
  (cd -- "$repo" && {real_time})
}}
checkout() {{  # the paths listed, NUL-separated, in file $1
  trusting git -C "$repo" {checkout_config} checkout-index -f -u -z --stdin < "$1"
}}
packs() {{
  [ -n "$tree" ] || return 0
  local k=1 sums sum name paths
  # The runner sent as objects only files whose bytes are the blob's: no conversion.
  mkdir -p -- "$repo/.git/info"
  echo '* -text -eol -crlf -ident -filter -working-tree-encoding' > "$repo/.git/info/attributes"
  while :; do
    printf -v sums 'pack-%04d.sha256' "$k"
    wait_for "$sums" PACKS "$k" || break
    check "$sums"
    while read -r sum name; do
      case "$name" in
        *.pack | *.idx) install_pack "$name" ;;  # the pack is listed before its index
        *.paths) paths=$name ;;
      esac
    done < "$sums"
    # The first pack holds every tree.
    if [ "$k" = 1 ]; then git -C "$repo" read-tree "$tree"; fi
    checkout "$paths"
    k=$((k + 1))
  done
  rm -f -- "$repo/.git/info/attributes"
}}
feed() {{
  local i=1 part
  while :; do
    printf -v part 'part-%06d' "$i"
    wait_for "$part.sha256" END "$i" || return 0
    check "$part.sha256"
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
  trusting git -C "$repo" {git_config} update-index --add --stdin 2>/dev/null || true
  cat > /dev/null
}}
tarball() {{
  [ "$raw" = 1 ] || return 0
  feed | {decompress} | tar -x -vv --quoting-style=c --no-same-owner -C "$repo" \
    | regular | lagged | hash_into_index
}}
packs
tarball
"""

# Move the index's time an hour ahead, and back (see `trusting` in the transfer script).
_TRUST_INDEX = 'touch -c -d "@$(( $(date +%s) + 3600 ))" .git/index 2> /dev/null || true'
_REAL_TIME = "touch -c .git/index"

# Parallel checkout pays once a piece has this many files (git's own default is 100).
CHECKOUT_CONFIG: tuple[str, ...] = (
    "core.autocrlf=false",
    "checkout.workers=0",
    "checkout.thresholdForParallelism=100",
)


def _decompress(codec: Codec) -> str:
    return "zstd -dcq" if codec == "zstd" else "gzip -dc"


def transfer_script(
    remote_dir: str,
    repo_dir: str,
    codec: Codec,
    *,
    tree: str | None = None,
    raw: bool = True,
    fresh: bool = False,
) -> str:
    """Script that checks each group as it arrives and puts it into ``repo_dir``.

    Packs are installed and their files checked out (``tree`` is the tree they hold;
    None when nothing travels as objects), then the tar of the other files (``raw``)
    is extracted. ``fresh`` removes ``repo_dir`` first (for a second try).
    """
    return _TRANSFER_TEMPLATE.format(
        remote=shlex.quote(remote_dir),
        repo=shlex.quote(repo_dir),
        tree=shlex.quote(tree or ""),
        raw=int(raw),
        fresh=int(fresh),
        decompress=_decompress(codec),
        git_config=_git_config(),
        trust_index=_TRUST_INDEX,
        real_time=_REAL_TIME,
        sums_functions=_SUMS_FUNCTIONS,
        checkout_config=" ".join(f"-c {shlex.quote(c)}" for c in CHECKOUT_CONFIG),
    )


_VERIFY_TEMPLATE = r"""cd -- {remote}
{sums_functions}
for sums in "$@"; do
  if ! ended "$sums"; then echo "$sums"; continue; fi
  while read -r sum name; do
    [ "$sum" = end ] && break
    [ "$(sum_all "$name" 2> /dev/null)" = "$sum *$name" ] || echo "$name"
  done < "$sums"
done
"""

# Shell functions on sums files, for the two scripts above. Only builtins in
# `ended`: the transfer script polls it. The sums lines read as "<sha256> *<name>"
# from `openssl dgst -r` (4x sha256sum's speed where the CPU has SHA-NI) and
# `sha256sum -b` alike.
_SUMS_FUNCTIONS = r"""ended() {  # the last line of the sums file $1 is "end"
  local last="" line
  [ -f "$1" ] || return 1
  while IFS= read -r line || [ -n "$line" ]; do last=$line; done < "$1"
  [ "$last" = end ]
}
if command -v openssl > /dev/null 2>&1; then
  sum_all() { openssl dgst -sha256 -r "$@"; }
else
  sum_all() { sha256sum -b -- "$@"; }
fi
check() {  # all files of the sums file $1 match their sums
  local sum name want="" names=()
  while read -r sum name; do
    [ "$sum" = end ] && break
    want+="$sum *$name"$'\n'
    names+=("$name")
  done < "$1"
  [ "${#names[@]}" -gt 0 ] || return 0
  if [ "$(sum_all "${names[@]}")"$'\n' != "$want" ]; then
    echo "claude-e2b: a file of $1 failed its checksum" >&2
    return 3
  fi
}"""


def _verify_command(remote_dir: str, groups: list[_Group]) -> str:
    """Prints the sums files that are not whole and the files that fail their sum."""
    script = _VERIFY_TEMPLATE.format(remote=shlex.quote(remote_dir), sums_functions=_SUMS_FUNCTIONS)
    names = " ".join(shlex.quote(g.sums_name) for g in groups)
    return f"bash -c {shlex.quote(script)} verify {names}"


def _resend_bad(session: SandboxSession, remote_dir: str, groups: list[_Group]) -> int:
    """Check every group's files in the sandbox; resend the bad ones (twice at most)."""
    resent = 0
    for _round in range(2):
        out = session.run(_verify_command(remote_dir, groups), timeout=COMMAND_TIMEOUT_S)
        bad = {line.strip() for line in out.stdout.splitlines() if line.strip()}
        if not bad:
            return resent
        for group in groups:
            items = [i for i in group.items if i.name in bad or group.sums_name in bad]
            for item in items:
                send_item(session, remote_dir, item)
            if items or group.sums_name in bad:
                session.write_file(f"{remote_dir}/{group.sums_name}", group.sums())
            resent += len(items)
    raise SyncError(f"{len(bad)} uploaded file(s) kept failing their checksum: {sorted(bad)[:5]}")


def _git_config() -> str:
    return " ".join(f"-c {shlex.quote(c)}" for c in BASELINE_GIT_CONFIG)


def baseline_script(repo_dir: str, stat_cache: str = "") -> str:
    """Script for git init + add + commit with a fixed identity, printing the baseline sha.

    With ``stat_cache``, a copy of the index goes there: change detection uses it to
    hash only the files that changed.
    """
    # -p: the copy keeps the index's time, on which git's racy-file checks rely.
    keep = f"cp -p -- .git/index {shlex.quote(stat_cache)}; " if stat_cache else ""
    ident = f"-c user.name={BASELINE_NAME} -c user.email={BASELINE_EMAIL}"
    return (
        f"set -euo pipefail; cd {shlex.quote(repo_dir)}; "
        # The streamed transfer may have started the repository and filled its index.
        "[ -d .git ] || git init -q -b claude-e2b-baseline; "
        # Nothing but us has written here yet: see `trusting` in the transfer script.
        f"{_TRUST_INDEX}; "
        # -f: every uploaded file is tracked upstream, even one that .gitignore matches.
        f"git {_git_config()} add -A -f; {_REAL_TIME}; "
        # Plumbing: `git commit` would check every file written in the last second again.
        f"commit=$(git {ident} -c commit.gpgsign=false commit-tree -m baseline "
        '"$(git write-tree)"); '
        'git update-ref HEAD "$commit"; '
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
    git_objects: bool = True,
) -> UploadReport:
    """Send the selection into ``repo_dir`` in the sandbox and make the baseline commit.

    Clean tracked files go as git objects (see gitpack; ``git_objects`` False sends
    everything in the tar; so does a second try when git cannot make the packs).
    ``codec`` None asks the sandbox which one it can decompress (see probe_codec);
    ``stream_extract`` False takes the upload in only after all of it was sent
    (slower; for measuring the phases apart). Raises SyncError when the files cannot
    be verified or taken in, and the sandbox errors of the session.
    """
    clock = _Phases()
    job = _Job(
        repo_dir, work_dir, codec or probe_codec(session), chunk_bytes, zstd_level, stream_extract
    )
    try:
        sent, resent, split = _transfer(session, selection, job, clock, git_objects=git_objects)
    except PackError as exc:
        # The packs come from the user's repository: if git cannot make them, the tar can.
        log.warning("upload.objects_failed", error=str(exc), then="sending every file in the tar")
        _remove_quietly(session, repo_dir)
        sent, resent, split = _transfer(session, selection, job, clock, git_objects=False)
    script = baseline_script(repo_dir, stat_cache_path(work_dir))
    baseline = _run_checked(session, script, "make the baseline commit")
    clock.lap("baseline_s")
    report = UploadReport(
        files=len(selection.files),
        raw_bytes=selection.total_bytes,
        sent_bytes=sent.sent_bytes,
        chunks=len(sent.groups) - sent.packs,
        resent_chunks=resent,
        codec=job.codec,
        seconds=clock.total(),
        baseline=baseline.strip().splitlines()[-1] if baseline.strip() else "",
        phases=clock.laps,
        packs=sent.packs,
        packed_files=split.packed_files,
    )
    log.info("upload.done", **{k: v for k, v in report.__dict__.items() if k != "baseline"})
    return report


@dataclass(frozen=True)
class _Job:
    """Where the upload goes and how it travels."""

    repo_dir: str
    work_dir: str
    codec: Codec
    chunk_bytes: int
    level: int
    stream_extract: bool

    @property
    def remote_dir(self) -> str:
        return f"{self.work_dir}/upload"

    def script(self, split: Split, *, fresh: bool = False) -> str:
        """The sandbox side of this upload (see transfer_script)."""
        return transfer_script(
            self.remote_dir, self.repo_dir, self.codec,
            tree=split.tree, raw=bool(split.raw), fresh=fresh,
        )  # fmt: skip


def _transfer(
    session: SandboxSession,
    selection: Selection,
    job: _Job,
    clock: _Phases,
    *,
    git_objects: bool,
) -> tuple[_Sent, int, Split]:
    """Send the files and let the sandbox take them in; return what went and the resends."""
    remote_dir = job.remote_dir
    session.run(f"rm -rf {shlex.quote(remote_dir)}", timeout=COMMAND_TIMEOUT_S)
    session.make_dir(remote_dir)
    with (
        tempfile.TemporaryDirectory(prefix="claude-e2b-upload-") as tmp,
        tempfile.TemporaryDirectory(prefix="claude-e2b-trees-", dir=scratch_dir()) as trees,
    ):
        split = (
            split_selection(selection, Path(tmp) / "git", Path(trees))
            if git_objects
            else all_raw(selection)
        )
        clock.lap("split_s")
        streamer = _start_streamer(session, job.script(split)) if job.stream_extract else None
        try:
            sent = _pack_and_send(
                session, split, remote_dir, Path(tmp),
                chunk_bytes=job.chunk_bytes, codec=job.codec, level=job.level,
            )  # fmt: skip
            clock.lap("pack_send_s")
            resent = sent.retries + _finish(session, streamer, sent.groups, job, split, clock=clock)
        except BaseException:
            if streamer is not None:
                streamer.kill_quietly()
            raise
        finally:
            _remove_quietly(session, remote_dir)
    return sent, resent, split


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
    return session.start(f"bash -c {shlex.quote(script)}", timeout=COMMAND_TIMEOUT_S)


def _finish(
    session: SandboxSession,
    streamer: BackgroundCommand | None,
    groups: list[_Group],
    job: _Job,
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
    resent = _resend_bad(session, job.remote_dir, groups)
    clock.lap("verify_s")
    script = job.script(split, fresh=streamer is not None)
    _run_checked(session, script, "take the upload in")
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
