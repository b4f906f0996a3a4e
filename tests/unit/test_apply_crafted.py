"""Bad input for the change applier: crafted archives and changesets, never a write outside.

Each example builds a fresh world: a checkout full of traps (symlinks out of it,
a symlink loop, a FIFO, an empty directory, the plan file), a sibling "outside"
directory with a canary, and an archive made of hostile members. Whatever the
archive and the changeset hold, ``apply_changes`` returns or raises ``SyncError``;
the outside tree stays byte-identical; the checkout changes only at the paths the
result lists as applied (and their parent directories); every other change is in
``skipped`` with a reason. ``test_apply_properties.py`` covers path spellings and
honest round trips; this module covers what a hostile sandbox can send back.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import stat
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from pytest_mock import MockerFixture

from claude_e2b.errors import SyncError, UnsafeChangeError
from claude_e2b.sync.apply import (
    ApplyPolicy,
    ApplyResult,
    apply_changes,
    git_ignored,
    verify_archive,
    write_capped,
)
from claude_e2b.sync.apply_paths import ancestors
from claude_e2b.sync.changes import (
    Change,
    Changeset,
    PackedArchive,
    pack_script,
    parse_pack_output,
)
from tests.gitrepo import git

OUT = "{OUT}"  # stands for the absolute path of the "outside" directory of an example
CANARY = b"precious\n"
PLAN = b"---\ntitle: t\nbudget-usd: 1\n---\n- [ ] one\n"
SCRIPT_TIMEOUT_S = 60


def fuzz(examples: int) -> settings:
    """Settings for these tests: each example builds files and may run git."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# ---------------------------------------------------------------- the world of one example


def build_checkout(base: Path) -> Path:
    """A checkout with the traps a runner's checkout may hold, next to an "outside" tree."""
    outside = base / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "canary").write_bytes(CANARY)
    (outside / "sub" / "deep").write_bytes(CANARY)
    checkout = base / "checkout"
    for name, data in {
        "keep.txt": b"keep\n",
        "exec.sh": b"#!/bin/sh\n",
        "plan.md": PLAN,
        "adir/inner.txt": b"inner\n",
        "adir/sub/deep.txt": b"deep\n",
        ".gitignore": b"ignored/\n*.log\n",
    }.items():
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        (checkout / name).write_bytes(data)
    (checkout / "exec.sh").chmod(0o755)
    (checkout / "empty").mkdir()
    (checkout / "out").symlink_to("../outside")
    (checkout / "outabs").symlink_to(outside)
    (checkout / "outfile").symlink_to("../outside/canary")
    (checkout / "selfloop").symlink_to("selfloop")
    os.mkfifo(checkout / "fifo")
    return checkout


TRACKED = frozenset({"keep.txt", "exec.sh", "plan.md", "adir/inner.txt", "adir/sub/deep.txt"})
TRACKED |= {".gitignore", "out", "outabs", "outfile", "selfloop"}


Entry = tuple[int, int, bytes]


def snapshot(root: Path) -> dict[str, Entry]:
    """Every entry under ``root``, never following a symlink: type, permissions, content."""
    seen: dict[str, Entry] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            full = Path(folder, name)
            info = full.lstat()
            if stat.S_ISLNK(info.st_mode):
                content = os.fsencode(full.readlink())
            elif stat.S_ISREG(info.st_mode):
                content = full.read_bytes()
            else:
                content = b""
            rel = full.relative_to(root).as_posix()
            seen[rel] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), content)
    return seen


# ---------------------------------------------------------------- crafted changesets

PATHS = [
    "a.txt",
    "b.txt",
    "keep.txt",
    "exec.sh",
    "plan.md",
    ".gitignore",
    "adir",
    "adir/inner.txt",
    "adir/sub",
    "adir/sub/deep.txt",
    "adir/new.txt",
    "new/deep/f.txt",
    "empty",
    "empty/f",
    "out",
    "out/canary",
    "out/new",
    "out/sub/deep",
    "outabs/canary",
    "outfile",
    "selfloop",
    "selfloop/x",
    "fifo",
    "link",
    "link/canary",
    "dot",
    "../outside/canary",
    f"{OUT}/canary",
    "a/../../outside/canary",
    "./a.txt",
    "a//b",
    "",
    ".git/config",
    ".GIT/hooks/post-checkout",
    "git~1/config",
    ".git./x",
    "sub/.git",
    ".github/workflows/ci.yml",
    ".GitHub/Workflows/ci.yml",
    ".github/workflows./ci.yml",
    ".github/work\u200bflows/ci.yml",
    "\uff0egithub/workflows/x.yml",
    "caf\u00e9.txt",
    "cafe\u0301.txt",
    "A.TXT",
    "a.txt.",
    "a.txt ",
    "zw\u200b.txt",
    "\u202etxt.exe",
    "x\ny",
    "-rf",
    "n" * 300,
    "/".join(["d"] * 2100) + "/f",  # longer than PATH_MAX
    "/".join(["e"] * 400) + "/f",  # deeper than Python's tree walks recurse
    "ignored/x",
    "x.log",
    "a\\b",
    "a\0b",
]
TARGETS = [
    OUT,
    f"{OUT}/canary",
    "../outside",
    "../outside/canary",
    "..",
    ".",
    "adir",
    "keep.txt",
    "link",
    "dot",
    "out",
    "out/canary",
    "out/..",
    "dot/../x",
    "link/../..",
    ".git/config",
    "",
    "a/../../..",
    "selfloop",
    "adir/../keep.txt",
    "fifo",
]
# Mostly the modes and statuses git reports, so that some changes get through.
MODES = ["100644"] * 4 + ["100755", "120000"] * 2 + ["160000", "104755", "100664", "040000", ""]
STATUSES = ["added"] * 3 + ["modified"] * 2 + ["deleted", "renamed"]

