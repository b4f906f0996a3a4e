"""The run history: one SQLite file per user, written by every run from start to end.

The file lives at a per-user data path (:func:`default_db_path`) or where ``--db``
says. Many runs on one machine (a matrix) write it at once, so:

- the journal is WAL (readers never block the writer) and every connection waits up
  to ``BUSY_TIMEOUT_S`` for a lock instead of failing;
- every write is one short ``BEGIN IMMEDIATE`` transaction (it takes the write lock
  up front, so two writers never deadlock upgrading a read lock);
- the schema comes from numbered migrations (``MIGRATIONS``), each recorded in
  ``schema_migrations``; they are applied in order inside one ``BEGIN IMMEDIATE``, so
  two processes opening a new file at once don't both migrate.

One connection per :class:`RunStore`, shared by its threads under a lock (the CLI's
cancellation path writes from wherever it runs). SQLite errors never leave this
module as they are: a damaged, unreadable or locked file becomes a
:class:`~claude_e2b.errors.ConfigError` that names the path and what to do.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from claude_e2b.errors import ConfigError

__all__ = [
    "FINAL_STATUSES",
    "MIGRATIONS",
    "RUNNING",
    "AmbiguousRunError",
    "RunExistsError",
    "RunLookupError",
    "RunRecord",
    "RunStart",
    "RunStore",
    "Totals",
    "UnknownRunError",
    "default_db_path",
    "normalize_iso",
    "open_history",
    "utc_iso",
]

BUSY_TIMEOUT_S = 10.0
# A thread waits for another thread's call at most this long: a call is one short
# transaction that itself waits at most BUSY_TIMEOUT_S for other processes.
THREAD_WAIT_S = 3 * BUSY_TIMEOUT_S
RUNNING = "running"
FINAL_STATUSES: frozenset[str] = frozenset(
    {"completed", "no_changes", "timed_out", "budget_exceeded", "failed", "blocked", "cancelled"}
)
ABANDONED_MESSAGE = "the process running it ended without recording an end (killed?)"
_DB_NAME = "history.sqlite3"
_CANDIDATES_SHOWN = 10

_V1 = """
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY NOT NULL,
    backend TEXT NOT NULL,
    sandbox_id TEXT,
    plan_title TEXT NOT NULL,
    plan_path TEXT,
    repository TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    timeout_minutes REAL,
    budget_usd REAL,
    max_turns INTEGER,
    model TEXT,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cache_read_tokens INTEGER,
    cache_write_tokens INTEGER,
    claude_usd REAL,
    sandbox_usd REAL,
    total_usd REAL,
    pr_url TEXT,
    result_path TEXT,
    output_dir TEXT,
    transcript_path TEXT,
    message TEXT,
    pid INTEGER,
    baseline TEXT,
    sandbox_end_at TEXT
);
CREATE INDEX runs_started_at ON runs (started_at);
CREATE INDEX runs_status ON runs (status);
CREATE TABLE sandbox_creations (
    id INTEGER PRIMARY KEY,
    backend TEXT NOT NULL,
    sandbox_id TEXT NOT NULL,
    run_id TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX sandbox_creations_created_at ON sandbox_creations (created_at);
"""

# (version, SQL): append a new entry to change the schema; never edit a released one.
MIGRATIONS: list[tuple[int, str]] = [(1, _V1)]


class RunLookupError(LookupError):
    """No single run matches an id or prefix; ``candidates`` holds the ids that matched."""

    def __init__(self, message: str, candidates: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.candidates = candidates


class UnknownRunError(RunLookupError):
    """No run has that id (or an id starting with it)."""


class AmbiguousRunError(RunLookupError):
    """More than one run id starts with the prefix given."""


class RunExistsError(ValueError):
    """A run with that id was recorded already."""


@dataclass(frozen=True)
class RunStart:
    """What is known of a run when it starts."""

    run_id: str
    backend: str  # "local" or "e2b"
    plan_title: str
    plan_path: str | None
    repository: str  # the checkout path, or owner/name
    started_at: str  # ISO-8601; stored as UTC
    timeout_minutes: float | None
    budget_usd: float | None
    max_turns: int | None
    model: str | None
    output_dir: str | None
    transcript_path: str | None
    pid: int


@dataclass(frozen=True)
class RunRecord:
    """One run of the history, as stored (times are ISO-8601 UTC strings)."""

    run_id: str
    backend: str
    sandbox_id: str | None
    plan_title: str
    plan_path: str | None
    repository: str
    status: str  # RUNNING, or one of FINAL_STATUSES
    started_at: str
    ended_at: str | None
    timeout_minutes: float | None
    budget_usd: float | None
    max_turns: int | None
    model: str | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    claude_usd: float | None
    sandbox_usd: float | None
    total_usd: float | None
    pr_url: str | None
    result_path: str | None
    output_dir: str | None
    transcript_path: str | None  # the run's output log
    message: str | None
    pid: int | None
    baseline: str | None  # the commit the upload made in the sandbox
    sandbox_end_at: str | None  # until when the sandbox lives

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class Totals:
    """Runs and their cost summed over one day (UTC, ``YYYY-MM-DD``) or one plan."""

    key: str
    runs: int
    completed: int
    claude_usd: float
    sandbox_usd: float
    total_usd: float
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int

    @property
    def tokens(self) -> int:
        """All tokens: input, output, cache reads and cache writes."""
        return sum(getattr(self, name) for name in _COST_INTS)

    def to_dict(self) -> dict[str, Any]:
        """The totals as a JSON-ready dict, ``tokens`` included."""
        return {**asdict(self), "tokens": self.tokens}


_COLUMNS = tuple(f.name for f in fields(RunRecord))
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM runs"  # noqa: S608 - names from RunRecord
_UPDATABLE = frozenset(_COLUMNS) - {"run_id"}
_TIME_COLUMNS = frozenset({"started_at", "ended_at", "sandbox_end_at"})
_COST_INTS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
_COST_FLOATS = ("claude_usd", "sandbox_usd", "total_usd")
_SUMS = ", ".join(
    [f"TOTAL({name})" for name in _COST_FLOATS]
    + [f"CAST(TOTAL({n}) AS INTEGER)" for n in _COST_INTS]
)
_GROUPS = {"day": "substr(started_at, 1, 10)", "plan": "COALESCE(plan_path, plan_title)"}
_ORDERS = {"day": "key DESC", "plan": "TOTAL(total_usd) DESC, key"}


def default_db_path(environ: Mapping[str, str]) -> Path:
    """$CLAUDE_E2B_DB, else $XDG_DATA_HOME/claude-e2b/, else ~/.local/share/claude-e2b/."""
    if environ.get("CLAUDE_E2B_DB"):
        return Path(environ["CLAUDE_E2B_DB"])
    data_home = environ.get("XDG_DATA_HOME", "")
    if not Path(data_home).is_absolute():  # the XDG spec: a relative value is ignored
        data_home = str(_home(environ) / ".local" / "share")
    return Path(data_home) / "claude-e2b" / _DB_NAME


def _home(environ: Mapping[str, str]) -> Path:
    """$HOME from the mapping, else the user's home from the password database."""
    if environ.get("HOME"):
        return Path(environ["HOME"])
    import pwd  # noqa: PLC0415 - POSIX only, needed only without $HOME

    return Path(pwd.getpwuid(os.getuid()).pw_dir)


def utc_iso(moment: datetime) -> str:
    """``moment`` as an ISO-8601 UTC string to the second (a naive time is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def normalize_iso(text: str) -> str:
    """An ISO-8601 time or date as stored (UTC, to the second); raises ValueError if not one."""
    try:
        return utc_iso(datetime.fromisoformat(text))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not an ISO-8601 time: {text!r}") from exc


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RunStore:
    """The run history in one SQLite file; see the module docstring for its rules."""

    def __init__(
        self, conn: sqlite3.Connection, path: Path, now: Callable[[], datetime] = _utcnow
    ) -> None:
        """Wrap an open, migrated connection; use :meth:`open` to get one."""
        self.path = path
        self._conn = conn
        self._now = now
        self._lock = threading.Lock()
        self._owner: int | None = None

    @classmethod
    def open(cls, path: Path, *, now: Callable[[], datetime] = _utcnow) -> Self:
        """Open (creating and migrating) the history at ``path``; raises ConfigError."""
        _create_private(path)
        try:
            conn = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise _config_error(path, exc) from exc
        store = cls(conn, path, now)
        try:
            with store._mapped():
                _configure(conn)
                _migrate(conn, utc_iso(now()))
        except BaseException:
            conn.close()
            raise
        return store

    def close(self) -> None:
        """Close the connection (again: nothing happens)."""
        with self._locked():
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def schema_version(self) -> int:
        """The highest migration applied to this file."""
        with self._reading() as conn:
            return _applied_version(conn)

    # -- runs ---------------------------------------------------------------------

    def record_start(self, start: RunStart) -> None:
        """Record a new run as running; raises RunExistsError if its id is taken."""
        row = {**asdict(start), "status": RUNNING}
        row["started_at"] = normalize_iso(start.started_at)
        marks = ", ".join("?" for _ in row)
        sql = f"INSERT INTO runs ({', '.join(row)}) VALUES ({marks})"  # noqa: S608 - RunStart's names
        try:
            with self._writing() as conn:
                conn.execute(sql, tuple(row.values()))
        except sqlite3.IntegrityError as exc:
            if exc.sqlite_errorname == "SQLITE_CONSTRAINT_PRIMARYKEY":
                raise RunExistsError(f"a run with id {start.run_id!r} is recorded already") from exc
            raise ValueError(f"run {start.run_id!r} could not be recorded: {exc}") from exc

    def update(self, run_id: str, /, **values: Any) -> None:
        """Set the named columns of run ``run_id``; ValueError for an unknown column."""
        row = _checked_columns(values)
        if not row:
            return
        assignments = ", ".join(f"{name} = ?" for name in row)
        with self._writing() as conn:
            cursor = conn.execute(
                f"UPDATE runs SET {assignments} WHERE run_id = ?",  # noqa: S608 - checked names
                (*row.values(), run_id),
            )
            _found(cursor.rowcount, run_id)

    def record_end(
        self, run_id: str, result: Mapping[str, Any], *, result_path: str | None
    ) -> None:
        """Store how run ``run_id`` ended, from result.json's dict (plus ``message`` if any).

        Raises ValueError if the result has no status, UnknownRunError if no such run.
        """
        row = _end_columns(result)
        row.update(ended_at=utc_iso(self._now()), result_path=result_path)
        sandbox_id = _nested(result, "sandbox", "id")
        assignments = ", ".join(f"{name} = ?" for name in row)
        with self._writing() as conn:
            cursor = conn.execute(
                f"UPDATE runs SET {assignments}, sandbox_id = COALESCE(?, sandbox_id)"  # noqa: S608
                " WHERE run_id = ?",
                (*row.values(), sandbox_id or None, run_id),
            )
            _found(cursor.rowcount, run_id)

    def get(self, run_id_or_prefix: str) -> RunRecord:
        """The run with this id, or the only one whose id starts with it; raises RunLookupError."""
        if not run_id_or_prefix:
            raise UnknownRunError("no run id given")
        with self._reading() as conn:
            row = conn.execute(f"{_SELECT} WHERE run_id = ?", (run_id_or_prefix,)).fetchone()
            if row is not None:
                return RunRecord(*row)
            rows = conn.execute(
                f"{_SELECT} WHERE substr(run_id, 1, length(?1)) = ?1 ORDER BY run_id LIMIT ?2",
                (run_id_or_prefix, _CANDIDATES_SHOWN + 1),
            ).fetchall()
        return _only(run_id_or_prefix, [RunRecord(*r) for r in rows])

    def runs(self, limit: int = 50, status: str | None = None) -> list[RunRecord]:
        """Up to ``limit`` runs, newest first, only those with ``status`` if given."""
        if limit < 0:
            raise ValueError(f"limit must be 0 or more, got {limit}")
        where, params = ("WHERE status = ?", (status,)) if status is not None else ("", ())
        with self._reading() as conn:
            rows = conn.execute(
                f"{_SELECT} {where} ORDER BY started_at DESC, rowid DESC LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [RunRecord(*row) for row in rows]

    def totals(self, by: Literal["day", "plan"], since: str | None = None) -> list[Totals]:
        """Runs and cost per UTC day (newest first) or per plan (costliest first)."""
        if by not in _GROUPS:
            raise ValueError(f"totals by 'day' or 'plan', not {by!r}")
        since_iso = normalize_iso(since) if since is not None else ""
        sql = (
            f"SELECT {_GROUPS[by]} AS key, COUNT(*), SUM(status = 'completed'), {_SUMS}"  # noqa: S608
            f" FROM runs WHERE started_at >= ? GROUP BY key ORDER BY {_ORDERS[by]}"
        )
        with self._reading() as conn:
            rows = conn.execute(sql, (since_iso,)).fetchall()
        return [Totals(*row) for row in rows]

    def mark_abandoned(self, is_alive: Callable[[int], bool]) -> int:
        """Mark running runs whose process is gone as failed; returns how many."""
        with self._reading() as conn:
            running = conn.execute(
                "SELECT run_id, pid FROM runs WHERE status = ? AND pid IS NOT NULL", (RUNNING,)
            ).fetchall()
        gone = [run_id for run_id, pid in running if not is_alive(pid)]
        if not gone:
            return 0
        ended = utc_iso(self._now())
        with self._writing() as conn:
            # A run that ended meanwhile recorded its own end: the status check keeps it.
            cursor = conn.executemany(
                "UPDATE runs SET status = 'failed', message = ?, ended_at = ?"
                " WHERE run_id = ? AND status = ?",
                [(ABANDONED_MESSAGE, ended, run_id, RUNNING) for run_id in gone],
            )
        return cursor.rowcount

    # -- sandbox creations ----------------------------------------------------------

    def record_creation(
        self, backend: str, sandbox_id: str, run_id: str | None, at: str | None = None
    ) -> None:
        """Log that a sandbox was created (for the creations-per-hour limit)."""
        created = normalize_iso(at) if at is not None else utc_iso(self._now())
        with self._writing() as conn:
            conn.execute(
                "INSERT INTO sandbox_creations (backend, sandbox_id, run_id, created_at)"
                " VALUES (?, ?, ?, ?)",
                (backend, sandbox_id, run_id, created),
            )

    def creations_since(self, since_iso: str, backend: str | None = None) -> int:
        """How many sandboxes were created at or after ``since_iso`` (of ``backend`` if given)."""
        return len(self.creation_times(backend, since=since_iso))

    def creation_times(self, backend: str | None = None, *, since: str | datetime) -> list[str]:
        """When sandboxes (of ``backend`` if given) were created since ``since``, oldest first."""
        sql = "SELECT created_at FROM sandbox_creations WHERE created_at >= ?"
        start = utc_iso(since) if isinstance(since, datetime) else normalize_iso(since)
        params: tuple[str, ...] = (start,)
        if backend is not None:
            sql += " AND backend = ?"
            params += (backend,)
        with self._reading() as conn:
            rows = conn.execute(f"{sql} ORDER BY created_at, id", params).fetchall()
        return [created for (created,) in rows]

    # -- the connection ---------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the connection for the calling thread alone."""
        me = threading.get_ident()
        if self._owner == me:
            # Only a signal handler can re-enter while its own thread holds the lock;
            # waiting would never end, and interleaving would break the transaction.
            raise RuntimeError(
                "RunStore was called from a signal handler that interrupted a call to it;"
                " record from the main flow instead"
            )
        if not self._lock.acquire(timeout=THREAD_WAIT_S):
            raise ConfigError(
                f"the run history {self.path} stayed busy in another thread"
                f" for more than {THREAD_WAIT_S:.0f} s"
            )
        self._owner = me
        try:
            yield
        finally:
            self._owner = None
            self._lock.release()

    @contextlib.contextmanager
    def _mapped(self) -> Iterator[None]:
        """SQLite's errors about the file as ConfigError naming it."""
        try:
            yield
        except (sqlite3.ProgrammingError, sqlite3.InterfaceError, sqlite3.IntegrityError):
            raise
        except sqlite3.Error as exc:
            raise _config_error(self.path, exc) from exc

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._locked(), self._mapped():
            yield self._conn

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction, taking the write lock at its start."""
        with self._locked(), self._mapped(), _transaction(self._conn):
            yield self._conn


def _create_private(path: Path) -> None:
    """Create the file's directory (0700) and the file (0600) unless they exist."""
    try:
        with contextlib.suppress(FileExistsError):
            path.parent.mkdir(parents=True, mode=0o700)
            path.parent.chmod(0o700)  # whatever the umask
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                os.fchmod(fd, 0o600)
            finally:
                os.close(fd)
    except OSError as exc:
        raise ConfigError(
            f"the run history {path} could not be created: {exc.strerror or exc}",
            hint=_HINT_ELSEWHERE,
        ) from exc


def _configure(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    conn.execute("PRAGMA journal_mode = WAL")
    # In WAL mode NORMAL never corrupts; it may only lose the last commits on power loss.
    conn.execute("PRAGMA synchronous = NORMAL")


def _applied_version(conn: sqlite3.Connection) -> int:
    """The highest migration recorded in the file (0 for a new file)."""
    table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if table is None:
        return 0
    version: int = conn.execute(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
    ).fetchone()[0]
    return version


def _migrate(conn: sqlite3.Connection, applied_at: str) -> None:
    """Apply the migrations the file lacks, in order, all in one write transaction."""
    latest = max(version for version, _ in MIGRATIONS)
    if _applied_version(conn) >= latest:
        return
    with _transaction(conn):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, applied_at TEXT)"
        )
        current = _applied_version(conn)  # another process may have migrated meanwhile
        for version, script in sorted(MIGRATIONS):
            if version > current:
                _run_script(conn, script)
                conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, applied_at))


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, taking the write lock at its start; rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # a failed COMMIT too: the next call starts afresh
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run each statement of ``script`` in the open transaction.

    ``executescript`` would commit it first, so the statements are split here.
    """
    statement = ""
    for part in script.split(";"):
        statement += part + ";"
        if sqlite3.complete_statement(statement):
            if statement.strip(" \t\r\n;"):
                conn.execute(statement)
            statement = ""
    if statement.strip(" \t\r\n;"):
        conn.execute(statement)


def _checked_columns(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` for the runs table; ValueError names an unknown column."""
    unknown = sorted(set(values) - _UPDATABLE)
    if unknown:
        raise ValueError(
            f"unknown run column(s): {', '.join(unknown)}; known: {', '.join(sorted(_UPDATABLE))}"
        )
    row = dict(values)
    for name in _TIME_COLUMNS & set(row):
        if row[name] is not None:
            row[name] = normalize_iso(row[name])
    return row


