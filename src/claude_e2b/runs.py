"""The runs of this machine and the sandboxes of ours, as the commands show them.

``cli.py`` stays thin: it parses, reads the environment, and prints what these
functions return. The run history (``store.py``) is joined with the sandboxes that
run now (E2B's list by our metadata, the local registry) by run id.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from claude_e2b.errors import ConfigError, SandboxError
from claude_e2b.log import get_logger
from claude_e2b.result import RunResult
from claude_e2b.sandbox import Backend, SandboxSummary
from claude_e2b.sandbox.limits import SandboxLimits, check_limits, created_in_last_hour, next_slot
from claude_e2b.sandbox.localbox.registry import read_entries

if TYPE_CHECKING:
    from claude_e2b.config import RunConfig
    from claude_e2b.sandbox.session import SandboxSession, SandboxSpec
from claude_e2b.store import RunLookupError, RunRecord, RunStart, RunStore, utc_iso

log = get_logger(__name__)
RUN_ID_KEY = "run-id"
# E2B bills a running sandbox per second by its size; the default template's is 2 vCPU, 512 MiB.
E2B_USD_PER_SECOND = 2 * 0.000014 + 0.5 * 0.0000045


@dataclass(frozen=True)
class Sandboxes:
    """Where the sandboxes of ours are looked up."""

    backends: tuple[Backend, ...]
    registry_dir: Path

    def running(self) -> list[SandboxSummary]:
        """Every running sandbox of ours on these backends."""
        return [row for backend in self.backends for row in self.running_on(backend)]

    def running_on(self, backend: Backend) -> list[SandboxSummary]:
        """The running sandboxes of ours on one backend (local: without the e2b SDK)."""
        if backend == "local":
            return [
                SandboxSummary("local", b.sandbox_id, b.metadata, b.started_at, b.end_at)
                for b in read_entries(self.registry_dir)
            ]
        from claude_e2b.sandbox.session import list_sandboxes  # noqa: PLC0415 - E2B only

        return list_sandboxes(backend, self.registry_dir)

    def kill(self, row: SandboxSummary) -> bool:
        """Kill one of ours; False when it was already gone."""
        if row.backend == "local":
            from claude_e2b.sandbox.localbox.launcher import kill_localbox  # noqa: PLC0415

            return kill_localbox(row.sandbox_id, self.registry_dir)
        from claude_e2b.sandbox.session import kill_sandbox  # noqa: PLC0415 - the SDK on demand

        return kill_sandbox(row.backend, row.sandbox_id, self.registry_dir)


@dataclass(frozen=True)
class RunRow:
    """One line of ``list``: a running sandbox, a run, or both (joined by run id)."""

    run_id: str
    status: str
    backend: str
    sandbox_id: str
    age_s: float
    cost_usd: float
    plan: str
    end_at: str
    metadata: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """As ``list --json`` prints it."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "backend": self.backend,
            "sandbox_id": self.sandbox_id,
            "age_s": round(self.age_s, 1),
            "cost_usd": round(self.cost_usd, 6),
            "plan": self.plan,
            "end_at": self.end_at,
            "metadata": dict(self.metadata),
        }


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _age(started: str | None, now: datetime) -> float:
    moment = _parse_time(started)
    return max((now - moment).total_seconds(), 0.0) if moment else 0.0


def cost_so_far(record: RunRecord | None, backend: str, age_s: float) -> float:
    """Dollars so far: Claude's as recorded, plus the sandbox's compute while it runs."""
    claude = (record.claude_usd or 0.0) if record else 0.0
    if record is not None and record.total_usd is not None and record.status != "running":
        return record.total_usd
    return claude + (age_s * E2B_USD_PER_SECOND if backend == "e2b" else 0.0)


def list_rows(
    sandboxes: Sequence[SandboxSummary], store: RunStore | None, now: datetime
) -> list[RunRow]:
    """Running sandboxes of ours, joined with their runs; then runs still marked running."""
    rows: list[RunRow] = []
    seen: set[str] = set()
    for box in sandboxes:
        run_id = box.metadata.get(RUN_ID_KEY, "")
        record = _lookup(store, run_id)
        age = _age(box.started_at, now)
        seen.add(run_id)
        rows.append(
            RunRow(
                run_id=run_id,
                status=record.status if record else "unknown",
                backend=box.backend,
                sandbox_id=box.sandbox_id,
                age_s=age,
                cost_usd=cost_so_far(record, box.backend, age),
                plan=record.plan_title if record else box.metadata.get("plan", ""),
                end_at=box.end_at or "",
                metadata=box.metadata,
            )
        )
    for record in store.runs(limit=200, status="running") if store else []:
        if record.run_id in seen:
            continue
        age = _age(record.started_at, now)
        rows.append(
            RunRow(
                run_id=record.run_id,
                status=record.status,
                backend=record.backend,
                sandbox_id=record.sandbox_id or "",
                age_s=age,
                cost_usd=cost_so_far(record, record.backend, age),
                plan=record.plan_title,
                end_at=record.sandbox_end_at or "",
            )
        )
    return rows