# Half of the paths are ordinary ones, so that changes get through next to hostile ones.
ORDINARY = [
    "a.txt",
    "b.txt",
    "keep.txt",
    "exec.sh",
    "adir/new.txt",
    "new/deep/f.txt",
    "link",
    "dot",
]
paths = st.sampled_from(ORDINARY) | st.sampled_from(PATHS)
targets = st.sampled_from(TARGETS)


@st.composite
def changes(draw: st.DrawFn) -> Change:
    """One change as a hostile sandbox may announce it: any path, status, mode and target."""
    status = draw(st.sampled_from(STATUSES))
    mode = draw(st.sampled_from(MODES))
    return Change(
        path=draw(paths),
        status=status,  # type: ignore[arg-type]
        old_path=draw(paths) if status == "renamed" or draw(st.booleans()) else None,
        mode="" if status == "deleted" and draw(st.booleans()) else mode,
        old_mode=draw(st.none() | st.sampled_from(MODES)),
        binary=draw(st.booleans()),
        # Now and then a size that puts the whole changeset over the caps.
        bytes=2**40 if draw(st.integers(0, 40)) == 0 else draw(st.integers(0, 40)),
        link_target=draw(st.none() | targets) if mode == "120000" else None,
    )


# ---------------------------------------------------------------- crafted archives

KINDS = {
    "file": tarfile.REGTYPE,
    "contiguous": tarfile.CONTTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "chardev": tarfile.CHRTYPE,
    "blockdev": tarfile.BLKTYPE,
    "fifo": tarfile.FIFOTYPE,
    "directory": tarfile.DIRTYPE,
}
WITH_DATA = ("file", "contiguous")


@dataclass(frozen=True)
class Member:
    """One tar member as crafted: ``lie`` bytes are added to the size its header declares."""

    name: str
    kind: str
    data: bytes = b""
    link: str = ""
    mode: int = 0o644
    lie: int = 0


@dataclass(frozen=True)
class Crafted:
    """An archive as a hostile sandbox may send it back."""

    members: tuple[Member, ...]
    codec: str = "zstd"  # zstd, gzip, raw (no compression) or none (no archive at all)
    end_blocks: bool = True
    damage: tuple[str, int, int] | None = None  # (how, where, what)

    @property
    def honest(self) -> bool:
        """Whether the members are read back exactly as crafted."""
        return self.damage is None and all(m.lie == 0 for m in self.members)


@st.composite
def members(draw: st.DrawFn, names: list[str]) -> Member:
    kind = draw(st.sampled_from(sorted(KINDS)) | st.just("file"))
    data = draw(st.binary(max_size=40)) if kind in WITH_DATA else b""
    return Member(
        name=draw(st.sampled_from(names) | paths) if names else draw(paths),
        kind=kind,
        data=data.replace(b"\0", b"") if draw(st.booleans()) else data,
        link=draw(targets) if kind in ("symlink", "hardlink") else "",
        mode=draw(st.sampled_from([0o644, 0o755, 0o4755, 0o6777, 0o1777, 0o000])),
        lie=draw(st.sampled_from([0] * 8 + [1, -1, 512, -512, 10**6])) if data else 0,
    )


@st.composite
def crafted_archives(draw: st.DrawFn, names: list[str]) -> Crafted:
    found = draw(st.lists(members(names), max_size=4))
    damage = draw(
        st.none()
        | st.tuples(
            st.sampled_from(["truncate", "flip", "append"]),
            st.integers(0, 10**6),
            st.integers(1, 255),
        )
    )
    return Crafted(
        members=tuple(found),
        codec=draw(st.sampled_from(["zstd"] * 10 + ["gzip", "gzip", "raw", "none"])),
        end_blocks=draw(st.booleans()),
        damage=damage if draw(st.integers(0, 7)) == 0 else None,
    )


def member_header(member: Member, outside: Path) -> bytes:
    info = tarfile.TarInfo(member.name.replace(OUT, str(outside)))
    info.type = KINDS[member.kind]
    info.linkname = member.link.replace(OUT, str(outside))
    info.mode = member.mode
    info.size = max(len(member.data) + member.lie, 0) if member.kind in WITH_DATA else 0
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")


