"""Change detection and packing, run with bash and git on real repositories."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard

from claude_e2b.errors import InternalError, SyncError
from claude_e2b.sync.changes import (
    Change,
    Changeset,
    detect_script,
    pack_script,
    parse_detect_output,
    parse_pack_output,
)
from tests.gitrepo import commit_all, git


def make_repo(root: Path, files: dict[str, bytes]) -> tuple[Path, str]:
    repo = root / "sandbox"
    repo.mkdir()
    for name, data in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_bytes(data)
    git(repo, "init", "-q")
    return repo, commit_all(repo, "baseline")


def detect(repo: Path, baseline: str) -> Changeset:
    out = subprocess.run(
        ["bash", "-c", detect_script(str(repo), baseline)], check=True, capture_output=True
    )
    return parse_detect_output(out.stdout)


def by_path(changeset: Changeset) -> dict[str, Change]:
    return {change.path: change for change in changeset.changes}


def test_no_change_gives_an_empty_changeset(tmp_path: Path) -> None:
    """A worktree equal to the baseline yields no changes."""
    repo, base = make_repo(tmp_path, {"a.txt": b"a\n"})
    assert detect(repo, base).changes == ()


def test_every_kind_of_change_is_detected(tmp_path: Path) -> None:
    """Adds, edits, deletions, renames, modes, symlinks, binaries and odd names are found."""
    body = b"".join(b"line %d of a file long enough to rename\n" % i for i in range(40))
    repo, base = make_repo(
        tmp_path,
        {"edit.txt": b"a\n", "gone.txt": b"x\n", "old.txt": body, "tool": b"#!/bin/sh\n"},
    )
    (repo / "edit.txt").write_bytes(b"b\n")
    (repo / "gone.txt").unlink()
    (repo / "old.txt").rename(repo / "new.txt")
    (repo / "tool").chmod(0o755)
    (repo / "link").symlink_to("edit.txt")
    (repo / "bin.dat").write_bytes(bytes(range(256)))
    (repo / "empty").write_bytes(b"")
    odd = 'sp ace "q" \'s\nnl ü.txt'
    (repo / odd).write_bytes(b"odd\n")
    changes = by_path(detect(repo, base))
    assert changes["edit.txt"].status == "modified"
    assert changes["gone.txt"].status == "deleted"
    assert changes["gone.txt"].mode == ""
    assert changes["gone.txt"].old_mode == "100644"
    assert changes["new.txt"].status == "renamed"
    assert changes["new.txt"].old_path == "old.txt"
    assert (changes["tool"].old_mode, changes["tool"].mode) == ("100644", "100755")
    assert changes["link"].mode == "120000"
    assert changes["link"].link_target == "edit.txt"
    assert changes["bin.dat"].binary
    assert changes["bin.dat"].bytes == 256
    assert changes["empty"].bytes == 0
    assert changes[odd].status == "added"
    assert not changes[odd].binary


def test_file_replaced_by_symlink_is_a_modification(tmp_path: Path) -> None:
    """A type change reports the new symlink mode and its target."""
    repo, base = make_repo(tmp_path, {"a.txt": b"a\n", "b.txt": b"b\n"})
    (repo / "a.txt").unlink()
    (repo / "a.txt").symlink_to("b.txt")
    change = by_path(detect(repo, base))["a.txt"]
    assert change.status == "modified"
    assert (change.old_mode, change.mode, change.link_target) == ("100644", "120000", "b.txt")


def test_ignored_directory_is_not_a_change(tmp_path: Path) -> None:
    """Files the repository's .gitignore matches (node_modules) are not reported."""
    repo, base = make_repo(tmp_path, {".gitignore": b"node_modules/\n"})
    (repo / "node_modules" / "pkg").mkdir(parents=True)
    (repo / "node_modules" / "pkg" / "index.js").write_bytes(b"x")
    (repo / "kept.js").write_bytes(b"y")
    assert list(by_path(detect(repo, base))) == ["kept.js"]


def test_agent_commits_are_diffed_against_the_baseline(tmp_path: Path) -> None:
    """Work the agent committed on top of the baseline is still reported."""
    repo, base = make_repo(tmp_path, {"a.txt": b"a\n"})
    (repo / "committed.txt").write_bytes(b"c\n")
    commit_all(repo, "agent work")
    (repo / "loose.txt").write_bytes(b"l\n")
    assert sorted(by_path(detect(repo, base))) == ["committed.txt", "loose.txt"]


