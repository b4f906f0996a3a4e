"""Fixtures for integration tests: a local E2B-compatible sandbox and an SDK client on it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2b import Sandbox

from claude_e2b.sandbox.localbox import LocalBoxHandle, LocalBoxOptions, start_localbox
from claude_e2b.sandbox.localbox.launcher import LocalBoxHost
from claude_e2b.sandbox.session import SandboxSession, SandboxSpec, open_session
from tests.stand_ins.claude_cli import find_claude


@pytest.fixture
def localbox_registry(tmp_path: Path) -> Path:
    """A private registry directory, so tests never see other runs' sandboxes."""
    return tmp_path / "state" / "localbox"


@pytest.fixture
def localbox_host(localbox_registry: Path) -> LocalBoxHost:
    """The local backend's side of this machine: the private registry, the test's environment."""
    return LocalBoxHost(localbox_registry, os.environ)


@pytest.fixture
def fault_host(localbox_registry: Path) -> LocalBoxHost:
    """Like ``localbox_host``, but its sessions' servers accept fault injection (tests only)."""
    return LocalBoxHost(localbox_registry, os.environ, test_faults=True)


@pytest.fixture
def localbox_options() -> LocalBoxOptions:
    """Options of the ``localbox`` fixture (faults switchable); override in a test module."""
    return LocalBoxOptions(
        lifetime_s=600,
        metadata={"test": "yes"},
        tools={"claude": find_claude()},
        test_faults=True,
    )


@pytest.fixture
def localbox(
    localbox_host: LocalBoxHost, localbox_options: LocalBoxOptions
) -> Iterator[LocalBoxHandle]:
    """A running local sandbox server, stopped (with everything in it) afterwards."""
    handle = start_localbox(localbox_options, localbox_host)
    try:
        yield handle
    finally:
        handle.stop()


def connect(handle: LocalBoxHandle) -> Sandbox:
    """The unmodified e2b SDK in its normal mode, creating (claiming) a local sandbox."""
    return Sandbox.create(**handle.sdk_options())


def set_faults(handle: LocalBoxHandle, **faults: object) -> dict[str, object]:
    """Switch faults of a server started for tests; returns the faults now in force."""
    answer = handle.call("POST", "/localbox/faults", faults)
    answer.raise_for_status()
    found: dict[str, object] = answer.json()
    return found


@pytest.fixture
def sdk_sandbox(localbox: LocalBoxHandle) -> Sandbox:
    """An ``e2b.Sandbox`` on the ``localbox`` fixture's server."""
    return connect(localbox)


def live_processes(session: SandboxSession, name: str) -> list[str]:
    """Processes called ``name`` still alive in the sandbox (a dead, unreaped one is not)."""
    out = session.run("ps -eo stat=,comm=", timeout=30).stdout
    return [line for line in out.splitlines() if line.split()[-1] == name and line[0] != "Z"]


@contextlib.contextmanager
def local_session(host: LocalBoxHost, lifetime_s: float = 300) -> Iterator[SandboxSession]:
    """A session on a fresh local sandbox of ``host``, killed afterwards."""
    spec = SandboxSpec(backend="local", local_tools={}, lifetime_s=lifetime_s)
    opened = open_session(spec, host)
    try:
        yield opened
    finally:
        opened.kill()


@pytest.fixture
def session(fault_host: LocalBoxHost) -> Iterator[SandboxSession]:
    """A session on a fresh local sandbox that takes faults (modules may define their own)."""
    with local_session(fault_host) as opened:
        yield opened
