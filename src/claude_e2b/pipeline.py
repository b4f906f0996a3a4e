"""The run: one small function per step, plain values in and out.

    select ─► screen ─┬─► upload ─► setup ─► agent ─► verify ─► collect
      Selection  Screened │ baseline  failure  AgentRun  VerifyInfo  Collected
          open sandbox ───┘ (the upload begins once both the sandbox is ready and the
                             scan has passed the files of its first pack)
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
import functools
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from claude_e2b.agent.command import build_command
from claude_e2b.agent.meter import UsageMeter
from claude_e2b.agent.monitor import Progress
from claude_e2b.agent.runner import AgentOutcome, CostFunction, ensure_claude, run_agent
from claude_e2b.agent.watchdog import Action, Heartbeat, WatchdogConfig
from claude_e2b.cancel import Cancellation, RunAborted, RunCancelled
from claude_e2b.collect import (
    BASELINE_FILE,
    KEPT_DIR,
    CollectPolicy,
    fetch_changes,
    fetch_with_retries,
)
from claude_e2b.config import SANDBOX_REPO_DIR, SANDBOX_WORK_DIR, RunConfig
from claude_e2b.cost import (
    PriceTable,
    cost_from_streamed_usage,
    load_prices,
)
from claude_e2b.errors import (
    ClaudeE2BError,
    SandboxError,
    SandboxGoneError,
)
from claude_e2b.github.workflow import Workflow
from claude_e2b.log import get_logger
from claude_e2b.opening import OpeningSandbox
from claude_e2b.outcome import (
    AgentRun,
    Collected,
    SandboxWork,
    Screened,
    build_result,
    plan_path_in_repo,
)
from claude_e2b.result import (
    RunResult,
    VerifyInfo,
)
from claude_e2b.run_scan import RunScan
from claude_e2b.sandbox.session import SandboxSession, SandboxSpec, load_sdk
from claude_e2b.sync.apply import (
    ApplyPolicy,
    ApplyResult,
    apply_changes,
    git_ignored,
)
from claude_e2b.sync.changes import Changeset
from claude_e2b.sync.prepared import PreparedSplit
from claude_e2b.sync.screen import ContentCheck
from claude_e2b.sync.secrets import SecretScanner
from claude_e2b.sync.select import Selection, SelectOptions, select_files
from claude_e2b.sync.upload import upload_repository
from claude_e2b.view import NullView, RunView

SessionFactory = Callable[[SandboxSpec], SandboxSession]
STEP_TIMEOUT_S = 600.0
OUTPUT_TAIL = 4000
CLAUDE_BIN = "claude"  # Claude Code in the sandbox: on PATH (installed there if missing)

log = get_logger(__name__)


# ── What the steps return ──────────────────────────────────────────────────────


Journal = Callable[..., None]


def _no_journal(**_fields: object) -> None:
    """Where facts learned during a run go when nobody records them."""


@dataclass(frozen=True)
class RunTools:
    """What every step of one run may use.

    The Actions log, the secret scanner, the prices; the cancel request; and a
    journal that is told facts as they become known (``sandbox_id``,
    ``sandbox_end_at``, ``baseline``: the run history records them).
    """

    workflow: Workflow
    scanner: SecretScanner
    prices: PriceTable
    cancel: Cancellation = field(default_factory=Cancellation)
    journal: Journal = _no_journal
    view: RunView = field(default_factory=NullView)
    collect: CollectPolicy = field(default_factory=CollectPolicy)


# ── Before the sandbox ─────────────────────────────────────────────────────────


def select_step(config: RunConfig) -> Selection:
    """Which files go up: git decides, always-excluded names and caps leave some out."""
    return select_files(
        config.repo_dir,
        SelectOptions(include_untracked=config.include_untracked, extra_excludes=config.excludes),
    )


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


# ── In the sandbox ─────────────────────────────────────────────────────────────


def upload_step(
    session: SandboxSession,
    scan: RunScan,
    view: RunView,
    prepared: PreparedSplit | None = None,
) -> str:
    """Send the files up as the scan clears them, commit them there; the baseline commit."""
    with view.transfer("Uploading", None) as transfer:
        return upload_repository(
            session,
            scan.selection,
            repo_dir=SANDBOX_REPO_DIR,
            work_dir=SANDBOX_WORK_DIR,
            prepared=prepared,
            screening=scan.underway,
            on_sent=transfer.advance,
            on_total=transfer.set_total,
        ).baseline


def _stream_to_log(prefix: str) -> Callable[[str], None]:
    def emit(chunk: str) -> None:
        for line in chunk.splitlines():
            if line.strip():
                log.info(prefix, line=line)

    return emit


def setup_step(session: SandboxSession, commands: tuple[str, ...], view: RunView) -> str:
    """Run the plan's setup commands; returns why the first failure stops the run ("" if none)."""
    if not commands:
        return ""
    with view.step("Setup"):
        return _run_setup(session, commands)


