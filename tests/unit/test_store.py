import os
import sqlite3
import stat
import subprocess
import sys
import threading
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from claude_e2b import store as store_module
from claude_e2b.cost import build_report, cost_from_result_event, load_prices
from claude_e2b.errors import ConfigError
from claude_e2b.result import AgentInfo, PlanInfo, PrInfo, RunResult, SandboxInfo, TimingInfo
from claude_e2b.store import (
    ABANDONED_MESSAGE,
    MIGRATIONS,
    AmbiguousRunError,
    RunExistsError,
    RunLookupError,
    RunRecord,
    RunStart,
    RunStore,
    Totals,
    UnknownRunError,
    default_db_path,
    normalize_iso,
)

T0 = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, at=T0):
        self.at = at

    def __call__(self):
        return self.at


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "data" / "claude-e2b" / "history.sqlite3"


@pytest.fixture
def store(db_path, clock):
    with RunStore.open(db_path, now=clock) as opened:
        yield opened


def _start(run_id="20260501-093000-abc123", **overrides):
    values = {
        "run_id": run_id,
        "backend": "local",
        "plan_title": "Add a health endpoint",
        "plan_path": "plans/health.md",
        "repository": "/work/app",
        "started_at": "2026-05-01T09:30:00+00:00",
        "timeout_minutes": 60.0,
        "budget_usd": 5.0,
        "max_turns": 40,
        "model": "claude-sonnet-4-5",
        "output_dir": "/work/out",
        "transcript_path": "/work/out/transcript.jsonl",
        "pid": 4242,
    }
    values.update(overrides)
    return RunStart(**values)


def _cost(claude=0.5, sandbox=0.01, tokens=(100, 20, 3000, 400)):
    inp, out, read, write = tokens
    return {"claude_usd": claude, "sandbox_usd": sandbox, "total_usd": claude + sandbox,
            "input_tokens": inp, "output_tokens": out, "cache_read_tokens": read,
            "cache_write_tokens": write, "by_model": {}}  # fmt: skip


def _columns(path, table="runs"):
    with sqlite3.connect(path) as conn:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def _migrations(path):
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT version, applied_at FROM schema_migrations").fetchall()


# -- where the file lives --------------------------------------------------------------


def test_db_path_prefers_the_explicit_variable():
    """CLAUDE_E2B_DB wins over the XDG data directory."""
    env = {"CLAUDE_E2B_DB": "/srv/h.db", "XDG_DATA_HOME": "/x", "HOME": "/home/u"}
    assert default_db_path(env) == Path("/srv/h.db")


def test_db_path_follows_xdg_then_home():
    """XDG_DATA_HOME when absolute, else ~/.local/share, with HOME from the mapping."""
    assert default_db_path({"XDG_DATA_HOME": "/x", "HOME": "/home/u"}) == Path(
        "/x/claude-e2b/history.sqlite3"
    )
    expected = Path("/home/u/.local/share/claude-e2b/history.sqlite3")
    assert default_db_path({"HOME": "/home/u"}) == expected
    assert default_db_path({"XDG_DATA_HOME": "rel", "HOME": "/home/u"}) == expected
    assert default_db_path({"CLAUDE_E2B_DB": "", "XDG_DATA_HOME": "", "HOME": "/home/u"}) == (
        expected
    )


def test_db_path_without_home_uses_the_password_database(monkeypatch):
    """An empty mapping still names a path under the user's home (not from os.environ)."""
    monkeypatch.setenv("HOME", "/nowhere/from/environ")
    path = default_db_path({})
    assert path.parts[-3:] == ("share", "claude-e2b", "history.sqlite3")
    assert not str(path).startswith("/nowhere")


# -- opening ---------------------------------------------------------------------------


