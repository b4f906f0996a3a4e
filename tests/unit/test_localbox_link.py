"""The local sandbox's simulated link (link.py): its arithmetic on a fake clock, its flags."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from claude_e2b.sandbox.localbox.faults import Faults
from claude_e2b.sandbox.localbox.files_http import FilesAPI, Message
from claude_e2b.sandbox.localbox.launcher import LocalBoxHost
from claude_e2b.sandbox.localbox.link import (
    BURST_BYTES,
    SLICE_BYTES,
    Link,
    check_link,
    link_for,
)
from claude_e2b.sandbox.localbox.paths import SandboxFS
from claude_e2b.sandbox.localbox.server import parse_args

KiB = 1024
MiB = 1024 * KiB
RATE_100 = 100e6 / 8  # bytes per second of a 100 Mbit/s link


class FakeTime:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def link(self, mbit: float | None, rtt_ms: float = 0.0) -> Link:
        return Link(mbit, rtt_ms, clock=self.clock, sleep=self.sleep)


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


def run_pace(link: Link, direction: str, sizes: list[int]) -> list[tuple[int, float]]:
    """Pace these chunks one after the other: (bytes so far, clock) after each."""
    progress: list[tuple[int, float]] = []

    async def go() -> None:
        total = 0
        for size in sizes:
            await link.pace(direction, size)  # type: ignore[arg-type]
            total += size
            progress.append((total, link.clock()))

    asyncio.run(go())
    return progress


@pytest.mark.parametrize(
    ("mbit", "rtt_ms"),
    [(0.0, 0.0), (-1.0, 0.0), (float("nan"), 0.0), (float("inf"), 0.0), (None, -1.0)],
)
def test_check_link_refuses_nonsense(mbit: float | None, rtt_ms: float) -> None:
    """A rate must be finite and above 0, a round trip finite and not negative."""
    with pytest.raises(ValueError, match="link's"):
        check_link(mbit, rtt_ms)
    with pytest.raises(ValueError, match="link's"):
        Link(mbit, rtt_ms)


def test_no_link_is_no_link() -> None:
    """Without a rate or a round trip the server gets no link at all (nothing in the path)."""
    assert link_for(None, 0.0) is None
    assert link_for(None, 20.0) == Link(None, 20.0)
    assert link_for(100.0, 0.0) == Link(100.0, 0.0)


def test_unshaped_link_passes_the_callables_through(fake: FakeTime) -> None:
    """A link with neither rate nor round trip hands back the very receive and send it got."""

    async def receive() -> Message:
        return {"type": "http.request"}

    async def send(_message: Message) -> None:
        return None

    got = asyncio.run(fake.link(None).shape(receive, send))
    assert got == (receive, send)
    assert fake.sleeps == []


def test_upload_bytes_never_outrun_the_rate(fake: FakeTime) -> None:
    """4 MiB at 100 Mbit/s: at every moment bytes <= rate * elapsed + burst; the end on time."""
    link = fake.link(100.0)
    start = fake.now
    progress = run_pace(link, "up", [64 * KiB] * 64)
    for total, now in progress:
        assert total <= RATE_100 * (now - start) + BURST_BYTES + 1e-3
    assert progress[-1][1] - start == pytest.approx((4 * MiB - BURST_BYTES) / RATE_100)


def test_burst_is_five_ms_at_high_rates(fake: FakeTime) -> None:
    """At 1 Gbit/s the burst is 5 ms of the rate; below 105 Mbit/s it is 64 KiB."""
    assert fake.link(1000.0).burst_bytes == 625_000
    assert fake.link(100.0).burst_bytes == BURST_BYTES
    progress = run_pace(fake.link(1000.0), "down", [1 * MiB] * 8)
    assert progress[-1][1] - 1000.0 == pytest.approx((8 * MiB - 625_000) / 125e6)


def test_an_idle_link_saves_up_only_the_burst(fake: FakeTime) -> None:
    """After ten idle seconds, 1 MiB still takes (1 MiB - burst) / rate, not nothing."""
    link = fake.link(100.0)
    run_pace(link, "up", [1 * MiB])
    fake.now += 10.0
    start = fake.now
    progress = run_pace(link, "up", [1 * MiB])
    assert progress[-1][1] - start == pytest.approx((1 * MiB - BURST_BYTES) / RATE_100)


def test_requests_share_a_direction_not_the_other(fake: FakeTime) -> None:
    """Two transfers one way split the rate; the other way has its own."""
    link = fake.link(100.0)
    start = fake.now
    run_pace(link, "up", [64 * KiB] * 32)  # one request's 2 MiB...
    run_pace(link, "up", [64 * KiB] * 32)  # ...and another's, booked right behind it
    assert fake.now - start == pytest.approx((4 * MiB - BURST_BYTES) / RATE_100)
    before = fake.now
    run_pace(link, "down", [64 * KiB] * 32)
    assert fake.now - before == pytest.approx((2 * MiB - BURST_BYTES) / RATE_100)


def test_round_trip_once_per_request(fake: FakeTime) -> None:
    """shape() waits one round trip, and a round-trip-only link paces no bytes."""
    link = fake.link(None, rtt_ms=40.0)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"x" * MiB}

    async def send(_message: Message) -> None:
        return None

    async def two_requests() -> None:
        for _ in range(2):
            paced_receive, _paced_send = await link.shape(receive, send)
            await paced_receive()

    asyncio.run(two_requests())
    assert fake.sleeps == [0.04, 0.04]


def test_paced_send_slices_a_body_and_keeps_its_end(fake: FakeTime) -> None:
    """A 1 MiB body goes as 64 KiB slices, in order; only the last closes the response."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    async def go() -> None:
        _receive, paced = await fake.link(100.0).shape(receive, send)
        await paced({"type": "http.response.body", "body": bytes(range(256)) * 4096})

    asyncio.run(go())
    assert [len(m["body"]) for m in sent] == [SLICE_BYTES] * 16
    assert [m["more_body"] for m in sent] == [True] * 15 + [False]
    assert b"".join(m["body"] for m in sent) == bytes(range(256)) * 4096