def _run_setup(session: SandboxSession, commands: tuple[str, ...]) -> str:
    for command in commands:
        log.info("setup.run", command=command)
        out = session.run(
            command,
            timeout=STEP_TIMEOUT_S,
            cwd=SANDBOX_REPO_DIR,
            on_stdout=_stream_to_log("setup"),
            on_stderr=_stream_to_log("setup"),
            # Before the agent: a dropped stream is followed again, never run twice.
            reattach=True,
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


def claude_check(session: SandboxSession) -> Future[None]:
    """Look for Claude Code in the sandbox (installing it when missing) beside the upload."""
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="claude-e2b-check")
    checked = executor.submit(ensure_claude, session, CLAUDE_BIN)
    executor.shutdown(wait=False)
    return checked


def agent_step(
    session: SandboxSession,
    config: RunConfig,
    tools: RunTools,
    claude_checked: Future[None] | None = None,
) -> AgentRun:
    """Run Claude Code on the plan under the watchdog, following its progress live.

    ``claude_checked`` is the check started with the upload (see claude_check); without
    one, it is made here. A cancel request stops the agent like its time limit does,
    with a short grace.
    """
    workflow, prices = tools.workflow, tools.prices
    tools.cancel.call((claude_checked or claude_check(session)).result)
    command = build_command(
        claude_bin=CLAUDE_BIN,
        model=config.model,
        repo_dir=SANDBOX_REPO_DIR,
        prompt_path=f"{SANDBOX_WORK_DIR}/prompt.md",
        plan_file=plan_path_in_repo(config),
        max_turns=config.max_turns,
        budget_usd=config.budget_usd,
    )
    cost_of = running_cost(prices)
    progress = Progress(
        workflow,
        cost_of,
        SANDBOX_REPO_DIR,
        view=tools.view,
        limit_s=config.timeout_minutes * 60,
    )
    with tools.view.step("Agent"):
        outcome = run_agent(
            session,
            command,
            prompt=config.plan.body,
            env=config.credentials.agent_env(),
            transcript_path=config.output_dir / "transcript.jsonl",
            limits=watchdog_config(config),
            on_event=progress.on_event,
            on_action=_journal_cost(progress.on_action, tools.journal, cost_of),
            cost_of=cost_of,
            cancel=tools.cancel.requested,
        )
    return AgentRun(outcome, tuple(progress.warnings))


def _journal_cost(
    on_action: Callable[[Action, AgentOutcome], None], journal: Journal, cost_of: CostFunction
) -> Callable[[Action, AgentOutcome], None]:
    """``on_action``, and on each heartbeat the cost so far into the journal (``list``)."""

    def act(action: Action, outcome: AgentOutcome) -> None:
        on_action(action, outcome)
        if isinstance(action, Heartbeat):
            journal(claude_usd=round(cost_of(outcome.meter), 6))

    return act