def test_open_creates_a_private_directory_and_file(db_path, clock):
    """The new directory is 0700 and the file (and its WAL files) 0600, whatever the umask."""
    old = os.umask(0)
    try:
        with RunStore.open(db_path, now=clock) as store:
            store.record_start(_start())
            wal_files = [p for p in db_path.parent.iterdir() if p != db_path]
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in wal_files}
    finally:
        os.umask(old)
    assert stat.S_IMODE(db_path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    assert modes
    assert set(modes.values()) == {0o600}


def test_open_leaves_an_existing_directory_alone(tmp_path, clock):
    """A directory the user made keeps its mode."""
    tmp_path.chmod(0o755)
    with RunStore.open(tmp_path / "h.sqlite3", now=clock):
        pass
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755


def test_open_uses_wal_and_records_the_migration_once(db_path, clock):
    """WAL journal; version 1 is recorded once with its time, reopening changes nothing."""
    with RunStore.open(db_path, now=clock) as store:
        assert store.schema_version() == 1
    clock.at += timedelta(days=1)
    with RunStore.open(db_path, now=clock) as store:
        assert store.schema_version() == 1
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert _migrations(db_path) == [(1, "2026-05-01T09:30:00+00:00")]


def test_migrations_are_numbered_from_one_without_gaps():
    """Each version once, in order: adding one is appending the next number."""
    assert [version for version, _ in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


def test_the_runs_table_has_a_column_per_record_field(store, db_path):
    """RunRecord and the schema name the same columns."""
    assert _columns(db_path) == [f.name for f in fields(RunRecord)]


# -- migrations ------------------------------------------------------------------------


def test_a_version_one_database_migrates_to_version_two_and_keeps_its_rows(
    db_path, clock, monkeypatch
):
    """A new list entry is applied once to an existing file; its rows stay readable."""
    with RunStore.open(db_path, now=clock) as store:
        store.record_start(_start("r-1"))
        store.record_end("r-1", {"status": "completed", "cost": _cost()}, result_path="/r.json")
        store.record_start(_start("r-2"))
    before = RunStore.open(db_path, now=clock)
    old_rows = before.runs()
    before.close()
    v2 = "ALTER TABLE runs ADD COLUMN note TEXT; UPDATE runs SET note = 'a;b' WHERE run_id = 'r-1'"
    monkeypatch.setattr(store_module, "MIGRATIONS", [*MIGRATIONS, (2, v2)])
    clock.at += timedelta(hours=1)
    with RunStore.open(db_path, now=clock) as store:
        assert store.schema_version() == 2
        assert store.runs() == old_rows
    with RunStore.open(db_path, now=clock):
        pass
    assert _migrations(db_path) == [
        (1, "2026-05-01T09:30:00+00:00"),
        (2, "2026-05-01T10:30:00+00:00"),
    ]
    assert "note" in _columns(db_path)
    with sqlite3.connect(db_path) as conn:
        notes = dict(conn.execute("SELECT run_id, note FROM runs"))
    assert notes == {"r-1": "a;b", "r-2": None}


def test_a_migration_with_a_trigger_runs_every_statement(db_path, clock, monkeypatch):
    """Statements are split where SQLite says they end, not at every semicolon."""
    v2 = """
    CREATE TABLE run_events (run_id TEXT, what TEXT);
    CREATE TRIGGER runs_ended AFTER UPDATE OF status ON runs BEGIN
        INSERT INTO run_events VALUES (NEW.run_id, 'status;' || NEW.status);
    END;
    -- a comment at the end
    """
    monkeypatch.setattr(store_module, "MIGRATIONS", [*MIGRATIONS, (2, v2)])
    with RunStore.open(db_path, now=clock) as store:
        store.record_start(_start("r-1"))
        store.record_end("r-1", {"status": "failed"}, result_path=None)
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT * FROM run_events").fetchall() == [("r-1", "status;failed")]


def test_a_failing_migration_leaves_the_file_as_it_was(db_path, clock, monkeypatch):
    """All pending versions apply in one transaction: a failure rolls all of them back."""
    with RunStore.open(db_path, now=clock) as store:
        store.record_start(_start("r-1"))
    broken = [(2, "ALTER TABLE runs ADD COLUMN note TEXT"), (3, "UPDATE no_such_table SET x = 1")]
    monkeypatch.setattr(store_module, "MIGRATIONS", [*MIGRATIONS, *broken])
    with pytest.raises(ConfigError, match="no such table"):
        RunStore.open(db_path, now=clock)
    assert "note" not in _columns(db_path)
    assert [v for v, _ in _migrations(db_path)] == [1]
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS)
    with RunStore.open(db_path, now=clock) as store:
        assert store.get("r-1").status == "running"


def test_a_file_from_a_newer_version_is_still_read(db_path, clock, monkeypatch):
    """A later, additive schema (an extra column, version 2) does not stop this version."""
    monkeypatch.setattr(
        store_module, "MIGRATIONS", [*MIGRATIONS, (2, "ALTER TABLE runs ADD COLUMN note TEXT")]
    )
    with RunStore.open(db_path, now=clock) as store:
        store.record_start(_start("r-1"))
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS)
    with RunStore.open(db_path, now=clock) as store:
        assert store.schema_version() == 2
        store.update("r-1", sandbox_id="sbx")
        assert store.get("r-1").sandbox_id == "sbx"