def test_agent_index_is_left_untouched(tmp_path: Path) -> None:
    """Detection stages into a temporary index, so the agent's index is unchanged."""
    repo, base = make_repo(tmp_path, {"a.txt": b"a\n"})
    (repo / "new.txt").write_bytes(b"n\n")
    before = (repo / ".git" / "index").read_bytes()
    detect(repo, base)
    assert (repo / ".git" / "index").read_bytes() == before
    assert git(repo, "status", "--porcelain") == "?? new.txt"


def test_changes_hidden_by_the_agents_index_flags_are_found(tmp_path: Path) -> None:
    """assume-unchanged or skip-worktree in the agent's index do not hide a change."""
    repo, base = make_repo(tmp_path, {"a.txt": b"a\n", "b.txt": b"b\n"})
    git(repo, "update-index", "--assume-unchanged", "a.txt")
    git(repo, "update-index", "--skip-worktree", "b.txt")
    (repo / "a.txt").write_bytes(b"changed a\n")
    (repo / "b.txt").write_bytes(b"changed b\n")
    assert sorted(by_path(detect(repo, base))) == ["a.txt", "b.txt"]


def test_nested_repository_is_a_gitlink_that_is_not_packed(tmp_path: Path) -> None:
    """A repository the agent cloned inside is reported with mode 160000 and never packed."""
    repo, base = make_repo(tmp_path, {"a.txt": b"a\n"})
    inner = repo / "vendor"
    inner.mkdir()
    (inner / "x").write_bytes(b"x")
    git(inner, "init", "-q")
    commit_all(inner, "inner")
    changeset = detect(repo, base)
    assert by_path(changeset)["vendor"].mode == "160000"
    assert changeset.pack_paths() == ()


def test_missing_baseline_fails_the_script(tmp_path: Path) -> None:
    """The script exits 3 with a message when the baseline commit is gone."""
    repo, _ = make_repo(tmp_path, {"a.txt": b"a\n"})
    script = detect_script(str(repo), "0" * 40)
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 3
    assert "baseline" in done.stderr


def test_baseline_must_be_a_commit_id() -> None:
    """A baseline that is not a hex commit id never reaches a script."""
    with pytest.raises(InternalError):
        detect_script("/repo", "HEAD; rm -rf /")


def test_each_change_gives_its_result_json_entry(tmp_path: Path) -> None:
    """to_result gives the keys of result.json's changes entries: an edit, a rename, a deletion."""
    body = b"".join(b"line %d of a file long enough to rename\n" % i for i in range(40))
    repo, base = make_repo(tmp_path, {"a.txt": b"a\n", "b.txt": body, "d.txt": b"d\n"})
    (repo / "a.txt").write_bytes(b"abc\n")
    (repo / "b.txt").rename(repo / "c.txt")
    (repo / "d.txt").unlink()
    entry = {"old_path": None, "mode": "100644", "binary": False}
    assert [change.to_result() for change in detect(repo, base).changes] == [
        {**entry, "path": "a.txt", "status": "modified", "bytes": 4},
        {**entry, "path": "c.txt", "status": "renamed", "old_path": "b.txt", "bytes": len(body)},
        {**entry, "path": "d.txt", "status": "deleted", "mode": "", "bytes": 0},
    ]


@pytest.mark.parametrize(
    "out",
    [b"", b"nonsense\n", b"claude-e2b-detect 1\nraw 99\nshort", b"claude-e2b-detect 1\nraw 0\n"],
)
def test_garbage_detect_output_is_a_sync_error(out: bytes) -> None:
    """Output that is not the detect script's raises SyncError."""
    with pytest.raises(SyncError):
        parse_detect_output(out)


def run_pack(repo: Path, changeset: Changeset, archive: Path, path: str = "") -> bytes:
    job = pack_script(str(repo), changeset, str(archive))
    Path(job.list_path).write_bytes(job.list_content)
    env = {**os.environ, "PATH": path} if path else None
    bash = shutil.which("bash") or "bash"
    return subprocess.run([bash, "-c", job.script], check=True, capture_output=True, env=env).stdout


def read_members(archive: Path) -> dict[str, tarfile.TarInfo]:
    data = archive.read_bytes()
    if data.startswith(b"\x28\xb5\x2f\xfd"):
        data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
        mode = "r:"
    else:
        mode = "r:gz"
    with tarfile.open(fileobj=io.BytesIO(data), mode=mode) as tar:
        return {member.name: member for member in tar.getmembers()}


