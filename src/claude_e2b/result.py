"""RunResult and result.json (schema 1 of ARCHITECTURE.md's contract)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from claude_e2b.log import REDACTOR

SCHEMA = 1
Status = Literal[
    "completed", "no_changes", "timed_out", "budget_exceeded", "failed", "blocked", "cancelled"
]
INCOMPLETE: frozenset[str] = frozenset({"timed_out", "budget_exceeded", "failed", "blocked"})
EXIT_CANCELLED = 130


@dataclass(frozen=True)
class PlanInfo:
    """The plan's path, title and checkbox counts before and after."""

    path: str
    title: str
    tasks_done_before: int
    tasks_done_after: int
    tasks_total: int


@dataclass(frozen=True)
class SandboxInfo:
    """Which sandbox ran, and for how long."""

    backend: str
    id: str
    template: str
    seconds: float


@dataclass(frozen=True)
class AgentInfo:
    """How Claude Code ended."""

    exit_code: int | None
    num_turns: int
    session_id: str
    final_message: str


@dataclass(frozen=True)
class VerifyInfo:
    """The plan's verify command and how it ended."""

    command: str
    exit_code: int | None
    output_tail: str


@dataclass(frozen=True)
class TimingInfo:
    """Seconds spent in each phase."""

    total_s: float = 0.0
    upload_s: float = 0.0
    agent_s: float = 0.0
    download_s: float = 0.0


@dataclass(frozen=True)
class PrInfo:
    """The pull request opened or updated."""

    url: str
    number: int
    branch: str
    draft: bool
    operation: Literal["created", "updated"]


@dataclass(frozen=True)
class RunResult:
    """Everything a run reports; written as result.json."""

    run_id: str
    status: Status
    plan: PlanInfo
    sandbox: SandboxInfo
    agent: AgentInfo
    verify: VerifyInfo | None
    changes: tuple[Mapping[str, Any], ...]
    skipped_changes: tuple[Mapping[str, str], ...]
    cost: Mapping[str, Any]  # CostReport.to_result(): the contract's cost block
    timing: TimingInfo
    pr: PrInfo | None = None
    warnings: tuple[str, ...] = ()
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The schema-1 JSON object, secrets redacted."""
        data = asdict(self)
        data.pop("message")
        data["cost"] = dict(self.cost)
        data["changes"] = [dict(c) for c in self.changes]
        data["skipped_changes"] = [dict(s) for s in self.skipped_changes]
        data["warnings"] = list(self.warnings)
        redacted: dict[str, Any] = REDACTOR.redact_value({"schema": SCHEMA, **data})
        return redacted

    @property
    def exit_code(self) -> int:
        """The CLI contract: 0 completed or no_changes, 130 cancelled, 1 otherwise."""
        if self.status == "cancelled":
            return EXIT_CANCELLED
        return 1 if self.status in INCOMPLETE else 0


def write_result(result: RunResult, path: Path) -> None:
    """Write result.json atomically (a reader never sees half a file)."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result.to_dict(), indent=2) + "\n", "utf-8")
    tmp.replace(path)