# -- record_start, update, get ---------------------------------------------------------


def test_a_started_run_reads_back_as_running(store):
    """Every start field is stored; the rest is empty; the time is stored in UTC."""
    start = _start(started_at="2026-05-01T11:30:00.250+02:00")
    store.record_start(start)
    record = store.get(start.run_id)
    assert record.status == "running"
    assert record.started_at == "2026-05-01T09:30:00+00:00"
    expected = {**{f.name: None for f in fields(RunRecord)}, **start.__dict__}
    expected.update(status="running", started_at="2026-05-01T09:30:00+00:00")
    assert record.to_dict() == expected


def test_a_run_id_is_recorded_once(store):
    """Starting a run twice is an error, and the first record stays."""
    store.record_start(_start("r-1"))
    with pytest.raises(RunExistsError, match="r-1"):
        store.record_start(_start("r-1", plan_title="other"))
    assert store.get("r-1").plan_title == "Add a health endpoint"


def test_a_start_missing_a_required_value_is_not_mistaken_for_a_duplicate(store):
    """A NULL where the schema needs a value is a ValueError of its own."""
    with pytest.raises(ValueError, match="NOT NULL") as caught:
        store.record_start(_start("r-1", repository=None))
    assert not isinstance(caught.value, RunExistsError)
    assert store.runs() == []


def test_a_start_needs_an_iso_time(store):
    """A malformed start time is refused before anything is written."""
    with pytest.raises(ValueError, match="ISO-8601"):
        store.record_start(_start(started_at="yesterday"))
    assert store.runs() == []


def test_update_sets_the_named_columns(store):
    """Sandbox id, baseline and lifetime end are set; times are stored in UTC."""
    store.record_start(_start("r-1"))
    store.update(
        "r-1", sandbox_id="sbx-1", baseline="abc123", sandbox_end_at="2026-05-01T12:00:00+02:00"
    )
    record = store.get("r-1")
    assert (record.sandbox_id, record.baseline, record.sandbox_end_at) == (
        "sbx-1",
        "abc123",
        "2026-05-01T10:00:00+00:00",
    )
    assert record.status == "running"


def test_update_refuses_an_unknown_column_and_changes_nothing(store):
    """The ValueError names the column; the known ones in the same call are not set."""
    store.record_start(_start("r-1"))
    with pytest.raises(ValueError, match="sandbox_idd"):
        store.update("r-1", sandbox_id="sbx", sandbox_idd="typo")
    with pytest.raises(ValueError, match="run_id"):
        store.update("r-1", run_id="r-2")
    assert store.get("r-1").sandbox_id is None


def test_update_of_an_unknown_run_is_a_lookup_error(store):
    """Nothing is created by an update."""
    with pytest.raises(UnknownRunError, match="r-9"):
        store.update("r-9", status="failed")
    assert store.runs() == []


def test_update_with_nothing_to_set_does_nothing(store):
    """An empty update is no error and no change."""
    store.record_start(_start("r-1"))
    before = store.get("r-1")
    store.update("r-1")
    assert store.get("r-1") == before


def test_get_takes_a_unique_prefix(store):
    """The start of an id finds its run; an exact id wins over longer ids it begins."""
    for run_id in ("20260501-093000-aaa111", "20260501-093000-aab222", "run-1", "run-10"):
        store.record_start(_start(run_id))
    assert store.get("20260501-093000-aaa").run_id == "20260501-093000-aaa111"
    assert store.get("run-1").run_id == "run-1"
    assert store.get("run-10").run_id == "run-10"


def test_an_ambiguous_prefix_lists_the_candidates(store):
    """The error names every matching id."""
    for run_id in ("20260501-093000-aaa111", "20260501-093000-aab222", "20260502-1"):
        store.record_start(_start(run_id))
    with pytest.raises(AmbiguousRunError) as caught:
        store.get("20260501")
    assert caught.value.candidates == ("20260501-093000-aaa111", "20260501-093000-aab222")
    assert "20260501-093000-aaa111, 20260501-093000-aab222" in str(caught.value)
    assert isinstance(caught.value, LookupError)


