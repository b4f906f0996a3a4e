"""The run: one small function per step, plain data in and out.

select → sandbox → upload → setup → agent → verify → detect → download → apply →
result. The sandbox is created through the factory the caller hands in and is
killed on every way out, so none outlives the run.
"""

from __future__ import annotations

import shlex
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from claude_e2b.agent.command import build_command
from claude_e2b.agent.meter import UsageMeter
from claude_e2b.agent.monitor import Progress
from claude_e2b.agent.runner import AgentOutcome, ensure_claude, run_agent
from claude_e2b.agent.watchdog import WatchdogConfig
from claude_e2b.config import SANDBOX_REPO_DIR, SANDBOX_WORK_DIR, RunConfig
from claude_e2b.cost import (
    CostReport,
    PriceTable,
    build_report,
    cost_from_result_event,
    cost_from_streamed_usage,
    load_prices,
)
from claude_e2b.errors import ClaudeE2BError, SyncError
from claude_e2b.github.workflow import Workflow
from claude_e2b.log import get_logger
from claude_e2b.plan import count_tasks
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
from claude_e2b.sync.apply import ApplyPolicy, ApplyResult, apply_changes, verify_archive
from claude_e2b.sync.changes import (
    Changeset,
    detect_script,
    pack_script,
    parse_detect_output,
    parse_pack_output,
)
from claude_e2b.sync.screen import ContentCheck, screen
from claude_e2b.sync.secrets import SecretScanner
from claude_e2b.sync.select import Selection, SelectOptions, select_files
from claude_e2b.sync.upload import stat_cache_path, upload_repository

SessionFactory = Callable[[SandboxSpec], SandboxSession]
STEP_TIMEOUT_S = 600.0
OUTPUT_TAIL = 4000

log = get_logger(__name__)


@dataclass
class RunState:
    """What the steps learn as the run goes; turned into a RunResult at the end."""

    config: RunConfig
    started: float = field(default_factory=time.monotonic)
    timing: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    sandbox_id: str = ""
    sandbox_seconds: float = 0.0
    baseline: str = ""
    agent: AgentOutcome | None = None
    verify: VerifyInfo | None = None
    changeset: Changeset = field(default_factory=lambda: Changeset(changes=()))
    applied: ApplyResult | None = None
    failure: str = ""
    blocked: str = ""
    prices: PriceTable = field(default_factory=load_prices)
    scanner: SecretScanner = field(default_factory=SecretScanner)


def _timed(state: RunState, name: str) -> Callable[[], None]:
    began = time.monotonic()

    def stop() -> None:
        state.timing[name] = state.timing.get(name, 0.0) + time.monotonic() - began

    return stop


def select_step(config: RunConfig) -> Selection:
    """Which files go up: git decides, secrets and caps exclude."""
    return select_files(
        config.repo_dir,
        SelectOptions(include_untracked=config.include_untracked, extra_excludes=config.excludes),
    )


def screen_step(state: RunState, selection: Selection) -> Selection:
    """Scan what would go up for secrets and apply the plan's policy."""
    screening = screen(selection, state.scanner, state.config.secrets_policy)
    for hit in screening.lines():
        state.warnings.append(f"secret found before upload: {hit}")
        log.warning("secrets.found", hit=hit, policy=state.config.secrets_policy)
    if screening.blocked:
        state.blocked = (
            f"the secret scan found {len(screening.hits)} secret(s) and the plan says "
            "`secrets: fail`; remove them from the repository (or use `secrets: exclude`)"
        )
    for excluded in screening.selection.excluded:
        log.info("select.excluded", path=excluded.path, reason=excluded.reason)
    return screening.selection


def sandbox_spec(config: RunConfig) -> SandboxSpec:
    """The sandbox to create for this run."""
    return SandboxSpec(
        backend=config.backend,
        template=config.template,
        lifetime_s=config.lifetime_s,
        metadata={"run-id": config.run_id, "plan": config.plan.display_title[:200]},
        envs=dict(config.env),
        allow_out=_allow_out(config),
        network_rules=config.credentials.egress_rules(),
        local_tools=config.local_tools,
    )


