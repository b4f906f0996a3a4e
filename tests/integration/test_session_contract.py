"""SandboxSession's contract, run against the local sandbox always and E2B's cloud with a key.

The same tests, through the same code path (the real e2b SDK), on both backends: what
passes here is what the pipeline may rely on.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from claude_e2b.errors import (
    CommandError,
    SandboxError,
    SandboxFileError,
    SandboxGoneError,
    SandboxTimeoutError,
)
from claude_e2b.sandbox.localbox.launcher import LocalBoxHost
from claude_e2b.sandbox.session import (
    OWNER_KEY,
    SandboxSession,
    SandboxSpec,
    list_sandboxes,
    open_session,
)
from tests.integration.conftest import live_processes

BACKENDS = [
    "local",
    pytest.param("e2b", marks=pytest.mark.e2b_cloud),
]


@pytest.fixture(params=BACKENDS)
def session(
    request: pytest.FixtureRequest, localbox_host: LocalBoxHost
) -> Iterator[SandboxSession]:
    backend = request.param
    if backend == "e2b" and not os.environ.get("E2B_API_KEY"):
        pytest.skip("E2B's cloud is tested only with E2B_API_KEY set")
    spec = SandboxSpec(
        backend=backend,
        template="base" if backend == "e2b" else "local",
        lifetime_s=300,
        metadata={"test": "contract"},
        envs={"FROM_SPEC": "spec-value"},
    )
    with open_session(spec, localbox_host) as opened:
        yield opened


def listed(session: SandboxSession, registry: Path):
    """The session's sandbox as list_sandboxes reports it (None when not listed)."""
    found = list_sandboxes(session.spec.backend, registry)
    return next((s for s in found if s.sandbox_id == session.sandbox_id), None)


def test_run_returns_output_and_exit_code(session):
    """A command's stdout, stderr and exit code come back; non-zero does not raise."""
    out = session.run("echo out; echo err >&2; exit 3", timeout=30)
    assert (out.stdout, out.stderr, out.exit_code, out.ok) == ("out\n", "err\n", 3, False)


def test_check_raises_command_error(session):
    """check=True turns a non-zero exit into CommandError with the output."""
    with pytest.raises(CommandError) as info:
        session.run("echo nope >&2; exit 7", timeout=30, check=True)
    assert info.value.command_exit_code == 7
    assert info.value.stderr == "nope\n"


def test_cwd_envs_and_spec_envs_reach_the_command(session):
    """cwd, per-command envs and the envs of the spec are all visible; the call's envs win."""
    session.make_dir("/home/user/work dir")
    out = session.run(
        'pwd; echo "$ONE|$FROM_SPEC"',
        timeout=30,
        cwd="/home/user/work dir",
        envs={"ONE": "1 $(not run)"},
    )
    assert out.stdout == "/home/user/work dir\n1 $(not run)|spec-value\n"


def test_user_and_root(session):
    """Commands run as the unprivileged `user`; root on E2B, refused by the local sandbox."""
    as_user = session.run("id -un; id -u; echo $HOME", timeout=30).stdout.split()
    assert as_user[0] == "user"
    assert as_user[1] != "0"
    assert as_user[2] == "/home/user"
    if session.spec.backend == "e2b":
        assert session.run("id -u", timeout=30, user="root").stdout.strip() == "0"
        return
    # Local root is the host's root: a session never gets it (see auth.py).
    with pytest.raises(SandboxError, match="root is not available"):
        session.run("id -u > /tmp/as-root", timeout=30, user="root")
    assert not session.exists("/tmp/as-root")


def test_output_is_streamed_while_the_command_runs(session):
    """A line printed every 200 ms reaches the callback spread over time, not at the end."""
    arrivals: list[float] = []
    session.run(
        "for i in 1 2 3 4 5 6; do echo line $i; sleep 0.2; done",
        timeout=30,
        on_stdout=lambda _chunk: arrivals.append(time.monotonic()),
    )
    assert len(arrivals) >= 4
    assert arrivals[-1] - arrivals[0] >= 0.6