def test_many_candidates_are_cut_short(store):
    """Ten ids are listed, then an ellipsis."""
    for n in range(12):
        store.record_start(_start(f"r-{n:02d}"))
    with pytest.raises(AmbiguousRunError) as caught:
        store.get("r-")
    assert len(caught.value.candidates) == 10
    assert str(caught.value).count("r-") >= 10
    assert "…" in str(caught.value)


@pytest.mark.parametrize("query", ["", "r-2", "R-1", "r_1", "r%", "-1"])
def test_unknown_ids_and_prefixes_are_lookup_errors(store, query):
    """No wildcard, case folding or infix match; the message names what was asked."""
    store.record_start(_start("r-1"))
    with pytest.raises(UnknownRunError) as caught:
        store.get(query)
    assert isinstance(caught.value, RunLookupError)
    assert caught.value.candidates == ()
    assert (repr(query) in str(caught.value)) if query else "no run id" in str(caught.value)


# -- record_end ------------------------------------------------------------------------


def test_end_from_a_minimal_result(store, clock):
    """Only a status: the end time is now, cost and PR stay empty, the sandbox id stays."""
    store.record_start(_start("r-1"))
    store.update("r-1", sandbox_id="sbx-early")
    clock.at += timedelta(minutes=5)
    store.record_end("r-1", {"status": "failed"}, result_path=None)
    record = store.get("r-1")
    assert record.status == "failed"
    assert record.ended_at == "2026-05-01T09:35:00+00:00"
    assert record.sandbox_id == "sbx-early"
    costs = [getattr(record, name) for name in ("claude_usd", "total_usd", "input_tokens")]
    assert costs == [None, None, None]
    assert (record.pr_url, record.message, record.result_path) == (None, None, None)


def _real_result():
    reported = cost_from_result_event(
        {"claude-sonnet-4-5": {"inputTokens": 2150, "outputTokens": 150,
                               "cacheReadInputTokens": 12000,
                               "cacheCreationInputTokens": 12100, "costUSD": 0.057675}},
        0.057675,
    )  # fmt: skip
    report = build_report(
        reported, sandbox_seconds=125.0, vcpus=2, memory_gib=2, table=load_prices(), estimated=False
    )
    return RunResult(
        run_id="r-1",
        status="completed",
        plan=PlanInfo("plans/health.md", "Add a health endpoint", 0, 2, 2),
        sandbox=SandboxInfo("e2b", "sbx-final", "anthropic-claude-code", 125.0),
        agent=AgentInfo(0, 7, "sess", "Added GET /health."),
        verify=None,
        changes=(),
        skipped_changes=(),
        cost=report.to_result(),
        timing=TimingInfo(130.0, 2.0, 120.0, 1.0),
        pr=PrInfo("https://github.example/octo/app/pull/7", 7, "claude-e2b/h", False, "created"),
        message="done, with one warning",
    )


def test_end_from_a_full_result_stores_cost_pr_and_sandbox(store, clock):
    """Tokens and dollars come from the cost block, the URL from pr, the id from sandbox."""
    result = _real_result()
    data = {**result.to_dict(), "message": result.message}
    store.record_start(_start("r-1"))
    store.update("r-1", sandbox_id="sbx-early")
    store.record_end("r-1", data, result_path="/work/out/result.json")
    record = store.get("r-1")
    cost = data["cost"]
    assert cost["input_tokens"] == 2150
    assert cost["sandbox_usd"] > 0
    for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
        assert getattr(record, name) == cost[name]
        assert isinstance(getattr(record, name), int)
    for name in ("claude_usd", "sandbox_usd", "total_usd"):
        assert getattr(record, name) == pytest.approx(cost[name])
    assert record.pr_url == "https://github.example/octo/app/pull/7"
    assert record.sandbox_id == "sbx-final"
    assert record.message == "done, with one warning"
    assert record.result_path == "/work/out/result.json"
    assert (record.status, record.ended_at) == ("completed", "2026-05-01T09:30:00+00:00")


def test_end_ignores_values_that_are_not_numbers(store):
    """A damaged cost block stores nothing rather than nonsense (a bool is no count)."""
    store.record_start(_start("r-1"))
    cost = {"input_tokens": True, "output_tokens": "12", "claude_usd": None, "total_usd": 1}
    store.record_end("r-1", {"status": "failed", "cost": cost, "pr": None}, result_path=None)
    record = store.get("r-1")
    assert (record.input_tokens, record.output_tokens, record.claude_usd) == (None, None, None)
    assert record.total_usd == 1.0