def verify_step(session: SandboxSession, command: str | None) -> VerifyInfo | None:
    """Run the plan's verify command after the agent; its exit code and output tail."""
    if not command:
        return None
    out = session.run(command, timeout=STEP_TIMEOUT_S, cwd=SANDBOX_REPO_DIR)
    return VerifyInfo(command, out.exit_code, (out.stdout + out.stderr)[-OUTPUT_TAIL:])


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
    session: SandboxSession,
    config: RunConfig,
    baseline: str,
    policy: ApplyPolicy,
    *,
    deadline_s: float,
    retry: CollectPolicy,
    view: RunView,
) -> Collected:
    """Bring back what the agent did: detect and download (retried), then apply once.

    A copy of what was fetched stays in the run's output directory, so that
    ``claude-e2b download RUN_ID`` can hand it out again after the sandbox is gone.
    """
    fetch = functools.partial(
        fetch_changes,
        session,
        baseline,
        config.output_dir / KEPT_DIR,
        policy.max_archive_bytes,
        view=view,
    )
    fetched = fetch_with_retries(session, fetch, deadline_s, retry)
    applied = apply_step(config, fetched.changeset, fetched.archive, policy)
    if applied.refused_secrets:
        # The kept copy would keep the secret on disk, for any later download to hand out.
        shutil.rmtree(config.output_dir / KEPT_DIR, ignore_errors=True)
        log.warning("collect.copy_discarded", reason="a change held a secret")
    return Collected(fetched.changeset, applied)


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
    session: SandboxSession,
    config: RunConfig,
    scan: RunScan,
    tools: RunTools,
    prepared: PreparedSplit | None = None,
) -> SandboxWork:
    """Upload, setup, agent, verify, collect; a known error ends the work, keeping the rest.

    A cancel before the agent starts ends the work at once (nothing to keep); during
    the agent it stops the agent, skips verify and collects the partial work quickly.
    When the agent's work cannot be fetched but the sandbox lives, it is left running
    (``kept_until``) so that ``claude-e2b download`` can fetch it later.
    """
    retry = tools.collect
    cancel = tools.cancel
    laps = _Laps()
    agent: AgentRun | None = None
    verify: VerifyInfo | None = None
    baseline = ""
    claude_checked = claude_check(session)
    try:
        with cancel.interruptible():
            with laps("upload_s"):
                baseline = cancel.call(lambda: upload_step(session, scan, tools.view, prepared))
            cancel.call(lambda: session.write_file(BASELINE_FILE, baseline.encode()))
            tools.journal(baseline=baseline)
            failure = cancel.call(lambda: setup_step(session, config.setup, tools.view))
        if failure:
            return SandboxWork(error=failure, seconds=laps.seconds)
        with laps("agent_s"):
            agent = agent_step(session, config, tools, claude_checked)
        verify = _verify_unless_cancelled(session, config.verify, tools)
        with laps("download_s"):
            policy = apply_policy(config, scan.screened().selection, tools.scanner)
            deadline = retry.cancelled_deadline_s if cancel.is_set else retry.deadline_s
            with tools.view.step("Collecting the changes"):
                collected = collect_step(
                    session,
                    config,
                    baseline,
                    policy,
                    deadline_s=deadline,
                    retry=retry,
                    view=tools.view,
                )
    except RunCancelled:
        return SandboxWork(agent, verify, seconds=laps.seconds, cancelled=cancel.message())
    except RunAborted:
        return SandboxWork(
            agent, verify, error=ABORTED, seconds=laps.seconds, cancelled=cancel.message()
        )
    except ClaudeE2BError as exc:
        log.error("run.failed", error=str(exc))  # noqa: TRY400 - a known error: no traceback
        kept = _keep_for_download(session, config) if agent and not cancel.is_set else ""
        error = (
            _kept_message(str(exc), session, config, kept)
            if kept
            else _gone_message(exc, session, config)
        )
        return SandboxWork(
            agent,
            verify,
            error=error,
            seconds=laps.seconds,
            kept_until=kept,
            cancelled=cancel.message() if cancel.is_set else "",
        )
    cancelled = cancel.message() if cancel.is_set else ""
    return SandboxWork(agent, verify, collected, seconds=laps.seconds, cancelled=cancelled)


ABORTED = (
    "a second signal ended the run at once: the sandbox was killed before its work was collected"
)


def _verify_unless_cancelled(
    session: SandboxSession, command: str | None, tools: RunTools
) -> VerifyInfo | None:
    """The verify step, skipped after a cancel and cut short by one (collect comes first)."""
    cancel = tools.cancel
    if cancel.is_set or not command:
        return None
    try:
        with cancel.interruptible(), tools.view.step("Verifying"):
            return cancel.call(lambda: verify_step(session, command))
    except RunCancelled:
        return None


def sandbox_end_at(session: SandboxSession) -> datetime:
    """When the sandbox's lifetime ends (UTC), counted from its creation."""
    left = session.spec.lifetime_s - session.alive_seconds
    return datetime.now(UTC) + timedelta(seconds=max(left, 0.0))


def _keep_for_download(session: SandboxSession, config: RunConfig) -> str:
    """Leave the sandbox running for a later download; its end time, or "" if it is gone."""
    try:
        if not session.is_alive():
            return ""
        session.keep_alive()
    except SandboxError as exc:
        log.warning("sandbox.keep_failed", error=str(exc), run_id=config.run_id)
        return ""
    return sandbox_end_at(session).isoformat(timespec="seconds")


def _gone_message(exc: ClaudeE2BError, session: SandboxSession, config: RunConfig) -> str:
    """The error in words; when the sandbox itself ended, say so plainly, and what is kept."""
    if not isinstance(exc, SandboxGoneError) and _still_there(session):
        return str(exc)
    log.info("sandbox.ended", sandbox_id=session.sandbox_id, error=exc.message)
    return (
        f"sandbox {session.sandbox_id} ended (killed, evicted or past its lifetime) while the "
        "run was using it: its work could not be brought back\n"
        f"  hint: run the plan again; `claude-e2b logs {config.run_id}` shows what the agent "
        "did, and the cost so far is in result.json"
    )


GONE_SETTLE_S = 1.0  # a sandbox being killed fails its commands a moment before its API


def _still_there(session: SandboxSession) -> bool:
    """Whether the sandbox still lives, asked twice a moment apart (on a failure only)."""
    for attempt in range(2):
        if attempt:
            time.sleep(GONE_SETTLE_S)
        try:
            if not session.is_alive():
                return False
        except SandboxError:
            return False
    return True


