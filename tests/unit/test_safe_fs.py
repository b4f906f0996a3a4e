"""safe_fs: every path walked by descriptors from the root; no link or race leads out of it."""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import pytest
from pytest_mock import MockerFixture

from claude_e2b.sandbox.localbox import safe_fs
from claude_e2b.sandbox.localbox.safe_fs import NotRegularFileError, PathEscapeError, SafeRoot

SECRET = b"HOST-SECRET"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


class Flipper:
    """Swaps two names (a directory and a symlink) atomically, as fast as it can, until stopped."""

    def __init__(self, one: Path, other: Path) -> None:
        self._one = os.fsencode(one)
        self._other = os.fsencode(other)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.flips = 0
        self._exchange = ctypes.CDLL(None, use_errno=True).renameat2
        self._exchange.argtypes = [ctypes.c_int, ctypes.c_char_p] * 2 + [ctypes.c_uint]

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._exchange(_AT_FDCWD, self._one, _AT_FDCWD, self._other, _RENAME_EXCHANGE):
                raise OSError(ctypes.get_errno(), "renameat2 failed")
            self.flips += 1

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        assert not self._thread.is_alive()


def outside_dir(base: Path) -> Path:
    """A host directory outside every root, holding a secret nothing may read or change."""
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    return outside


def assert_untouched(outside: Path) -> None:
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_bytes() == SECRET


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[Path]:
    outside = outside_dir(tmp_path)
    yield outside
    assert_untouched(outside)


@pytest.fixture
def root(tmp_path: Path) -> Iterator[SafeRoot]:
    (tmp_path / "root/home/user").mkdir(parents=True)
    safe = SafeRoot(tmp_path / "root")
    yield safe
    safe.close()


def home(root: SafeRoot) -> Path:
    return root.path / "home/user"


def write(root: SafeRoot, path: str, data: bytes, owner: int | None = None) -> str:
    with root.locate(path, make_parents=True, owner=owner) as entry:
        with safe_fs.open_write(entry, owner) as handle:
            handle.write(data)
        return entry.path


def read(root: SafeRoot, path: str) -> bytes:
    with root.locate(path) as entry, safe_fs.open_read(entry) as handle:
        return handle.read()


def test_write_then_read_creates_parents(root: SafeRoot) -> None:
    """A write makes the missing directories; the file is where the path says, and reads back."""
    assert write(root, "/home/user/a/b/c.txt", b"data") == "/home/user/a/b/c.txt"
    assert (home(root) / "a/b/c.txt").read_bytes() == b"data"
    assert read(root, "/home/user/a/b/c.txt") == b"data"


def test_a_deep_new_path_is_made_in_full(root: SafeRoot) -> None:
    """Making more directories than the link limit in one write is fine."""
    deep = "/".join(["d"] * (safe_fs.MAX_HOPS + 20))
    write(root, f"/home/user/{deep}/f.txt", b"deep")
    assert (home(root) / deep / "f.txt").read_bytes() == b"deep"


def test_a_directory_that_keeps_vanishing_ends_the_walk(
    root: SafeRoot, mocker: MockerFixture
) -> None:
    """A parent removed as fast as it is made gives up with PathEscapeError, not a hang."""
    mkdir = mocker.patch.object(safe_fs.os, "mkdir")
    with pytest.raises(PathEscapeError, match="vanishing"):
        write(root, "/home/user/new/f.txt", b"")
    assert mkdir.call_count == safe_fs.MAX_MKDIRS


def test_an_absolute_link_resolves_inside_the_root(root: SafeRoot, outside: Path) -> None:
    """A link to a host path means that path under the root: the host's file is never read."""
    (home(root) / "abs").symlink_to(outside / "secret.txt")
    with pytest.raises(FileNotFoundError):
        read(root, "/home/user/abs")
    inside = root.path / str(outside).lstrip("/") / "secret.txt"
    inside.parent.mkdir(parents=True)
    inside.write_bytes(b"inside")
    assert read(root, "/home/user/abs") == b"inside"


def test_a_relative_link_above_the_root_is_refused(root: SafeRoot, outside: Path) -> None:
    """A link climbing out with ../ fails reads, writes and walks through it."""
    (home(root) / "up").symlink_to(f"../../../../../../../..{outside}")
    for path in ["/home/user/up/secret.txt", "/home/user/up/new.txt"]:
        with pytest.raises(PathEscapeError):
            read(root, path)
        with pytest.raises(PathEscapeError):
            write(root, path, b"x")


