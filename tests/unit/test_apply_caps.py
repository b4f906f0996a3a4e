"""Caps on what comes back: total bytes and file count, counted as the archive streams."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from claude_e2b.errors import UnsafeChangeError
from claude_e2b.sync.apply import ApplyPolicy, apply_changes, write_capped
from claude_e2b.sync.apply_archive import ArchiveCaps, read_archive
from claude_e2b.sync.changes import Change, Changeset
from tests.unit.test_apply import archive_of, reasons, regular, write

MIB = 2**20
SMALL = ApplyPolicy(max_total_bytes=MIB, max_files=4)


def sized(path: str, size: int, status: str = "added") -> Change:
    """A change that declares ``size`` bytes of new content."""
    mode = "" if status == "deleted" else "100644"
    return Change(path, status, None, mode, None, False, size, None)  # type: ignore[arg-type]


class Zeros(io.RawIOBase):
    """``size`` zero bytes, produced as read: a bomb never held in memory."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


def bomb(path: Path, members: list[tuple[str, int]]) -> Path:
    """A zstd tar whose members are runs of zeros: kilobytes that expand to ``sizes``."""
    with (
        path.open("wb") as raw,
        zstandard.ZstdCompressor(level=3).stream_writer(raw) as out,
        tarfile.open(fileobj=out, mode="w|", format=tarfile.GNU_FORMAT) as tar,
    ):
        for name, size in members:
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, Zeros(size))
    return path


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    write(root, "keep.txt", b"keep\n")
    return root


def test_declared_total_over_the_cap_refuses_everything(checkout: Path, tmp_path: Path) -> None:
    """Over the total size cap, every change is listed and none is applied, deletions too."""
    archive = archive_of(tmp_path / "a.zst", [regular("big"), regular("ok.txt")])
    changes = [sized("big", 2 * MIB), sized("ok.txt", 1), sized("keep.txt", 0, "deleted")]
    result = apply_changes(checkout, Changeset(tuple(changes)), archive, policy=SMALL)
    why = reasons(result)
    assert set(why) == {"big", "ok.txt", "keep.txt"}
    assert all("over the total size cap (1.0 MB)" in reason for reason in why.values())
    assert "the changes hold 2.0 MB; nothing was applied" in why["ok.txt"]
    assert result.applied == ()
    assert sorted(p.name for p in checkout.iterdir()) == ["keep.txt"]


def test_declared_file_count_over_the_cap_refuses_everything(
    checkout: Path, tmp_path: Path
) -> None:
    """More files to write than max_files refuses the whole changeset."""
    names = [f"f{i}" for i in range(5)]
    archive = archive_of(tmp_path / "a.zst", [regular(name) for name in names])
    changes = Changeset(tuple(sized(name, 1) for name in names))
    result = apply_changes(checkout, changes, archive, policy=SMALL)
    assert set(reasons(result)) == set(names)
    assert "over the file count cap (4): the changes write 5 files" in reasons(result)["f0"]
    assert result.applied == ()


def test_bomb_with_lying_sizes_is_refused_before_staging(tmp_path: Path) -> None:
    """A few KB of zstd that expand to 64 MB, declared as 10 bytes, stage nothing."""
    archive = bomb(tmp_path / "bomb.zst", [("a", 64 * MIB)])
    assert archive.stat().st_size < 64 * 2**10
    staging = tmp_path / "staging"
    staging.mkdir()
    caps = ArchiveCaps(max_file_bytes=128 * MIB, max_total_bytes=MIB, max_files=4)
    with pytest.raises(UnsafeChangeError, match=r"more than 1\.0 MB of new content"):
        read_archive(archive, {"a": sized("a", 10)}, staging, caps)
    assert list(staging.iterdir()) == []


def test_many_small_members_stop_at_the_total_cap(tmp_path: Path) -> None:
    """Members each under the per-file cap stop being staged once the total would pass the cap."""
    names = [f"m{i}" for i in range(8)]
    archive = bomb(tmp_path / "bomb.zst", [(name, 300 * 2**10) for name in names])
    staging = tmp_path / "staging"
    staging.mkdir()
    caps = ArchiveCaps(max_file_bytes=MIB, max_total_bytes=MIB, max_files=10)
    with pytest.raises(UnsafeChangeError):
        read_archive(archive, {n: sized(n, 1) for n in names}, staging, caps)
    assert sum(p.stat().st_size for p in staging.iterdir()) <= MIB


def test_unannounced_bytes_count_against_the_stream(tmp_path: Path) -> None:
    """Data nobody staged (a stray or refused member) is still bounded: the stream is capped."""
    archive = bomb(tmp_path / "bomb.zst", [("stray", 512 * MIB)])
    caps = ArchiveCaps(max_file_bytes=MIB, max_total_bytes=MIB, max_files=4)
    with pytest.raises(UnsafeChangeError, match="expands past the caps"):
        read_archive(archive, {}, tmp_path, caps)


