"""Clean tracked files travel as the runner's own git objects, packed, not as a tar.

The sandbox needs a baseline commit of the uploaded tree. Built there from a tar,
git hashes every byte with its collision-detecting SHA-1 (about 420 MB/s) and
writes every file a second time as a loose object: most of the upload's CPU. But
the runner's repository already holds those objects for every tracked file whose
content on disk is the committed blob, usually already compressed in packs. So
those files go up as packs of exactly their blobs, each with the pack's index and
its *entries* (``mode blob<TAB>path`` per file, as ``git update-index --index-info``
takes them): the sandbox installs the pack, adds the entries to its index and checks
the files out, hashing nothing (git inflates the objects instead, several times
faster than hashing). Each pack is made by ``git pack-objects`` from a *group* of
blobs of about ``GROUP_BYTES`` of content, so the sandbox checks out one pack while
the next is made and sent, and a group can leave as soon as the secret scan has
passed its files (``write_packs``' ``cleared``): no trees, which would name every
file before the scan has seen them all.

Only blobs of the selected files are packed: no tree, no commit, no history, never
an excluded file's. A delta is reused only when its base is in the pack (no
``--thin``).

A selected file travels as an object only when its bytes are exactly the blob's:

- tracked at stage 0, no assume-unchanged or skip-worktree bit (``ls-files -v``);
- not reported by ``git diff-files`` (stat-dirty files are reported too: they
  merely take the tar);
- its blob is in a pack, not loose: only packed objects are sent as they are
  (pack-objects would deflate a loose one, several times slower than zstd);
- its type and executable bit on disk match the index entry;
- no ``filter`` or ``working-tree-encoding`` attribute; and if ``text``, ``eol``,
  ``crlf`` or ``ident`` apply, the blob's size equals the file's (any end-of-line or
  ``$Id$`` conversion would change the size).

Everything else (edited, untracked, converted files) goes in the tar as before.
Nothing travels as an object in a repository whose ``core.autocrlf`` converts, or
whose object format is not SHA-1.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from claude_e2b.errors import SyncError
from claude_e2b.log import get_logger
from claude_e2b.sync.formats import MODE_EXECUTABLE, MODE_FILE, MODE_SYMLINK
from claude_e2b.sync.git import git_output, run_git
from claude_e2b.sync.rawpack import BlobMismatchError, RawBlob, write_zpack
from claude_e2b.sync.select import SelectedFile, Selection

# One pack per this many bytes of file content: the unit of sending, checking and
# checking out (about 28 MiB of pack for the benchmark repository; 32 MiB took
# 10 % longer there: every pack costs git an index read and write in the sandbox).
GROUP_BYTES = 64 * 2**20
_CONVERTING = frozenset({"text", "eol", "crlf", "ident"})
_NEVER = frozenset({"filter", "working-tree-encoding"})
_ATTRS = frozenset(a.encode() for a in _CONVERTING | _NEVER)
_NO_VALUE = frozenset({b"unspecified", b"unset"})

log = get_logger(__name__)


class PackError(SyncError):
    """git could not pack objects it had listed (a damaged repository, most likely)."""


@dataclass(frozen=True)
class Split:
    """Which selected files go as git objects (``blobs``) and which in the tar (``raw``)."""

    root: Path
    raw: tuple[SelectedFile, ...]
    # blob name -> the paths (relative to the root) that hold it, in selection order;
    # the blobs in the order of their last path (see write_packs' ``cleared``)
    blobs: dict[str, list[str]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)  # blob name -> bytes
    modes: dict[str, str] = field(default_factory=dict)  # path -> its git mode
    object_env: dict[str, str] = field(default_factory=dict)

    @property
    def packed_files(self) -> int:
        """How many files travel as objects."""
        return sum(len(paths) for paths in self.blobs.values())


@dataclass(frozen=True)
class Pack:
    """One finished pack: its file, its index and the entries to check out from it."""

    name: str  # pack-<sha1 of the pack>
    pack: Path  # with compressed, the pack through zstd (see rawpack)
    idx: Path
    entries: bytes  # "mode blob<TAB>path" NUL-terminated, per path whose blob is in it
    content_bytes: int = 0  # bytes of the files whose blobs it holds
    compressed: bool = False


@dataclass(frozen=True)
class _Entry:
    mode: str
    blob: str


def all_raw(selection: Selection) -> Split:
    """Everything in the tar (no git objects)."""
    return Split(selection.root, selection.files)


def _index_entries(root: Path) -> dict[str, _Entry]:
    """Stage-0 entries without assume-unchanged / skip-worktree bits ("H" in ls-files -v)."""
    entries: dict[str, _Entry] = {}
    for record in git_output(root, "ls-files", "-z", "-v", "--stage").split(b"\0"):
        meta, _, raw = record.partition(b"\t")
        match meta.split(b" "):
            case [b"H", mode, blob, b"0"] if raw:
                entries[os.fsdecode(raw)] = _Entry(mode.decode(), blob.decode())
            case _:
                pass
    return entries


def _dirty(root: Path) -> set[str]:
    out = git_output(root, "diff-files", "-z", "--name-only", "--relative")
    return {os.fsdecode(p) for p in out.split(b"\0") if p}


def _mode_matches(entry: _Entry, selected: SelectedFile) -> bool:
    if selected.is_symlink:
        return entry.mode == MODE_SYMLINK
    if not stat.S_ISREG(selected.mode):
        return False
    return entry.mode == (MODE_EXECUTABLE if selected.mode & stat.S_IXUSR else MODE_FILE)


def _attributes(root: Path, paths: list[str]) -> dict[str, set[str]]:
    """For each path, the conversion attributes that apply to it (value not unset)."""
    if not paths:
        return {}
    listing = b"".join(os.fsencode(p) + b"\0" for p in paths)
    # --all lists only the attributes that are set, usually none: fast to read.
    out = git_output(root, "check-attr", "-z", "--stdin", "--all", stdin=listing)
    fields = out.split(b"\0")
    found: dict[str, set[str]] = {}
    for path, attr, value in zip(fields[0::3], fields[1::3], fields[2::3], strict=False):
        if attr in _ATTRS and value not in _NO_VALUE:
            found.setdefault(os.fsdecode(path), set()).add(attr.decode())
    return found


def _blob_sizes(root: Path, blobs: set[str]) -> dict[str, int]:
    if not blobs:
        return {}
    query = "".join(f"{b}\n" for b in sorted(blobs)).encode()
    out = git_output(root, "cat-file", "--batch-check=%(objectname) %(objectsize)", stdin=query)
    sizes: dict[str, int] = {}
    for line in out.decode().splitlines():
        name, _, size = line.partition(" ")
        if size.isdigit():
            sizes[name] = int(size)
    return sizes


def _repo_allows_objects(root: Path) -> bool:
    done = run_git(root, "rev-parse", "--show-object-format")
    if done.returncode != 0 or done.stdout.strip() != b"sha1":
        return False
    autocrlf = run_git(root, "config", "--get", "core.autocrlf").stdout.strip().lower()
    return autocrlf not in {b"true", b"input", b"yes", b"on", b"1"}


def _objects_dir(root: Path) -> str:
    out = os.fsdecode(git_output(root, "rev-parse", "--git-path", "objects").strip())
    return str((root / out).resolve())


def _loose_objects(objects: str) -> set[str]:
    """Names of the loose objects: 256 directory reads, not a stat per blob."""
    found: set[str] = set()
    for prefix in (f"{i:02x}" for i in range(256)):
        directory = Path(objects, prefix)
        if directory.is_dir():
            found.update(prefix + entry.name for entry in directory.iterdir())
    return found


def _packable(root: Path, selection: Selection, objects: str) -> dict[str, _Entry]:
    """The selected paths whose bytes on disk are exactly their index entry's blob, packed.

    A blob stored loose (just added or committed, never packed) has no compressed form
    to reuse: pack-objects would deflate it, slower than the tar's zstd.
    """
    entries, dirty, loose = _index_entries(root), _dirty(root), _loose_objects(objects)
    candidates = {
        f.path: (f, entry)
        for f in selection.files
        if (entry := entries.get(f.path)) is not None
        and f.path not in dirty
        and _mode_matches(entry, f)
        and entry.blob not in loose
    }
    attrs = _attributes(root, list(candidates))
    sized = {p for p, names in attrs.items() if names & _CONVERTING and not names & _NEVER}
    sizes = _blob_sizes(root, {candidates[p][1].blob for p in sized})
    packable: dict[str, _Entry] = {}
    for path, (selected, entry) in candidates.items():
        names = attrs.get(path, set())
        if names & _NEVER:
            continue
        if path in sized and sizes.get(entry.blob) != selected.size:
            continue
        packable[path] = entry
    return packable


def split_selection(selection: Selection, work: Path) -> Split:
    """Decide which files go as objects; git is asked about metadata only.

    The packs are made later in ``work``; the repository's object store is an
    alternate of it, so the user's repository gets nothing written. Falls back to
    all-raw when the repository does not allow it or git fails (a warning says why).
    """
    root = selection.root
    if not selection.files or not _repo_allows_objects(root):
        return all_raw(selection)
    try:
        repo_objects = _objects_dir(root)
        packable = _packable(root, selection, repo_objects)
        if not packable:
            return all_raw(selection)
        env = _object_env(_objects_in(work), [repo_objects])
    except SyncError as exc:
        log.warning("upload.objects_unavailable", error=str(exc))
        return all_raw(selection)
    blobs: dict[str, list[str]] = {}
    sizes: dict[str, int] = {}
    for selected in selection.files:
        entry = packable.get(selected.path)
        if entry is not None:
            blobs.setdefault(entry.blob, []).append(selected.path)
            sizes[entry.blob] = selected.size
    # A blob leaves once the scan has passed the last of its paths.
    place = {f.path: n for n, f in enumerate(selection.files)}
    blobs = dict(sorted(blobs.items(), key=lambda item: place[item[1][-1]]))
    modes = {path: entry.mode for path, entry in packable.items()}
    raw = tuple(f for f in selection.files if f.path not in packable)
    return Split(root, raw, blobs, sizes, modes, env)


def _objects_in(directory: Path) -> Path:
    objects = directory / "objects"
    (objects / "pack").mkdir(parents=True, exist_ok=True)
    return objects


def _alternate(path: str) -> str:
    # GIT_ALTERNATE_OBJECT_DIRECTORIES is ":"-separated; a path with ":" is C-quoted.
    if ":" not in path and not path.startswith('"'):
        return path
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _object_env(objects: Path, alternates: list[str]) -> dict[str, str]:
    return {
        "GIT_OBJECT_DIRECTORY": str(objects),
        "GIT_ALTERNATE_OBJECT_DIRECTORIES": ":".join(_alternate(a) for a in alternates),
        # A partial clone must not fetch: a missing object means "send the file in the tar".
        "GIT_NO_LAZY_FETCH": "1",
    }


def _groups(split: Split, group_bytes: int) -> Iterator[list[str]]:
    """Blob names in groups of about ``group_bytes`` of content, in the split's order."""
    group: list[str] = []
    size = 0
    for blob in split.blobs:
        group.append(blob)
        size += split.sizes.get(blob, 0)
        if size >= group_bytes:
            yield group
            group, size = [], 0
    if group:
        yield group


