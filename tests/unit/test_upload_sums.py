"""The sums files the sandbox checks pieces against, with openssl and without it."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from claude_e2b.sync.pieces import Piece, PieceFile
from claude_e2b.sync.upload_scripts import SUMS_FUNCTIONS

TOOLS = ("sha256sum", "cut", "cat")


def piece_in(directory: Path, files: dict[str, bytes]) -> Piece:
    piece_files = []
    for name, data in files.items():
        (directory / name).write_bytes(data)
        piece_files.append(
            PieceFile(name, directory / name, len(data), hashlib.sha256(data).hexdigest())
        )
    piece = Piece(tuple(piece_files), "p.sha256")
    (directory / piece.sums_name).write_bytes(piece.sums())
    return piece


def path_without_openssl(tmp: Path) -> str:
    """A PATH with sha256sum and friends but no openssl."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def run(directory: Path, call: str, path: str | None = None) -> int:
    env = {**os.environ, "PATH": path or os.environ["PATH"]}
    script = f"cd {directory}\n{SUMS_FUNCTIONS}\n{call}"
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run(
        [bash, "-c", script], env=env, capture_output=True, timeout=60, check=False
    ).returncode


@pytest.fixture(params=["openssl", "sha256sum"])
def tool_path(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    if request.param == "openssl":
        if shutil.which("openssl") is None:
            pytest.fail("openssl is part of this machine's set-up (scripts/bootstrap)")
        return None
    return path_without_openssl(tmp_path)


def test_whole_pieces_pass_and_a_changed_byte_fails(tmp_path: Path, tool_path: str | None) -> None:
    """Every file of a piece is checked; one changed byte anywhere fails the piece."""
    files = tmp_path / "up"
    files.mkdir()
    piece_in(files, {"pack-a.pack": b"P" * 100_000, "pack-a.idx": b"I" * 500, "pack-a.paths": b""})
    assert run(files, "check p.sha256", tool_path) == 0
    (files / "pack-a.idx").write_bytes(b"I" * 499 + b"J")
    assert run(files, "check p.sha256", tool_path) == 3


def test_a_missing_file_fails(tmp_path: Path, tool_path: str | None) -> None:
    """A file the sums list but that never arrived fails the check."""
    piece_in(tmp_path, {"chunk-000001": b"data"})
    (tmp_path / "chunk-000001").unlink()
    assert run(tmp_path, "check p.sha256", tool_path) != 0


@pytest.mark.parametrize(
    ("content", "whole"),
    [(b"", False), (b"abc  x\n", False), (b"abc  x\nen", False), (b"abc  x\nend\n", True),
     (b"abc  x\nend", True)],
)  # fmt: skip
def test_a_sums_file_counts_once_it_ends(tmp_path: Path, content: bytes, *, whole: bool) -> None:
    """The sandbox takes a piece only once its sums file's last line is "end"."""
    (tmp_path / "s.sha256").write_bytes(content)
    assert (run(tmp_path, "ended s.sha256") == 0) is whole
    assert run(tmp_path, "ended missing.sha256") != 0
