"""A hostile agent in the local sandbox, driven through the real Claude Code CLI.

It reads every environment it can reach, attacks every listening port on its
loopback (the sandbox server's API among them, with `Authorization: Basic root:`),
leaves files in shared places, a process behind, and tries to unmount /home. The
runner's environment holds canary credentials. None may reach the model, no attack
may succeed, nothing may stay on the host, and no process may outlive the run.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_run_local import SCENARIOS, make_repo, run_args, run_cli
from tests.stand_ins.anthropic_server import ScriptedAnthropic

pytestmark = pytest.mark.e2e
CANARIES = {
    "GITHUB_TOKEN": "ghs_hostilecanary" + "1" * 20,
    "E2B_API_KEY": "e2b_hostilecanary" + "2" * 20,
    "AWS_SECRET_ACCESS_KEY": "hostile-aws-canary-" + "3" * 20,
    "AWS_ACCESS_KEY_ID": "AKIAHOSTILECANARY000",
    "GH_TOKEN": "gho_hostilecanary" + "4" * 20,
}
MARKER = "hostile-marker-claude-e2b-test"
SHARED = (Path("/var/tmp") / MARKER, Path("/dev/shm") / MARKER, Path("/tmp") / MARKER)


def _sleepers() -> list[str]:
    cmd = ["pgrep", "-af", "sleep 4242"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    return [line for line in out.stdout.splitlines() if "pgrep" not in line]


def test_hostile_agent_gets_nothing_out(tmp_path, cli_env):
    """No canary reaches the model, no port answers, nothing is left, no process outlives."""
    for path in SHARED:
        path.unlink(missing_ok=True)
    repo = make_repo(tmp_path / "repo")
    out = tmp_path / "out"
    cli_env.update(CANARIES)
    with ScriptedAnthropic(SCENARIOS / "hostile.yaml") as api:
        cli_env["ANTHROPIC_BASE_URL"] = api.url
        done = run_cli(run_args(repo, repo / "PLAN.md", out), cli_env)
        bodies = [json.dumps(r.body) for r in api.requests]
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "no_changes"
    # The tool results went back to the model: they show what the agent saw.
    seen = "\n".join(bodies)
    assert "Attack the loopback" in seen  # the attack really ran and reported back
    for name, value in CANARIES.items():
        assert value not in seen, f"{name} reached the model"
    assert "OPEN " not in seen
    assert "refused " in seen  # the ports it could see were tried, and refused
    for path in SHARED:
        assert not path.exists(), f"{path} was left on the host"
    assert _sleepers() == []
    assert list((Path(cli_env["CLAUDE_E2B_STATE_DIR"]) / "localbox").glob("*.json")) == []