def tar_bytes(crafted: Crafted, outside: Path) -> bytes:
    """The tar stream, written by hand so that headers may lie about sizes."""
    out = bytearray()
    for member in crafted.members:
        out += member_header(member, outside)
        if member.kind in WITH_DATA:
            out += member.data + b"\0" * (-len(member.data) % tarfile.BLOCKSIZE)
    if crafted.end_blocks:
        out += b"\0" * (2 * tarfile.BLOCKSIZE)
    return bytes(out)


def compressed(crafted: Crafted, raw: bytes) -> bytes:
    if crafted.codec == "zstd":
        return zstandard.ZstdCompressor(level=3).compress(raw)
    if crafted.codec == "gzip":
        return gzip.compress(raw, mtime=0)
    return raw


def damaged(crafted: Crafted, data: bytes) -> bytes:
    if crafted.damage is None or not data:
        return data
    how, where, what = crafted.damage
    where %= len(data)
    if how == "truncate":
        return data[:where]
    if how == "flip":
        return data[:where] + bytes([data[where] ^ what]) + data[where + 1 :]
    return data + bytes([what]) * (where % 4096)


def write_archive(crafted: Crafted, path: Path, outside: Path) -> Path | None:
    if crafted.codec == "none":
        return None
    path.write_bytes(damaged(crafted, compressed(crafted, tar_bytes(crafted, outside))))
    return path


# ---------------------------------------------------------------- policies


def secret_rule(data: bytes, path: str) -> list[str]:
    return ["canary-rule"] if b"SECRET" in data else []


@dataclass(frozen=True)
class Guard:
    """How the policy of one example is built: caps, globs, and the runner's view."""

    small_caps: bool = False
    protected: tuple[str, ...] = (".github/workflows/**",)
    allowed: tuple[str, ...] = ()
    runner: bool = False  # the checkout is a git repository; uploaded, ignored, plan known

    def policy(self, checkout: Path) -> ApplyPolicy:
        policy = ApplyPolicy(
            protected_paths=self.protected, allowed_paths=self.allowed, secret_check=secret_rule
        )
        if self.small_caps:
            policy = replace(policy, max_file_bytes=24, max_total_bytes=160, max_files=5)
        if self.runner:
            git(checkout, "init", "-q")
            policy = replace(
                policy, uploaded=TRACKED, ignored=git_ignored(checkout), plan_path="plan.md"
            )
        return policy


guards = st.builds(
    Guard,
    small_caps=st.sampled_from([False] * 5 + [True]),
    protected=st.sampled_from(
        [(".github/workflows/**",), (".github/workflows/**", "adir/sub/**", "**/*.lock")]
    ),
    allowed=st.sampled_from([(), ("adir/**", "new/**", "*.txt")]),
    runner=st.booleans(),
)


# ---------------------------------------------------------------- the properties checked


@dataclass
class Outcome:
    """One apply in its world: what it returned or raised, and the trees before and after."""

    changes: tuple[Change, ...]
    crafted: Crafted | None
    result: ApplyResult | None
    error: SyncError | None
    checkout_before: dict[str, Entry]
    checkout_after: dict[str, Entry]
    outside_before: dict[str, Entry]
    outside_after: dict[str, Entry]
    members: dict[str, list[Member]] = field(default_factory=dict)


def run_apply(
    base: Path,
    changes_: tuple[Change, ...],
    archive: Path | None,
    policy: ApplyPolicy,
    crafted: Crafted | None = None,
) -> Outcome:
    """Apply in the world under ``base``, recording both trees around it."""
    checkout = base / "checkout"
    outside_before, checkout_before = snapshot_outside(base), snapshot(checkout)
    result, error = None, None
    try:
        result = apply_changes(checkout, Changeset(changes_), archive, policy=policy)
    except SyncError as exc:
        error = exc
    by_name: dict[str, list[Member]] = {}
    for member in crafted.members if crafted else ():
        by_name.setdefault(member.name, []).append(member)
    return Outcome(
        changes=changes_,
        crafted=crafted,
        result=result,
        error=error,
        checkout_before=checkout_before,
        checkout_after=snapshot(checkout),
        outside_before=outside_before,
        outside_after=snapshot_outside(base),
        members=by_name,
    )


def snapshot_outside(base: Path) -> dict[str, Entry]:
    """Everything in the example's directory but the checkout: outside, archive, staging."""
    return {k: v for k, v in snapshot(base).items() if not k.startswith("checkout/")}


def touched(applied: tuple[Change, ...]) -> set[str]:
    """The paths an applied change may alter: its path, old path and their directories."""
    allowed: set[str] = set()
    for change in applied:
        for path in (change.path, change.old_path):
            if path is not None:
                allowed.update([path, *ancestors(path)])
    return allowed


