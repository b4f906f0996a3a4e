"""What a run's steps return, and the RunResult made of them.

The value types the steps of ``pipeline.py`` return (each step returns what it
learned; nothing is written into a shared object), and the pure functions that
turn them into the run's status, message, cost report and ``RunResult``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from claude_e2b.agent.events import ResultEvent
from claude_e2b.agent.runner import AgentOutcome
from claude_e2b.config import RunConfig
from claude_e2b.cost import (
    CostReport,
    PriceTable,
    build_report,
    cost_from_result_event,
    cost_from_streamed_usage,
    unpriced_models,
)
from claude_e2b.log import get_logger
from claude_e2b.result import (
    AgentInfo,
    PlanInfo,
    RunResult,
    SandboxInfo,
    Status,
    TimingInfo,
    VerifyInfo,
)
from claude_e2b.sandbox.session import SandboxSession, SandboxSpec
from claude_e2b.sync.apply import (
    ApplyResult,
)
from claude_e2b.sync.changes import Changeset
from claude_e2b.sync.select import Selection
from claude_e2b.tasks import count_tasks

SessionFactory = Callable[[SandboxSpec], SandboxSession]
STEP_TIMEOUT_S = 600.0
OUTPUT_TAIL = 4000

log = get_logger(__name__)


@dataclass(frozen=True)
class Screened:
    """The selection that may go up, the scan's warnings, and why the run is blocked ("" if not)."""

    selection: Selection
    warnings: tuple[str, ...] = ()
    blocked: str = ""


@dataclass(frozen=True)
class AgentRun:
    """How Claude Code's run ended, and the warnings it raised (time marks, stops)."""

    outcome: AgentOutcome
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Collected:
    """What the agent changed in the sandbox, and what of it reached the checkout."""

    changeset: Changeset
    applied: ApplyResult


@dataclass(frozen=True)
class SandboxWork:
    """What the steps in the sandbox produced; a step that did not run leaves its field empty.

    ``error`` is why the work stopped early (a setup command failed, or a step
    raised a known error); everything learned before it is kept.
    """

    agent: AgentRun | None = None
    verify: VerifyInfo | None = None
    collected: Collected | None = None
    error: str = ""
    seconds: Mapping[str, float] = field(default_factory=dict)
    sandbox_id: str = ""
    sandbox_seconds: float = 0.0
    kept_until: str = ""  # the sandbox was left running (its work could not be fetched)
    cancelled: str = ""  # what cancelled the run ("" if nothing did)


def plan_path_in_repo(config: RunConfig) -> str | None:
    """The plan file's path relative to the repository, when it lives inside it."""
    try:
        return config.plan.path.resolve().relative_to(config.repo_dir.resolve()).as_posix()
    except ValueError:
        return None


# ── What the run reports ───────────────────────────────────────────────────────


def run_status(screened: Screened, work: SandboxWork) -> Status:
    """The run's status, from the screen's verdict and what the sandbox work produced.

    The verify command's result does not change the status: it is reported beside it.
    """
    if screened.blocked:
        return "blocked"
    if work.cancelled:
        return "cancelled"
    return _work_status(work)


_STOPPED_STATUS: Mapping[str, Status] = {
    "timeout": "timed_out",
    "budget": "budget_exceeded",
    "cancelled": "cancelled",
}


def _work_status(work: SandboxWork) -> Status:
    """The status of sandbox work that was neither blocked nor cancelled."""
    agent = work.agent.outcome if work.agent else None
    if work.error or agent is None:
        return "failed"
    if agent.stopped is not None:
        return _STOPPED_STATUS[agent.stopped.reason]
    result = agent.result
    if result is not None and result.subtype == "error_max_budget_usd":
        return "budget_exceeded"
    if result is None or result.is_error:
        return "failed"
    changed = work.collected is not None and bool(work.collected.changeset.changes)
    return "completed" if changed else "no_changes"


def _agent_problem(agent: AgentOutcome | None) -> str:
    """Why the agent run did not end well, in words; empty when it did."""
    if agent is None or agent.stopped is not None:
        return ""
    if agent.result is None:
        reason = agent.stream_error or f"Claude Code exited with code {agent.exit_code}"
        tail = agent.stderr_tail.strip()[-1000:]
        return f"the agent ended without a result: {reason}" + (f"\n{tail}" if tail else "")
    if agent.result.is_error:
        return _api_problem(agent.result) or (
            f"the agent ended with {agent.result.subtype}: {agent.result.result_text[:500]}"
        )
    return ""


_AUTH_STATUSES = frozenset({401, 403})


