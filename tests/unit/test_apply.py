"""Applying changes to the checkout: a real round trip, and every refusal."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard

from claude_e2b.errors import SyncError
from claude_e2b.sync.apply import (
    ApplyPolicy,
    ApplyResult,
    apply_changes,
    git_ignored,
    verify_archive,
)
from claude_e2b.sync.changes import (
    Change,
    Changeset,
    PackedArchive,
    detect_script,
    pack_script,
    parse_detect_output,
    parse_pack_output,
)
from claude_e2b.sync.select import select_files
from tests.gitrepo import commit_all, git

POLICY = ApplyPolicy()


# --- helpers ------------------------------------------------------------------------


def write(root: Path, name: str, data: bytes, mode: int = 0o644) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)


def tree(root: Path) -> dict[str, tuple[str, str]]:
    """Map every file and symlink under root (not .git) to its kind+mode and content hash."""
    found: dict[str, tuple[str, str]] = {}
    for entry in sorted(root.rglob("*")):
        rel = entry.relative_to(root).as_posix()
        if rel == ".git" or rel.startswith(".git/"):
            continue
        if entry.is_symlink():
            found[rel] = ("120000", str(entry.readlink()))
        elif entry.is_file():
            mode = "100755" if entry.stat().st_mode & 0o100 else "100644"
            found[rel] = (mode, hashlib.sha256(entry.read_bytes()).hexdigest())
    return found


def snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int, bytes]]:
    """Record every entry under root outside ``skip``, to prove nothing else was written."""
    seen: dict[str, tuple[int, int, bytes]] = {}
    for entry in root.rglob("*"):
        if entry == skip or skip in entry.parents:
            continue
        info = entry.lstat()
        data = entry.read_bytes() if entry.is_file() and not entry.is_symlink() else b""
        seen[str(entry)] = (info.st_mode, info.st_size, data)
    return seen


def detect(repo: Path, baseline: str) -> Changeset:
    out = subprocess.run(
        ["bash", "-c", detect_script(str(repo), baseline)], check=True, capture_output=True
    )
    return parse_detect_output(out.stdout)


def pack(repo: Path, changeset: Changeset, archive: Path) -> PackedArchive:
    job = pack_script(str(repo), changeset, str(archive))
    Path(job.list_path).write_bytes(job.list_content)
    out = subprocess.run(["bash", "-c", job.script], check=True, capture_output=True)
    return parse_pack_output(out.stdout)


def change(
    path: str,
    status: str = "added",
    *,
    mode: str = "100644",
    old_path: str | None = None,
    link_target: str | None = None,
) -> Change:
    return Change(
        path=path,
        status=status,  # type: ignore[arg-type]
        old_path=old_path,
        mode="" if status == "deleted" else mode,
        old_mode=None if status == "added" else "100644",
        binary=False,
        bytes=0,
        link_target=link_target,
    )


def regular(name: str, data: bytes = b"x", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    return info, data


def special(name: str, kind: bytes, link: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info, b""


def archive_of(
    path: Path, members: list[tuple[tarfile.TarInfo, bytes]], *, compress: str = "zstd"
) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    raw = buffer.getvalue()
    path.write_bytes(
        zstandard.ZstdCompressor().compress(raw) if compress == "zstd" else gzip.compress(raw)
    )
    return path


def reasons(result: ApplyResult) -> dict[str, str]:
    return {item.path: item.reason for item in result.skipped}


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    root.mkdir()
    write(root, "keep.txt", b"keep\n")
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    root = tmp_path / "outside"
    root.mkdir()
    write(root, "victim", b"precious\n")
    return root


def apply(
    checkout: Path, changes: list[Change], archive: Path | None, policy: ApplyPolicy = POLICY
) -> ApplyResult:
    return apply_changes(checkout, Changeset(tuple(changes)), archive, policy=policy)


# --- the round trip -------------------------------------------------------------------

BODY = b"".join(b"line %d of a file long enough to keep its identity\n" % i for i in range(50))
ODD_NAMES = ["with space.txt", "ünïcødé/файл.txt", "new\nline.txt", "quo\"te's.txt"]


def build_baseline(sandbox: Path) -> str:
    for name, data in {
        ".gitignore": b"node_modules/\n",
        "keep.txt": b"keep\n",
        "edit.txt": b"before\n",
        "delete.txt": b"bye\n",
        "dir/only.txt": b"alone\n",
        "ren.txt": BODY,
        "renedit.txt": BODY + b"tail\n",
        "script.sh": b"#!/bin/sh\n",
        "to_link.txt": b"soon a link\n",
        ".github/workflows/ci.yml": b"on: push\n",
    }.items():
        write(sandbox, name, data)
    write(sandbox, "exec.sh", b"#!/bin/sh\n", 0o755)
    git(sandbox, "init", "-q")
    return commit_all(sandbox, "baseline")


def agent_work(sandbox: Path) -> None:
    write(sandbox, "new.txt", b"new\n")
    (sandbox / "edit.txt").write_bytes(b"after\n")
    commit_all(sandbox, "agent commits part of its work")
    (sandbox / "delete.txt").unlink()
    (sandbox / "dir" / "only.txt").unlink()
    (sandbox / "moved").mkdir()
    (sandbox / "ren.txt").rename(sandbox / "moved" / "ren.txt")
    (sandbox / "renedit.txt").rename(sandbox / "renamed.txt")
    (sandbox / "renamed.txt").write_bytes(BODY + b"edited tail\n")
    (sandbox / "script.sh").chmod(0o755)
    (sandbox / "exec.sh").chmod(0o644)
    (sandbox / "to_link.txt").unlink()
    (sandbox / "to_link.txt").symlink_to("keep.txt")
    write(sandbox, "links/target.txt", b"t\n")
    (sandbox / "links" / "inside").symlink_to("target.txt")
    (sandbox / "up").symlink_to("links/../keep.txt")
    write(sandbox, "bin.dat", bytes(range(256)) * 3 + b"\0\0\xff")
    write(sandbox, "empty", b"")
    for name in ODD_NAMES:
        write(sandbox, name, name.encode())
    write(sandbox, "node_modules/pkg/index.js", b"ignored\n")


def agent_round(tmp_path: Path) -> tuple[Path, Path, Changeset, Path]:
    """A baseline, a clone of it as the checkout, the agent's work, its changes packed."""
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    baseline = build_baseline(sandbox)
    checkout = tmp_path / "checkout"
    git(tmp_path, "clone", "-q", str(sandbox), str(checkout))
    agent_work(sandbox)
    changeset = detect(sandbox, baseline)
    archive = tmp_path / "changes.tar.zst"
    verify_archive(archive, pack(sandbox, changeset, archive))
    return sandbox, checkout, changeset, archive