def assert_contained(outcome: Outcome) -> None:
    """Nothing outside changed; inside, only what the result lists as applied."""
    assert outcome.outside_after == outcome.outside_before
    before, after = outcome.checkout_before, outcome.checkout_after
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    if outcome.result is None:
        assert changed == set(), "a SyncError must leave the checkout as it was"
        return
    assert changed <= touched(outcome.result.applied), sorted(
        changed - touched(outcome.result.applied)
    )
    assert not [k for k in after if "claude-e2b" in k], "a temporary file was left behind"
    for _, perms, _ in after.values():
        assert not perms & (stat.S_ISUID | stat.S_ISGID), (
            "a setuid or setgid bit reached the checkout"
        )


def assert_accounted(outcome: Outcome) -> None:
    """Every change is applied or skipped with a reason; applied ones come from the changeset."""
    if outcome.result is None:
        return
    applied = outcome.result.applied
    skipped = {item.path for item in outcome.result.skipped}
    assert all(item.reason.strip() for item in outcome.result.skipped)
    assert all(change in outcome.changes for change in applied)
    assert {c.path for c in outcome.changes} <= {c.path for c in applied} | skipped


def assert_applied_as_announced(outcome: Outcome) -> None:
    """An applied change is in the checkout exactly as announced and archived."""
    if outcome.result is None:
        return
    after = outcome.checkout_after
    written = {c.path for c in outcome.result.applied if c.has_content}
    # A rename from d to d/f leaves d as the directory that holds the new path.
    holding = {parent for path in written for parent in ancestors(path)}
    for change in outcome.result.applied:
        if change.status == "deleted" and change.path not in written:
            assert change.path not in after, change
        moved = change.status != "deleted" and change.old_path is not None
        if moved and change.old_path in holding:
            assert after[str(change.old_path)][0] == stat.S_IFDIR, change
        elif moved and change.old_path not in written | {change.path}:
            assert change.old_path not in after, change
        if change.has_content:
            assert_written(outcome, change)


def assert_written(outcome: Outcome, change: Change) -> None:
    kind, perms, content = outcome.checkout_after[change.path]
    if change.mode == "120000":
        assert kind == stat.S_IFLNK
    else:
        assert kind == stat.S_IFREG
        assert perms == (0o755 if change.mode == "100755" else 0o644)
    if outcome.crafted is None or not outcome.crafted.honest:
        return  # a lying header shifts what tar reads: the members are not those crafted
    found = outcome.members.get(change.path, [])
    assert len(found) == 1, f"{change.path!r} applied from {len(found)} archive members"
    member = found[0]
    if change.mode == "120000":
        assert member.kind == "symlink"
        assert content == os.fsencode(member.link)
    else:
        assert member.kind in WITH_DATA
        assert content == member.data


def assert_safe(outcome: Outcome) -> None:
    if outcome.result is None:
        event("SyncError")
    else:
        event(f"applied {min(len(outcome.result.applied), 3)}+")
    assert_contained(outcome)
    assert_accounted(outcome)
    assert_applied_as_announced(outcome)


# ---------------------------------------------------------------- crafted archive and changeset


@st.composite
def honest_member(draw: st.DrawFn, change: Change) -> Member:
    """The member a sandbox packing ``change`` honestly would send."""
    if change.mode == "120000":
        return Member(change.path, "symlink", link=change.link_target or draw(targets))
    data = draw(st.binary(max_size=40) | st.just(b"SECRET"))
    return Member(change.path, "file", data, mode=0o755 if change.mode == "100755" else 0o644)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[tuple[Change, ...], Crafted, Guard]:
    """A changeset; an archive of honest members for most of it, hostile ones mixed in."""
    found = tuple(draw(st.lists(changes(), max_size=8)))
    names = [c.path for c in found if c.path] + [c.old_path for c in found if c.old_path]
    crafted = draw(crafted_archives(names))
    honest = [draw(honest_member(c)) for c in found if c.has_content and draw(st.integers(0, 3))]
    mixed = list(crafted.members)
    for member in honest:
        mixed.insert(draw(st.integers(0, len(mixed))), member)
    return found, replace(crafted, members=tuple(mixed)), draw(guards)


def build_and_apply(base: Path, scenario: tuple[tuple[Change, ...], Crafted, Guard]) -> Outcome:
    found, crafted, guard = scenario
    checkout = build_checkout(base)
    outside = base / "outside"
    real = tuple(
        replace(
            c,
            path=c.path.replace(OUT, str(outside)),
            old_path=c.old_path.replace(OUT, str(outside)) if c.old_path else None,
            link_target=c.link_target.replace(OUT, str(outside)) if c.link_target else None,
        )
        for c in found
    )
    real_crafted = replace(
        crafted,
        members=tuple(
            replace(
                m, name=m.name.replace(OUT, str(outside)), link=m.link.replace(OUT, str(outside))
            )
            for m in crafted.members
        ),
    )
    policy = guard.policy(checkout)
    archive = write_archive(crafted, base / "changes.tar.zst", outside)
    return run_apply(base, real, archive, policy, real_crafted)


