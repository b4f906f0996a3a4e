"""What the agent changed in the sandbox, found with git plumbing, and how to pack it.

The sandbox is reached only through a command runner, so this module builds the
bash scripts to run there and parses what they print; it never runs anything.

Both scripts are idempotent: run again (``SandboxSession.run(..., idempotent=True)``)
they give the same answer, and what they write (the archive; the detect output when
given a path) appears whole or not at all, under its name only once complete, so an
earlier try still running beside a retry cannot leave half a file behind.

Detection stages the whole worktree into a *temporary* index (``GIT_INDEX_FILE``)
so the agent's own index and history are untouched, and diffs that index against
the baseline commit made at upload. Diffing against the baseline rather than
``HEAD`` means commits the agent made on top are still reported as changes.
``git add -A`` honours ``.gitignore``, so an ignored ``node_modules`` is no change.
The temporary index starts from the baseline tree, not from a copy of the agent's
index, whose assume-unchanged or skip-worktree bits would hide changes (the cost:
git hashes every file once, about a second for 450 MB).

Raises:
    SyncError: when the output of a script cannot be parsed.
    InternalError: when a caller passes an argument no script may contain.

"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from typing import Literal

from claude_e2b.errors import InternalError, SyncError
from claude_e2b.sync.formats import CODECS, MODE_GITLINK, MODE_SYMLINK, Codec

Status = Literal["added", "modified", "deleted", "renamed"]

_NULL_MODE = "000000"
_DETECT_HEADER = b"claude-e2b-detect 1"
_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
_STATUS: dict[str, Status] = {
    "A": "added",
    "C": "added",
    "M": "modified",
    "T": "modified",
    "D": "deleted",
    "R": "renamed",
}


@dataclass(frozen=True)
class Change:
    """One changed path, as git sees it between the baseline and the agent's worktree."""

    path: str
    status: Status
    old_path: str | None
    mode: str  # "100644", "100755", "120000" (symlink), "160000" (gitlink), "" when deleted
    old_mode: str | None
    binary: bool
    bytes: int
    link_target: str | None

    @property
    def has_content(self) -> bool:
        """Whether the archive carries this path (it exists after the change and is ours)."""
        return self.status != "deleted" and self.mode != MODE_GITLINK

    def to_result(self) -> dict[str, object]:
        """Return the entry of result.json's "changes" list."""
        return {
            "path": self.path,
            "status": self.status,
            "old_path": self.old_path,
            "mode": self.mode,
            "binary": self.binary,
            "bytes": self.bytes,
        }


@dataclass(frozen=True)
class Changeset:
    """Every change the agent made, in git's order."""

    changes: tuple[Change, ...]

    def pack_paths(self) -> tuple[str, ...]:
        """Paths whose new content goes into the archive (not deletions, not gitlinks)."""
        return tuple(change.path for change in self.changes if change.has_content)


@dataclass(frozen=True)
class PackScript:
    """A pack job: write ``list_content`` to ``list_path`` in the sandbox, then run ``script``.

    The path list travels as a file, not inside the script, because paths may be
    any bytes but NUL and a long list would exceed the kernel's limit on one
    ``bash -c`` argument (128 KiB).
    """

    list_path: str
    list_content: bytes
    script: str


@dataclass(frozen=True)
class PackedArchive:
    """What the pack script reported about the archive it wrote."""

    format: Codec
    sha256: str
    bytes: int


_DIFF = (
    "git -c core.quotepath=off -c diff.renames=true diff --cached --no-ext-diff"
    " --no-textconv --no-color --ignore-submodules=none -M --no-abbrev -z"
)