def _api_problem(result: ResultEvent) -> str:
    """Claude Code could not use the model's API: what failed, and what to do ("" if not that)."""
    status = result.raw.get("api_error_status")
    if result.raw.get("terminal_reason") != "api_error" and not isinstance(status, int):
        return ""
    said = f"Claude Code could not use the model's API (HTTP {status}): {result.result_text[:300]}"
    if status in _AUTH_STATUSES:
        return (
            f"{said}\n  hint: the API refused the credential: check ANTHROPIC_API_KEY (or "
            "CLAUDE_CODE_OAUTH_TOKEN, or the Bedrock/Vertex settings) and ANTHROPIC_BASE_URL"
        )
    return (
        f"{said}\n  hint: the API is overloaded or unreachable: try again later "
        "(Claude Code already retried; CLAUDE_CODE_MAX_RETRIES in the plan's env sets how often)"
    )


def _cancel_message(work: SandboxWork) -> str:
    """What a cancel did to the run, in words; empty when it was not cancelled."""
    if not work.cancelled:
        return ""
    if work.error:
        return f"{work.cancelled}: {work.error}"
    if work.agent is None:
        return f"{work.cancelled} before the agent started; nothing was changed"
    applied = len(work.collected.applied.applied) if work.collected else 0
    return f"{work.cancelled}: the agent was stopped; {applied} file(s) of its work were applied"


def cost_report(
    config: RunConfig, agent: AgentOutcome | None, sandbox_seconds: float, table: PriceTable
) -> CostReport:
    """Claude's cost (as Claude Code computed it, else from streamed usage) + the sandbox's."""
    if agent is not None and agent.result is not None and agent.result.model_usage:
        by_model = cost_from_result_event(agent.result.model_usage, agent.result.total_cost_usd)
        estimated = False
    else:
        per_message = agent.meter.per_message if agent is not None else {}
        by_model = cost_from_streamed_usage(per_message, table)
        estimated = True
    # The local sandbox runs on the runner: no sandbox bill, whatever its size.
    billed = config.backend == "e2b"
    return build_report(
        by_model,
        sandbox_seconds=sandbox_seconds,
        vcpus=config.sandbox_vcpus if billed else 0.0,
        memory_gib=config.sandbox_memory_gib if billed else 0.0,
        table=table,
        estimated=estimated,
    )


def cost_warnings(report: CostReport) -> tuple[str, ...]:
    """A warning per model whose tokens could not be priced (counted as $0)."""
    return tuple(
        f"no price is known for model {model!r}: its tokens are counted as $0 in the cost"
        for model in unpriced_models(report.by_model)
    )


def plan_info(config: RunConfig) -> PlanInfo:
    """The plan's checkbox counts before the run and, read back from the checkout, after."""
    plan = config.plan
    after = plan.tasks.done
    inside = plan_path_in_repo(config)
    if inside is not None and (config.repo_dir / inside).is_file():
        after = count_tasks((config.repo_dir / inside).read_text("utf-8")).done
    return PlanInfo(
        path=str(plan.path),
        title=plan.display_title,
        tasks_done_before=plan.tasks.done,
        tasks_done_after=after,
        tasks_total=plan.tasks.total,
    )


def _agent_info(agent: AgentOutcome | None) -> AgentInfo:
    result = agent.result if agent else None
    return AgentInfo(
        exit_code=agent.exit_code if agent else None,
        num_turns=result.num_turns if result else 0,
        session_id=agent.session_id if agent else "",
        final_message=agent.final_message if agent else "",
    )


def build_result(
    config: RunConfig, screened: Screened, work: SandboxWork, prices: PriceTable, started: float
) -> RunResult:
    """Assemble the RunResult from what the steps returned."""
    agent = work.agent.outcome if work.agent else None
    applied = work.collected.applied if work.collected else None
    cost = cost_report(config, agent, work.sandbox_seconds, prices)
    agent_warnings = work.agent.warnings if work.agent else ()
    return RunResult(
        run_id=config.run_id,
        status=run_status(screened, work),
        plan=plan_info(config),
        sandbox=SandboxInfo(config.backend, work.sandbox_id, config.template, work.sandbox_seconds),
        agent=_agent_info(agent),
        verify=work.verify,
        changes=tuple(c.to_result() for c in applied.applied) if applied else (),
        skipped_changes=tuple(applied.skipped_result_list()) if applied else (),
        cost=cost.to_result(),
        timing=TimingInfo(
            total_s=time.monotonic() - started,
            upload_s=work.seconds.get("upload_s", 0.0),
            agent_s=work.seconds.get("agent_s", 0.0),
            download_s=work.seconds.get("download_s", 0.0),
        ),
        warnings=(*screened.warnings, *agent_warnings, *cost_warnings(cost)),
        message=screened.blocked or _cancel_message(work) or work.error or _agent_problem(agent),
    )