# Waits until the secret scan has passed this path (and every file before it); returns
# the paths it found must not leave. Raises when the run must not upload at all.
Cleared = Callable[[str], Collection[str]]


# Asked before each group but the first (its object names): "zpacks" makes it a zpack.
ChooseMode = Callable[[list[str]], str]


def write_packs(
    split: Split,
    out: Path,
    group_bytes: int = GROUP_BYTES,
    choose: ChooseMode | None = None,
    cleared: Cleared | None = None,
) -> Iterator[Pack]:
    """Pack the split's blobs with ``git pack-objects``, one pack per group; yield each pack.

    Each is a whole pack with its index, so the sandbox can check out its files
    while the next is made and sent. One pack-objects per group: its
    ``--max-pack-size`` costs twice the CPU here. With ``cleared``, a group is made
    only once the scan has passed its last path, without the paths it excluded.
    ``choose`` may turn a group into a zpack (see rawpack, linkfit); the first pack is
    always git's. Raises PackError when git fails.
    """
    if not split.blobs:
        return
    out.mkdir(parents=True, exist_ok=True)
    made = 0
    for objects in _groups(split, group_bytes):
        group = _kept(split, objects, cleared)
        if not group:
            continue
        zpack = None
        if choose is not None and made and choose(list(group)) == "zpacks":
            zpack = _zpack_group(split, group, out)
        made += 1
        yield zpack or _pack_group(split, group, out)


