"""Faults between the session and the sandbox: the real e2b SDK against a faulty local server.

Each test injects a fault the local server answers on envd's routes (faults.py) and
checks what SandboxSession makes of it: idempotent calls succeed after retries, a
command that is not idempotent never runs twice, the retries give up with a clear
error, a full disk and a killed sandbox are named as such.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from claude_e2b.errors import (
    SandboxError,
    SandboxFileError,
    SandboxGoneError,
    SandboxTransientError,
)
from claude_e2b.sandbox.localbox.launcher import LocalBoxHandle, LocalBoxHost
from claude_e2b.sandbox.session import (
    RetryPolicy,
    SandboxSession,
    SandboxSpec,
    attach_session,
    open_session,
)
from tests.integration.conftest import set_faults

# Short waits: the tests check what is retried, not how long the waits are.
FAST = RetryPolicy(attempts=4, base_s=0.05, cap_s=0.2, deadline_s=20.0)
CANARY = "canary-env-value-" + "9f8e" * 6


@pytest.fixture
def session(fault_host: LocalBoxHost) -> Iterator[SandboxSession]:
    spec = SandboxSpec(backend="local", template="local", lifetime_s=300)
    with open_session(spec, fault_host, retry=FAST) as opened:
        yield opened


def box(session: SandboxSession) -> LocalBoxHandle:
    assert session.localbox is not None
    return session.localbox


def retries(logs: list[dict[str, object]]) -> list[dict[str, object]]:
    return [entry for entry in logs if entry["event"] == "sandbox.retry"]


def test_one_500_on_a_small_control_file_is_retried(session: SandboxSession) -> None:
    """The upload's PACKS note survives an HTTP 500: the write is sent again."""
    set_faults(box(session), upload_errors=1, upload_error_glob="*/PACKS")
    with capture_logs() as logs:
        session.write_file("/tmp/claude-e2b/upload/PACKS", b"3\n")
    assert session.read_bytes("/tmp/claude-e2b/upload/PACKS") == b"3\n"
    assert [entry["attempt"] for entry in retries(logs)] == [1]
    assert set_faults(box(session))["upload_errors"] == 0


def test_a_failing_health_check_does_not_make_a_live_sandbox_gone(
    session: SandboxSession,
) -> None:
    """envd's /health fails, E2B's API lists the sandbox as running: it is alive."""
    set_faults(box(session), unhealthy=True)
    assert not session._sandbox.is_running(request_timeout=10)  # envd alone says no
    assert session.is_alive()
    session.kill()
    assert not session.is_alive()


def test_a_seekable_file_is_sent_again_from_its_start(
    session: SandboxSession, tmp_path: Path
) -> None:
    """A 503 and a 502 on a streamed upload: the file is rewound and arrives whole."""
    data = os.urandom(600_000)
    (tmp_path / "blob.bin").write_bytes(data)
    set_faults(box(session), upload_error_status=[503, 502])
    with (tmp_path / "blob.bin").open("rb") as source:
        session.write_file("/home/user/blob.bin", source)
    assert session.read_bytes("/home/user/blob.bin") == data
    assert set_faults(box(session))["upload_error_status"] == []


def test_an_unseekable_stream_is_sent_once(session: SandboxSession) -> None:
    """A generator cannot be sent again: its 500 is the caller's to handle."""
    set_faults(box(session), upload_errors=1)
    with capture_logs() as logs, pytest.raises(SandboxTransientError, match="500"):
        session.write_file("/home/user/gen.bin", io.BufferedReader(Unseekable(b"x" * 1000)))
    assert retries(logs) == []


