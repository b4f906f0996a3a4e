"""The scan as it goes: scan_tree's progress, and ScreeningUnderway clearing files early.

Files may go up before the whole tree is scanned, but only once they are: progress
must never run ahead of the scan, and a waiter must wake as soon as its file is
scanned, not at the end.  Everything here scans real files with the real scanner.
"""

from __future__ import annotations

import errno
import os
import random
import re
import stat
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from claude_e2b.errors import SyncError
from claude_e2b.sync import secrets
from claude_e2b.sync.screen import (
    ScreenBlockedError,
    ScreeningUnderway,
    SecretsPolicy,
    screen,
)
from claude_e2b.sync.secrets import SecretHit, SecretScanner, scan_tree
from claude_e2b.sync.select import SelectedFile, Selection
from tests.unit.secret_corpus import POSITIVES, RUN_SECRET, filler_line, write_tree

SCANNER = SecretScanner([RUN_SECRET])
WAIT_S = 30  # what "returns" means here: long enough for a slow machine, never forever


def token(rule: str, seed: int) -> str:
    """A fake secret of this rule that the scanner finds."""
    return POSITIVES[rule][0](random.Random(seed)).value


FILLER = "".join(f"{filler_line(random.Random(n))}\n" for n in range(1000))


def filler(size: int) -> str:
    """size bytes of ordinary source lines, no secret among them."""
    return (FILLER * (size // len(FILLER) + 1))[:size]


def selection_of(root: Path, rels: list[str]) -> Selection:
    """The selection select_files would make of these paths, in this order."""
    files = []
    for rel in rels:
        st = (root / rel).lstat()
        files.append(SelectedFile(rel, st.st_size, stat.S_ISLNK(st.st_mode), st.st_mode))
    return Selection(root, tuple(files), (), (), ())


class Progress:
    """Records progress calls, and fails the scan if two ever overlap."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, list[SecretHit]]] = []
        self.busy = threading.Lock()

    def __call__(self, n: int, hits: list[SecretHit]) -> None:
        assert self.busy.acquire(blocking=False), "two progress calls at once"
        try:
            self.calls.append((n, hits))
        finally:
            self.busy.release()


class RefusingOs:
    """The os module, except that opening one file fails as for a file without access."""

    def __init__(self, refused: str) -> None:
        self.refused = refused

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    def open(self, path: str, flags: int, mode: int = 0o777) -> int:
        if path.endswith(f"/{self.refused}"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return os.open(path, flags, mode)


SMALL = {"_REGION": 8 * 1024, "_REGION_BUFFER": 16 * 1024, "_WINDOW": 32 * 1024}


def use_small_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small regions and windows: many regions, large files handed alone and in windows."""
    for name, value in SMALL.items():
        monkeypatch.setattr(secrets, name, value)


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, list[str]]:
    """600 files of many kinds with secrets planted, large ones, and paths that are no files."""
    root = tmp_path / "tree"
    rels = write_tree(root, random.Random(23), files=600)
    npm = token("npm-token", 1)
    big = {"big/medium.txt": 40_000, "big/large.txt": 1_200_000, "big/past.txt": 3_000_000}
    for rel, size in big.items():  # past a small window; past a region's buffer
        (root / rel).parent.mkdir(exist_ok=True)
        (root / rel).write_text(f"{filler(size)}\nNPM={npm}\nk={RUN_SECRET}\n")
    (root / "link").symlink_to("big/medium.txt")
    os.mkfifo(root / "fifo")
    extra = [*big, "link", "fifo", "d0", "gone.txt"]
    return root, sorted([*rels, *extra])


def prefix_hits(expected: list[SecretHit], rels: list[str], n: int) -> list[SecretHit]:
    """The hits among the first n paths."""
    first = set(rels[:n])
    return [hit for hit in expected if hit.path in first]


@pytest.mark.parametrize("workers", [1, 4])
@pytest.mark.parametrize("small", [False, True], ids=["real-buffers", "small-buffers"])
def test_progress_tells_each_prefix_with_its_hits(
    tree: tuple[Path, list[str]], workers: int, small: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """n grows to every path; each call's hits are exactly those of the first n; calls are few."""
    root, rels = tree
    if small:
        use_small_buffers(monkeypatch)
    expected = scan_tree(SCANNER, root, rels, workers=workers)
    assert len(expected) > 200
    progress = Progress()
    assert scan_tree(SCANNER, root, rels, workers=workers, progress=progress) == expected
    ns = [n for n, _ in progress.calls]
    assert ns == sorted(ns)
    assert ns[-1] == len(rels)
    for n, hits in progress.calls:
        assert hits == prefix_hits(expected, rels, n)
    assert len({id(hits) for _, hits in progress.calls}) == len(ns)  # a fresh list each time
    region = SMALL["_REGION"] if small else secrets._REGION
    size = sum((root / rel).stat().st_size for rel in rels if (root / rel).is_file())
    assert len(ns) <= 2 * (size // region) + 8  # about one per region, not one per file
    assert len(ns) >= (20 if small else 3)  # the scan was told as it went, not only at the end


@pytest.mark.parametrize("rels", [[], ["gone.txt", "d"]], ids=["no-path", "no-file"])
def test_progress_is_told_once_with_every_path_when_nothing_is_scanned(
    tmp_path: Path, rels: list[str]
) -> None:
    (tmp_path / "d").mkdir()
    progress = Progress()
    assert scan_tree(SCANNER, tmp_path, rels, progress=progress) == []
    assert progress.calls == [(len(rels), [])]


@pytest.mark.parametrize("workers", [1, 4])
def test_progress_stops_short_of_an_unreadable_file(
    tree: tuple[Path, list[str]], workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing is told of the file that cannot be read nor past it; its error comes out."""
    root, rels = tree
    use_small_buffers(monkeypatch)
    expected = scan_tree(SCANNER, root, rels, workers=workers)
    refused = [r for r in rels if (root / r).is_file() and not (root / r).is_symlink()][400]
    monkeypatch.setattr(secrets, "os", RefusingOs(refused))
    progress = Progress()
    with pytest.raises(SyncError, match=f"cannot read {re.escape(refused)} to scan it"):
        scan_tree(SCANNER, root, rels, workers=workers, progress=progress)
    ns = [n for n, _ in progress.calls]
    assert ns == sorted(ns)
    assert 0 < ns[-1] <= rels.index(refused)
    for n, hits in progress.calls:
        assert hits == prefix_hits(expected, rels, n)


# --- ScreeningUnderway -----------------------------------------------------------------


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    """Threads to wait in, so that a waiter that never wakes fails the test, not hangs it."""
    with ThreadPoolExecutor(2) as threads:
        yield threads


class HeldScanner:
    """The real scanner, except that scanning the named file waits until released."""

    def __init__(self, scanner: SecretScanner, held: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.held, self.started, self.release = held, threading.Event(), threading.Event()
        self.scan_bytes = scanner.scan_bytes
        monkeypatch.setattr(scanner, "scan_bytes", self._scan_bytes)

    def _scan_bytes(self, data: bytes, path: str) -> list[SecretHit]:
        if path == self.held:
            self.started.set()
            assert self.release.wait(WAIT_S)
        return self.scan_bytes(data, path)


@pytest.fixture
def gated_repo(tmp_path: Path) -> tuple[Path, list[str]]:
    """Early files, one large enough to close their region, a symlink, a tail with a secret.

    Every file before the symlink goes to the workers in regions of their own, so
    they can be scanned while the tail's scan is held back.
    """
    root = tmp_path / "repo"
    root.mkdir()
    (root / "a_early.py").write_text(f'AWS_KEY = "{token("aws-access-key-id", 2)}"\n')
    rels = ["a_early.py"]
    for n in range(80):
        rel = f"b_files/f{n:03}.txt"
        (root / rel).parent.mkdir(exist_ok=True)
        (root / rel).write_text(filler(3000 + n))
        rels.append(rel)
    (root / "c_big.txt").write_text(filler(300_000))  # past a region: handed at once
    (root / "d_link").symlink_to("a_early.py")
    (root / "e_tail.env").write_text(f"GITHUB_TOKEN={token('github-token', 3)}\n")
    return root, [*rels, "c_big.txt", "d_link", "e_tail.env"]


def test_cleared_wakes_when_its_file_is_scanned_not_at_the_end(
    gated_repo: tuple[Path, list[str]], pool: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the tail's scan is held, earlier files and a symlink clear; the tail waits."""
    root, rels = gated_repo
    scanner = SecretScanner()
    held = HeldScanner(scanner, "e_tail.env", monkeypatch)
    try:
        with ScreeningUnderway(selection_of(root, rels), scanner, "exclude") as underway:
            early = pool.submit(underway.cleared, "a_early.py").result(WAIT_S)
            assert early == {"a_early.py"}
            assert pool.submit(underway.cleared, "d_link").result(WAIT_S) == {"a_early.py"}
            assert held.started.wait(WAIT_S)  # the tail's scan is under way, and held
            tail = pool.submit(underway.cleared, "e_tail.env")
            with pytest.raises(TimeoutError):
                tail.result(0.3)
            assert not held.release.is_set()
            held.release.set()
            assert tail.result(WAIT_S) == {"a_early.py", "e_tail.env"}
            assert underway.result() == screen(selection_of(root, rels), scanner, "exclude")
    finally:
        held.release.set()


@pytest.fixture
def planted_repo(tmp_path: Path) -> tuple[Path, list[str]]:
    """Files of many kinds with secrets planted, symlinks among them."""
    root = tmp_path / "repo"
    rels = write_tree(root, random.Random(31), files=300)
    (root / "link-in").symlink_to("d0")
    (root / "link-out").symlink_to(tmp_path)
    return root, sorted([*rels, "link-in", "link-out"], key=os.fsencode)


def cleared_all(underway: ScreeningUnderway, rels: list[str]) -> list[frozenset[str]]:
    """What cleared says for each path, in order."""
    return [underway.cleared(rel) for rel in rels]


def test_exclude_keeps_back_every_file_with_a_hit(planted_repo: tuple[Path, list[str]]) -> None:
    root, rels = planted_repo
    selection = selection_of(root, rels)
    with ScreeningUnderway(selection, SCANNER, "exclude") as underway:
        held = cleared_all(underway, rels)
        result = underway.result()
    hit_paths = {hit.path for hit in result.hits}
    assert len(hit_paths) > 50
    assert held[-1] == hit_paths
    for rel, kept_back in zip(rels, held, strict=True):
        assert kept_back <= hit_paths
        if rel in hit_paths:  # its own hits are known once it is cleared
            assert rel in kept_back
    assert result == screen(selection, SCANNER, "exclude")
    assert not hit_paths & {f.path for f in result.selection.files}


def test_warn_keeps_back_nothing(planted_repo: tuple[Path, list[str]]) -> None:
    root, rels = planted_repo
    selection = selection_of(root, rels)
    with ScreeningUnderway(selection, SCANNER, "warn") as underway:
        assert set(cleared_all(underway, rels)) == {frozenset()}
        result = underway.result()
    assert result.hits
    assert not result.blocked
    assert result == screen(selection, SCANNER, "warn")


def test_fail_raises_from_cleared_and_result_says_blocked(
    planted_repo: tuple[Path, list[str]],
) -> None:
    root, rels = planted_repo
    selection = selection_of(root, rels)
    with ScreeningUnderway(selection, SCANNER, "fail") as underway:
        with pytest.raises(ScreenBlockedError, match="the plan says `secrets: fail`") as raised:
            underway.cleared(rels[-1])
        result = underway.result()
    assert isinstance(raised.value, SyncError)
    assert result.blocked
    assert result == screen(selection, SCANNER, "fail")


@pytest.mark.parametrize("policy", ["exclude", "fail", "warn"])
def test_result_equals_screen(planted_repo: tuple[Path, list[str]], policy: SecretsPolicy) -> None:
    root, rels = planted_repo
    selection = selection_of(root, rels)
    with ScreeningUnderway(selection, SCANNER, policy) as underway:
        assert underway.result() == screen(selection, SCANNER, policy)


def test_clean_files_clear_with_nothing_kept_back_under_any_policy(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("nothing here\n")
    (tmp_path / "b").symlink_to("a.txt")
    selection = selection_of(tmp_path, ["a.txt", "b"])
    for policy in ("exclude", "fail", "warn"):
        with ScreeningUnderway(selection, SCANNER, policy) as underway:
            assert cleared_all(underway, ["b", "a.txt"]) == [frozenset(), frozenset()]
            assert underway.result() == screen(selection, SCANNER, policy)


def test_scan_error_comes_out_of_cleared_and_result(
    planted_repo: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, rels = planted_repo
    refused = [r for r in rels if not (root / r).is_symlink()][150]
    monkeypatch.setattr(secrets, "os", RefusingOs(refused))
    underway = ScreeningUnderway(selection_of(root, rels), SCANNER, "exclude")
    with pytest.raises(SyncError, match=f"cannot read {re.escape(refused)}"):
        underway.cleared(refused)
    with pytest.raises(SyncError, match=f"cannot read {re.escape(refused)}"):
        underway.cleared(rels[-1])
    with pytest.raises(SyncError, match=f"cannot read {re.escape(refused)}"):
        underway.result()
    underway.close()
    with underway:
        pass  # leaving it, too, does not raise


def test_unknown_path_is_a_value_error(planted_repo: tuple[Path, list[str]]) -> None:
    root, rels = planted_repo
    with ScreeningUnderway(selection_of(root, rels), SCANNER, "warn") as underway:
        with pytest.raises(ValueError, match="not a selected file"):
            underway.cleared("no/such/file.txt")
        underway.result()


def test_waiters_all_wake(planted_repo: tuple[Path, list[str]], pool: ThreadPoolExecutor) -> None:
    """Several threads waiting on different paths all return."""
    root, rels = planted_repo
    with ScreeningUnderway(selection_of(root, rels), SCANNER, "warn") as underway:
        waits: list[Future[frozenset[str]]] = [
            pool.submit(underway.cleared, rel) for rel in (rels[-1], rels[0])
        ]
        assert [wait.result(WAIT_S) for wait in waits] == [frozenset(), frozenset()]