def test_round_trip_makes_the_checkout_equal_the_sandbox(tmp_path: Path) -> None:
    """Detect, pack and apply reproduce the agent's tree in a copy of the baseline exactly."""
    sandbox, checkout, changeset, archive = agent_round(tmp_path)

    result = apply_changes(checkout, changeset, archive, policy=POLICY)

    assert result.skipped == ()
    assert result.applied == changeset.changes
    expected = {k: v for k, v in tree(sandbox).items() if not k.startswith("node_modules/")}
    assert tree(checkout) == expected
    assert not (checkout / "dir").exists()
    assert "node_modules/pkg/index.js" not in {c.path for c in changeset.changes}
    assert {c.status for c in changeset.changes} == {"added", "modified", "deleted", "renamed"}


def test_applied_checkout_is_what_git_sees_in_the_sandbox(tmp_path: Path) -> None:
    """After applying, git in the checkout reports the same tree as the sandbox's index."""
    sandbox, checkout, changeset, archive = agent_round(tmp_path)
    apply_changes(checkout, changeset, archive, policy=POLICY)
    for repo in (sandbox, checkout):
        git(repo, "add", "-A")
    assert git(checkout, "write-tree") == git(sandbox, "write-tree")


def test_round_trip_passes_the_runner_guard(tmp_path: Path) -> None:
    """An honest agent's changes pass the checks against the upload and the runner's git."""
    sandbox, checkout, changeset, archive = agent_round(tmp_path)
    uploaded = frozenset(f.path for f in select_files(checkout).files)
    policy = ApplyPolicy(uploaded=uploaded, ignored=git_ignored(checkout), plan_path="keep.txt")
    result = apply_changes(checkout, changeset, archive, policy=policy)
    assert result.skipped == ()
    expected = {k: v for k, v in tree(sandbox).items() if not k.startswith("node_modules/")}
    assert tree(checkout) == expected