def _allow_out(config: RunConfig) -> tuple[str, ...] | None:
    """The plan's egress allow list, plus the API host the agent cannot work without."""
    if config.network is None:
        return None
    host = config.credentials.api_host()
    return config.network if host in config.network else (*config.network, host)


def plan_path_in_repo(config: RunConfig) -> str | None:
    """The plan file's path relative to the repository, when it lives inside it."""
    try:
        return config.plan.path.resolve().relative_to(config.repo_dir.resolve()).as_posix()
    except ValueError:
        return None


def _stream_to_log(prefix: str) -> Callable[[str], None]:
    def emit(chunk: str) -> None:
        for line in chunk.splitlines():
            if line.strip():
                log.info(prefix, line=line)

    return emit


def setup_step(session: SandboxSession, state: RunState) -> None:
    """Run the plan's setup commands; the first failure stops the run with its output."""
    for command in state.config.setup:
        log.info("setup.run", command=command)
        out = session.run(
            command,
            timeout=STEP_TIMEOUT_S,
            cwd=SANDBOX_REPO_DIR,
            on_stdout=_stream_to_log("setup"),
            on_stderr=_stream_to_log("setup"),
        )
        if not out.ok:
            tail = (out.stdout + out.stderr)[-OUTPUT_TAIL:]
            state.failure = f"setup command failed (exit {out.exit_code}): {command}\n{tail}"
            return


def running_cost(table: PriceTable) -> Callable[[UsageMeter], float]:
    """Dollars so far, from the usage streamed per API message, priced by the table."""

    def cost(meter: UsageMeter) -> float:
        return sum(c.usd for c in cost_from_streamed_usage(meter.per_message, table))

    return cost


def watchdog_config(config: RunConfig) -> WatchdogConfig:
    """The agent's limits, in seconds and dollars."""
    return WatchdogConfig(
        hard_limit_s=config.timeout_minutes * 60,
        warn_at_s=tuple(m * 60 for m in config.warn_at_minutes),
        budget_usd=config.budget_usd,
        grace_s=config.grace_s,
    )


def agent_step(session: SandboxSession, state: RunState, workflow: Workflow) -> None:
    """Run Claude Code on the plan under the watchdog, following its progress live."""
    config = state.config
    claude_bin = "claude"
    ensure_claude(session, claude_bin)
    command = build_command(
        claude_bin=claude_bin,
        model=config.model,
        repo_dir=SANDBOX_REPO_DIR,
        prompt_path=f"{SANDBOX_WORK_DIR}/prompt.md",
        plan_file=plan_path_in_repo(config),
        max_turns=config.max_turns,
        budget_usd=config.budget_usd,
    )
    cost_of = running_cost(state.prices)
    progress = Progress(workflow, cost_of, SANDBOX_REPO_DIR, state.warnings)
    workflow.group("Claude Code")
    try:
        state.agent = run_agent(
            session,
            command,
            prompt=config.plan.body,
            env=config.credentials.agent_env(),
            transcript_path=config.output_dir / "transcript.jsonl",
            limits=watchdog_config(config),
            on_event=progress.on_event,
            on_action=progress.on_action,
            cost_of=cost_of,
        )
    finally:
        workflow.end_group()


def verify_step(session: SandboxSession, state: RunState) -> None:
    """Run the plan's verify command after the agent; keep its exit code and tail."""
    command = state.config.verify
    if not command:
        return
    out = session.run(command, timeout=STEP_TIMEOUT_S, cwd=SANDBOX_REPO_DIR)
    state.verify = VerifyInfo(command, out.exit_code, (out.stdout + out.stderr)[-OUTPUT_TAIL:])