def test_end_needs_a_status_and_a_known_run(store):
    """No status: ValueError; an unknown run: a lookup error; nothing is written."""
    store.record_start(_start("r-1"))
    with pytest.raises(ValueError, match="no status"):
        store.record_end("r-1", {"cost": _cost()}, result_path=None)
    with pytest.raises(UnknownRunError, match="r-2"):
        store.record_end("r-2", {"status": "failed"}, result_path=None)
    assert store.get("r-1").status == "running"


# -- listing and totals ----------------------------------------------------------------


def test_runs_are_listed_newest_first_with_a_limit_and_a_status(store):
    """Ordered by start time, then by recording order; filtered by status."""
    store.record_start(_start("old", started_at="2026-04-30T10:00:00+00:00"))
    store.record_start(_start("same-1", started_at="2026-05-01T10:00:00+00:00"))
    store.record_start(_start("same-2", started_at="2026-05-01T10:00:00+00:00"))
    store.record_start(_start("new", started_at="2026-05-01T12:00:00+02:00"))
    store.record_end("old", {"status": "completed"}, result_path=None)
    # "new" started at 10:00 UTC too, and was recorded last.
    assert [r.run_id for r in store.runs()] == ["new", "same-2", "same-1", "old"]
    assert [r.run_id for r in store.runs(limit=2)] == ["new", "same-2"]
    assert [r.run_id for r in store.runs(status="completed")] == ["old"]
    assert store.runs(limit=0) == []
    with pytest.raises(ValueError, match="limit"):
        store.runs(limit=-1)


def _history(store):
    runs = [
        ("a", "2026-04-30T23:59:59+00:00", "plans/a.md", "A", "completed", _cost(1.0, 0.1)),
        ("b", "2026-05-01T01:00:00+02:00", "plans/b.md", "B", "failed", _cost(3.0, 0.2)),
        ("c", "2026-05-01T08:00:00+00:00", "plans/a.md", "A renamed", "completed", _cost(2.0, 0)),
        ("d", "2026-05-02T08:00:00+00:00", None, "Ad hoc", "no_changes", _cost(0.25, 0)),
        ("e", "2026-05-02T09:00:00+00:00", None, "Ad hoc", None, None),
    ]
    for run_id, started, path, title, status, cost in runs:
        store.record_start(_start(run_id, started_at=started, plan_path=path, plan_title=title))
        if status:
            store.record_end(run_id, {"status": status, "cost": cost}, result_path=None)


def test_totals_per_day_are_newest_first_by_utc_date(store):
    """Days are UTC dates of the start; a running run counts, with no cost."""
    _history(store)
    days = store.totals("day")
    assert [(t.key, t.runs, t.completed) for t in days] == [
        ("2026-05-02", 2, 0),
        ("2026-05-01", 1, 1),
        ("2026-04-30", 2, 1),
    ]
    assert days[2].claude_usd == pytest.approx(4.0)
    assert days[2].total_usd == pytest.approx(4.3)
    assert days[2].input_tokens == 200
    assert days[2].tokens == 2 * (100 + 20 + 3000 + 400)
    assert days[0].total_usd == pytest.approx(0.25)
    assert days[2].to_dict()["tokens"] == days[2].tokens


def test_totals_per_plan_are_costliest_first(store):
    """A plan is its path (whatever its title), else its title."""
    _history(store)
    plans = store.totals("plan")
    assert [(t.key, t.runs, t.completed) for t in plans] == [
        ("plans/b.md", 1, 0),
        ("plans/a.md", 2, 2),
        ("Ad hoc", 2, 0),
    ]
    assert plans[1].total_usd == pytest.approx(3.1)
    assert all(isinstance(t, Totals) and isinstance(t.input_tokens, int) for t in plans)


def test_totals_since_a_date_or_time(store):
    """Only runs started at or after ``since`` count (a date means its midnight, UTC)."""
    _history(store)
    assert [t.key for t in store.totals("day", since="2026-05-01")] == ["2026-05-02", "2026-05-01"]
    assert [t.key for t in store.totals("plan", since="2026-05-02T09:00:00Z")] == ["Ad hoc"]
    assert store.totals("plan", since="2026-05-03") == []
    with pytest.raises(ValueError, match="ISO-8601"):
        store.totals("day", since="last week")
    with pytest.raises(ValueError, match="month"):
        store.totals("month")