def test_deletions_alone_need_no_archive(checkout: Path) -> None:
    """A changeset of deletions applies without an archive."""
    result = apply(checkout, [change("keep.txt", "deleted")], None)
    assert not (checkout / "keep.txt").exists()
    assert [c.path for c in result.applied] == ["keep.txt"]


def test_gzip_archive_is_read_by_its_magic(checkout: Path, tmp_path: Path) -> None:
    """A gzip archive (the fallback when the sandbox has no zstd) is applied too."""
    archive = archive_of(tmp_path / "a.tgz", [regular("g.txt", b"gz")], compress="gzip")
    apply(checkout, [change("g.txt")], archive)
    assert (checkout / "g.txt").read_bytes() == b"gz"


def test_directory_replaced_by_a_file(checkout: Path, tmp_path: Path) -> None:
    """Deleting d/x and adding file d works: the emptied directory is removed first."""
    write(checkout, "d/x", b"x")
    archive = archive_of(tmp_path / "a.zst", [regular("d", b"now a file")])
    result = apply(checkout, [change("d/x", "deleted"), change("d")], archive)
    assert result.skipped == ()
    assert (checkout / "d").read_bytes() == b"now a file"


# --- refusals -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/abs", "absolute path"),
        ("../evil", "'..' segment"),
        ("a/../../evil", "'..' segment"),
        ("./a", "not normalized"),
        ("a//b", "not normalized"),
        (".git/hooks/post-checkout", ".git"),
        (".GIT/config", ".git"),
        ("sub/.git", ".git"),
        ("sub/.Git/HEAD", ".git"),
        ("git~1/config", ".git"),
        (".git./config", ".git"),
        (".g\u200cit/config", ".git"),
        ("a\\..\\evil", "backslash"),
        ("", "empty"),
    ],
)
def test_unsafe_paths_are_refused(checkout: Path, tmp_path: Path, path: str, reason: str) -> None:
    """Paths that could leave the checkout or reach .git are skipped with a reason."""
    archive = archive_of(tmp_path / "a.zst", [regular(path or "x")])
    before = snapshot(tmp_path, checkout)
    result = apply(checkout, [change(path)], archive)
    assert reason in reasons(result)[path]
    assert result.applied == ()
    assert snapshot(tmp_path, checkout) == before