def _end_columns(result: Mapping[str, Any]) -> dict[str, Any]:
    """Status, tokens, dollars, PR URL and message from a result.json dict."""
    status = result.get("status")
    if not isinstance(status, str) or not status:
        raise ValueError("the result has no status")
    cost = result.get("cost") or {}
    row: dict[str, Any] = {"status": status}
    row.update({name: _number(cost.get(name), int) for name in _COST_INTS})
    row.update({name: _number(cost.get(name), float) for name in _COST_FLOATS})
    row["pr_url"] = _nested(result, "pr", "url")
    message = result.get("message")
    row["message"] = message if isinstance(message, str) and message else None
    return row


def _number(value: Any, kind: type[int | float]) -> int | float | None:
    """A JSON number as ``kind``; None for anything else (a bool is not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return kind(value)


def _nested(data: Mapping[str, Any], section: str, key: str) -> str | None:
    """``data[section][key]`` when it is a non-empty string."""
    inner = data.get(section)
    value = inner.get(key) if isinstance(inner, Mapping) else None
    return value if isinstance(value, str) and value else None


def _found(rowcount: int, run_id: str) -> None:
    if rowcount == 0:
        raise UnknownRunError(f"no run with id {run_id!r} in the history")


def _only(prefix: str, matches: list[RunRecord]) -> RunRecord:
    """The single match of a prefix; raises UnknownRunError or AmbiguousRunError."""
    if len(matches) == 1:
        return matches[0]
    ids = tuple(m.run_id for m in matches[:_CANDIDATES_SHOWN])
    if not ids:
        raise UnknownRunError(f"no run with id {prefix!r} (or starting with it) in the history")
    more = ", …" if len(matches) > _CANDIDATES_SHOWN else ""
    raise AmbiguousRunError(
        f"{prefix!r} matches several runs: {', '.join(ids)}{more}; give more of the id",
        ids,
    )


_HINT_ELSEWHERE = (
    "check that you can write to it and its directory, and that the disk has space;"
    " or keep the history elsewhere with --db PATH (or CLAUDE_E2B_DB)"
)


def _config_error(path: Path, exc: sqlite3.Error) -> ConfigError:
    """The ConfigError that tells the user what happened to the file and what to do."""
    name = getattr(exc, "sqlite_errorname", "")
    if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
        return ConfigError(
            f"the run history {path} is damaged or not a SQLite database ({exc})",
            hint=f"move it aside (mv '{path}' '{path}.broken') and a new history starts;"
            " or use another file with --db PATH (or CLAUDE_E2B_DB)",
        )
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return ConfigError(
            f"the run history {path} stayed locked by another process"
            f" for more than {BUSY_TIMEOUT_S:.0f} s ({exc})",
            hint="try again when the other claude-e2b commands have finished,"
            " or use another file with --db PATH (or CLAUDE_E2B_DB)",
        )
    return ConfigError(f"the run history {path} could not be used ({exc})", hint=_HINT_ELSEWHERE)


def open_history(path: Path, *, required: bool = False) -> RunStore | None:
    """The run history at ``path``; None when it cannot be opened and is not ``required``.

    A warning then says why: a history that cannot be written never stops a run.
    Raises ConfigError when ``required``.
    """
    try:
        return RunStore.open(path)
    except ConfigError as exc:
        if required:
            raise
        from claude_e2b.log import get_logger  # noqa: PLC0415 - only on this path: no structlog

        get_logger(__name__).warning("history.unavailable", error=str(exc))
        return None
