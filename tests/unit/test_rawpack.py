"""zpacks: stored-object packs written from the work tree, read back by real git."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from claude_e2b.sync.rawpack import BlobMismatchError, RawBlob, object_header, write_zpack
from tests.gitrepo import commit_all, git, make_repo

# Sizes around the 65,535-byte stored block and git's header size steps.
SIZES = (0, 1, 15, 16, 127, 2048, 65_534, 65_535, 65_536, 131_070, 200_001)


def blobs_of(root: Path) -> list[RawBlob]:
    found = []
    for line in git(root, "ls-files", "-s", "-z").split("\0"):
        if not line:
            continue
        meta, path = line.split("\t", 1)
        _mode, name, _stage = meta.split()
        full = root / path
        size = len(os.fsencode(full.readlink())) if full.is_symlink() else full.stat().st_size
        found.append(RawBlob(name, full, size))
    return found


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    files = {f"data/{size}.bin": os.urandom(size) for size in SIZES}
    files["text.txt"] = b"line\n" * 50_000
    root = make_repo(tmp_path / "repo", files)
    (root / "link").symlink_to("data/1.bin")
    commit_all(root, "init")
    return root


def unpack(zpack_path: Path, dest: Path) -> Path:
    pack = dest / "x.pack"
    subprocess.run(["zstd", "-dqf", str(zpack_path), "-o", str(pack)], check=True, timeout=60)
    return pack


def test_git_reads_a_zpack_and_its_index_is_gits_own(repo: Path, tmp_path: Path) -> None:
    """index-pack makes the same index byte for byte; every object reads back whole."""
    blobs = blobs_of(repo)
    zpack = write_zpack(blobs, tmp_path / "out")
    pack = unpack(zpack.pack_zst, tmp_path)
    assert pack.stat().st_size == zpack.raw_bytes
    (tmp_path / "x.idx").write_bytes(zpack.idx.read_bytes())
    subprocess.run(["git", "verify-pack", str(tmp_path / "x.idx")], check=True, timeout=60)
    subprocess.run(
        ["git", "index-pack", "-o", str(tmp_path / "git.idx"), str(pack)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    assert (tmp_path / "git.idx").read_bytes() == zpack.idx.read_bytes()
    assert zpack.name == "pack-" + pack.read_bytes()[-20:].hex()
    target = make_repo(tmp_path / "target", {})
    packs = target / ".git/objects/pack"
    os.link(pack, packs / f"{zpack.name}.pack")
    (packs / f"{zpack.name}.idx").write_bytes(zpack.idx.read_bytes())
    for blob in blobs:
        want = (
            os.fsencode(blob.path.readlink()) if blob.path.is_symlink() else blob.path.read_bytes()
        )
        got = subprocess.run(
            ["git", "-C", str(target), "cat-file", "blob", blob.name],
            check=True, capture_output=True, timeout=60,
        ).stdout  # fmt: skip
        assert got == want, blob.path


def test_a_zpack_is_smaller_than_its_content_on_text(repo: Path, tmp_path: Path) -> None:
    text = [b for b in blobs_of(repo) if b.path.name == "text.txt"]
    zpack = write_zpack(text, tmp_path / "out")
    assert zpack.pack_zst.stat().st_size < text[0].size / 50


@pytest.mark.parametrize("change", ["edit", "grow", "shrink"])
def test_a_file_changed_since_the_split_is_refused(repo: Path, tmp_path: Path, change: str) -> None:
    blobs = blobs_of(repo)
    target = repo / "data/2048.bin"
    content = target.read_bytes()
    new = {
        "edit": bytes([content[0] ^ 1]) + content[1:],
        "grow": content + b"x",
        "shrink": content[:-1],
    }[change]
    target.write_bytes(new)
    with pytest.raises(BlobMismatchError, match=r"2048\.bin"):
        write_zpack(blobs, tmp_path / "out")
    assert not list((tmp_path / "out").glob("*.zst"))
    assert not (tmp_path / "out/zpack.partial").exists()


@pytest.mark.parametrize("size", [0, 15, 16, 2**11, 2**20 - 1, 2**35 + 7])
def test_object_header_matches_gits_varint(size: int) -> None:
    """Type in bits 4-6 of the first byte, the size 4 bits then 7 bits at a time."""
    header = object_header(3, size)
    assert (header[0] >> 4) & 7 == 3
    decoded, shift = header[0] & 0x0F, 4
    for byte in header[1:]:
        decoded |= (byte & 0x7F) << shift
        shift += 7
    assert decoded == size
    assert all(b & 0x80 for b in header[:-1])
    assert not header[-1] & 0x80