def test_a_directory_linked_to_etc_is_not_the_hosts(root: SafeRoot) -> None:
    """A component linked to /etc is the root's /etc: no host file is read, none is written."""
    (home(root) / "d").symlink_to("/etc")
    with pytest.raises(FileNotFoundError):
        read(root, "/home/user/d/passwd")
    name = f"safe-fs-test-{os.getpid()}"
    assert write(root, f"/home/user/d/{name}", b"x") == f"/etc/{name}"
    assert (root.path / "etc" / name).read_bytes() == b"x"
    assert not Path("/etc", name).exists()


def test_a_directory_linked_to_a_host_dir_is_not_followed_there(
    root: SafeRoot, outside: Path
) -> None:
    """Writes through a link to a host directory land under the root, at that path."""
    (home(root) / "t").symlink_to(outside)
    write(root, "/home/user/t/new.txt", b"new")
    assert (root.path / str(outside).lstrip("/") / "new.txt").read_bytes() == b"new"


def test_links_inside_the_root_are_followed(root: SafeRoot) -> None:
    """Relative, chained and absolute links within the sandbox work as the sandbox sees them."""
    write(root, "/home/user/notes/a.txt", b"alpha")
    (home(root) / "alias").symlink_to("notes/a.txt")
    (home(root) / "nd").symlink_to("../user/notes")
    (home(root) / "chain").symlink_to("/home/user/nd/../alias")
    assert read(root, "/home/user/alias") == b"alpha"
    assert read(root, "/home/user/nd/a.txt") == b"alpha"
    assert read(root, "/home/user/chain") == b"alpha"
    assert write(root, "/home/user/alias", b"beta") == "/home/user/notes/a.txt"
    assert (home(root) / "notes/a.txt").read_bytes() == b"beta"


def test_a_link_to_dotdot_ends_at_an_open_directory(root: SafeRoot) -> None:
    """A path resolving to a directory through '..' is that directory, open by descriptor."""
    (home(root) / "up").symlink_to("..")
    with root.locate("/home/user/up") as entry, safe_fs.open_dir(entry) as fd:
        assert entry.path == "/home"
        assert safe_fs.names(fd) == ["user"]


def test_link_loops_are_refused(root: SafeRoot) -> None:
    """A loop of links ends with PathEscapeError, not a hang."""
    (home(root) / "a").symlink_to("b")
    (home(root) / "b").symlink_to("a")
    with pytest.raises(PathEscapeError, match="too many"):
        read(root, "/home/user/a")


@pytest.mark.parametrize("path", ["/a/../b", "home/user", "/a/./b", "/a\0b"])
def test_unnormalised_paths_are_refused(root: SafeRoot, path: str) -> None:
    """Only absolute, normalised paths are walked."""
    with pytest.raises(PathEscapeError), root.locate(path):
        pass


def test_a_file_used_as_a_directory(root: SafeRoot) -> None:
    """A regular file on the way is NotADirectoryError, for reads and for writes."""
    write(root, "/home/user/f", b"")
    with pytest.raises(NotADirectoryError):
        read(root, "/home/user/f/x")
    with pytest.raises(NotADirectoryError):
        write(root, "/home/user/f/x", b"")


def test_removing_a_link_leaves_its_target(root: SafeRoot, outside: Path) -> None:
    """follow_last=False works on the link itself; a tree with links in it is removed alone."""
    (home(root) / "t").symlink_to(outside)
    (home(root) / "tree/sub").mkdir(parents=True)
    (home(root) / "tree/sub/link").symlink_to(outside)
    (home(root) / "tree/sub/rel").symlink_to("../../../../..")
    for path in ["/home/user/t", "/home/user/tree"]:
        with root.locate(path, follow_last=False) as entry:
            safe_fs.remove(entry)
    assert sorted(p.name for p in home(root).iterdir()) == []


def test_renaming_a_link_moves_the_link(root: SafeRoot, outside: Path) -> None:
    """A renamed link keeps pointing where it did; its target stays in place."""
    (home(root) / "t").symlink_to(outside)
    with (
        root.locate("/home/user/t", follow_last=False) as source,
        root.locate("/home/user/moved/t", follow_last=False, make_parents=True) as target,
    ):
        safe_fs.rename(source, target)
    assert (home(root) / "moved/t").readlink() == outside


