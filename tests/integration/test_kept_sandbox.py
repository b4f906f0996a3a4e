"""A sandbox kept for a later download outlives the process that started it, and another
process reaches it through the registry (as `claude-e2b download` and `logs` do)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from claude_e2b.errors import SandboxGoneError
from claude_e2b.sandbox.localbox.launcher import list_localboxes
from claude_e2b.sandbox.session import attach_session

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the local sandbox needs Linux")

CHILD = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from claude_e2b.sandbox.localbox.launcher import LocalBoxHost
    from claude_e2b.sandbox.session import SandboxSpec, open_session

    host = LocalBoxHost(Path(sys.argv[1]), os.environ)
    session = open_session(SandboxSpec(backend="local", lifetime_s=120), host)
    session.write_file("/home/user/work.txt", b"the agent's work")
    if sys.argv[2] == "keep":
        session.keep_alive()
    else:
        session.kill()
    print(session.sandbox_id, flush=True)
    """
)


def _child(registry: Path, mode: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(registry), mode],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_a_kept_sandbox_outlives_its_process_and_is_reached_from_another(localbox_registry):
    sandbox_id = _child(localbox_registry, "keep")
    time.sleep(1.5)  # past the server's parent check (it ticks every ~0.5 s)
    (entry,) = list_localboxes(localbox_registry)
    assert entry.sandbox_id == sandbox_id
    session = attach_session(
        "local", sandbox_id, registry_dir=localbox_registry, local_api_key=entry.api_key
    )
    try:
        assert session.read_bytes("/home/user/work.txt") == b"the agent's work"
    finally:
        session.kill()
    deadline = time.monotonic() + 20
    while list_localboxes(localbox_registry) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list_localboxes(localbox_registry) == []


def test_a_sandbox_not_kept_dies_with_its_process(localbox_registry):
    sandbox_id = _child(localbox_registry, "kill")
    assert list_localboxes(localbox_registry) == []
    with pytest.raises(SandboxGoneError):
        attach_session("local", sandbox_id, registry_dir=localbox_registry, local_api_key="x")


def test_attaching_needs_the_servers_key(localbox_registry):
    sandbox_id = _child(localbox_registry, "keep")
    (entry,) = list_localboxes(localbox_registry)
    try:
        with pytest.raises(Exception, match=r"401|rejected|credentials|key"):
            attach_session("local", sandbox_id, registry_dir=localbox_registry, local_api_key="bad")
    finally:
        attach_session(
            "local", sandbox_id, registry_dir=localbox_registry, local_api_key=entry.api_key
        ).kill()