def file_change(path: str, mode: str = "100644", status: str = "added", **more: object) -> Change:
    fields: dict[str, object] = {
        "path": path,
        "status": status,
        "old_path": None,
        "mode": mode,
        "old_mode": None,
        "binary": False,
        "bytes": 4,
        "link_target": None,
    }
    fields.update(more)
    return Change(**fields)  # type: ignore[arg-type]


def renamed_under_itself(target: str) -> tuple[tuple[Change, ...], Crafted, Guard]:
    """The checkout's symlink ``out`` renamed to a symlink ``out/canary`` to ``target``."""
    changes_ = (
        file_change("a.txt", bytes=0),
        file_change("out/canary", "120000", "renamed", old_path="out", link_target=target),
    )
    return (
        changes_,
        Crafted((Member("out/canary", "symlink", link=target),), end_blocks=False),
        Guard(),
    )


@fuzz(250)
@given(scenarios())
@example(renamed_under_itself("../outside")).via(
    "a rename under its own old path, kept: the old path is now the new one's directory"
)
@example(renamed_under_itself("../outfile")).via(
    "a rename under its own old path, taken back: the old symlink returns, no directory"
)
@example(
    (
        (file_change("keep.txt", "120000", "modified", link_target="out/.."),),
        Crafted((Member("keep.txt", "symlink", link="out/.."),)),
        Guard(),
    )
).via("a link inside on paper that leaves through the checkout's own symlink")
@example(
    (
        (file_change("b.txt", status="renamed", old_path="fifo"),),
        Crafted((Member("b.txt", "file", b"data"),)),
        Guard(),
    )
).via("a rename away from a FIFO: the backup must not block on it")
@example(
    (
        (file_change("adir", old_path="keep.txt"),),
        Crafted((Member("adir", "file", b"over a directory"),)),
        Guard(),
    )
).via("a write that fails after its old path was removed, outside a rename")
@example(
    (
        (file_change("link", "120000", link_target="out"), file_change("link/canary")),
        Crafted((Member("link", "symlink", link="out"), Member("link/canary", "file", b"owned"))),
        Guard(),
    )
).via("a symlink, then a file through it")
@example(
    (
        (file_change("/".join(["d"] * 2100) + "/f"), file_change("/".join(["e"] * 400) + "/f")),
        Crafted(
            (
                Member("/".join(["d"] * 2100) + "/f", "file", b"deep"),
                Member("/".join(["e"] * 400) + "/f", "file", b"deep"),
            )
        ),
        Guard(),
    )
).via("paths longer than PATH_MAX, or deeper than a tree walk can go")
@example(
    (
        (file_change("x.sh", "104755"), file_change("y.sh", "100755")),
        Crafted(
            (Member("x.sh", "file", b"s", mode=0o4755), Member("y.sh", "file", b"s", mode=0o6777))
        ),
        Guard(),
    )
).via("setuid modes in the changeset and in the archive")
def test_crafted_archive_and_changeset_stay_in_the_checkout(
    scenario: tuple[tuple[Change, ...], Crafted, Guard],
) -> None:
    """Any crafted changeset and archive: nothing outside changes; all of it is accounted for."""
    with tempfile.TemporaryDirectory(prefix="crafted-") as tmp:
        outcome = build_and_apply(Path(tmp), scenario)
        assert_safe(outcome)


def test_a_rename_whose_old_path_is_rewritten_keeps_the_new_content() -> None:
    """Rename a→b plus a new a (git reports both): if b fails, the new a is not undone."""
    with tempfile.TemporaryDirectory(prefix="crafted-") as tmp:
        base = Path(tmp)
        checkout = build_checkout(base)
        crafted = Crafted((Member("keep.txt", "file", b"new\n"), Member("adir", "file", b"m")))
        archive = write_archive(crafted, base / "a.zst", base / "outside")
        changes_ = (
            file_change("keep.txt", status="added"),
            file_change("adir", status="renamed", old_path="keep.txt"),  # a directory here
        )
        outcome = run_apply(base, changes_, archive, ApplyPolicy(), crafted)
        assert_contained(outcome)
        assert_applied_as_announced(outcome)
        assert outcome.result is not None
        assert [c.path for c in outcome.result.applied] == ["keep.txt"]
        assert (checkout / "keep.txt").read_bytes() == b"new\n"
        (reason,) = [s.reason for s in outcome.result.skipped if s.path == "adir"]
        assert "which another change wrote" in reason