def _lookup(store: RunStore | None, run_id: str) -> RunRecord | None:
    if store is None or not run_id:
        return None
    try:
        return store.get(run_id)
    except RunLookupError:
        return None


def find_record(store: RunStore, run_id: str) -> RunRecord:
    """The run with that id (or unique prefix). Raises ConfigError saying how to find one."""
    try:
        return store.get(run_id)
    except RunLookupError as exc:
        raise ConfigError(str(exc), hint="`claude-e2b history` lists the runs") from exc


def sandbox_of(sandboxes: Sequence[SandboxSummary], run_id: str) -> SandboxSummary | None:
    """The running sandbox of ours for this run (by run id or sandbox id), if any."""
    for box in sandboxes:
        if run_id in (box.sandbox_id, box.metadata.get(RUN_ID_KEY)):
            return box
    return None


def kill_matching(sandboxes: Sandboxes, ident: str | None) -> list[SandboxSummary]:
    """Kill the sandboxes of ours that match ``ident`` (run or sandbox id), or all (None)."""
    killed: list[SandboxSummary] = []
    for box in sandboxes.running():
        wanted = ident is None or ident in (box.sandbox_id, box.metadata.get(RUN_ID_KEY))
        if wanted and sandboxes.kill(box):
            killed.append(box)
    return killed


def pid_alive(pid: int) -> bool:
    """Whether a process with that pid exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


SessionOpener = Callable[["SandboxSpec"], "SandboxSession"]


def limited(
    open_sandbox: SessionOpener,
    *,
    limits: SandboxLimits,
    sandboxes: Sandboxes,
    store: RunStore | None,
    run_id: str,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> SessionOpener:
    """``open_sandbox`` behind the limits: count ours, refuse past a limit, log the creation."""

    def guarded(spec: SandboxSpec) -> SandboxSession:
        running = len(sandboxes.running_on(spec.backend))
        recent = created_in_last_hour(_creations(store, spec.backend, now()), now=now())
        check_limits(
            limits,
            backend=spec.backend,
            running=running,
            created_last_hour=len(recent),
            next_slot_at=next_slot(recent, limits),
        )
        session = open_sandbox(spec)
        if store is not None:
            try:
                store.record_creation(spec.backend, session.sandbox_id, run_id)
            except ConfigError as exc:
                log.warning("history.write_failed", error=str(exc))
        return session

    return guarded


def _creations(store: RunStore | None, backend: str, now: datetime) -> list[str]:
    if store is None:
        return []
    return store.creation_times(backend, since=now - timedelta(hours=1))


class History:
    """One run's rows in the history: its start, facts as they are learned, its end.

    The history must never cost a run: a store that cannot be written is logged
    as a warning once, and the run goes on.
    """

    def __init__(self, store: RunStore | None, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self._ended = False

    def _write(self, what: str, call: Callable[[], None]) -> None:
        if self.store is None:
            return
        try:
            call()
        except (ConfigError, ValueError, RuntimeError) as exc:
            log.warning("history.write_failed", what=what, error=str(exc))

    def start(self, config: RunConfig, *, repository: str, pid: int) -> None:
        """Record the run as running, with what is known before it starts."""
        start = RunStart(
            run_id=config.run_id,
            backend=config.backend,
            plan_title=config.plan.display_title,
            plan_path=str(config.plan.path),
            repository=repository,
            started_at=utc_iso(datetime.now(UTC)),
            timeout_minutes=config.timeout_minutes,
            budget_usd=config.budget_usd,
            max_turns=config.max_turns,
            model=config.model,
            output_dir=str(config.output_dir),
            transcript_path=str(config.output_dir / "transcript.jsonl"),
            pid=pid,
        )
        self._write("start", lambda: self.store.record_start(start) if self.store else None)

    def journal(self, **fields: Any) -> None:
        """Facts learned during the run (sandbox id, its end, the baseline, cost so far)."""
        self._write(
            "update", lambda: self.store.update(self.run_id, **fields) if self.store else None
        )

    def end(self, result: RunResult, result_path: Path | None) -> None:
        """Record how the run ended (once)."""
        if self._ended:
            return
        self._ended = True
        data = {**result.to_dict(), "message": result.message}
        path = str(result_path) if result_path else None
        self._write(
            "end",
            lambda: (
                self.store.record_end(self.run_id, data, result_path=path) if self.store else None
            ),
        )

    def abandon(self, message: str) -> None:
        """The run ended without a result (an error before or around the pipeline)."""
        if self._ended:
            return
        self._ended = True
        fields = {"status": "failed", "message": message, "ended_at": utc_iso(datetime.now(UTC))}
        self._write("end", lambda: self.store.update(self.run_id, **fields) if self.store else None)


__all__ = [
    "History",
    "RunRow",
    "SandboxError",
    "Sandboxes",
    "cost_so_far",
    "find_record",
    "kill_matching",
    "limited",
    "list_rows",
    "pid_alive",
    "sandbox_of",
]