def test_crafted_malicious_archive_writes_nothing_outside(
    checkout: Path, outside: Path, tmp_path: Path
) -> None:
    """A hostile changeset and archive are refused entry by entry; nothing escapes."""
    victim = str(outside / "victim")
    members = [
        regular("../evil"),
        regular("/abs"),
        special("link", tarfile.SYMTYPE, str(outside)),
        regular("link/victim", b"owned"),
        special("hard", tarfile.LNKTYPE, victim),
        regular(".git/hooks/post-checkout", b"#!/bin/sh\nrm -rf /\n", 0o755),
        regular("stowaway", b"not announced"),
        regular("fine.txt", b"ok"),
    ]
    archive = archive_of(tmp_path / "evil.tar.zst", members)
    changes = [
        change("../evil"),
        change("/abs"),
        change("link", mode="120000", link_target=str(outside)),
        change("link/victim"),
        change("hard"),
        change(".git/hooks/post-checkout", mode="100755"),
        change("fine.txt"),
    ]
    before = snapshot(tmp_path, checkout)
    result = apply(checkout, changes, archive)
    why = reasons(result)
    assert "'..' segment" in why["../evil"]
    assert "absolute path" in why["/abs"]
    assert "absolute path" in why["link"]
    assert "'link'" in why["link/victim"]
    assert "hard link" in why["hard"]
    assert ".git" in why[".git/hooks/post-checkout"]
    assert "not in the changeset" in why["stowaway"]
    assert [c.path for c in result.applied] == ["fine.txt"]
    assert snapshot(tmp_path, checkout) == before
    assert (outside / "victim").read_bytes() == b"precious\n"
    assert sorted(p.name for p in checkout.iterdir()) == ["fine.txt", "keep.txt"]


def test_symlink_climbing_out_is_refused(checkout: Path, tmp_path: Path) -> None:
    """A relative symlink whose target climbs above the checkout is refused."""
    archive = archive_of(tmp_path / "a.zst", [special("sub/l", tarfile.SYMTYPE, "../../outside")])
    result = apply(checkout, [change("sub/l", mode="120000")], archive)
    assert "outside the checkout" in reasons(result)["sub/l"]
    assert not (checkout / "sub").exists()


def test_symlink_into_git_is_refused(checkout: Path, tmp_path: Path) -> None:
    """A symlink pointing into .git is refused."""
    archive = archive_of(tmp_path / "a.zst", [special("l", tarfile.SYMTYPE, ".git/config")])
    result = apply(checkout, [change("l", mode="120000")], archive)
    assert ".git" in reasons(result)["l"]


def test_symlink_escaping_through_another_link_is_removed(checkout: Path, tmp_path: Path) -> None:
    """A link that is inside on paper but escapes through another link is taken back."""
    members = [special("dot", tarfile.SYMTYPE, "."), special("l", tarfile.SYMTYPE, "dot/../x")]
    archive = archive_of(tmp_path / "a.zst", members)
    changes = [change("dot", mode="120000"), change("l", mode="120000")]
    result = apply(checkout, changes, archive)
    assert "resolves outside" in reasons(result)["l"]
    assert not (checkout / "l").is_symlink()
    assert [c.path for c in result.applied] == ["dot"]


def test_writing_through_a_checkout_symlink_is_refused(
    checkout: Path, outside: Path, tmp_path: Path
) -> None:
    """A path whose parent is a symlink in the checkout (pointing out) is refused."""
    (checkout / "out").symlink_to(outside)
    members = [regular("out/victim", b"owned"), regular("out/new")]
    archive = archive_of(tmp_path / "a.zst", members)
    changes = [change("out/victim", "modified"), change("out/new")]
    result = apply(checkout, changes, archive)
    assert "symlink" in reasons(result)["out/victim"]
    assert "symlink" in reasons(result)["out/new"]
    assert (outside / "victim").read_bytes() == b"precious\n"
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]


def test_deleting_through_a_checkout_symlink_is_refused(checkout: Path, outside: Path) -> None:
    """A deletion below a symlinked directory never reaches the link's target."""
    (checkout / "out").symlink_to(outside)
    result = apply(checkout, [change("out/victim", "deleted")], None)
    assert "symlink" in reasons(result)["out/victim"]
    assert (outside / "victim").exists()


def test_member_type_must_match_the_changeset(checkout: Path, tmp_path: Path) -> None:
    """A symlink where a file was announced, and the reverse, are refused."""
    members = [special("a", tarfile.SYMTYPE, "keep.txt"), regular("b"), special("c", b"3")]
    archive = archive_of(tmp_path / "a.zst", members)
    changes = [change("a"), change("b", mode="120000", link_target="keep.txt"), change("c")]
    why = reasons(apply(checkout, changes, archive))
    assert "is a symlink, the changeset announced a regular file" in why["a"]
    assert "is a regular file, the changeset announced a symlink" in why["b"]
    assert "device" in why["c"]
    assert not any((checkout / name).exists() for name in "abc")


