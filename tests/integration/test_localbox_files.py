"""The local sandbox's /files upload with multipart bodies, driven in-process as an ASGI app.

Bodies are built by httpx's own multipart encoder (what the e2b SDK uses), then fed
to the endpoint in pieces of chosen sizes, as the server would receive them.
"""

from __future__ import annotations

import asyncio
import json
import os
import tracemalloc
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import pytest

from claude_e2b.sandbox.localbox.faults import Faults
from claude_e2b.sandbox.localbox.files_http import EnvdHTTPError, FilesAPI, disk_full_as_507
from claude_e2b.sandbox.localbox.paths import SandboxFS

BOUNDARY = "test-boundary-3c5a"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}".encode()
CLOSING = f"\r\n--{BOUNDARY}--\r\n".encode()
MiB = 1024 * 1024


def encoded(files: list[tuple[str, bytes]]) -> bytes:
    """The body httpx sends for these (filename, content) files, as the SDK's write_files."""
    request = httpx.Request(
        "POST",
        "http://sandbox/files",
        files=[("file", (name, data)) for name, data in files],
        headers={"content-type": MULTIPART.decode()},
    )
    return request.read()


def split(body: bytes, size: int) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)]


def post(
    root: Path,
    pieces: Iterable[bytes],
    *,
    content_type: bytes = MULTIPART,
    query: bytes = b"",
    faults: Faults | None = None,
) -> tuple[int, object]:
    """POST the pieces to /files on a sandbox rooted at ``root``: (status, JSON answer)."""
    api = FilesAPI(SandboxFS(root), lambda _user: None, faults or Faults())
    scope = {
        "type": "http",
        "method": "POST",
        "query_string": query,
        "headers": [(b"content-type", content_type)],
    }
    answers: list[dict[str, object]] = []

    def messages() -> Iterator[dict[str, object]]:
        for piece in pieces:
            yield {"type": "http.request", "body": piece, "more_body": True}
        yield {"type": "http.request", "body": b"", "more_body": False}

    incoming = messages()

    async def receive() -> dict[str, object]:
        return next(incoming)

    async def send(message: dict[str, object]) -> None:
        answers.append(message)

    asyncio.run(api(scope, receive, send))
    return answers[0]["status"], json.loads(answers[1]["body"])


def test_several_files_in_one_body(tmp_path: Path) -> None:
    """Each part goes to the path in its filename; the answer lists them in order."""
    body = encoded([("/tmp/a.txt", b"alpha"), ("notes/b.bin", b"\0\r\n--\r\n"), ("c", b"")])
    status, answer = post(tmp_path, [body])
    assert status == 200
    assert [entry["path"] for entry in answer] == [
        "/tmp/a.txt",
        "/home/user/notes/b.bin",
        "/home/user/c",
    ]
    assert answer[1] == {"name": "b.bin", "type": "file", "path": "/home/user/notes/b.bin"}
    assert (tmp_path / "tmp/a.txt").read_bytes() == b"alpha"
    assert (tmp_path / "home/user/notes/b.bin").read_bytes() == b"\0\r\n--\r\n"
    assert (tmp_path / "home/user/c").read_bytes() == b""


def test_a_boundary_split_across_reads_anywhere(tmp_path: Path) -> None:
    """Whatever the split point, boundaries, headers and look-alike data come out right."""
    tricky = b"x\r\n--" + BOUNDARY[:-1].encode() + b"\r\n--" + BOUNDARY.encode() + b"X\r\n-"
    files = [("one.bin", tricky), ("two.bin", b"\r" * 40)]
    body = encoded(files)
    for cut in range(1, len(body)):
        root = tmp_path / str(cut)
        status, _ = post(root, [body[:cut], body[cut:]])
        assert status == 200, cut
        for name, data in files:
            assert (root / "home/user" / name).read_bytes() == data, (cut, name)


@pytest.mark.parametrize("size", [1, 3, 64, 65536])
def test_piece_sizes(tmp_path: Path, size: int) -> None:
    """Bodies fed byte by byte or in 64 KiB reads write the same files."""
    data = os.urandom(200_000)
    status, _ = post(tmp_path, split(encoded([("big.bin", data), ("s", b"s")]), size))
    assert status == 200
    assert (tmp_path / "home/user/big.bin").read_bytes() == data
    assert (tmp_path / "home/user/s").read_bytes() == b"s"


def test_filename_escapes_are_undone(tmp_path: Path) -> None:
    """Quotes, backslashes, control characters and UTF-8 in a path survive httpx's escaping."""
    name = 'dir/quo"te back\\slash \x01 é%.txt'
    status, answer = post(tmp_path, [encoded([(name, b"x")])])
    assert status == 200
    assert answer[0]["path"] == f"/home/user/{name}"
    assert (tmp_path / "home/user" / name).read_bytes() == b"x"


