"""The run: one small function per step, plain values in and out.

    select ─► screen ─► open sandbox ─► upload ─► setup ─► agent ─► verify ─► collect
      Selection  Screened                 baseline  failure  AgentRun  VerifyInfo  Collected
                                                                                    │
                               run_status + cost_report + build_result ◄────────────┘
                                                   │
                                               RunResult

Each step takes what it needs and returns what it learned; nothing is written into
a shared object. The steps inside the sandbox are composed by ``work_in_sandbox``,
which turns the first known error into ``SandboxWork.error`` and keeps everything
learned before it (the agent's cost is never lost to a failed download). The
status is decided from those values alone (``run_status``). The sandbox is
created through the factory the caller hands in and is killed on every way out.
"""

from __future__ import annotations

import contextlib
import shlex
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
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
    unpriced_models,
)
from claude_e2b.errors import ClaudeE2BError, SyncError
from claude_e2b.github.workflow import Workflow
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
    ApplyPolicy,
    ApplyResult,
    apply_changes,
    git_ignored,
    verify_archive,
    write_capped,
)
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
from claude_e2b.tasks import count_tasks

SessionFactory = Callable[[SandboxSpec], SandboxSession]
STEP_TIMEOUT_S = 600.0
OUTPUT_TAIL = 4000

log = get_logger(__name__)


# ── What the steps return ──────────────────────────────────────────────────────


@dataclass(frozen=True)
class RunTools:
    """What every step of one run may use: the Actions log, the secret scanner, the prices."""

    workflow: Workflow
    scanner: SecretScanner
    prices: PriceTable


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


# ── Before the sandbox ─────────────────────────────────────────────────────────


def select_step(config: RunConfig) -> Selection:
    """Which files go up: git decides, always-excluded names and caps leave some out."""
    return select_files(
        config.repo_dir,
        SelectOptions(include_untracked=config.include_untracked, extra_excludes=config.excludes),
    )


def screen_step(config: RunConfig, selection: Selection, scanner: SecretScanner) -> Screened:
    """Scan what would go up for secrets and apply the plan's policy."""
    screening = screen(selection, scanner, config.secrets_policy)
    for hit in screening.lines():
        log.warning("secrets.found", hit=hit, policy=config.secrets_policy)
    for excluded in screening.selection.excluded:
        log.info("select.excluded", path=excluded.path, reason=excluded.reason)
    blocked = ""
    if screening.blocked:
        blocked = (
            f"the secret scan found {len(screening.hits)} secret(s) and the plan says "
            "`secrets: fail`; remove them from the repository (or use `secrets: exclude`)"
        )
    warnings = tuple(f"secret found before upload: {hit}" for hit in screening.lines())
    return Screened(screening.selection, warnings, blocked)


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
        local_reach=(config.credentials.api_endpoint(),),
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


# ── In the sandbox ─────────────────────────────────────────────────────────────


def upload_step(session: SandboxSession, selection: Selection) -> str:
    """Send the selection up and commit it there; returns the baseline commit."""
    return upload_repository(
        session, selection, repo_dir=SANDBOX_REPO_DIR, work_dir=SANDBOX_WORK_DIR
    ).baseline


def _stream_to_log(prefix: str) -> Callable[[str], None]:
    def emit(chunk: str) -> None:
        for line in chunk.splitlines():
            if line.strip():
                log.info(prefix, line=line)

    return emit


def setup_step(session: SandboxSession, commands: tuple[str, ...]) -> str:
    """Run the plan's setup commands; returns why the first failure stops the run ("" if none)."""
    for command in commands:
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
            return f"setup command failed (exit {out.exit_code}): {command}\n{tail}"
    return ""


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