def test_symlink_target_must_match_the_changeset(checkout: Path, tmp_path: Path) -> None:
    """An archive symlink whose target differs from the announced one is refused."""
    archive = archive_of(tmp_path / "a.zst", [special("l", tarfile.SYMTYPE, "other")])
    result = apply(checkout, [change("l", mode="120000", link_target="keep.txt")], archive)
    assert "target differs" in reasons(result)["l"]


def test_file_over_the_size_cap_is_refused(checkout: Path, tmp_path: Path) -> None:
    """A file larger than max_file_bytes is skipped."""
    archive = archive_of(tmp_path / "a.zst", [regular("big", b"x" * 11)])
    result = apply(checkout, [change("big")], archive, ApplyPolicy(max_file_bytes=10))
    assert "over the limit of 10" in reasons(result)["big"]
    assert not (checkout / "big").exists()


def test_protected_and_allowed_paths(checkout: Path, tmp_path: Path) -> None:
    """Protected globs are refused (any case); with allowed_paths, only those are applied."""
    names = [".github/workflows/ci.yml", ".GitHub/Workflows/x.yml", "src/a/b.py", "docs/x.md"]
    archive = archive_of(tmp_path / "a.zst", [regular(name) for name in names])
    policy = ApplyPolicy(allowed_paths=("src/**/*.py", "docs", ".github"))
    why = reasons(apply(checkout, [change(name) for name in names], archive, policy))
    assert "protected path (matches '.github/workflows/**')" in why[".github/workflows/ci.yml"]
    assert "protected" in why[".GitHub/Workflows/x.yml"]
    assert set(why) == {".github/workflows/ci.yml", ".GitHub/Workflows/x.yml"}
    narrow = ApplyPolicy(allowed_paths=("docs/**",))
    result = apply(checkout, [change("src/a/b.py", "modified")], archive, narrow)
    assert reasons(result)["src/a/b.py"] == "outside allowed paths"


def test_secret_hit_is_refused(checkout: Path, tmp_path: Path) -> None:
    """New content the secret check flags is skipped with the rule's name."""
    archive = archive_of(tmp_path / "a.zst", [regular("env", b"KEY=sk-ant-123"), regular("ok")])

    def check(data: bytes, path: str) -> list[str]:
        return ["anthropic-key"] if b"sk-ant-" in data else []

    result = apply(
        checkout, [change("env"), change("ok")], archive, ApplyPolicy(secret_check=check)
    )
    assert reasons(result) == {"env": "secret: anthropic-key"}
    assert not (checkout / "env").exists()


def test_refused_rename_keeps_the_old_path(checkout: Path, tmp_path: Path) -> None:
    """When a rename's new path is refused, the old path is not deleted."""
    archive = archive_of(tmp_path / "a.zst", [regular(".github/workflows/k.yml")])
    renamed = change(".github/workflows/k.yml", "renamed", old_path="keep.txt")
    result = apply(checkout, [renamed], archive)
    assert "which was kept" in reasons(result)[".github/workflows/k.yml"]
    assert (checkout / "keep.txt").read_bytes() == b"keep\n"


def test_rename_failing_on_write_restores_the_old_path(checkout: Path, tmp_path: Path) -> None:
    """If a rename's new path cannot be written, the old path is put back."""
    write(checkout, "busy/untracked", b"runner's own file")
    archive = archive_of(tmp_path / "a.zst", [regular("busy", b"moved")])
    result = apply(checkout, [change("busy", "renamed", old_path="keep.txt")], archive)
    assert "which was restored" in reasons(result)["busy"]
    assert (checkout / "keep.txt").read_bytes() == b"keep\n"
    assert result.applied == ()


