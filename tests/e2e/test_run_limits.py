"""`claude-e2b run` at its limits: the hard timeout, the budget, and a crash of the run.

Real Claude Code CLI, real SDK, local sandbox; limits shortened so the tests are quick.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.test_run_local import CANARY_KEY, make_repo, run_args, run_cli
from tests.stand_ins.anthropic_server import ScriptedAnthropic

SCENARIOS = Path(__file__).parents[1] / "stand_ins" / "scenarios"
pytestmark = pytest.mark.e2e


def _write_plan(repo: Path, front: str) -> Path:
    plan = repo / "PLAN.md"
    plan.write_text(f"---\n{front}---\nWrite ticks until told to stop.\n\n- [ ] Tick\n")
    return plan


def test_hard_limit_warns_stops_and_keeps_partial_work(tmp_path, cli_env):
    """Warnings in order (log and annotations), Claude stopped, partial work applied."""
    repo = make_repo(tmp_path / "repo")
    plan = _write_plan(repo, "timeout-minutes: 0.2\nwarn-at-minutes: [0.05, 0.1]\n")
    out = tmp_path / "out"
    cli_env["GITHUB_ACTIONS"] = "true"
    with ScriptedAnthropic(SCENARIOS / "slow.yaml") as api:
        cli_env["ANTHROPIC_BASE_URL"] = api.url
        done = run_cli(run_args(repo, plan, out), cli_env)
    assert done.returncode == 1, done.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "timed_out"
    ticks = (repo / "ticks.txt").read_text().split()
    assert 1 <= len(ticks) < 60
    assert {"path": "ticks.txt", "status": "added"}.items() <= result["changes"][0].items()

    # The view writes to stderr; the runner reads workflow commands there too.
    annotations = [line for line in done.stderr.splitlines() if line.startswith("::warning")]
    assert len(annotations) == 3
    assert "3 s of its 12 s limit" in annotations[0]
    assert "6 s of its 12 s limit" in annotations[1]
    assert "time limit" in annotations[2]
    assert result["warnings"][:3] == [a.split("::", 2)[2] for a in annotations]
    assert "::group::Agent" in done.stderr
    assert "::endgroup::" in done.stderr
    # Claude Code ended on SIGINT with its own result: the cost is exact, not estimated.
    assert result["cost"]["claude_usd"] > 0
    assert result["agent"]["session_id"]


def test_budget_stops_the_run_and_keeps_partial_work(tmp_path, cli_env):
    """A budget the run passes ends it as budget_exceeded; the work so far is applied."""
    repo = make_repo(tmp_path / "repo")
    plan = _write_plan(repo, "budget-usd: 0.003\n")
    out = tmp_path / "out"
    with ScriptedAnthropic(SCENARIOS / "slow.yaml") as api:
        cli_env["ANTHROPIC_BASE_URL"] = api.url
        done = run_cli(run_args(repo, plan, out), cli_env)
    assert done.returncode == 1, done.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "budget_exceeded"
    assert (repo / "ticks.txt").exists()
    assert result["cost"]["claude_usd"] >= 0.003
    for text in (
        done.stdout,
        done.stderr,
        (out / "result.json").read_text(),
        (out / "transcript.jsonl").read_text(),
    ):
        assert CANARY_KEY not in text


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_crash_of_the_run_leaves_no_sandbox_process(tmp_path, cli_env):
    """SIGKILL to `claude-e2b run` mid-agent: the local sandbox and all in it go away."""
    repo = make_repo(tmp_path / "repo")
    plan = _write_plan(repo, "timeout-minutes: 5\n")
    registry = Path(cli_env["CLAUDE_E2B_STATE_DIR"]) / "localbox"
    # A killed run cannot remove its upload spool: keep it in this test's directory.
    cli_env["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    with ScriptedAnthropic(SCENARIOS / "slow.yaml") as api:
        cli_env["ANTHROPIC_BASE_URL"] = api.url
        run = subprocess.Popen(
            [sys.executable, "-m", "claude_e2b", *run_args(repo, plan, tmp_path / "out")],
            env=cli_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            entry = _wait_for_agent(registry)
            sandbox_pids = {entry["pid"]} | _descendants(entry["pid"])
            assert len(sandbox_pids) > 3  # server, namespace init, the agent and its tools
            run.send_signal(signal.SIGKILL)
            run.wait(30)
            deadline = time.monotonic() + 20
            while any(_alive(p) for p in sandbox_pids) and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            if run.poll() is None:
                run.kill()
    assert [p for p in sandbox_pids if _alive(p)] == []
    assert not Path(entry["root"]).exists()
    assert list(registry.glob("*.json")) == []


def _wait_for_agent(registry: Path) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for path in registry.glob("*.json"):
            entry = json.loads(path.read_text())
            if (Path(entry["root"]) / "home/user/repo/ticks.txt").exists():
                return entry
        time.sleep(0.2)
    pytest.fail("the agent did not start ticking within 60 s")
