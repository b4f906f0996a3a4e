"""The commands around runs, against the local sandbox: list, status, logs, download,
kill, history; the sandbox limits; and a run cancelled by SIGINT.

Real Claude Code CLI against the scripted API, real SDK, local sandbox, each command
in its own process as a user would type it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_run_limits import _alive, _descendants, _write_plan
from tests.e2e.test_run_local import CANARY_KEY, make_repo, run_args, run_cli
from tests.gitrepo import git
from tests.stand_ins.anthropic_server import ScriptedAnthropic

SCENARIOS = Path(__file__).parents[1] / "stand_ins" / "scenarios"
pytestmark = pytest.mark.e2e


def cli_json(args: list[str], env: dict[str, str]) -> object:
    done = run_cli([*args, "--json"], env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _start_run(
    repo: Path, plan: Path, out: Path, env: dict[str, str], *, own_group: bool = False
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "claude_e2b", *run_args(repo, plan, out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=own_group,
    )


def _wait_for(predicate, what: str, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"{what} within {timeout:.0f} s")


def _running_rows(env: dict[str, str]) -> list[dict]:
    rows = cli_json(["list"], env)
    assert isinstance(rows, list)
    return [r for r in rows if r["sandbox_id"]]


def _ticking(repo_out: Path, env: dict[str, str]) -> dict | None:
    """The run's list row once the agent has written its first tick in the sandbox."""
    registry = Path(env["CLAUDE_E2B_STATE_DIR"]) / "localbox"
    for path in registry.glob("*.json"):
        entry = json.loads(path.read_text())
        if (Path(entry["root"]) / "home/user/repo/ticks.txt").exists():
            return entry
    return None


@pytest.fixture
def slow_api() -> Iterator[ScriptedAnthropic]:
    with ScriptedAnthropic(SCENARIOS / "slow.yaml") as api:
        yield api


def test_a_finished_run_in_history_status_logs_and_download(tmp_path, cli_env):
    """history, status, logs (stored), download --output and --apply of a finished run."""
    repo = make_repo(tmp_path / "repo")
    out = tmp_path / "out"
    with ScriptedAnthropic(SCENARIOS / "add_edit_delete.yaml") as api:
        cli_env["ANTHROPIC_BASE_URL"] = api.url
        done = run_cli(run_args(repo, repo / "PLAN.md", out), cli_env)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    run_id = result["run_id"]

    audit = [json.loads(line) for line in (out / "audit.jsonl").read_text().splitlines()]
    ops = {line["audit"] for line in audit}
    assert {"sandbox.create", "file.write", "command.run", "sandbox.kill"} <= ops
    assert all(line["run_id"] == run_id and line["outcome"] for line in audit)
    assert CANARY_KEY not in (out / "audit.jsonl").read_text()

    history = cli_json(["history"], cli_env)
    assert isinstance(history, dict)
    (row,) = history["runs"]
    assert (row["run_id"], row["status"], row["backend"]) == (run_id, "completed", "local")
    assert row["total_usd"] == pytest.approx(result["cost"]["total_usd"])
    assert row["plan_path"] == str(repo / "PLAN.md")
    assert history["per_day"][0]["runs"] == 1
    assert history["per_plan"][0]["total_usd"] == pytest.approx(result["cost"]["total_usd"])

    status = cli_json(["status", run_id[:12]], cli_env)  # a unique prefix is enough
    assert isinstance(status, dict)
    assert status["status"] == "completed"
    assert status["sandbox_running"] is False
    assert status["result_path"] == str(out / "result.json")

    logs = run_cli(["logs", run_id], cli_env)
    assert logs.returncode == 0, logs.stderr
    assert "Write hello.py" in logs.stdout or "hello.py" in logs.stdout
    raw = run_cli(["logs", run_id, "--json"], cli_env).stdout.splitlines()
    assert raw
    assert all(json.loads(line)["type"] for line in raw)

    folder = tmp_path / "downloaded"
    got = cli_json(["download", run_id, "--output", str(folder)], cli_env)
    assert isinstance(got, dict)
    assert got["source"] == "the copy kept by the run"
    assert (folder / "hello.py").read_bytes() == (repo / "hello.py").read_bytes()
    listing = json.loads((folder / "changes.json").read_text())
    assert {c["path"] for c in listing["changes"]} == {c["path"] for c in result["changes"]}

    # --apply on a fresh clone of the starting point gives the same files as the run did.
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    applied = cli_json(["download", run_id, "--apply", "--repo", str(clone)], cli_env)
    assert isinstance(applied, dict)
    assert {c["path"] for c in applied["applied"]} == {c["path"] for c in result["changes"]}
    for change in result["changes"]:
        if change["status"] == "deleted":
            assert not (clone / change["path"]).exists()
        else:
            assert (clone / change["path"]).read_bytes() == (repo / change["path"]).read_bytes()

    for text in (history, status, logs.stdout, got, applied):
        assert CANARY_KEY not in json.dumps(text)


