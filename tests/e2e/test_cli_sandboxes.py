"""`claude-e2b list` and `kill` on local sandboxes started by a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from claude_e2b.sandbox.localbox.launcher import LocalBoxHost
from claude_e2b.sandbox.session import SandboxSpec, open_session
from tests.e2e.test_run_local import run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture
def running(cli_env):
    """A sandbox announced where the command, given cli_env, looks for them."""
    host = LocalBoxHost(Path(cli_env["CLAUDE_E2B_STATE_DIR"]) / "localbox", cli_env)
    spec = SandboxSpec(backend="local", lifetime_s=120, metadata={"run-id": "run-abc"})
    with open_session(spec, host) as session:
        yield session


def test_list_shows_ours_and_kill_by_run_id(running, cli_env):
    """list shows the sandbox with its run id; kill by run id ends it; list is then empty."""
    listed = run_cli(["list", "--json", "--sandbox", "local"], cli_env, timeout=60)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["sandbox_id"], r["metadata"]["run-id"]) for r in rows] == [
        (running.sandbox_id, "run-abc")
    ]
    killed = run_cli(["kill", "run-abc", "--sandbox", "local"], cli_env, timeout=60)
    assert killed.returncode == 0, killed.stderr
    assert "killed 1 sandbox" in killed.stdout
    assert not running.is_alive()
    again = run_cli(["list", "--json", "--sandbox", "local"], cli_env, timeout=60)
    assert json.loads(again.stdout) == []


def test_kill_of_an_unknown_id_says_so(cli_env):
    """Killing an id that matches nothing exits 1 with a message."""
    done = run_cli(["kill", "nope", "--sandbox", "local"], cli_env, timeout=60)
    assert done.returncode == 1
    assert "no running sandbox of ours matches nope" in done.stderr


def test_kill_all(running, cli_env):
    """kill --all ends every sandbox of ours."""
    done = run_cli(["kill", "--all", "--sandbox", "local"], cli_env, timeout=60)
    assert done.returncode == 0
    assert not running.is_alive()


def test_kill_needs_an_id_or_all(cli_env):
    """kill without a target (or with both) is bad input: exit 2 with what to pass."""
    assert run_cli(["kill"], cli_env, timeout=60).returncode == 2
    both = run_cli(["kill", "x", "--all"], cli_env, timeout=60)
    assert both.returncode == 2
    assert "--all" in both.stderr
