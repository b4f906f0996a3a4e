"""A matrix on one machine: many processes write one run history at once.

The processes start together on a database that does not exist yet, so they also
race to create and migrate it. One more process keeps writing until it is killed
with SIGKILL, mid-transaction or not.
"""

import os
import signal
import sqlite3
import subprocess
import sys
import time

from claude_e2b.store import ABANDONED_MESSAGE, RunStore

WORKERS = 8
RUNS_EACH = 30
TIMEOUT_S = 120

# One worker: wait for the go file, then record RUNS_EACH runs start -> update -> end.
WORKER = r"""
import os, sys, time
from pathlib import Path
from claude_e2b.store import RunStart, RunStore

db, go, worker, runs, mode = sys.argv[1:6]
deadline = time.monotonic() + 60
while not Path(go).exists():
    if time.monotonic() > deadline:
        sys.exit("no go file")
    time.sleep(0.005)

def start(run_id):
    return RunStart(run_id=run_id, backend="local", plan_title=f"plan {worker}",
                    plan_path=f"plans/{worker}.md", repository="/work/app",
                    started_at="2026-05-01T09:30:00+00:00", timeout_minutes=60.0,
                    budget_usd=5.0, max_turns=40, model="m", output_dir="/o",
                    transcript_path="/o/t.jsonl", pid=os.getpid())

with RunStore.open(Path(db)) as store:
    if mode == "forever":
        store.record_start(start(f"w{worker}-forever"))
        print("started", flush=True)
        n = 0
        while True:
            n += 1
            store.update(f"w{worker}-forever", message=f"step {n}", baseline=str(n))
    for i in range(int(runs)):
        run_id = f"w{worker}-r{i:02d}"
        store.record_start(start(run_id))
        store.update(run_id, sandbox_id=f"sbx-{run_id}", baseline=f"base-{run_id}",
                     sandbox_end_at="2026-05-01T10:40:00Z")
        store.record_creation("local", f"sbx-{run_id}", run_id)
        cost = {"claude_usd": 0.25, "sandbox_usd": 0.0, "total_usd": 0.25,
                "input_tokens": i, "output_tokens": int(worker), "cache_read_tokens": 0,
                "cache_write_tokens": 0}
        store.record_end(run_id, {"status": "completed", "cost": cost,
                                  "sandbox": {"id": f"sbx-{run_id}"}},
                         result_path=f"/o/{run_id}/result.json")
        assert store.get(run_id).status == "completed"
        store.runs(limit=5)
"""


def _spawn(db, go, worker, mode="runs"):
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(db), str(go), str(worker), str(RUNS_EACH), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _kill_mid_writes(proc):
    """Let the endless writer write for a while, then SIGKILL it and reap it."""
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started", proc.stderr.read()
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=TIMEOUT_S)


def _check_rows(db):
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert [v for (v,) in conn.execute("SELECT version FROM schema_migrations")] == [1]
        rows = conn.execute(
            "SELECT run_id, status, sandbox_id, baseline, sandbox_end_at, ended_at,"
            " input_tokens, output_tokens, total_usd, result_path FROM runs"
            " WHERE run_id NOT LIKE '%forever'"
        ).fetchall()
        creations = conn.execute(
            "SELECT run_id, COUNT(*), MIN(sandbox_id) FROM sandbox_creations GROUP BY run_id"
        ).fetchall()
    assert len(rows) == WORKERS * RUNS_EACH
    for run_id, status, sbx, base, end_at, ended, inp, out, usd, path in rows:
        worker, index = run_id[1:].split("-r")
        assert (status, sbx, base) == ("completed", f"sbx-{run_id}", f"base-{run_id}")
        assert end_at == "2026-05-01T10:40:00+00:00"
        assert ended is not None
        assert (inp, out, usd) == (int(index), int(worker), 0.25)
        assert path == f"/o/{run_id}/result.json"
    assert len(creations) == WORKERS * RUNS_EACH
    assert all(count == 1 and sbx == f"sbx-{run_id}" for run_id, count, sbx in creations)


def test_many_processes_write_one_history_without_corrupting_it(tmp_path):
    """8 processes x 30 runs at once, plus a writer killed with SIGKILL: every row complete."""
    db = tmp_path / "data" / "history.sqlite3"
    go = tmp_path / "go"
    procs = [_spawn(db, go, worker) for worker in range(1, WORKERS + 1)]
    endless = _spawn(db, go, WORKERS + 1, mode="forever")
    go.touch()
    try:
        _kill_mid_writes(endless)
        outcomes = [proc.communicate(timeout=TIMEOUT_S) for proc in procs]
    finally:
        for proc in [*procs, endless]:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=TIMEOUT_S)
    assert [proc.returncode for proc in procs] == [0] * WORKERS, outcomes
    assert all(err == "" for _, err in outcomes), outcomes
    assert endless.returncode == -signal.SIGKILL
    _check_rows(db)
    with RunStore.open(db) as store:
        assert store.mark_abandoned(_alive) == 1
        killed = store.get(f"w{WORKERS + 1}-forever")
        assert killed.status == "failed"
        assert killed.message == ABANDONED_MESSAGE
        assert int(killed.baseline) >= 1  # it wrote before it was killed
        assert store.creations_since("2000-01-01") == WORKERS * RUNS_EACH