def test_list_logs_follow_download_and_kill_all_on_a_running_sandbox(tmp_path, cli_env, slow_api):
    """A run in progress: list shows it, logs --follow streams it, download gets its work
    so far, kill --all ends it (and the run ends failed, with its work so far applied)."""
    repo = make_repo(tmp_path / "repo")
    plan = _write_plan(repo, "timeout-minutes: 5\n")
    cli_env["ANTHROPIC_BASE_URL"] = slow_api.url
    run = _start_run(repo, plan, tmp_path / "out", cli_env)
    try:
        entry = _wait_for(lambda: _ticking(tmp_path, cli_env), "the agent ticks")
        (row,) = _running_rows(cli_env)
        assert row["sandbox_id"] == entry["sandbox_id"]
        assert row["status"] == "running"
        assert row["backend"] == "local"
        run_id = row["run_id"]
        assert run_id.startswith("run-") or run_id

        follow = subprocess.Popen(
            [sys.executable, "-m", "claude_e2b", "logs", run_id, "--follow"],
            env=cli_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        first = follow.stdout.readline() if follow.stdout else ""
        assert first.strip(), "logs --follow printed nothing from the running sandbox"

        folder = tmp_path / "so-far"
        got = cli_json(["download", run_id, "--output", str(folder)], cli_env)
        assert isinstance(got, dict)
        assert got["source"] == f"sandbox {entry['sandbox_id']}"
        assert "tick" in (folder / "ticks.txt").read_text()

        killed = cli_json(["kill", "--all"], cli_env)
        assert [k["sandbox_id"] for k in killed] == [entry["sandbox_id"]]  # type: ignore[union-attr]
        rest, err = follow.communicate(timeout=60)
        assert follow.returncode == 0, err[-2000:]
        lines = [first, *rest.splitlines()]
        assert sum("tick" in line for line in lines) >= 1
        run.wait(120)
    finally:
        for proc in (run,):
            if proc.poll() is None:
                proc.kill()
    assert run.returncode == 1
    assert _running_rows(cli_env) == []
    status = cli_json(["status", run_id], cli_env)
    assert isinstance(status, dict)
    assert status["status"] == "failed"


def test_the_limit_refuses_the_next_sandbox_with_a_clear_message(tmp_path, cli_env, slow_api):
    """With --max-sandboxes 1 and one running, the next run starts nothing and says why."""
    repo = make_repo(tmp_path / "repo")
    plan = _write_plan(repo, "timeout-minutes: 5\n")
    cli_env["ANTHROPIC_BASE_URL"] = slow_api.url
    run = _start_run(repo, plan, tmp_path / "out", cli_env)
    try:
        _wait_for(lambda: _ticking(tmp_path, cli_env), "the agent ticks")
        other = make_repo(tmp_path / "other")
        refused = run_cli(
            [*run_args(other, other / "PLAN.md", tmp_path / "out2"), "--max-sandboxes", "1"],
            cli_env,
        )
        assert refused.returncode == 1, refused.stderr[-2000:]
        message = refused.stderr
        assert "1 sandbox(es) of claude-e2b are running on local" in message
        assert "at most 1 may run at once" in message
        assert "--max-sandboxes" in message
        assert "claude-e2b kill --all" in message
        assert len(_running_rows(cli_env)) == 1  # the refused run created none
        hourly = run_cli(
            [
                *run_args(other, other / "PLAN.md", tmp_path / "out3"),
                "--max-sandboxes-per-hour",
                "1",
            ],
            cli_env,
        )
        assert hourly.returncode == 1
        assert "created on local in the last hour" in hourly.stderr
    finally:
        run.send_signal(signal.SIGINT)
        run.wait(60)


@pytest.mark.parametrize("to", ["process", "group"])
def test_sigint_collects_applies_and_reports_cancelled(tmp_path, cli_env, slow_api, to):
    """SIGINT mid-agent: exit 130 within 10 s, partial work applied, status cancelled,
    nothing left running; the history says cancelled too. "group": to the whole process
    group, as Ctrl-C on a terminal sends it (the sandbox server must not die of it)."""
    repo = make_repo(tmp_path / "repo")
    plan = _write_plan(repo, "timeout-minutes: 5\n")
    out = tmp_path / "out"
    cli_env["ANTHROPIC_BASE_URL"] = slow_api.url
    run = _start_run(repo, plan, out, cli_env, own_group=to == "group")
    try:
        entry = _wait_for(lambda: _ticking(tmp_path, cli_env), "the agent ticks")
        sandbox_pids = {entry["pid"]} | _descendants(entry["pid"])
        sent = time.monotonic()
        if to == "group":
            os.killpg(run.pid, signal.SIGINT)
        else:
            run.send_signal(signal.SIGINT)
        _, stderr = run.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 130, stderr[-3000:]
    assert took < 10, f"exit took {took:.1f} s"
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "cancelled"
    assert "cancelled (SIGINT)" in stderr
    assert (repo / "ticks.txt").read_text().count("tick") >= 1
    assert {"path": "ticks.txt", "status": "added"}.items() <= result["changes"][0].items()
    assert [p for p in sandbox_pids if _alive(p)] == []
    assert list((Path(cli_env["CLAUDE_E2B_STATE_DIR"]) / "localbox").glob("*.json")) == []
    status = cli_json(["status", result["run_id"]], cli_env)
    assert isinstance(status, dict)
    assert status["status"] == "cancelled"
    assert "the agent was stopped; 1 file(s) of its work were applied" in status["message"]