def test_the_root_cannot_be_removed_or_moved(root: SafeRoot) -> None:
    """'/' resolves to the root itself, which remove and rename refuse."""
    with root.locate("/", follow_last=False) as entry:
        assert (entry.name, entry.path) == (".", "/")
        with pytest.raises(PathEscapeError):
            safe_fs.remove(entry)
        with pytest.raises(PathEscapeError):
            safe_fs.rename(entry, entry)
    assert home(root).is_dir()


@pytest.mark.timeout(20)
def test_a_fifo_is_refused_without_blocking(root: SafeRoot) -> None:
    """Reading or writing a FIFO nobody opened is an error at once, never a hang."""
    os.mkfifo(home(root) / "pipe")
    with pytest.raises(NotRegularFileError):
        read(root, "/home/user/pipe")
    with pytest.raises(NotRegularFileError):
        write(root, "/home/user/pipe", b"x")


def test_a_directory_is_not_a_file(root: SafeRoot) -> None:
    """Reading or writing a directory raises IsADirectoryError."""
    with pytest.raises(IsADirectoryError):
        read(root, "/home/user")
    with pytest.raises(IsADirectoryError):
        write(root, "/home/user", b"x")


def test_a_leaf_swapped_for_a_link_after_the_walk(root: SafeRoot, outside: Path) -> None:
    """The final open never follows a link put there after the walk checked the name."""
    write(root, "/home/user/f.txt", b"mine")
    with root.locate("/home/user/f.txt") as entry:
        (home(root) / "f.txt").unlink()
        (home(root) / "f.txt").symlink_to(outside / "secret.txt")
        with pytest.raises(PathEscapeError):
            safe_fs.open_write(entry, None)
        with pytest.raises(PathEscapeError):
            safe_fs.open_read(entry)


def test_a_directory_swapped_for_a_link_after_the_walk(root: SafeRoot, outside: Path) -> None:
    """The walk holds the directory, not its name: a later swap cannot redirect the write."""
    write(root, "/home/user/d/keep", b"")
    with root.locate("/home/user/d/f.txt") as entry:
        (home(root) / "d").rename(home(root) / "d.moved")
        (home(root) / "d").symlink_to(outside)
        with safe_fs.open_write(entry, None) as handle:
            handle.write(b"pinned")
    assert (home(root) / "d.moved/f.txt").read_bytes() == b"pinned"


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to another uid needs root")
def test_new_directories_and_files_go_to_the_owner(root: SafeRoot) -> None:
    """Each directory made on the way and the file belong to ``owner``; existing ones do not."""
    before = home(root).stat().st_uid
    write(root, "/home/user/x/y/z.txt", b"", owner=4242)
    owners = [(home(root) / p).stat().st_uid for p in ["x", "x/y", "x/y/z.txt"]]
    assert owners == [4242, 4242, 4242]
    assert home(root).stat().st_uid == before
    with root.locate("/home/user/x/new") as entry:
        safe_fs.make_dir(entry, 4343)
    assert (home(root) / "x/new").stat().st_uid == 4343


@pytest.mark.parametrize("kind", ["absolute", "relative"])
def test_a_directory_flipping_to_a_link_never_leads_out(
    root: SafeRoot, outside: Path, kind: str
) -> None:
    """200 writes and reads while a directory and a link out swap places: nothing leaves."""
    (home(root) / "d").mkdir()
    (home(root) / "d/secret.txt").write_bytes(b"sandbox")
    target = str(outside) if kind == "absolute" else f"../../../../../../..{outside}"
    (home(root) / "d.swap").symlink_to(target)
    seen: set[bytes] = set()
    with Flipper(home(root) / "d", home(root) / "d.swap") as flipper:
        for i in range(200):
            with contextlib.suppress(PathEscapeError):
                write(root, "/home/user/d/f.txt", b"%d" % i)
            try:
                seen.add(read(root, "/home/user/d/secret.txt"))
            except (PathEscapeError, FileNotFoundError):
                seen.add(b"refused")
    assert flipper.flips > 0
    assert SECRET not in seen
    assert b"sandbox" in seen
    assert_untouched(outside)