def asgi(api: FilesAPI, scope: dict[str, object], body: bytes) -> list[Message]:
    """Drive /files in-process with ``body`` in 64 KiB pieces; the messages it sends."""
    pieces = [body[i : i + 64 * KiB] for i in range(0, len(body), 64 * KiB)]

    def messages() -> Iterator[Message]:
        for piece in pieces:
            yield {"type": "http.request", "body": piece, "more_body": True}
        yield {"type": "http.request", "body": b"", "more_body": False}

    incoming = messages()
    answers: list[Message] = []

    async def receive() -> Message:
        return next(incoming)

    async def send(message: Message) -> None:
        answers.append(message)

    asyncio.run(api({"type": "http", "headers": [], **scope}, receive, send))
    return answers


def test_files_api_paces_both_directions(tmp_path: Path, fake: FakeTime) -> None:
    """/files behind a link: an upload and a download of 2 MiB each take their time."""
    api = FilesAPI(SandboxFS(tmp_path), lambda _user: None, Faults(), fake.link(100.0, 10.0))
    data = os.urandom(2 * MiB)
    start = fake.now
    up = asgi(api, {"method": "POST", "query_string": b"path=/tmp/f"}, data)
    assert up[0]["status"] == 200
    assert (tmp_path / "tmp/f").read_bytes() == data
    assert fake.now - start == pytest.approx(0.01 + (2 * MiB - BURST_BYTES) / RATE_100)
    start = fake.now
    down = asgi(api, {"method": "GET", "query_string": b"path=/tmp/f"}, b"")
    assert b"".join(m.get("body", b"") for m in down[1:]) == data
    # The link stood idle in between: only a burst was saved up.
    assert fake.now - start == pytest.approx(0.01 + (2 * MiB - BURST_BYTES) / RATE_100)


def test_injected_upload_failure_behind_a_link(tmp_path: Path, fake: FakeTime) -> None:
    """An upload fault still answers its status, after the body went through the link."""
    faults = Faults(upload_errors=1)
    api = FilesAPI(SandboxFS(tmp_path), lambda _user: None, faults, fake.link(100.0))
    start = fake.now
    answers = asgi(api, {"method": "POST", "query_string": b"path=/tmp/f"}, b"y" * MiB)
    assert answers[0]["status"] == 500
    assert json.loads(answers[1]["body"])["code"] == 500
    assert fake.now - start == pytest.approx((MiB - BURST_BYTES) / RATE_100)


def test_server_flags(tmp_path: Path) -> None:
    """--link-mbit and --link-rtt-ms reach the server's config; absent, there is no link."""
    base = ["--registry-dir", str(tmp_path)]
    config = parse_args([*base, "--link-mbit", "100", "--link-rtt-ms", "20"], {})
    assert (config.link_mbit, config.link_rtt_ms) == (100.0, 20.0)
    config = parse_args(base, {})
    assert (config.link_mbit, config.link_rtt_ms) == (None, 0.0)
    with pytest.raises(SystemExit):
        parse_args([*base, "--link-mbit", "0"], {})


def test_host_passes_its_link_to_the_server(tmp_path: Path) -> None:
    """A host's link becomes the server's flags (none without a link); nonsense is refused."""
    assert LocalBoxHost(tmp_path, {}).link_argv() == []
    host = LocalBoxHost(tmp_path, {}, link_mbit=1000, link_rtt_ms=2.5)
    assert host.link_argv() == ["--link-mbit", "1000.0", "--link-rtt-ms", "2.5"]
    with pytest.raises(ValueError, match="link's rate"):
        LocalBoxHost(tmp_path, {}, link_mbit=-5)