def agent_step(
    session: SandboxSession, config: RunConfig, workflow: Workflow, prices: PriceTable
) -> AgentRun:
    """Run Claude Code on the plan under the watchdog, following its progress live."""
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
    cost_of = running_cost(prices)
    progress = Progress(workflow, cost_of, SANDBOX_REPO_DIR)
    workflow.group("Claude Code")
    try:
        outcome = run_agent(
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
    return AgentRun(outcome, tuple(progress.warnings))


def verify_step(session: SandboxSession, command: str | None) -> VerifyInfo | None:
    """Run the plan's verify command after the agent; its exit code and output tail."""
    if not command:
        return None
    out = session.run(command, timeout=STEP_TIMEOUT_S, cwd=SANDBOX_REPO_DIR)
    return VerifyInfo(command, out.exit_code, (out.stdout + out.stderr)[-OUTPUT_TAIL:])


def detect_step(session: SandboxSession, baseline: str) -> Changeset:
    """What changed since the baseline commit, found with git plumbing in the sandbox."""
    out_path = f"{SANDBOX_WORK_DIR}/changes.bin"
    script = detect_script(SANDBOX_REPO_DIR, baseline, stat_cache_path(SANDBOX_WORK_DIR))
    done = session.run(
        f"bash -c {shlex.quote(script)} > {shlex.quote(out_path)}", timeout=STEP_TIMEOUT_S
    )
    if not done.ok:
        raise SyncError(f"could not list the changes in the sandbox: {done.stderr[-2000:]}")
    return parse_detect_output(session.read_bytes(out_path))


def download_step(
    session: SandboxSession, changeset: Changeset, into: Path, limit: int
) -> Path | None:
    """Pack the changed files into one archive in the sandbox; returns it downloaded, verified.

    Raises UnsafeChangeError when the archive is over ``limit`` bytes (never read into memory).
    """
    if not changeset.pack_paths():
        return None
    archive = f"{SANDBOX_WORK_DIR}/changes.tar.zst"
    job = pack_script(SANDBOX_REPO_DIR, changeset, archive)
    session.write_file(job.list_path, job.list_content)
    done = session.run(f"bash -c {shlex.quote(job.script)}", timeout=STEP_TIMEOUT_S)
    if not done.ok:
        raise SyncError(f"could not pack the changes in the sandbox: {done.stderr[-2000:]}")
    packed = parse_pack_output(done.stdout.encode())
    local = into / "changes.archive"
    write_capped(session.read_stream(archive), local, limit)
    verify_archive(local, packed)
    return local


def apply_policy(config: RunConfig, selection: Selection, scanner: SecretScanner) -> ApplyPolicy:
    """What the agent may change on the runner: only what the pull request would show.

    Paths that never went up, that git ignores on the runner, protected paths, the
    plan's front matter and files holding a secret are refused; the size caps hold.
    """
    return ApplyPolicy(
        allowed_paths=config.allowed_paths,
        protected_paths=config.protected_paths,
        secret_check=ContentCheck(scanner),
        uploaded=frozenset(f.path for f in selection.files),
        ignored=git_ignored(config.repo_dir),
        plan_path=plan_path_in_repo(config),
    )


def apply_step(
    config: RunConfig, changeset: Changeset, archive: Path | None, policy: ApplyPolicy
) -> ApplyResult:
    """Apply the changes to the checkout; refused ones are listed, not dropped."""
    applied = apply_changes(config.repo_dir, changeset, archive, policy=policy)
    for skipped in applied.skipped:
        log.warning("apply.skipped", path=skipped.path, reason=skipped.reason)
    return applied


def collect_step(
    session: SandboxSession, config: RunConfig, baseline: str, policy: ApplyPolicy
) -> Collected:
    """Bring back what the agent did: detect, download, apply."""
    changeset = detect_step(session, baseline)
    with tempfile.TemporaryDirectory(prefix="claude-e2b-changes-") as tmp:
        archive = download_step(session, changeset, Path(tmp), policy.max_archive_bytes)
        return Collected(changeset, apply_step(config, changeset, archive, policy))


class _Laps:
    """Seconds spent per phase of the work, kept even when a phase raises."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.monotonic() - began


def work_in_sandbox(
    session: SandboxSession, config: RunConfig, selection: Selection, tools: RunTools
) -> SandboxWork:
    """Upload, setup, agent, verify, collect; a known error ends the work, keeping the rest."""
    laps = _Laps()
    agent: AgentRun | None = None
    verify: VerifyInfo | None = None
    try:
        with laps("upload_s"):
            baseline = upload_step(session, selection)
        failure = setup_step(session, config.setup)
        if failure:
            return SandboxWork(error=failure, seconds=laps.seconds)
        with laps("agent_s"):
            agent = agent_step(session, config, tools.workflow, tools.prices)
        verify = verify_step(session, config.verify)
        with laps("download_s"):
            policy = apply_policy(config, selection, tools.scanner)
            collected = collect_step(session, config, baseline, policy)
    except ClaudeE2BError as exc:
        log.error("run.failed", error=str(exc))  # noqa: TRY400 - a known error: no traceback
        return SandboxWork(agent, verify, error=str(exc), seconds=laps.seconds)
    return SandboxWork(agent, verify, collected, seconds=laps.seconds)


def sandbox_step(
    config: RunConfig, open_sandbox: SessionFactory, selection: Selection, tools: RunTools
) -> SandboxWork:
    """Open the sandbox, do the work in it, and kill it whatever happens."""
    session = open_sandbox(sandbox_spec(config))
    try:
        work = work_in_sandbox(session, config, selection, tools)
    finally:
        session.kill()
    return replace(work, sandbox_id=session.sandbox_id, sandbox_seconds=session.alive_seconds)


# ── The run ────────────────────────────────────────────────────────────────────


def run_pipeline(
    config: RunConfig, open_sandbox: SessionFactory, workflow: Workflow | None = None
) -> RunResult:
    """Run one plan end to end and return its result; the sandbox never outlives it."""
    started = time.monotonic()
    tools = RunTools(
        workflow or Workflow(), SecretScanner(config.credentials.secret_values()), load_prices()
    )
    config.output_dir.mkdir(parents=True, exist_ok=True)
    screened = screen_step(config, select_step(config), tools.scanner)
    work = SandboxWork()
    if not screened.blocked:
        work = sandbox_step(config, open_sandbox, screened.selection, tools)
    return build_result(config, screened, work, tools.prices, started)


# ── What the run reports ───────────────────────────────────────────────────────


def run_status(screened: Screened, work: SandboxWork) -> Status:
    """The run's status, from the screen's verdict and what the sandbox work produced.

    The verify command's result does not change the status: it is reported beside it.
    """
    agent = work.agent.outcome if work.agent else None
    if screened.blocked:
        return "blocked"
    if work.error or agent is None:
        return "failed"
    if agent.stopped is not None:
        return "timed_out" if agent.stopped.reason == "timeout" else "budget_exceeded"
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
        return f"the agent ended with {agent.result.subtype}: {agent.result.result_text[:500]}"
    return ""


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
        message=screened.blocked or work.error or _agent_problem(agent),
    )