def test_totals_of_an_empty_history(store):
    """No runs, no rows."""
    assert store.totals("day") == []
    assert store.totals("plan") == []


# -- sandbox creations -----------------------------------------------------------------


def test_creations_are_counted_since_a_time_and_per_backend(store, clock):
    """The boundary counts, whatever way the time is spelled; other backends are apart."""
    store.record_creation("e2b", "sbx-1", "r-1", at="2026-05-01T08:00:00+00:00")
    store.record_creation("e2b", "sbx-2", "r-2", at="2026-05-01T08:30:00Z")
    store.record_creation("local", "lb-1", None)  # now: 09:30
    assert store.creations_since("2026-05-01T08:30:00Z") == 2
    assert store.creations_since("2026-05-01T10:30:00+02:00", backend="e2b") == 1
    assert store.creations_since("2026-05-01T08:30:01+00:00", backend="e2b") == 0
    assert store.creations_since("2026-05-01T09:30:00+00:00", backend="local") == 1
    assert store.creations_since("2026-05-01") == 3


def test_creation_times_are_listed_oldest_first(store):
    """The times themselves (for when the next creation is allowed), from a datetime or text."""
    store.record_creation("e2b", "sbx-2", "r-2", at="2026-05-01T09:10:00+00:00")
    store.record_creation("e2b", "sbx-1", "r-1", at="2026-05-01T10:05:00+02:00")
    store.record_creation("local", "lb-1", None, at="2026-05-01T09:20:00+00:00")
    assert store.creation_times("e2b", since=T0 - timedelta(hours=1)) == [
        "2026-05-01T09:10:00+00:00"
    ]
    assert store.creation_times("e2b", since=T0 - timedelta(hours=2)) == [
        "2026-05-01T08:05:00+00:00",
        "2026-05-01T09:10:00+00:00",
    ]
    assert store.creation_times(since="2026-05-01T09:10:00Z") == [
        "2026-05-01T09:10:00+00:00",
        "2026-05-01T09:20:00+00:00",
    ]
    assert store.creation_times("local", since=T0) == []


def test_creations_need_iso_times(store):
    """A malformed time is a ValueError, not a silent count of zero."""
    with pytest.raises(ValueError, match="ISO-8601"):
        store.creations_since("an hour ago")
    with pytest.raises(ValueError, match="ISO-8601"):
        store.record_creation("e2b", "sbx", None, at="now")


# -- abandoned runs --------------------------------------------------------------------


def test_runs_whose_process_is_gone_are_marked_failed(store, clock):
    """Only running rows with a dead pid change; ended runs are not even asked about."""
    store.record_start(_start("alive", pid=100))
    store.record_start(_start("dead", pid=200))
    store.record_start(_start("ended", pid=300))
    store.record_end("ended", {"status": "completed"}, result_path=None)
    asked = []

    def is_alive(pid):
        asked.append(pid)
        return pid == 100

    clock.at += timedelta(hours=2)
    assert store.mark_abandoned(is_alive) == 1
    assert sorted(asked) == [100, 200]
    dead = store.get("dead")
    assert (dead.status, dead.message) == ("failed", ABANDONED_MESSAGE)
    assert dead.ended_at == "2026-05-01T11:30:00+00:00"
    assert store.get("alive").status == "running"
    assert store.get("ended").status == "completed"
    assert store.mark_abandoned(is_alive) == 0


def test_a_run_that_ends_while_being_checked_keeps_its_end(store):
    """A run recording its own end between the check and the mark is not overwritten."""
    store.record_start(_start("r-1"))

    def ends_meanwhile(pid):
        store.record_end("r-1", {"status": "completed"}, result_path=None)
        return False

    assert store.mark_abandoned(ends_meanwhile) == 0
    assert store.get("r-1").status == "completed"