# Kept as one template so the sandbox runs exactly what the tests run locally.
_DETECT_TEMPLATE = r"""set -euo pipefail
export LC_ALL=C GIT_TERMINAL_PROMPT=0 GIT_OPTIONAL_LOCKS=0
cd -- {repo}
baseline={baseline}
if ! git cat-file -e "$baseline^{{commit}}" 2>/dev/null; then
  echo "claude-e2b: the baseline commit $baseline is gone from the sandbox repository" >&2
  exit 3
fi
work=$(mktemp -d)
part=
trap 'rm -rf -- "$work"; [ -z "$part" ] || rm -f -- "$part"' EXIT
export GIT_INDEX_FILE="$work/index"
# The index saved at the baseline commit is a stat cache: with it, git hashes only the
# files whose stat changed. Missing or unreadable, every file is hashed: same answer.
if ! {{ [ -n {stat_cache} ] && [ -f {stat_cache} ] && cp -- {stat_cache} "$GIT_INDEX_FILE" \
       && git -c advice.addEmbeddedRepo=false add -A 2>/dev/null; }}; then
  rm -f -- "$GIT_INDEX_FILE"
  git read-tree "$baseline"
  git -c advice.addEmbeddedRepo=false add -A
fi
{diff} --raw "$baseline" > "$work/raw"
{diff} --numstat "$baseline" > "$work/numstat"
: > "$work/shas"
: > "$work/links"
while IFS= read -r -d '' meta; do
  IFS= read -r -d '' _path
  case "$meta" in *" R"*|*" C"*) IFS= read -r -d '' _path ;; esac
  read -r _old_mode new_mode _old_sha new_sha _status <<< "$meta"
  if [ "$new_mode" != 000000 ] && [ "$new_mode" != 160000 ]; then
    printf '%s\n' "$new_sha" >> "$work/shas"
  fi
  if [ "$new_mode" = 120000 ]; then printf '%s\n' "$new_sha" >> "$work/links"; fi
done < "$work/raw"
sort -u "$work/shas" | git cat-file --batch-check > "$work/sizes"
sort -u "$work/links" | git cat-file --batch > "$work/targets"
emit() {{ printf '%s %s\n' "$1" "$(wc -c < "$2" | tr -d ' ')"; cat -- "$2"; }}
out={output}
if [ -n "$out" ]; then part="$out.part.$$"; exec 3>&1 > "$part"; fi
printf 'claude-e2b-detect 1\n'
emit raw "$work/raw"
emit numstat "$work/numstat"
emit sizes "$work/sizes"
emit targets "$work/targets"
if [ -n "$out" ]; then exec 1>&3 3>&-; mv -f -- "$part" "$out"; fi
"""

# tar flags, and why: --null/--verbatim-files-from read names as given (a name may
# start with "-"); --no-recursion keeps a listed directory from pulling in files
# nobody announced; --hard-dereference stores hard-linked files as plain files,
# since the apply side refuses hard links.
_PACK_TEMPLATE = r"""set -euo pipefail
export LC_ALL=C
cd -- {repo}
list={list_path}
archive={archive}
part="$archive.part.$$"
trap 'rm -f -- "$part"' EXIT
pack() {{
  tar --null --verbatim-files-from --no-recursion --hard-dereference --format=gnu \
    -cf - -T "$list"
}}
if command -v zstd > /dev/null 2>&1; then
  format=zstd
  pack | zstd -q -3 -T0 -f -o "$part"
else
  format=gzip
  pack | gzip -6 > "$part"
fi
sum=$(sha256sum < "$part" | cut -d ' ' -f 1)
size=$(wc -c < "$part" | tr -d ' ')
mv -f -- "$part" "$archive"
printf 'format %s\n' "$format"
printf 'sha256 %s\n' "$sum"
printf 'bytes %s\n' "$size"
"""


def detect_script(repo_dir: str, baseline: str, stat_cache: str = "", output_path: str = "") -> str:
    """Return the bash script that prints the changes since ``baseline`` in ``repo_dir``.

    Run it with ``bash -c`` (or as a file) in the sandbox; feed its stdout, as
    bytes, to :func:`parse_detect_output`. It exits 3 when the baseline is gone.
    ``stat_cache`` names a copy of the index written with the baseline commit: it
    spares hashing every unchanged file. The result is the same without it.
    ``output_path``: write the output to that file instead (whole, or not at all).

    Raises:
        InternalError: ``baseline`` is not a full commit id.

    """
    if not _SHA.fullmatch(baseline):
        raise InternalError(f"baseline must be a full hex commit id, got {baseline!r}")
    return _DETECT_TEMPLATE.format(
        repo=shlex.quote(repo_dir),
        baseline=baseline,
        diff=_DIFF,
        stat_cache=shlex.quote(stat_cache),
        output=shlex.quote(output_path),
    )


def pack_script(
    repo_dir: str, changeset: Changeset, archive_path: str, list_path: str | None = None
) -> PackScript:
    """Return the job that packs exactly ``changeset.pack_paths()`` into one archive.

    The archive is tar compressed with zstd, or gzip where the sandbox has no
    ``zstd``; the script's stdout (see :func:`parse_pack_output`) says which.
    """
    target = list_path or f"{archive_path}.list"
    names = b"".join(os.fsencode(path) + b"\0" for path in changeset.pack_paths())
    script = _PACK_TEMPLATE.format(
        repo=shlex.quote(repo_dir),
        list_path=shlex.quote(target),
        archive=shlex.quote(archive_path),
    )
    return PackScript(list_path=target, list_content=names, script=script)


def parse_pack_output(out: bytes) -> PackedArchive:
    """Read the format, sha256 and size the pack script printed.

    Raises:
        SyncError: a line is missing or malformed.

    """
    fields = dict(line.split(" ", 1) for line in out.decode().splitlines() if " " in line)
    fmt = CODECS.get(fields.get("format", ""))
    digest, size = fields.get("sha256", ""), fields.get("bytes", "")
    if fmt is None or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise SyncError(f"unexpected output from the pack script: {out[:200]!r}")
    if not size.isdigit():
        raise SyncError(f"unexpected archive size from the pack script: {size!r}")
    return PackedArchive(format=fmt, sha256=digest, bytes=int(size))