def _kept(split: Split, objects: list[str], cleared: Cleared | None) -> dict[str, list[str]]:
    """The group's blobs and their paths that may leave (all of them without ``cleared``)."""
    if cleared is None:
        return {blob: split.blobs[blob] for blob in objects}
    excluded = cleared(split.blobs[objects[-1]][-1])  # the group's last path in order
    kept = {blob: [p for p in split.blobs[blob] if p not in excluded] for blob in objects}
    return {blob: paths for blob, paths in kept.items() if paths}


def _entries_of(split: Split, group: dict[str, list[str]]) -> tuple[bytes, int]:
    """The group's index entries ("mode blob<TAB>path" NUL-terminated) and bytes of content."""
    listing = b"".join(
        f"{split.modes[path]} {blob}\t".encode() + os.fsencode(path) + b"\0"
        for blob, paths in group.items()
        for path in paths
    )
    return listing, sum(split.sizes.get(blob, 0) for blob in group)


def _zpack_group(split: Split, group: dict[str, list[str]], out: Path) -> Pack | None:
    """The group as a zpack from the work tree; None when a file changed since the split."""
    blobs = [RawBlob(b, split.root / paths[0], split.sizes[b]) for b, paths in group.items()]
    try:
        zpack = write_zpack(blobs, out)
    except BlobMismatchError as exc:
        log.info("upload.zpack_skipped", reason=str(exc))
        return None
    listing, content = _entries_of(split, group)
    return Pack(zpack.name, zpack.pack_zst, zpack.idx, listing, content, compressed=True)


def _pack_group(split: Split, group: dict[str, list[str]], out: Path) -> Pack:
    query = "".join(f"{name}\n" for name in group).encode()
    done = run_git(
        split.root, "-c", "core.fsync=none", "-c", "pack.compression=1",
        "-c", "pack.writeReverseIndex=false", "pack-objects", "-q", "--window=0", str(out / "p"),
        stdin=query, env=split.object_env,
    )  # fmt: skip
    if done.returncode != 0:
        said = done.stderr[-2000:].decode(errors="replace").strip()
        raise PackError(f"git pack-objects failed (exit {done.returncode}): {said}")
    sha = done.stdout.decode().strip()
    listing, content = _entries_of(split, group)
    return Pack(f"pack-{sha}", out / f"p-{sha}.pack", out / f"p-{sha}.idx", listing, content)