def test_a_real_exited_process_is_abandoned(store):
    """With a liveness check by signal 0, a reaped child's pid counts as gone."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    store.record_start(_start("gone", pid=proc.pid))
    store.record_start(_start("me", pid=os.getpid()))

    def is_alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    assert store.mark_abandoned(is_alive) == 1
    assert store.get("gone").status == "failed"
    assert store.get("me").status == "running"


# -- damaged, unusable and busy files --------------------------------------------------


def test_a_file_that_is_not_a_database_says_what_to_do(db_path, clock):
    """The message names the path; the hint says to move it aside or use --db."""
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"this is a text file, not SQLite\n" * 200)
    with pytest.raises(ConfigError) as caught:
        RunStore.open(db_path, now=clock)
    assert str(db_path) in caught.value.message
    assert "not a SQLite database" in caught.value.message
    assert "move it aside" in caught.value.hint
    assert "--db PATH" in caught.value.hint


def test_a_database_damaged_inside_says_what_to_do(db_path, clock):
    """Pages overwritten behind SQLite's back: the read fails with the same advice."""
    with RunStore.open(db_path, now=clock) as store:
        for n in range(200):
            store.record_start(_start(f"r-{n:03d}"))
    size = db_path.stat().st_size
    assert size > 8192
    with db_path.open("r+b") as raw:
        raw.seek(4096)
        raw.write(b"\xa5" * (size - 4096))
    with pytest.raises(ConfigError) as caught, RunStore.open(db_path, now=clock) as store:
        store.runs(limit=1000)
    assert str(db_path) in caught.value.message
    assert "damaged" in caught.value.message
    assert "move it aside" in caught.value.hint


def test_a_path_that_cannot_be_a_file_says_so(tmp_path, clock):
    """A parent that is a file, or a directory at the path: ConfigError naming the path."""
    (tmp_path / "plain").write_text("x")
    for path in (tmp_path / "plain" / "history.sqlite3", tmp_path):
        with pytest.raises(ConfigError) as caught:
            RunStore.open(path, now=clock)
        assert str(path) in caught.value.message
        assert "--db PATH" in caught.value.hint


def test_a_database_locked_too_long_says_so(db_path, clock, monkeypatch):
    """Another process holding the write lock past the busy timeout: a clear ConfigError."""
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.2)
    with RunStore.open(db_path, now=clock) as store:
        other = sqlite3.connect(db_path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(ConfigError) as caught:
                store.record_start(_start("r-1"))
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert "locked by another process" in caught.value.message
        assert str(db_path) in caught.value.message
        store.record_start(_start("r-1"))
        assert store.get("r-1").status == "running"


# -- threads ---------------------------------------------------------------------------


def test_threads_share_one_store(store):
    """Eight threads recording runs at once: every run is complete."""
    errors = []

    def worker(n):
        try:
            for i in range(20):
                run_id = f"t{n}-{i}"
                store.record_start(_start(run_id))
                store.update(run_id, sandbox_id=f"sbx-{run_id}")
                store.record_end(run_id, {"status": "completed", "cost": _cost()}, result_path="r")
                store.get(run_id)
        except Exception as exc:  # the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    runs = store.runs(limit=1000)
    assert len(runs) == 160
    assert all(r.status == "completed" and r.sandbox_id == f"sbx-{r.run_id}" for r in runs)


def test_a_call_from_inside_a_call_fails_at_once(store):
    """A signal handler re-entering the store gets an error, not a deadlock."""
    store.record_start(_start("r-1"))
    with store._locked(), pytest.raises(RuntimeError, match="signal handler"):
        store.update("r-1", status="cancelled")
    store.update("r-1", status="cancelled")
    assert store.get("r-1").status == "cancelled"


def test_a_closed_store_can_be_closed_again(db_path, clock):
    """close() twice is fine; using it afterwards is a programming error, not a ConfigError."""
    store = RunStore.open(db_path, now=clock)
    store.close()
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        store.runs()


def test_normalize_iso_spells_every_time_the_same_way():
    """Offsets, Z, fractions and naive times all become UTC to the second."""
    assert normalize_iso("2026-05-01T12:00:00.9+02:00") == "2026-05-01T10:00:00+00:00"
    assert normalize_iso("2026-05-01T10:00:00Z") == "2026-05-01T10:00:00+00:00"
    assert normalize_iso("2026-05-01T10:00:00") == "2026-05-01T10:00:00+00:00"
    assert normalize_iso("2026-05-01") == "2026-05-01T00:00:00+00:00"


def test_a_record_is_plain_data(store):
    """to_dict round-trips through RunRecord; replace works (frozen dataclass)."""
    store.record_start(_start("r-1"))
    record = store.get("r-1")
    assert RunRecord(**record.to_dict()) == record
    assert replace(record, status="failed").status == "failed"
