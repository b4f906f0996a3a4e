"""The local sandbox's simulated link, through the real e2b SDK (sessions on a LocalBoxHost).

Times are compared with the floor the rate implies (4 MiB at 100 Mbit/s cannot take
less than 0.33 s) and with the same transfer on a server without a link, never with
how fast this machine is.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from claude_e2b.sandbox.localbox.launcher import LocalBoxHost
from claude_e2b.sandbox.session import SandboxSession
from tests.integration.conftest import local_session, set_faults

MiB = 1024 * 1024
SIZE = 4 * MiB
# 4 MiB less the link's burst (64 KiB) at 100 Mbit/s: 0.3303 s.
FLOOR_S = 0.33
# Generous: 0.34 s of link plus the SDK's own time on a busy machine.
CEILING_S = 1.5
RTT_S = 0.15


def session_on(registry: Path, **link: float) -> Iterator[SandboxSession]:
    """A session on a fresh local sandbox of a host with this link; killed afterwards."""
    with local_session(LocalBoxHost(registry, os.environ, test_faults=True, **link)) as session:
        yield session


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("state") / "localbox"


@pytest.fixture(scope="module")
def plain(registry: Path) -> Iterator[SandboxSession]:
    """A sandbox without a link."""
    yield from session_on(registry)


@pytest.fixture(scope="module")
def slow(registry: Path) -> Iterator[SandboxSession]:
    """A sandbox behind a 100 Mbit/s link."""
    yield from session_on(registry, link_mbit=100.0)


@pytest.fixture(scope="module")
def far(registry: Path) -> Iterator[SandboxSession]:
    """A sandbox behind a link with a 150 ms round trip and no rate limit."""
    yield from session_on(registry, link_rtt_ms=RTT_S * 1000)


@pytest.fixture(scope="module")
def data() -> bytes:
    return os.urandom(SIZE)


def timed(action: Callable[[], object]) -> tuple[float, object]:
    """How long ``action`` took, and what it gave."""
    start = time.monotonic()
    result = action()
    return time.monotonic() - start, result


def test_upload_is_paced(slow: SandboxSession, plain: SandboxSession, data: bytes) -> None:
    """4 MiB up at 100 Mbit/s takes 0.33 s or more; without a link, far less."""
    paced, _ = timed(lambda: slow.write_file("/home/user/up.bin", data))
    free, _ = timed(lambda: plain.write_file("/home/user/up.bin", data))
    assert FLOOR_S <= paced < CEILING_S
    assert free < paced / 2
    assert slow.read_bytes("/home/user/up.bin") == data


def test_download_is_paced(slow: SandboxSession, plain: SandboxSession) -> None:
    """4 MiB down at 100 Mbit/s takes 0.33 s or more; without a link, far less."""
    make = f"head -c {SIZE} /dev/urandom > /home/user/down.bin"
    for session in (slow, plain):
        session.run(make, timeout=30)
    paced, got = timed(lambda: slow.read_bytes("/home/user/down.bin"))
    free, _ = timed(lambda: plain.read_bytes("/home/user/down.bin"))
    assert FLOOR_S <= paced < CEILING_S
    assert free < paced / 2
    assert isinstance(got, bytes)
    assert len(got) == SIZE
    in_box = slow.run("sha256sum /home/user/down.bin", timeout=30).stdout.split()[0]
    assert hashlib.sha256(got).hexdigest() == in_box


def test_round_trip_per_request(far: SandboxSession, plain: SandboxSession) -> None:
    """Each /files request behind a 150 ms round trip takes 150 ms more; commands do not."""
    writes = [timed(partial(far.write_file, f"/tmp/s{i}", b"small"))[0] for i in range(3)]
    reads = [timed(partial(far.read_bytes, f"/tmp/s{i}"))[0] for i in range(3)]
    assert min(writes + reads) >= RTT_S
    baseline = [timed(lambda: plain.write_file("/tmp/s", b"small"))[0] for _ in range(3)]
    assert min(baseline) < min(writes)
    commands = [timed(lambda: far.run("true", timeout=30))[0] for _ in range(3)]
    assert min(commands) < RTT_S


def test_faults_still_fire_behind_a_link(slow: SandboxSession, data: bytes) -> None:
    """A failed upload is retried and a cut download resumed, through the paced link."""
    box = slow.localbox
    assert box is not None
    set_faults(box, upload_errors=1)
    slow.write_file("/home/user/retried.bin", data[: 2 * MiB])
    assert set_faults(box)["upload_errors"] == 0
    set_faults(box, drop_download_after_bytes=MiB)
    got = b"".join(slow.read_stream("/home/user/retried.bin"))
    assert set_faults(box)["drop_download_after_bytes"] == 0
    assert got == data[: 2 * MiB]