@pytest.mark.parametrize("target", ["../outfile", "../outabs/sub"])
def test_a_rename_under_its_old_path_taken_back_leaves_the_checkout_as_it_was(
    target: str,
) -> None:
    """``out`` (a link) renamed to ``out/canary``, a link that leaves: ``out`` comes back whole.

    The write made a directory ``out`` for the new link; taking the link back
    removes that directory too, so the old symlink can be put back in its place.
    """
    with tempfile.TemporaryDirectory(prefix="crafted-") as tmp:
        base = Path(tmp)
        changes_, crafted, guard = renamed_under_itself(target)
        outcome = build_and_apply(base, (changes_, crafted, guard))
        assert_contained(outcome)
        assert_accounted(outcome)
        assert_applied_as_announced(outcome)
        assert outcome.result is not None
        assert outcome.result.applied == ()
        assert outcome.checkout_after == outcome.checkout_before
        (reason,) = [s.reason for s in outcome.result.skipped if s.path == "out/canary"]
        assert reason == (
            "symlink resolves outside the checkout: removed"
            " (renamed from 'out', which was restored)"
        )


def test_a_rename_under_its_old_path_that_stays_makes_the_old_path_its_directory() -> None:
    """``out`` (a link) renamed to ``out/canary``, a link that stays inside: applied."""
    with tempfile.TemporaryDirectory(prefix="crafted-") as tmp:
        base = Path(tmp)
        outcome = build_and_apply(base, renamed_under_itself("../keep.txt"))
        assert_contained(outcome)
        assert_accounted(outcome)
        assert_applied_as_announced(outcome)
        assert outcome.result is not None
        assert [c.path for c in outcome.result.applied] == ["out/canary"]
        checkout = base / "checkout"
        assert not (checkout / "out").is_symlink()
        assert (checkout / "out").is_dir()
        assert (checkout / "out" / "canary").read_bytes() == b"keep\n"


def test_a_write_that_fails_removes_the_directories_it_made(
    tmp_path: Path, mocker: MockerFixture
) -> None:
    """A rename whose write fails after making its parents: no directory left, old path back."""
    checkout = build_checkout(tmp_path)
    crafted = Crafted((Member("new/deep/f.txt", "file", b"moved"),))
    archive = write_archive(crafted, tmp_path / "a.zst", tmp_path / "outside")
    changes_ = (file_change("new/deep/f.txt", status="renamed", old_path="keep.txt"),)
    real_replace = os.replace

    def full_disk_for_f(src: str, dst: str, **dir_fds: int) -> None:
        if dst == "f.txt":
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst, **dir_fds)

    mocker.patch.object(os, "replace", side_effect=full_disk_for_f)
    outcome = run_apply(tmp_path, changes_, archive, ApplyPolicy(), crafted)
    assert_contained(outcome)
    assert outcome.result is not None
    assert outcome.result.applied == ()
    assert [s.reason for s in outcome.result.skipped] == [
        "could not write: No space left on device (renamed from 'keep.txt', which was restored)"
    ]
    assert not (checkout / "new").exists()
    assert outcome.checkout_after == outcome.checkout_before


def test_a_long_chain_of_symlinks_is_taken_back_not_a_crash() -> None:
    """Links each to the next, more than realpath can follow: taken back; the rest applies."""
    # A lower recursion limit makes a shorter chain (faster) deeper than realpath can go,
    # as 1100 links are under the default limit of 1000.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(400)
    try:
        chain_of_links(500)
    finally:
        sys.setrecursionlimit(limit)


def chain_of_links(count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="crafted-") as tmp:
        base = Path(tmp)
        checkout = build_checkout(base)
        links = [Member(f"l{i}", "symlink", link=f"l{i + 1}") for i in range(count)]
        crafted = Crafted((*links, Member(f"l{count}", "symlink", link="keep.txt")))
        archive = write_archive(crafted, base / "a.zst", base / "outside")
        changes_ = tuple(file_change(m.name, "120000", link_target=m.link) for m in crafted.members)
        outcome = run_apply(base, changes_, archive, ApplyPolicy(), crafted)
        assert_contained(outcome)
        assert_accounted(outcome)
        assert_applied_as_announced(outcome)
        assert outcome.result is not None
        assert outcome.result.applied, "the short end of the chain is kept"
        assert any("too long to follow" in s.reason for s in outcome.result.skipped)
        for change in outcome.result.applied:
            assert Path(os.path.realpath(checkout / change.path)).is_relative_to(checkout)


# ---------------------------------------------------------------- renames onto protected names

PROTECTED_SPELLINGS = [
    ".github/workflows/ci.yml",
    ".GITHUB/workflows/ci.yml",
    ".github/workflows./ci.yml",
    ".github/workflows /ci.yml",
    ".github/work\u200bflows/ci.yml",
    ".github/\u2060workflows/ci.yml",
    ".github/\uff57orkflows/ci.yml",
    ".github\u00ad/workflows/ci.yml",
    ".git/hooks/pre-commit",
    ".GIT/config",
    "git~1/HEAD",
    ".gi\u200ct/config",
    "\uff0egit/config",
    "sub/.git",
]
NFD_E = "e\u0301"