def parse_detect_output(out: bytes) -> Changeset:
    """Turn the detect script's stdout into a Changeset.

    Raises:
        SyncError: the output is not what the detect script prints.

    """
    sections = _split_sections(out)
    binary = _parse_numstat(sections["numstat"])
    sizes = _parse_sizes(sections["sizes"])
    targets = _parse_targets(sections["targets"])
    changes = [_make_change(entry, binary, sizes, targets) for entry in _parse_raw(sections["raw"])]
    return Changeset(changes=tuple(changes))


def _split_sections(out: bytes) -> dict[str, bytes]:
    header, _, rest = out.partition(b"\n")
    if header != _DETECT_HEADER:
        raise SyncError(f"the detect script printed no header: {out[:200]!r}")
    sections: dict[str, bytes] = {}
    while rest:
        line, _, rest = rest.partition(b"\n")
        name, _, length = line.decode(errors="replace").partition(" ")
        if not length.isdigit() or len(rest) < int(length):
            raise SyncError(f"truncated output from the detect script at section {name!r}")
        sections[name], rest = rest[: int(length)], rest[int(length) :]
    missing = {"raw", "numstat", "sizes", "targets"} - sections.keys()
    if missing:
        raise SyncError(f"the detect script printed no {', '.join(sorted(missing))}")
    return sections


@dataclass(frozen=True)
class _RawEntry:
    old_mode: str
    new_mode: str
    new_sha: str
    letter: str
    path: bytes
    old_path: bytes | None


def _parse_raw(raw: bytes) -> list[_RawEntry]:
    fields = raw.split(b"\0")
    entries: list[_RawEntry] = []
    i = 0
    while i < len(fields) and fields[i]:
        meta = fields[i].decode("ascii", errors="replace")
        parts = meta.lstrip(":").split(" ")
        if not meta.startswith(":") or len(parts) != 5 or i + 1 >= len(fields):  # noqa: PLR2004
            raise SyncError(f"unexpected line in git's raw diff: {meta!r}")
        letter = parts[4][:1]
        paired = letter in "RC"
        old, new = (fields[i + 1], fields[i + 2]) if paired else (None, fields[i + 1])
        entries.append(_RawEntry(parts[0], parts[1], parts[3], letter, new, old))
        i += 3 if paired else 2
    return entries


def _parse_numstat(numstat: bytes) -> dict[bytes, bool]:
    """Map each new path (old path for a deletion) to whether git saw it as binary."""
    fields = numstat.split(b"\0")
    binary: dict[bytes, bool] = {}
    i = 0
    while i < len(fields) and fields[i]:
        added, _, rest = fields[i].partition(b"\t")
        _, _, path = rest.partition(b"\t")
        if path:
            i += 1
        else:  # a rename: the two paths follow as fields of their own
            path = fields[i + 2] if i + 2 < len(fields) else b""
            i += 3
        binary[path] = added == b"-"
    return binary


def _parse_sizes(sizes: bytes) -> dict[str, int]:
    result: dict[str, int] = {}
    for line in sizes.decode("ascii", errors="replace").splitlines():
        parts = line.split(" ")
        if len(parts) == 3 and parts[2].isdigit():  # noqa: PLR2004
            result[parts[0]] = int(parts[2])
    return result


def _parse_targets(batch: bytes) -> dict[str, str]:
    """Read ``git cat-file --batch`` output: header line, content, newline, repeated."""
    targets: dict[str, str] = {}
    rest = batch
    while rest:
        header, _, rest = rest.partition(b"\n")
        parts = header.decode("ascii", errors="replace").split(" ")
        if len(parts) != 3 or not parts[2].isdigit():  # noqa: PLR2004
            continue  # "<sha> missing": the agent's repo lost the object; no target
        size = int(parts[2])
        targets[parts[0]] = os.fsdecode(rest[:size])
        rest = rest[size + 1 :]
    return targets


def _make_change(
    entry: _RawEntry, binary: dict[bytes, bool], sizes: dict[str, int], targets: dict[str, str]
) -> Change:
    status = _STATUS.get(entry.letter)
    if status is None:
        raise SyncError(f"git reported an unexpected change status {entry.letter!r}")
    deleted = status == "deleted"
    return Change(
        path=os.fsdecode(entry.path),
        status=status,
        old_path=os.fsdecode(entry.old_path) if status == "renamed" and entry.old_path else None,
        mode="" if deleted else entry.new_mode,
        old_mode=None if entry.old_mode == _NULL_MODE else entry.old_mode,
        binary=binary.get(entry.path, False),
        bytes=0 if deleted else sizes.get(entry.new_sha, 0),
        link_target=targets.get(entry.new_sha) if entry.new_mode == MODE_SYMLINK else None,
    )