class Unseekable(io.RawIOBase):
    """A binary stream that cannot seek, like a pipe."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        return self._data.readinto(buffer)


def test_a_500_and_two_503_on_a_read_are_retried(session: SandboxSession) -> None:
    """read_bytes and read_stream both get the file after 500, 503, 503."""
    session.write_file("/home/user/changes.tar.zst", b"archive bytes")
    set_faults(box(session), download_errors=[500, 503, 503])
    with capture_logs() as logs:
        assert session.read_bytes("/home/user/changes.tar.zst") == b"archive bytes"
    assert len(retries(logs)) == 3
    set_faults(box(session), download_errors=[500, 503, 503])
    assert b"".join(session.read_stream("/home/user/changes.tar.zst")) == b"archive bytes"


def test_a_download_cut_halfway_goes_on_without_repeating(session: SandboxSession) -> None:
    """A connection cut after 1 MB: the stream resumes and yields each byte once."""
    data = os.urandom(3 * 2**20 + 11)
    session.write_file("/home/user/big.bin", data)
    set_faults(box(session), drop_download_after_bytes=2**20)
    with capture_logs() as logs:
        got = b"".join(session.read_stream("/home/user/big.bin"))
    assert len(retries(logs)) == 1
    assert got == data


def test_a_command_not_marked_idempotent_is_not_run_again(session: SandboxSession) -> None:
    """Its output stream breaks: the error says so, and it ran once (then was killed)."""
    script = "echo ran >> /home/user/runs; seq 1 3000; sleep 0.3"
    set_faults(box(session), drop_output_after_bytes=500)
    with pytest.raises(SandboxTransientError):
        session.run(script, timeout=30)
    assert session.read_bytes("/home/user/runs") == b"ran\n"


def test_an_idempotent_command_runs_again_after_a_broken_stream(session: SandboxSession) -> None:
    """Marked idempotent, the same command runs again and its whole output comes back."""
    script = "echo ran >> /home/user/runs; seq 1 3000; sleep 0.3"
    set_faults(box(session), drop_output_after_bytes=500)
    outcome = session.run(script, timeout=30, idempotent=True)
    assert outcome.ok
    assert outcome.stdout.endswith("2999\n3000\n")
    assert session.read_bytes("/home/user/runs") == b"ran\nran\n"


@pytest.mark.parametrize("ends_first", [False, True])
def test_a_followed_command_is_attached_again_and_its_exit_code_kept(
    session: SandboxSession, *, ends_first: bool
) -> None:
    """start(reattach=True): its stream breaks, wait follows it by pid; ran once, exit exact.

    ``ends_first``: the command has ended before the wait: its kept exit code answers.
    """
    script = "echo ran >> /home/user/runs; seq 1 3000; sleep 0.5; exit 3"
    set_faults(box(session), drop_output_after_bytes=500)
    handle = session.start(script, timeout=30, reattach=True)
    if ends_first:
        time.sleep(2.0)
    with capture_logs() as logs:
        outcome = handle.wait()
    assert outcome.exit_code == 3
    assert "sandbox.command_reattach" in [entry["event"] for entry in logs]
    assert session.read_bytes("/home/user/runs") == b"ran\n"


def test_a_followed_run_keeps_its_exit_code_and_runs_once(session: SandboxSession) -> None:
    """run(reattach=True) (the plan's setup commands): the stream breaks, the run goes on."""
    script = "echo ran >> /home/user/runs; seq 1 3000; sleep 0.3; echo done; exit 5"
    set_faults(box(session), drop_output_after_bytes=500)
    heard: list[str] = []
    outcome = session.run(script, timeout=30, reattach=True, on_stdout=heard.append)
    assert outcome.exit_code == 5
    assert session.read_bytes("/home/user/runs") == b"ran\n"
    assert "".join(heard) == outcome.stdout


def test_the_retries_give_up_with_a_clear_transient_error(session: SandboxSession) -> None:
    """A server that keeps answering 500: four attempts, then SandboxTransientError."""
    set_faults(box(session), upload_errors=10)
    with pytest.raises(SandboxTransientError, match=r"gave up after 4 attempts") as caught:
        session.write_file("/home/user/never.txt", b"x")
    assert "500" in str(caught.value)
    assert set_faults(box(session))["upload_errors"] == 6


def test_a_full_disk_is_named_and_not_retried(session: SandboxSession) -> None:
    """HTTP 507 from envd: SandboxFileError saying the sandbox's disk is full, at once."""
    set_faults(box(session), disk_full_glob="/home/user/big/*")
    with capture_logs() as logs, pytest.raises(SandboxFileError) as caught:
        session.write_file("/home/user/big/data.bin", b"x" * 1000)
    assert "the sandbox's disk is full" in str(caught.value)
    assert "free space in the sandbox" in str(caught.value)
    assert retries(logs) == []
    session.write_file("/home/user/small.txt", b"elsewhere is fine")


def test_a_killed_sandbox_is_gone(session: SandboxSession) -> None:
    """Killed mid-run: its processes die and every later call is SandboxGoneError."""
    handle = session.start("sleep 60", timeout=120)
    set_faults(box(session), kill_after_s=0.2)
    ended = handle.wait()
    assert ended.exit_code != 0
    deadline = time.monotonic() + 20
    while box(session).running and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(SandboxGoneError):
        session.run("true", timeout=10)
    with pytest.raises(SandboxGoneError):
        session.read_bytes("/home/user/anything")
    with pytest.raises(SandboxGoneError):
        session.write_file("/home/user/anything", b"x")
    assert not session.is_alive()


def test_every_operation_leaves_one_audit_line_without_env_values(
    session: SandboxSession,
) -> None:
    """Writes, reads and commands are audited with the sandbox id; env values never appear."""
    with capture_logs() as logs:
        session.write_file("/home/user/a.txt", b"12345")
        session.read_bytes("/home/user/a.txt")
        session.run("echo $TOKEN > /dev/null", timeout=30, envs={"TOKEN": CANARY})
    audit = [entry for entry in logs if entry["event"] == "audit"]
    assert [(e["audit"], e["outcome"]) for e in audit] == [
        ("file.write", "ok"),
        ("file.read", "ok"),
        ("command.run", "ok"),
    ]
    assert all(e["target"] == session.sandbox_id for e in audit)
    assert (audit[0]["path"], audit[0]["bytes"], audit[1]["bytes"]) == ("/home/user/a.txt", 5, 5)
    assert audit[2]["command"] == "echo $TOKEN > /dev/null"
    assert CANARY not in json.dumps(logs, default=str)


ATTACH = """
import sys
from pathlib import Path
from claude_e2b.sandbox.session import attach_session
registry, sandbox_id = sys.argv[1:]
with attach_session("local", sandbox_id, registry_dir=Path(registry)) as s:
    print("read:", s.read_bytes("/home/user/work.txt").decode())
    s.write_file("/home/user/from-other.txt", b"hello from another process")
"""


def test_another_process_attaches_without_killing(
    session: SandboxSession, localbox_registry: Path
) -> None:
    """attach_session from another process (the key from the registry) reads and writes;
    leaving it keeps the sandbox running."""
    session.write_file("/home/user/work.txt", b"the agent's work")
    other = subprocess.run(
        [sys.executable, "-c", ATTACH, str(localbox_registry), session.sandbox_id],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert other.returncode == 0, other.stderr
    assert "read: the agent's work" in other.stdout.splitlines()
    assert session.read_bytes("/home/user/from-other.txt") == b"hello from another process"
    assert session.is_alive()


def test_an_attached_session_can_kill(session: SandboxSession, localbox_registry: Path) -> None:
    """kill() on an attached session ends the sandbox; attaching again finds none."""
    attached = attach_session(
        "local",
        session.sandbox_id,
        registry_dir=localbox_registry,
        local_api_key=box(session).api_key,
        retry=FAST,
    )
    assert attached.attached
    assert attached.spec.metadata["claude-e2b"] == "1"
    attached.kill()
    deadline = time.monotonic() + 20
    while box(session).running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not box(session).running
    with pytest.raises(SandboxGoneError, match="no local sandbox"):
        attach_session(
            "local", session.sandbox_id, registry_dir=localbox_registry, local_api_key="k"
        )


def test_attach_refuses_a_sandbox_that_is_not_ours(
    localbox: LocalBoxHandle, localbox_registry: Path
) -> None:
    """A sandbox without claude-e2b's metadata is not attached to."""
    with pytest.raises(SandboxError, match="not started by claude-e2b"):
        attach_session(
            "local",
            localbox.sandbox_id,
            registry_dir=localbox_registry,
            local_api_key=localbox.api_key,
        )
    assert localbox.running


def test_a_kept_sandbox_outlives_its_session(fault_host: LocalBoxHost, localbox_registry: Path):
    """keep_alive: leaving the block leaves the sandbox (marked kept) running; kill ends it."""
    spec = SandboxSpec(backend="local", template="local", lifetime_s=300)
    with open_session(spec, fault_host, retry=FAST) as session:
        session.write_file("/home/user/work.txt", b"kept work")
        session.keep_alive()
    handle = box(session)
    assert handle.running
    assert handle.call("GET", "/localbox/info").json()["kept"] is True
    again = attach_session("local", session.sandbox_id, registry_dir=localbox_registry)
    assert again.read_bytes("/home/user/work.txt") == b"kept work"
    again.kill()
    deadline = time.monotonic() + 20
    while handle.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not handle.running
    handle.stop()