def _kept_message(error: str, session: SandboxSession, config: RunConfig, until: str) -> str:
    return (
        f"{error}\nThe agent's work is still in sandbox {session.sandbox_id}, left running "
        f"until {until}: fetch it with `claude-e2b download {config.run_id} --apply` "
        f"(or `--output DIR`), then end it with `claude-e2b kill {config.run_id}`."
    )


def sandbox_step(
    config: RunConfig,
    opening: OpeningSandbox,
    scan: RunScan,
    tools: RunTools,
    prepared: PreparedSplit | None = None,
) -> SandboxWork:
    """Take the sandbox (created meanwhile), do the work in it, and kill it.

    Unless it was kept for a later download: then it lives to its lifetime.
    """
    tools.cancel.check()
    with tools.view.step(f"Starting the {config.backend} sandbox"):
        session = opening.session()
    tools.journal(
        sandbox_id=session.sandbox_id,
        sandbox_end_at=sandbox_end_at(session).isoformat(timespec="seconds"),
    )
    work = SandboxWork()
    try:
        work = work_in_sandbox(session, config, scan, tools, prepared)
    finally:
        if not work.kept_until:
            session.kill()
    return replace(work, sandbox_id=session.sandbox_id, sandbox_seconds=session.alive_seconds)


# ── The run ────────────────────────────────────────────────────────────────────


def run_pipeline(
    config: RunConfig,
    open_sandbox: SessionFactory,
    workflow: Workflow | None = None,
    *,
    cancel: Cancellation | None = None,
    journal: Journal | None = None,
    view: RunView | None = None,
    collect: CollectPolicy | None = None,
) -> RunResult:
    """Run one plan end to end and return its result; the sandbox never outlives it.

    (Except when the agent's work could not be fetched: then the sandbox is left to
    its lifetime for ``claude-e2b download``, and the result's message says so.)
    """
    started = time.monotonic()
    tools = RunTools(
        workflow or Workflow(),
        SecretScanner(config.credentials.secret_values()),
        load_prices(),
        cancel or Cancellation(),
        journal or _no_journal,
        view or NullView(),
        collect or CollectPolicy(),
    )
    config.output_dir.mkdir(parents=True, exist_ok=True)
    screened = Screened(_nothing_selected(config))
    work = SandboxWork()
    # Created while the files are selected and scanned; no file goes up before its scan.
    opening = OpeningSandbox(open_sandbox, sandbox_spec(config))
    load_sdk()  # here, while a local sandbox's server starts; not beside the scan
    owned = contextlib.ExitStack()
    scan: RunScan | None = None
    try:
        with tools.cancel.interruptible():
            with tools.view.step("Selecting files"):
                selection = select_step(config)
            # Which files go as git objects, asked of git beside the scan (no content).
            prepared = owned.enter_context(PreparedSplit(selection))
            scan = RunScan(config, selection, tools.scanner, tools.view)
            owned.callback(scan.close)
            with tools.view.step("Scanning for secrets"):
                if scan.until_ended_or_ready(opening):  # else it goes on beside the upload
                    screened = scan.screened()
        if screened.blocked:
            opening.discard(wait=True)
        else:
            work = _sandbox_unless_blocked(config, opening, scan, tools, prepared)
            screened = scan.screened()
    except RunCancelled:
        opening.discard(wait=False)
        work = replace(work, cancelled=tools.cancel.message())
        screened = _screened_so_far(scan, screened)
    except RunAborted:
        opening.discard(wait=False)
        work = replace(work, error=ABORTED, cancelled=tools.cancel.message())
        screened = _screened_so_far(scan, screened)
    except BaseException:
        opening.discard(wait=False)
        raise
    finally:
        owned.close()
    return build_result(config, screened, work, tools.prices, started)


def _sandbox_unless_blocked(
    config: RunConfig,
    opening: OpeningSandbox,
    scan: RunScan,
    tools: RunTools,
    prepared: PreparedSplit,
) -> SandboxWork:
    """The sandbox step; a scan that blocks the run has the last word.

    The sandbox may fail to start before the scan is over: the run is then blocked
    (nothing went up), as it would have been had the scan ended first.
    """
    try:
        return sandbox_step(config, opening, scan, tools, prepared)
    except ClaudeE2BError:
        if not scan.blocks():
            raise
        log.info("run.blocked_anyway", reason="the sandbox failed before the scan ended")
        return SandboxWork()


def _screened_so_far(scan: RunScan | None, screened: Screened) -> Screened:
    """The scan's verdict when it has ended by now, else what was known before."""
    ended = scan.screened_if_ended() if scan is not None else None
    return ended or screened


def _nothing_selected(config: RunConfig) -> Selection:
    return Selection(config.repo_dir, (), (), (), ())