def detect_step(session: SandboxSession, state: RunState) -> None:
    """Find what changed since the baseline commit, with git plumbing in the sandbox."""
    out_path = f"{SANDBOX_WORK_DIR}/changes.bin"
    script = detect_script(SANDBOX_REPO_DIR, state.baseline, stat_cache_path(SANDBOX_WORK_DIR))
    done = session.run(
        f"bash -c {shlex.quote(script)} > {shlex.quote(out_path)}", timeout=STEP_TIMEOUT_S
    )
    if not done.ok:
        raise SyncError(f"could not list the changes in the sandbox: {done.stderr[-2000:]}")
    state.changeset = parse_detect_output(session.read_bytes(out_path))


def download_step(session: SandboxSession, state: RunState, into: Path) -> Path | None:
    """Pack the changed files into one archive in the sandbox and download it, verified."""
    if not state.changeset.pack_paths():
        return None
    archive = f"{SANDBOX_WORK_DIR}/changes.tar.zst"
    job = pack_script(SANDBOX_REPO_DIR, state.changeset, archive)
    session.write_file(job.list_path, job.list_content)
    done = session.run(f"bash -c {shlex.quote(job.script)}", timeout=STEP_TIMEOUT_S)
    if not done.ok:
        raise SyncError(f"could not pack the changes in the sandbox: {done.stderr[-2000:]}")
    packed = parse_pack_output(done.stdout.encode())
    local = into / "changes.archive"
    with local.open("wb") as handle:
        for chunk in session.read_stream(archive):
            handle.write(chunk)
    verify_archive(local, packed)
    return local


def apply_step(state: RunState, archive: Path | None) -> None:
    """Apply the changes to the checkout; refused ones are listed, not dropped."""
    config = state.config
    policy = ApplyPolicy(
        allowed_paths=config.allowed_paths,
        protected_paths=config.protected_paths,
        secret_check=ContentCheck(state.scanner),
    )
    state.applied = apply_changes(config.repo_dir, state.changeset, archive, policy=policy)
    for skipped in state.applied.skipped:
        log.warning("apply.skipped", path=skipped.path, reason=skipped.reason)


def collect_step(session: SandboxSession, state: RunState) -> None:
    """Bring back what the agent did: detect, download, apply."""
    stop = _timed(state, "download_s")
    try:
        detect_step(session, state)
        with tempfile.TemporaryDirectory(prefix="claude-e2b-changes-") as tmp:
            archive = download_step(session, state, Path(tmp))
            apply_step(state, archive)
    finally:
        stop()


def _work_in_sandbox(
    session: SandboxSession, state: RunState, selection: Selection, workflow: Workflow
) -> None:
    stop = _timed(state, "upload_s")
    report = upload_repository(
        session, selection, repo_dir=SANDBOX_REPO_DIR, work_dir=SANDBOX_WORK_DIR
    )
    stop()
    state.baseline = report.baseline
    setup_step(session, state)
    if state.failure:
        return
    stop = _timed(state, "agent_s")
    try:
        agent_step(session, state, workflow)
    finally:
        stop()
    verify_step(session, state)
    collect_step(session, state)


def run_pipeline(
    config: RunConfig, open_sandbox: SessionFactory, workflow: Workflow | None = None
) -> RunResult:
    """Run one plan end to end and return its result; the sandbox never outlives it."""
    workflow = workflow or Workflow()
    state = RunState(config, scanner=SecretScanner(config.credentials.secret_values()))
    config.output_dir.mkdir(parents=True, exist_ok=True)
    selection = screen_step(state, select_step(config))
    if state.blocked:
        return build_result(state)
    session = open_sandbox(sandbox_spec(config))
    state.sandbox_id = session.sandbox_id
    try:
        _work_in_sandbox(session, state, selection, workflow)
    except ClaudeE2BError as exc:
        state.failure = str(exc)
        log.error("run.failed", error=str(exc))  # noqa: TRY400 - a known error: no traceback
    finally:
        session.kill()
        state.sandbox_seconds = session.alive_seconds
    return build_result(state)


