"""The local sandbox's file calls through the real e2b SDK, against a hostile sandbox's links.

The server works as root on the host (in CI); the sandbox may point any name at a
host file or swap a directory for a link at any moment. Whatever it does, no host
file outside the sandbox's root is read, written, listed, stat'ed or removed.
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2b import FileType, Sandbox
from e2b.exceptions import FileNotFoundException, InvalidArgumentException

from claude_e2b.sandbox.localbox import LocalBoxHandle
from tests.unit.test_safe_fs import SECRET, Flipper, assert_untouched, outside_dir

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the local sandbox needs Linux")


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[Path]:
    outside = outside_dir(tmp_path)
    yield outside
    assert_untouched(outside)


def sh(sandbox: Sandbox, command: str) -> str:
    """Run a command in the sandbox (as "user", like the agent) and return its stdout."""
    return sandbox.commands.run(command, timeout=30).stdout


def test_a_link_to_a_host_directory_means_that_path_in_the_root(
    sdk_sandbox: Sandbox, localbox: LocalBoxHandle, outside: Path
) -> None:
    """Read, list, write, rename, mkdir and remove through a link out all stay inside the root."""
    sh(sdk_sandbox, f"ln -s {outside} ~/abs && ln -s {outside}/secret.txt ~/file && echo x >~/x")
    files = sdk_sandbox.files
    with pytest.raises(FileNotFoundException):
        files.read("/home/user/abs/secret.txt")
    with pytest.raises(FileNotFoundException):
        files.read("/home/user/file")
    with pytest.raises(FileNotFoundException):
        files.list("/home/user/abs")
    with pytest.raises(FileNotFoundException):
        files.remove("/home/user/abs/secret.txt")
    files.write("/home/user/abs/new.txt", "new")
    files.rename("/home/user/x", "/home/user/abs/x")
    assert files.make_dir("/home/user/abs/sub") is True
    mirrored = localbox.root / str(outside).lstrip("/")
    assert sorted(p.name for p in mirrored.iterdir()) == ["new.txt", "sub", "x"]
    assert sorted(e.name for e in files.list("/home/user/abs")) == ["new.txt", "sub", "x"]
    files.remove("/home/user/abs")
    assert mirrored.is_dir()
    assert_untouched(outside)


def test_a_link_above_the_root_is_refused(sdk_sandbox: Sandbox, outside: Path) -> None:
    """Every file call through a ../ link that climbs out of the root is InvalidArgument."""
    sh(sdk_sandbox, f"ln -s ../../../../../../../..{outside} ~/up && echo y >~/y")
    files = sdk_sandbox.files
    calls = [
        lambda: files.read("/home/user/up/secret.txt"),
        lambda: files.write("/home/user/up/new.txt", "x"),
        lambda: files.list("/home/user/up"),
        lambda: files.get_info("/home/user/up/secret.txt"),
        lambda: files.remove("/home/user/up/secret.txt"),
        lambda: files.rename("/home/user/y", "/home/user/up/y"),
        lambda: files.make_dir("/home/user/up/sub"),
    ]
    for call in calls:
        with pytest.raises(InvalidArgumentException):
            call()
    assert_untouched(outside)


def test_a_directory_linked_to_etc_is_the_roots_etc(
    sdk_sandbox: Sandbox, localbox: LocalBoxHandle
) -> None:
    """Through a link to /etc, the host's files are neither read nor written."""
    name = f"localbox-safe-fs-{uuid.uuid4().hex}"
    sh(sdk_sandbox, "ln -s /etc ~/etc")
    with pytest.raises(FileNotFoundException):
        sdk_sandbox.files.read("/home/user/etc/passwd")
    try:
        sdk_sandbox.files.write(f"/home/user/etc/{name}", "x")
        assert not Path("/etc", name).exists()
        assert (localbox.root / "etc" / name).read_text() == "x"
    finally:
        Path("/etc", name).unlink(missing_ok=True)


def test_stat_of_a_link_out_shows_nothing_of_the_host_file(sdk_sandbox: Sandbox) -> None:
    """get_info and list of a link to /etc/shadow describe the link, not the host's file."""
    sh(sdk_sandbox, "ln -s /etc/shadow ~/shadow")
    info = sdk_sandbox.files.get_info("/home/user/shadow")
    assert info.symlink_target == "/etc/shadow"
    assert info.size == len("/etc/shadow")
    # Dangling in the root, it has no file type, so the SDK leaves it out of a listing
    # (as envd's dangling links); the host's shadow would have made it a file.
    assert "shadow" not in [e.name for e in sdk_sandbox.files.list("/home/user")]


def test_links_inside_the_sandbox_are_followed(sdk_sandbox: Sandbox) -> None:
    """Relative and absolute links within the sandbox work for read, write, list and stat."""
    files = sdk_sandbox.files
    files.write("notes/a.txt", "alpha")
    sh(sdk_sandbox, "ln -s notes/a.txt ~/alias; ln -s ../user/notes ~/nd; ln -s /home/user/nd ~/an")
    assert files.read("alias") == "alpha"
    assert files.read("nd/a.txt") == "alpha"
    assert files.read("/home/user/an/a.txt") == "alpha"
    files.write("alias", "beta")
    assert sh(sdk_sandbox, "cat ~/notes/a.txt") == "beta"
    assert [e.name for e in files.list("an")] == ["a.txt"]
    info = files.get_info("nd")
    assert (info.type, info.symlink_target) == (FileType.SYMLINK, "../user/notes")
    # Listed only because its target, resolved in the root, has a type (a directory).
    assert {"alias", "an", "nd"} <= {e.name for e in files.list("/home/user")}


def test_written_files_and_made_directories_belong_to_the_user(sdk_sandbox: Sandbox) -> None:
    """Files and every directory the server makes have the owner of a file "user" makes itself."""
    sdk_sandbox.files.write("own/deep/f.txt", "x")
    sdk_sandbox.files.make_dir("own/made/too")
    paths = "~/mine ~/own ~/own/deep ~/own/deep/f.txt ~/own/made ~/own/made/too"
    owners = sh(sdk_sandbox, f"touch ~/mine && stat -c %u {paths}").split()
    assert len(owners) == 6
    assert len(set(owners)) == 1


@pytest.mark.parametrize("kind", ["absolute", "relative"])
def test_a_directory_flipping_to_a_link_never_leads_out(
    sdk_sandbox: Sandbox, localbox: LocalBoxHandle, outside: Path, kind: str
) -> None:
    """200 writes and reads while a directory and a link out swap places: nothing leaves."""
    files = sdk_sandbox.files
    files.write("/home/user/d/secret.txt", "sandbox")
    home = localbox.root / "home/user"
    target = str(outside) if kind == "absolute" else f"../../../../../../..{outside}"
    (home / "d.swap").symlink_to(target)
    seen: set[str] = set()
    with Flipper(home / "d", home / "d.swap") as flipper:
        for i in range(200):
            with contextlib.suppress(InvalidArgumentException):
                files.write("/home/user/d/f.txt", str(i))
            try:
                seen.add(files.read("/home/user/d/secret.txt"))
            except (InvalidArgumentException, FileNotFoundException):
                seen.add("refused")
    assert flipper.flips > 0
    assert SECRET.decode() not in seen
    assert "sandbox" in seen
    assert_untouched(outside)