def test_member_count_over_the_cap(tmp_path: Path) -> None:
    """More members than max_files ends the read, even when each is empty."""
    archive = bomb(tmp_path / "many.zst", [(f"e{i}", 0) for i in range(6)])
    caps = ArchiveCaps(max_file_bytes=MIB, max_total_bytes=MIB, max_files=4)
    with pytest.raises(UnsafeChangeError, match="more than 4 members"):
        read_archive(archive, {}, tmp_path, caps)


def test_huge_pax_header_is_not_read_whole(tmp_path: Path) -> None:
    """A pax header of 8 MB (tarfile would read it into memory) trips the stream cap."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("p")
        info.pax_headers = {"comment": "x" * (8 * MIB)}
        tar.addfile(info, io.BytesIO(b""))
    archive = tmp_path / "pax.zst"
    archive.write_bytes(zstandard.ZstdCompressor().compress(buffer.getvalue()))
    caps = ArchiveCaps(max_file_bytes=MIB, max_total_bytes=MIB, max_files=4)
    with pytest.raises(UnsafeChangeError, match="expands past the caps"):
        read_archive(archive, {}, tmp_path, caps)


def test_bomb_through_apply_lists_every_change(checkout: Path, tmp_path: Path) -> None:
    """Through apply_changes, a bomb refuses the whole changeset with the cap in the reason."""
    archive = bomb(tmp_path / "bomb.zst", [("ok.txt", 3), ("a", 64 * MIB)])
    changes = Changeset((sized("ok.txt", 3), sized("a", 10)))
    policy = ApplyPolicy(max_file_bytes=128 * MIB, max_total_bytes=MIB, max_files=4)
    result = apply_changes(checkout, changes, archive, policy=policy)
    why = reasons(result)
    assert set(why) == {"ok.txt", "a"}
    assert "over the caps (1.0 MB, 4 files)" in why["ok.txt"]
    assert why["ok.txt"].endswith("nothing was applied")
    assert not (checkout / "ok.txt").exists()


def test_file_over_the_per_file_cap_is_refused_alone(checkout: Path, tmp_path: Path) -> None:
    """One file over max_file_bytes is refused; the ordinary change next to it is applied."""
    archive = bomb(tmp_path / "a.zst", [("big", 2 * MIB), ("ok.txt", 3)])
    changes = Changeset((sized("big", 10), sized("ok.txt", 3)))
    policy = ApplyPolicy(max_file_bytes=MIB)
    result = apply_changes(checkout, changes, archive, policy=policy)
    assert reasons(result) == {"big": f"{2 * MIB} bytes, over the limit of {MIB}"}
    assert [c.path for c in result.applied] == ["ok.txt"]


def test_a_changeset_right_at_the_caps_is_applied(checkout: Path, tmp_path: Path) -> None:
    """Incompressible files filling the caps apply, and their archive fits the download cap."""
    policy = ApplyPolicy(max_total_bytes=256 * 2**10, max_files=4)
    data = {f"long-name-{'x' * 200}-{i}": os.urandom(64 * 2**10) for i in range(4)}
    archive = archive_of(tmp_path / "a.zst", [regular(n, d) for n, d in data.items()])
    assert archive.stat().st_size <= policy.max_archive_bytes
    changes = Changeset(tuple(sized(n, len(d)) for n, d in data.items()))
    result = apply_changes(checkout, changes, archive, policy=policy)
    assert result.skipped == ()
    assert all((checkout / n).read_bytes() == d for n, d in data.items())


def chunks(pieces: list[bytes], closed: list[bool]) -> Iterator[bytes]:
    try:
        yield from pieces
    finally:
        closed.append(True)


def test_write_capped_streams_to_disk(tmp_path: Path) -> None:
    """Chunks under the limit land in the file; the count is returned."""
    closed: list[bool] = []
    target = tmp_path / "archive"
    assert write_capped(chunks([b"ab", b"cd"], closed), target, 4) == 4
    assert target.read_bytes() == b"abcd"
    assert closed == [True]


def test_write_capped_stops_the_download_at_the_limit(tmp_path: Path) -> None:
    """Past the limit the download stops, the stream is closed and the partial file removed."""
    closed: list[bool] = []
    target = tmp_path / "archive"
    endless = chunks([b"x" * 1000] * 1000, closed)
    with pytest.raises(UnsafeChangeError, match=r"over 2\.0 KB"):
        write_capped(endless, target, 2048)
    assert closed == [True]
    assert not target.exists()


def test_download_cap_leaves_room_for_the_tar_around_the_caps() -> None:
    """The download cap is above the stream cap, which is above the content cap."""
    policy = ApplyPolicy()
    assert policy.max_archive_bytes > policy.caps.stream_bytes > policy.max_total_bytes