def test_missing_member_and_missing_archive(checkout: Path, tmp_path: Path) -> None:
    """An announced file absent from the archive (or with no archive at all) is skipped."""
    archive = archive_of(tmp_path / "a.zst", [])
    assert "missing from the archive" in reasons(apply(checkout, [change("n")], archive))["n"]
    assert "missing from the archive" in reasons(apply(checkout, [change("n")], None))["n"]


def test_duplicates_are_refused(checkout: Path, tmp_path: Path) -> None:
    """A path twice in the changeset, or twice in the archive, is refused."""
    archive = archive_of(tmp_path / "a.zst", [regular("d", b"1"), regular("d", b"2")])
    result = apply(checkout, [change("d")], archive)
    assert "twice" in reasons(result)["d"]
    assert not (checkout / "d").exists()
    archive = archive_of(tmp_path / "b.zst", [regular("e")])
    result = apply(checkout, [change("e"), change("e", "modified")], archive)
    assert "twice" in reasons(result)["e"]


def test_gitlink_and_directory_deletion_are_refused(checkout: Path) -> None:
    """A nested repository, and deleting what is a directory on the runner, are refused."""
    (checkout / "adir").mkdir()
    changes = [change("vendor", mode="160000"), change("adir", "deleted")]
    why = reasons(apply(checkout, changes, None))
    assert "gitlink" in why["vendor"]
    assert "directory" in why["adir"]
    assert (checkout / "adir").is_dir()


def test_unknown_archive_format_raises_before_writing(checkout: Path, tmp_path: Path) -> None:
    """An archive that is neither zstd nor gzip raises SyncError and writes nothing."""
    bogus = tmp_path / "a.bin"
    bogus.write_bytes(b"PK\x03\x04 not a tar")
    with pytest.raises(SyncError):
        apply(checkout, [change("keep.txt", "deleted"), change("n")], bogus)
    assert (checkout / "keep.txt").exists()


def test_truncated_archive_raises_before_writing(checkout: Path, tmp_path: Path) -> None:
    """A corrupt archive raises SyncError and nothing is applied."""
    good = archive_of(tmp_path / "a.zst", [regular("n", os.urandom(100_000))])
    cut = tmp_path / "cut.zst"
    cut.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(SyncError):
        apply(checkout, [change("keep.txt", "deleted"), change("n")], cut)
    assert (checkout / "keep.txt").exists()


def test_verify_archive_rejects_a_different_digest(tmp_path: Path) -> None:
    """A downloaded archive whose digest differs from the packed one raises SyncError."""
    archive = tmp_path / "a"
    archive.write_bytes(b"abc")
    with pytest.raises(SyncError, match="differs"):
        verify_archive(archive, PackedArchive(format="zstd", sha256="0" * 64, bytes=3))
    digest = hashlib.sha256(b"abc").hexdigest()
    verify_archive(archive, PackedArchive(format="zstd", sha256=digest, bytes=3))


def test_skipped_result_list_shape(checkout: Path) -> None:
    """skipped_result_list gives result.json's skipped_changes entries."""
    result = apply(checkout, [change("/abs", "deleted")], None)
    assert result.skipped_result_list() == [{"path": "/abs", "reason": "absolute path"}]


def test_no_temp_files_are_left_behind(checkout: Path, tmp_path: Path) -> None:
    """Writes go through temp files that never outlive the apply, even on failure."""
    write(checkout, "busy/x", b"x")
    archive = archive_of(tmp_path / "a.zst", [regular("busy"), regular("sub/ok")])
    apply(checkout, [change("busy"), change("sub/ok")], archive)
    leftovers = [p for p in checkout.rglob("*") if "claude-e2b" in p.name]
    assert leftovers == []
    shutil.rmtree(checkout / "busy")


def test_missing_checkout_is_a_sync_error(tmp_path: Path) -> None:
    """A checkout directory that does not exist raises SyncError."""
    with pytest.raises(SyncError, match="cannot be opened"):
        apply(tmp_path / "nope", [change("a", "deleted")], None)