def test_pack_holds_exactly_the_changed_paths(tmp_path: Path) -> None:
    """The archive has every added/modified/renamed path, no deletion, modes and links kept."""
    repo, base = make_repo(tmp_path, {"gone": b"g", "keep": b"k", "-dash": b"d"})
    (repo / "gone").unlink()
    (repo / "-dash").write_bytes(b"changed")
    (repo / "run.sh").write_bytes(b"#!/bin/sh\n")
    (repo / "run.sh").chmod(0o755)
    (repo / "ln").symlink_to("keep")
    (repo / "hard").hardlink_to(repo / "keep")
    changeset = detect(repo, base)
    archive = tmp_path / "out.tar.zst"
    packed = parse_pack_output(run_pack(repo, changeset, archive))
    members = read_members(archive)
    assert sorted(members) == sorted(changeset.pack_paths()) == ["-dash", "hard", "ln", "run.sh"]
    assert members["run.sh"].mode & 0o111
    assert members["ln"].issym()
    assert members["ln"].linkname == "keep"
    assert members["hard"].isreg()
    assert packed.format == "zstd"
    assert packed.bytes == archive.stat().st_size


def test_pack_falls_back_to_gzip_without_zstd(tmp_path: Path) -> None:
    """Without zstd on PATH the script writes gzip and says so."""
    repo, base = make_repo(tmp_path, {"a": b"a"})
    (repo / "a").write_bytes(b"b")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("tar", "gzip", "sha256sum", "cut", "wc", "tr", "mv", "rm"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or tool)
    archive = tmp_path / "out.tar.gz"
    packed = parse_pack_output(run_pack(repo, detect(repo, base), archive, path=str(bin_dir)))
    assert packed.format == "gzip"
    assert archive.read_bytes()[:2] == b"\x1f\x8b"
    assert list(read_members(archive)) == ["a"]


def test_pack_output_must_be_complete() -> None:
    """A pack report without a format, digest or size raises SyncError."""
    with pytest.raises(SyncError):
        parse_pack_output(b"format zstd\nbytes 10\n")


def test_stat_cache_gives_the_same_changes(tmp_path: Path) -> None:
    """With the baseline's index as a stat cache, or a wrong one, the changes are the same."""
    body = b"".join(b"line %d of a file long enough to rename\n" % i for i in range(40))
    repo, base = make_repo(tmp_path, {"a.txt": b"a\n", "b.txt": b"b\n", "old.txt": body})
    cache = tmp_path / "baseline.index"
    shutil.copy(repo / ".git" / "index", cache)
    (repo / "a.txt").write_bytes(b"changed\n")
    (repo / "b.txt").unlink()
    (repo / "old.txt").rename(repo / "new.txt")
    (repo / "c.txt").write_bytes(b"new\n")
    without = detect(repo, base)

    def with_cache() -> Changeset:
        script = detect_script(str(repo), base, str(cache))
        out = subprocess.run(["bash", "-c", script], check=True, capture_output=True, timeout=60)
        return parse_detect_output(out.stdout)

    assert with_cache() == without
    assert {c.path for c in without.changes} == {"a.txt", "b.txt", "new.txt", "c.txt"}
    cache.write_bytes(b"not an index at all")
    assert with_cache() == without  # a broken cache is passed over
    cache.unlink()
    assert with_cache() == without  # a missing cache falls back to hashing everything


def test_detect_output_to_a_file_is_whole_or_absent(tmp_path: Path) -> None:
    """With an output path the detect output lands there whole; a failed run leaves nothing."""
    repo, base = make_repo(tmp_path, {"a.txt": b"a\n"})
    (repo / "a.txt").write_bytes(b"b\n")
    out = tmp_path / "changes.bin"
    script = detect_script(str(repo), base, output_path=str(out))
    ran = subprocess.run(["bash", "-c", script], check=True, capture_output=True)
    assert ran.stdout == b""
    assert parse_detect_output(out.read_bytes()) == detect(repo, base)
    gone = tmp_path / "never.bin"
    failed = subprocess.run(
        ["bash", "-c", detect_script(str(repo), "0" * 40, output_path=str(gone))],
        capture_output=True,
        check=False,
    )
    assert failed.returncode == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["changes.bin", "sandbox"]


def test_pack_writes_its_archive_whole_under_its_name(tmp_path: Path) -> None:
    """The archive appears complete under its name; no part file stays beside it."""
    repo, base = make_repo(tmp_path, {"a": b"a"})
    (repo / "a").write_bytes(b"changed")
    archive = tmp_path / "out" / "changes.tar.zst"
    archive.parent.mkdir()
    packed = parse_pack_output(run_pack(repo, detect(repo, base), archive))
    assert sorted(p.name for p in archive.parent.iterdir()) == [
        "changes.tar.zst",
        "changes.tar.zst.list",
    ]
    assert packed.bytes == archive.stat().st_size
    assert packed.sha256 == hashlib.sha256(archive.read_bytes()).hexdigest()