def test_timeout_raises_and_leaves_no_process(session):
    """A command past its timeout raises SandboxTimeoutError and is killed."""
    with pytest.raises(SandboxTimeoutError):
        session.run("sleep 3600; echo never", timeout=1)
    assert live_processes(session, "sleep") == []


def test_background_command_wait_and_kill(session):
    """A background command runs on; kill ends it, and a second kill reports nothing to kill."""
    handle = session.start("sleep 3600", timeout=60)
    assert handle.pid > 0
    assert handle.kill() is True
    ended = handle.wait()
    assert ended.exit_code != 0
    assert handle.kill() is False
    assert live_processes(session, "sleep") == []


def test_files_up_and_down_as_streams(session):
    """Bytes written from a stream read back identical, as a stream and whole."""
    data = os.urandom(3 * 2**20 + 17)
    session.write_file("/home/user/blob.bin", io.BytesIO(data))
    streamed = hashlib.sha256()
    for chunk in session.read_stream("/home/user/blob.bin"):
        streamed.update(chunk)
    assert streamed.hexdigest() == hashlib.sha256(data).hexdigest()
    session.write_file("/tmp/small.txt", b"small")
    assert session.read_bytes("/tmp/small.txt") == b"small"
    sha = session.run("sha256sum /home/user/blob.bin", timeout=30).stdout.split()[0]
    assert sha == hashlib.sha256(data).hexdigest()


def test_exists_and_make_dir(session):
    """make_dir makes parents and may repeat; exists sees directories and files, not the rest."""
    session.make_dir("/home/user/a/b")
    session.make_dir("/home/user/a/b")
    session.write_file("/home/user/a/b/f.txt", b"x")
    assert session.exists("/home/user/a/b")
    assert session.exists("/home/user/a/b/f.txt")
    assert not session.exists("/home/user/a/never-was")


def test_missing_file_is_a_file_error(session):
    """Reading a file that does not exist raises SandboxFileError."""
    with pytest.raises(SandboxFileError):
        session.read_bytes("/home/user/no-such-file")


def test_lifetime_can_be_extended(session, localbox_registry):
    """extend_lifetime(600) moves the listed end to ten minutes from now (it was five)."""
    before = listed(session, localbox_registry)
    session.extend_lifetime(600)
    asked = time.time() + 600
    after = listed(session, localbox_registry)
    assert before is not None
    assert after is not None
    assert abs(datetime.fromisoformat(before.end_at).timestamp() - (asked - 300)) < 60
    assert abs(datetime.fromisoformat(after.end_at).timestamp() - asked) < 60
    assert session.is_alive()


def test_listed_by_metadata_then_gone_after_kill(session, localbox_registry):
    """Our sandbox is listed with our metadata; after kill it is not, and kill twice is fine."""
    mine = [
        s
        for s in list_sandboxes(session.spec.backend, localbox_registry)
        if s.sandbox_id == session.sandbox_id
    ]
    assert len(mine) == 1
    assert mine[0].metadata[OWNER_KEY] == "1"
    assert mine[0].metadata["test"] == "contract"
    session.kill()
    session.kill()
    assert not session.is_alive()
    assert listed(session, localbox_registry) is None
    with pytest.raises(SandboxGoneError):
        session.run("true", timeout=10)


def test_sdk_environment_variables_are_honoured(localbox, localbox_host, monkeypatch):
    """E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY set by the user reach the SDK (self-hosting)."""
    monkeypatch.setenv("E2B_API_URL", localbox.url)
    monkeypatch.setenv("E2B_SANDBOX_URL", localbox.url)
    monkeypatch.setenv("E2B_API_KEY", localbox.api_key)
    monkeypatch.setenv("E2B_HTTP_VERSION", "1.1")
    spec = SandboxSpec(backend="e2b", lifetime_s=60, metadata={"via": "env"})
    with open_session(spec, localbox_host) as session:
        assert session.sandbox_id == localbox.sandbox_id
        assert session.run("echo via-env", timeout=30).stdout == "via-env\n"
    # The session's kill reached the server as E2B's kill call: it ended itself.
    deadline = time.monotonic() + 15
    while localbox.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not localbox.running