@fuzz(60)
@given(
    st.sampled_from(PROTECTED_SPELLINGS),
    st.sampled_from(["keep.txt", "adir/inner.txt", "exec.sh"]),
    st.booleans(),
)
def test_renames_onto_or_off_protected_names_keep_both_paths(
    protected: str, plain: str, onto: bool
) -> None:
    """A rename onto, or away from, any spelling of a protected name changes nothing."""
    with tempfile.TemporaryDirectory(prefix="crafted-") as tmp:
        base = Path(tmp)
        checkout = build_checkout(base)
        for existing in (".github/workflows/ci.yml", ".git/hooks/pre-commit", ".git/config"):
            (checkout / existing).parent.mkdir(parents=True, exist_ok=True)
            (checkout / existing).write_bytes(b"the runner's own\n")
        new, old = (protected, plain) if onto else (plain, protected)
        crafted = Crafted((Member(new, "file", b"moved"),))
        archive = write_archive(crafted, base / "a.zst", base / "outside")
        change = file_change(new, status="renamed", old_path=old)
        outcome = run_apply(base, (change,), archive, ApplyPolicy(), crafted)
        assert_safe(outcome)
        assert outcome.result is not None
        assert outcome.result.applied == ()
        assert outcome.checkout_after == outcome.checkout_before


@fuzz(40)
@given(st.sampled_from(["caf\u00e9.txt", f"caf{NFD_E}.txt", "CAF\u00c9.TXT", "café.txt."]))
def test_unicode_twins_of_an_existing_file_are_refused(name: str) -> None:
    """A new name that is another file once NFC, case or trailing dots are folded is refused."""
    with tempfile.TemporaryDirectory(prefix="crafted-") as tmp:
        base = Path(tmp)
        checkout = build_checkout(base)
        (checkout / "caf\u00e9.txt").write_bytes(b"original\n")
        crafted = Crafted((Member(name, "file", b"twin"),))
        archive = write_archive(crafted, base / "a.zst", base / "outside")
        guard = Guard(runner=True)
        policy = replace(guard.policy(checkout), uploaded=TRACKED | {"caf\u00e9.txt"})
        outcome = run_apply(base, (file_change(name),), archive, policy, crafted)
        assert_safe(outcome)
        assert outcome.result is not None
        if name != "caf\u00e9.txt":
            assert [s.path for s in outcome.result.skipped] == [name]
        assert (checkout / "caf\u00e9.txt").read_bytes() in (b"original\n", b"twin")


# ---------------------------------------------------------------- bombs


class Zeros:
    """``size`` zero bytes, produced as read: a bomb never held in memory."""

    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, count: int = -1) -> bytes:
        count = self.left if count < 0 else min(count, self.left)
        self.left -= count
        return bytes(count)


def bomb(path: Path, sizes: list[tuple[str, int, int]]) -> Path:
    """A zstd tar of runs of zeros; each header declares its size plus a lie."""
    with path.open("wb") as raw, zstandard.ZstdCompressor(level=3).stream_writer(raw) as out:
        for name, size, lie in sizes:
            info = tarfile.TarInfo(name)
            info.size = max(size + lie, 0)
            out.write(info.tobuf(tarfile.GNU_FORMAT))
            source = Zeros(size)
            while block := source.read(2**20):
                out.write(block)
            out.write(b"\0" * (-size % tarfile.BLOCKSIZE))
        out.write(b"\0" * 1024)
    return path


@fuzz(25)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a.txt", "b.txt", "adir/new.txt", "zzz"]),
            st.integers(0, 48 * 2**20),
            st.sampled_from([0, 0, -(2**20), 2**20]),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_decompression_bombs_are_refused_whole(sizes: list[tuple[str, int, int]]) -> None:
    """Megabytes of zeros from a few kilobytes, honest or lying: caps hold, nothing escapes."""
    with tempfile.TemporaryDirectory(prefix="crafted-") as tmp:
        base = Path(tmp)
        build_checkout(base)
        archive = bomb(base / "bomb.tar.zst", sizes)
        assert archive.stat().st_size < 2**20
        announced = tuple(file_change(name) for name in dict.fromkeys(n for n, _, _ in sizes))
        policy = ApplyPolicy(max_file_bytes=2**20, max_total_bytes=2 * 2**20, max_files=4)
        outcome = run_apply(base, announced, archive, policy)
        assert_contained(outcome)
        assert_accounted(outcome)
        if outcome.result is not None:
            for change in outcome.result.applied:
                assert len(outcome.checkout_after[change.path][2]) <= policy.max_file_bytes


# ---------------------------------------------------------------- the real pack script

SANDBOX_NAMES = ["a.txt", "b.sh", "dir/f", "lnk", "lnk/canary", "hard", "fifo", "up", "x\ny"]