def test_the_path_parameter_wins_over_the_filename(tmp_path: Path) -> None:
    """A single-file write carries ?path=, which decides where it goes (as the SDK relies on)."""
    status, answer = post(tmp_path, [encoded([("ignored", b"y")])], query=b"path=/tmp/p.txt")
    assert (status, answer[0]["path"]) == (200, "/tmp/p.txt")
    assert (tmp_path / "tmp/p.txt").read_bytes() == b"y"
    assert not (tmp_path / "home/user/ignored").exists()


def test_large_part_streams_with_bounded_memory(tmp_path: Path) -> None:
    """A 32 MiB part in 64 KiB reads: Python allocations peak far below the part's size."""
    pool = [os.urandom(64 * 1024) for _ in range(8)]
    empty = encoded([("big.bin", b"")])
    assert empty.endswith(CLOSING)
    pieces = [empty.removesuffix(CLOSING), *(pool[i % 8] for i in range(512)), CLOSING]
    tracemalloc.start()
    try:
        status, _ = post(tmp_path, pieces)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert status == 200
    assert (tmp_path / "home/user/big.bin").stat().st_size == 32 * MiB
    assert peak < 2 * MiB, peak


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (b"multipart/form-data", encoded([("a", b"a")])),
        (b'multipart/form-data; boundary=""', encoded([("a", b"a")])),
        (MULTIPART, b"this is not multipart at all"),
        (MULTIPART, f"--{BOUNDARY}\r\nX-Long: {'h' * 70_000}\r\n\r\nx".encode()),
        (MULTIPART, f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="f"\r\n\r\nx'.encode()),
        (MULTIPART, encoded([("../../../../escape", b"x")])),
    ],
    ids=["no-boundary", "empty-boundary", "not-multipart", "huge-header", "no-path", "escape"],
)
def test_malformed_bodies_are_a_400(tmp_path: Path, content_type: bytes, body: bytes) -> None:
    """A body the endpoint cannot place or parse is envd's 400 JSON, and writes nothing."""
    status, answer = post(tmp_path, split(body, 1000), content_type=content_type)
    assert status == 400
    assert answer["code"] == 400
    assert answer["message"]
    assert not [path for path in tmp_path.rglob("*") if path.is_file()]


def test_an_injected_fault_fails_the_matching_part(tmp_path: Path) -> None:
    """upload_errors answers 500 for a matching part; the parts before it are written."""
    faults = Faults(upload_errors=1, upload_error_glob="*/bad*")
    body = encoded([("good.txt", b"g"), ("bad.txt", b"b" * 10_000), ("later.txt", b"l")])
    status, answer = post(tmp_path, split(body, 4096), faults=faults)
    assert (status, answer["code"]) == (500, 500)
    assert (tmp_path / "home/user/good.txt").read_bytes() == b"g"
    assert not (tmp_path / "home/user/bad.txt").exists()
    assert not (tmp_path / "home/user/later.txt").exists()


def test_a_body_cut_before_its_closing_boundary_keeps_the_finished_parts(tmp_path: Path) -> None:
    """As before python-multipart: parts that ended are written and listed, no error."""
    body = encoded([("first.txt", b"1"), ("second.txt", b"22222")])
    status, answer = post(tmp_path, [body[: body.index(b"22222") + 2]])
    assert status == 200
    assert [entry["path"] for entry in answer] == ["/home/user/first.txt"]
    assert (tmp_path / "home/user/first.txt").read_bytes() == b"1"


def test_a_full_disk_fails_the_matching_part_with_507(tmp_path: Path) -> None:
    """disk_full_glob: envd's 507 "not enough disk space available" for matching parts."""
    faults = Faults(disk_full_glob="/home/user/big*")
    body = encoded([("small.txt", b"s"), ("big.bin", b"b" * 10_000)])
    status, answer = post(tmp_path, split(body, 4096), faults=faults)
    assert status == 507
    assert answer == {"code": 507, "message": "not enough disk space available"}
    assert (tmp_path / "home/user/small.txt").read_bytes() == b"s"
    assert not (tmp_path / "home/user/big.bin").exists()


def test_upload_statuses_are_answered_in_turn(tmp_path: Path) -> None:
    """upload_error_status: each coming upload answers the next status, then uploads work."""
    faults = Faults(upload_error_status=[503, 502])
    body = encoded([("f.txt", b"f")])
    assert post(tmp_path, [body], faults=faults)[0] == 503
    assert post(tmp_path, [body], faults=faults)[0] == 502
    assert post(tmp_path, [body], faults=faults)[0] == 200
    assert (tmp_path / "home/user/f.txt").read_bytes() == b"f"


def test_a_real_enospc_is_a_507() -> None:
    """A write that finds no space (here /dev/full) answers 507, as envd does."""
    with pytest.raises(EnvdHTTPError) as caught, disk_full_as_507():
        write_to_a_full_disk()
    assert (caught.value.status, caught.value.message) == (507, "not enough disk space available")


def write_to_a_full_disk() -> None:
    with Path("/dev/full").open("wb", buffering=0) as full:
        full.write(b"x" * 10)