def _status(state: RunState) -> Status:
    agent = state.agent
    if state.blocked:
        return "blocked"
    if state.failure or agent is None:
        return "failed"
    if agent.stopped is not None:
        return "timed_out" if agent.stopped.reason == "timeout" else "budget_exceeded"
    result = agent.result
    if result is not None and result.subtype == "error_max_budget_usd":
        return "budget_exceeded"
    if result is None or result.is_error:
        return "failed"
    return "no_changes" if not state.changeset.changes else "completed"


def _agent_problem(agent: AgentOutcome | None) -> str:
    """Why the agent run did not end well, in words; empty when it did."""
    if agent is None or agent.stopped is not None:
        return ""
    if agent.result is None:
        reason = agent.stream_error or f"Claude Code exited with code {agent.exit_code}"
        tail = agent.stderr_tail.strip()[-1000:]
        return f"the agent ended without a result: {reason}" + (f"\n{tail}" if tail else "")
    if agent.result.is_error:
        return f"the agent ended with {agent.result.subtype}: {agent.result.result_text[:500]}"
    return ""


def cost_report(state: RunState) -> CostReport:
    """Claude's cost (as Claude Code computed it, else from streamed usage) + the sandbox's."""
    agent, table = state.agent, state.prices
    if agent is not None and agent.result is not None and agent.result.model_usage:
        by_model = cost_from_result_event(agent.result.model_usage, agent.result.total_cost_usd)
        estimated = False
    else:
        per_message = agent.meter.per_message if agent is not None else {}
        by_model = cost_from_streamed_usage(per_message, table)
        estimated = True
    # The local sandbox runs on the runner: no sandbox bill, whatever its size.
    billed = state.config.backend == "e2b"
    return build_report(
        by_model,
        sandbox_seconds=state.sandbox_seconds,
        vcpus=state.config.sandbox_vcpus if billed else 0.0,
        memory_gib=state.config.sandbox_memory_gib if billed else 0.0,
        table=table,
        estimated=estimated,
    )


def _plan_info(state: RunState) -> PlanInfo:
    plan = state.config.plan
    after = plan.tasks.done
    inside = plan_path_in_repo(state.config)
    if inside is not None and (state.config.repo_dir / inside).is_file():
        after = count_tasks((state.config.repo_dir / inside).read_text("utf-8")).done
    return PlanInfo(
        path=str(plan.path),
        title=plan.display_title,
        tasks_done_before=plan.tasks.done,
        tasks_done_after=after,
        tasks_total=plan.tasks.total,
    )


def build_result(state: RunState) -> RunResult:
    """Assemble the RunResult from what the steps recorded."""
    config, agent = state.config, state.agent
    applied = state.applied
    changes = tuple(c.to_result() for c in applied.applied) if applied else ()
    skipped = tuple(applied.skipped_result_list()) if applied else ()
    result = agent.result if agent else None
    return RunResult(
        run_id=config.run_id,
        status=_status(state),
        plan=_plan_info(state),
        sandbox=SandboxInfo(
            config.backend, state.sandbox_id, config.template, state.sandbox_seconds
        ),
        agent=AgentInfo(
            exit_code=agent.exit_code if agent else None,
            num_turns=result.num_turns if result else 0,
            session_id=agent.session_id if agent else "",
            final_message=agent.final_message if agent else "",
        ),
        verify=state.verify,
        changes=changes,
        skipped_changes=skipped,
        cost=cost_report(state).to_result(),
        timing=TimingInfo(
            total_s=time.monotonic() - state.started,
            upload_s=state.timing.get("upload_s", 0.0),
            agent_s=state.timing.get("agent_s", 0.0),
            download_s=state.timing.get("download_s", 0.0),
        ),
        warnings=tuple(state.warnings),
        message=state.blocked or state.failure or _agent_problem(agent),
    )