@st.composite
def sandbox_trees(draw: st.DrawFn) -> list[tuple[str, str, str]]:
    """Entries (name, kind, detail) an agent may leave behind for the pack script."""
    kinds = st.sampled_from(["file", "exec", "symlink", "hardlink", "fifo"])
    found = draw(st.dictionaries(st.sampled_from(SANDBOX_NAMES), kinds, max_size=6))
    return [(name, kind, draw(targets)) for name, kind in found.items()]


def make_sandbox(sandbox: Path, entries: list[tuple[str, str, str]], outside: Path) -> list[str]:
    """Create the entries that can exist together; return the names that do."""
    made: list[str] = []
    for name, kind, detail in entries:
        path = sandbox / name
        if any(parent.is_symlink() for parent in path.parents):
            if path.exists():
                made.append(name)  # reached through a symlink: tar will read through it
            continue  # never create anything through a link: it may lead outside
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if kind == "symlink":
                path.symlink_to(detail.replace(OUT, str(outside)))
            elif kind == "hardlink":
                os.link(outside / "canary", path)
            elif kind == "fifo":
                os.mkfifo(path)
            else:
                path.write_bytes(f"{name} SECRET\n".encode() if name == "b.sh" else name.encode())
                path.chmod(0o755 if kind == "exec" else 0o644)
        except OSError:
            continue  # e.g. a file where a directory is needed: the agent could not make it
        made.append(name)
    return made


def announced(sandbox: Path, name: str, lie: bool) -> Change:
    info = (sandbox / name).lstat()
    if stat.S_ISLNK(info.st_mode):
        mode, target = "120000", str((sandbox / name).readlink())
    else:
        mode, target = ("100755" if info.st_mode & 0o100 else "100644"), None
    if lie:
        mode, target = ("100644", None) if mode == "120000" else ("120000", "a.txt")
    return file_change(name, mode, bytes=info.st_size, link_target=target)


@fuzz(30)
@given(sandbox_trees(), st.sets(st.sampled_from(SANDBOX_NAMES)), guards)
def test_the_real_pack_of_a_hostile_sandbox_tree(
    entries: list[tuple[str, str, str]], lying: set[str], guard: Guard
) -> None:
    """Whatever an agent leaves for the real pack script, the apply keeps to the checkout."""
    with tempfile.TemporaryDirectory(prefix="crafted-") as tmp:
        base = Path(tmp)
        checkout = build_checkout(base)
        sandbox = base / "sandbox"
        sandbox.mkdir()
        made = make_sandbox(sandbox, entries, base / "outside")
        changeset = Changeset(tuple(announced(sandbox, n, n in lying) for n in made))
        archive = base / "changes.tar.zst"
        job = pack_script(str(sandbox), changeset, str(archive))
        Path(job.list_path).write_bytes(job.list_content)
        done = subprocess.run(
            ["bash", "-c", job.script], capture_output=True, check=True, timeout=SCRIPT_TIMEOUT_S
        )
        verify_archive(archive, parse_pack_output(done.stdout))
        Path(job.list_path).unlink()
        outcome = run_apply(base, changeset.changes, archive, guard.policy(checkout))
        assert_contained(outcome)
        assert_accounted(outcome)
        assert outcome.result is not None
        for change in outcome.result.applied:
            assert b"SECRET" not in outcome.checkout_after[change.path][2]


# ---------------------------------------------------------------- download and verification


@fuzz(150)
@given(st.lists(st.binary(max_size=64), max_size=12), st.integers(0, 400))
def test_write_capped_writes_all_or_nothing(chunks: list[bytes], limit: int) -> None:
    """Up to the cap, every byte is written; past it, the file is gone and the stream closed."""
    closed: list[bool] = []

    def stream() -> Iterator[bytes]:
        try:
            yield from chunks
        finally:
            closed.append(True)

    with tempfile.TemporaryDirectory(prefix="crafted-") as tmp:
        target = Path(tmp) / "archive"
        total = sum(len(chunk) for chunk in chunks)
        if total <= limit:
            assert write_capped(stream(), target, limit) == total
            assert target.read_bytes() == b"".join(chunks)
        else:
            with pytest.raises(UnsafeChangeError):
                write_capped(stream(), target, limit)
            assert not target.exists()
        assert closed == [True]


@fuzz(150)
@given(
    st.binary(max_size=300),
    st.sampled_from(["honest", "size", "digest", "both"]),
    st.integers(1, 10),
)
def test_verify_archive_accepts_only_the_packed_bytes(data: bytes, lie: str, delta: int) -> None:
    """The downloaded archive passes only when its size and sha256 are those packed."""
    with tempfile.TemporaryDirectory(prefix="crafted-") as tmp:
        archive = Path(tmp) / "archive"
        archive.write_bytes(data)
        size = len(data) + (delta if lie in ("size", "both") else 0)
        other = data + b"x" if lie in ("digest", "both") else data
        expected = PackedArchive("zstd", hashlib.sha256(other).hexdigest(), size)
        if lie == "honest":
            verify_archive(archive, expected)
        else:
            with pytest.raises(SyncError, match="differs"):
                verify_archive(archive, expected)
