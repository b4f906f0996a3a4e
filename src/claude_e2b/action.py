"""The GitHub Action's entry (``./entrypoint``): inputs in; PR, comment, outputs, summary out.

This module and ``cli.py`` are the only ones that read the environment. Secrets
are masked before anything can print them. The event decides what happens
(``github/trigger.py``): a dispatch or schedule runs its plan input; an issue
comment with the command runs the plan it names, for a user with write access,
with a 👀 reaction and one result comment updated in place; anything else is
refused with a reply or ignored. Failures print an ``::error::`` that says what
to do, and the same words go to the job summary.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claude_e2b.cancel import Cancellation, RunAborted, RunCancelled
from claude_e2b.config import Overrides, PublishSettings, RunConfig, build_run_config
from claude_e2b.delivery import (
    Delivery,
    base_for,
    branch_for,
    publish_run,
    write_run_files,
)
from claude_e2b.environment import (
    credentials_from_env,
    local_claude,
    local_host,
    local_registry,
    new_run_id,
)
from claude_e2b.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    ClaudeE2BError,
    ConfigError,
    PublishError,
    UserError,
)
from claude_e2b.github.api import GitHubApi, GitHubTarget
from claude_e2b.github.inputs import SECRET_INPUTS, ActionInputs, RunnerEnv, read_input
from claude_e2b.github.trigger import Ignored, Refused, Trigger, default_branch_of, read_trigger
from claude_e2b.github.workflow import Workflow, append_summary, write_outputs
from claude_e2b.log import REDACTOR, get_logger
from claude_e2b.pipeline import SessionFactory
from claude_e2b.plan import load_plan
from claude_e2b.recorded import recorded_run
from claude_e2b.report import (
    ReportContext,
    TemplateOverrides,
    comment_marker,
    load_overrides,
    render_issue_comment,
    render_step_summary,
)
from claude_e2b.result import RunResult
from claude_e2b.sandbox.limits import INPUT_NAMES, configured_limits
from claude_e2b.sandbox.session import open_session
from claude_e2b.store import default_db_path, open_history
from claude_e2b.view import RunView
from claude_e2b.view.choose import configure_output

log = get_logger(__name__)
BOT_SUFFIX = "[bot]"


@dataclass(frozen=True)
class Job:
    """One triggered run: what it was asked, where it publishes, how it reports."""

    inputs: ActionInputs
    runner: RunnerEnv
    trigger: Trigger
    target: GitHubTarget
    payload: Mapping[str, Any]


def main() -> None:
    """Entry point of ``python -m claude_e2b.action``."""
    sys.exit(run(os.environ, Workflow(enabled=True)))


def run(environ: Mapping[str, str], workflow: Workflow) -> int:
    """The whole action; every way out is an exit code (1 incomplete, 2 bad input, 3 bug)."""
    _mask_secrets(environ, workflow)
    view = configure_output(
        sys.stdout,
        log_format="text",
        verbose=environ.get("RUNNER_DEBUG") == "1",
        github_actions=True,
        workflow=workflow,
    )
    summary_path = _summary_path(environ)
    try:
        inputs = ActionInputs.from_env(environ)
        runner = RunnerEnv.from_env(environ)
        return _act(inputs, runner, environ, workflow, view)
    except ClaudeE2BError as exc:
        _report_error(workflow, summary_path, REDACTOR.redact(str(exc)))
        return exc.exit_code
    except (KeyboardInterrupt, RunCancelled, RunAborted):
        _report_error(workflow, summary_path, "the run was interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # the one place that turns a bug into exit 3
        log.exception("internal_error", error=REDACTOR.redact(repr(exc)))
        _report_error(workflow, summary_path, "internal error in claude-e2b; see the log above")
        return EXIT_INTERNAL


def _mask_secrets(environ: Mapping[str, str], workflow: Workflow) -> None:
    """Mask every secret input before anything else can print."""
    for name in SECRET_INPUTS:
        value = read_input(environ, name)
        REDACTOR.add(value)
        workflow.mask(value)


def _summary_path(environ: Mapping[str, str]) -> Path | None:
    value = environ.get("GITHUB_STEP_SUMMARY", "").strip()
    return Path(value) if value else None


def _report_error(workflow: Workflow, summary: Path | None, message: str) -> None:
    workflow.error(message)
    sys.stderr.write(f"claude-e2b: {message}\n")
    append_summary(summary, f"### ❌ claude-e2b could not finish\n\n```\n{message}\n```\n")


def read_event(path: Path | None) -> dict[str, Any]:
    """The event payload the runner wrote; {} when there is none."""
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the event payload {path}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _act(
    inputs: ActionInputs,
    runner: RunnerEnv,
    environ: Mapping[str, str],
    workflow: Workflow,
    view: RunView,
) -> int:
    if not inputs.github_token:
        raise ConfigError(
            "the github-token input is empty",
            hint="leave it at its default (${{ github.token }}) or pass a token",
        )
    target = GitHubTarget(runner.api_url, runner.server_url, runner.repository, inputs.github_token)
    payload = read_event(runner.event_path)
    with GitHubApi.open(target) as api:
        decision = _decide(inputs, runner, payload, api)
        if isinstance(decision, Ignored):
            log.info("trigger.ignored", reason=decision.reason)
            return 0
        if isinstance(decision, Refused):
            log.warning("trigger.refused", reason=decision.reason)
            api.reply(decision.issue_number, decision.reply)
            return 0
        job = Job(inputs, runner, decision, target, payload)
        return _run_job(job, environ, workflow, api, view)


def _decide(
    inputs: ActionInputs, runner: RunnerEnv, payload: Mapping[str, Any], api: GitHubApi
) -> Trigger | Ignored | Refused:
    """What the event asks, with the commenter's permission checked through the API."""
    own: tuple[str, ...] = ()
    if runner.event_name == "issue_comment":
        login = api.whoami()
        own = (login,) if login.endswith(BOT_SUFFIX) else ()
    return read_trigger(
        runner.event_name,
        payload,
        plan_input=inputs.plan,
        command=inputs.comment_command,
        allowed_bots=inputs.allowed_bots,
        own_logins=own,
        permissions=api,
    )


def _comment_key(job: Job) -> str | None:
    """One result comment per issue and plan: a re-run updates it."""
    if job.trigger.issue_number is None:
        return None
    return f"{job.trigger.issue_number}:{job.trigger.plan}"


def _run_job(
    job: Job, environ: Mapping[str, str], workflow: Workflow, api: GitHubApi, view: RunView
) -> int:
    ctx = ReportContext(run_url=job.runner.run_url, comment_key=_comment_key(job))
    _acknowledge(job, api, ctx)
    try:
        config = job_config(job, environ)
        overrides = _overrides(job)
        base = base_for(config, job.runner.ref_name or default_branch_of(job.payload))
        branch_for(config)  # a bad branch name stops the run before it costs anything
    except UserError as exc:
        _answer(job, api, ctx, f"⛔ claude-e2b could not start: {exc.message}")
        raise
    ctx = ReportContext(run_url=ctx.run_url, overrides=overrides, comment_key=ctx.comment_key)
    with recorded_run(
        config,
        _session_factory(config, environ),
        store=open_history(default_db_path(environ)),
        limits=configured_limits(
            environ,
            job.inputs.max_sandboxes,
            job.inputs.max_sandboxes_per_hour,
            names=INPUT_NAMES,
        ),
        registry_dir=local_registry(environ),
        repository=job.runner.repository,
    ) as run:
        result = run.run(workflow, view)
        delivery = _publish(job, config, result, api, base, ctx, run.cancel)
        view.finished(delivery.result)
        code = _finish(job, config, delivery, workflow=workflow, api=api, ctx=ctx)
        run.history.end(delivery.result, config.output_dir / "result.json")
    return code


# After SIGINT, GitHub sends SIGTERM ~7.5 s later: publishing starts only if it can end first.
PUBLISH_AFTER_CANCEL_S = 4.0


def _publish(  # noqa: PLR0917 - the job's parts, each needed
    job: Job,
    config: RunConfig,
    result: RunResult,
    api: GitHubApi,
    base: str,
    ctx: ReportContext,
    cancel: Cancellation,
) -> Delivery:
    """The pull request (a draft, for a cancelled run, when there is time left)."""
    if result.status == "cancelled" and cancel.seconds_since() > PUBLISH_AFTER_CANCEL_S:
        log.warning("publish.skipped", reason="cancelled: no time left before GitHub's SIGTERM")
        return Delivery(result)
    return publish_run(config, result, job.target, api, base=base, ctx=ctx)


def _acknowledge(job: Job, api: GitHubApi, ctx: ReportContext) -> None:
    """👀 on the triggering comment, and a "working on it" result comment to update later."""
    if job.trigger.comment_id is None:
        return
    try:
        api.add_reaction(job.trigger.comment_id, "eyes")
    except PublishError as exc:
        log.warning("trigger.reaction_failed", error=str(exc))
    run = f" ([run]({ctx.run_url}))" if ctx.run_url else ""
    _answer(job, api, ctx, f"⏳ claude-e2b is working on `{job.trigger.plan}`{run}.")


def _answer(job: Job, api: GitHubApi, ctx: ReportContext, text: str) -> None:
    """Write (or rewrite) our one comment on the triggering issue."""
    if job.trigger.issue_number is None:
        return
    marker = comment_marker(ctx.comment_key)
    api.upsert_comment(job.trigger.issue_number, marker, f"{marker}\n{text}\n")


def job_config(job: Job, environ: Mapping[str, str]) -> RunConfig:
    """The run's configuration: inputs beat the plan, the plan beats the defaults."""
    inputs, runner = job.inputs, job.runner
    plan = load_plan(runner.workspace / job.trigger.plan)
    run_id = new_run_id()
    credentials = credentials_from_env(_agent_environ(inputs, environ), inputs.key_injection)
    if not credentials.has_model_access:
        raise ConfigError(
            "no credentials for Claude",
            hint="with:\n  anthropic-api-key: ${{ secrets.ANTHROPIC_API_KEY }}",
        )
    local = {"claude": local_claude(environ)} if inputs.sandbox == "local" else None
    return build_run_config(
        plan,
        overrides_from(inputs),
        repo_dir=runner.workspace,
        output_dir=runner.temp / "claude-e2b" / run_id,
        credentials=credentials,
        local_tools=local,
        run_id=run_id,
    )


def overrides_from(inputs: ActionInputs) -> Overrides:
    """The inputs that take precedence over the plan."""
    return Overrides(
        backend=inputs.sandbox,
        template=inputs.template,
        model=inputs.model,
        timeout_minutes=inputs.timeout_minutes,
        budget_usd=inputs.budget_usd,
        max_turns=inputs.max_turns,
        publish=PublishSettings(
            branch=inputs.branch,
            base_branch=inputs.base_branch,
            draft=inputs.draft,
            labels=inputs.labels,
            reviewers=inputs.reviewers,
            sign_commits=inputs.sign_commits,
        ),
    )


def _agent_environ(inputs: ActionInputs, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment as the agent's credentials are read from it: inputs win."""
    given = {
        "ANTHROPIC_API_KEY": inputs.anthropic_api_key,
        "CLAUDE_CODE_OAUTH_TOKEN": inputs.claude_code_oauth_token,
        "E2B_API_KEY": inputs.e2b_api_key,
        "GITHUB_TOKEN": inputs.github_token,
    }
    kept = {k: v for k, v in environ.items() if not k.startswith("INPUT_")}
    return kept | {name: value for name, value in given.items() if value}


def _overrides(job: Job) -> TemplateOverrides | None:
    """The user's report templates, read now: before the agent can change the checkout."""
    folder = job.inputs.report_templates
    if not folder:
        return None
    workspace = job.runner.workspace
    return load_overrides(workspace / folder, root=workspace)


def _session_factory(config: RunConfig, environ: Mapping[str, str]) -> SessionFactory:
    """Sessions on the configured backend; E2B's key from the input when given."""
    if config.backend == "e2b":
        _export_e2b_key(environ)
    return functools.partial(open_session, host=local_host(environ))


def _export_e2b_key(environ: Mapping[str, str]) -> None:
    """The e2b SDK reads E2B_API_KEY from the process environment: put the input there."""
    key = read_input(environ, "e2b-api-key")
    if key:
        os.environ["E2B_API_KEY"] = key


def _finish(
    job: Job,
    config: RunConfig,
    delivery: Delivery,
    *,
    workflow: Workflow,
    api: GitHubApi,
    ctx: ReportContext,
) -> int:
    """Files, annotations, the job summary, outputs and the comment; the exit code."""
    result = delivery.result
    for warning in result.warnings:
        workflow.warning(warning)
    no_pr = f"Publishing failed: {delivery.error.message}" if delivery.error else None
    ctx = ReportContext(
        run_url=ctx.run_url,
        overrides=ctx.overrides,
        extra_warnings=tuple(workflow.overflow),
        comment_key=ctx.comment_key,
        no_pr_reason=no_pr,
    )
    result_path = write_run_files(result, config.output_dir, ctx)
    append_summary(job.runner.step_summary, render_step_summary(result, ctx))
    write_outputs(job.runner.output, outputs_of(result, result_path))
    if job.trigger.issue_number is not None:
        body = render_issue_comment(result, ctx)
        api.upsert_comment(job.trigger.issue_number, comment_marker(ctx.comment_key), body)
    if delivery.error is not None:
        workflow.error(REDACTOR.redact(str(delivery.error)))
    if result.message:
        sys.stderr.write(REDACTOR.redact(result.message) + "\n")
    return delivery.exit_code


def outputs_of(result: RunResult, result_path: Path) -> dict[str, str]:
    """The action's outputs, all strings (empty when there is no PR)."""
    pr = result.pr
    return {
        "status": result.status,
        "pr-url": pr.url if pr else "",
        "pr-number": str(pr.number) if pr else "",
        "branch": pr.branch if pr else "",
        "cost-usd": f"{float(result.cost.get('total_usd', 0.0)):.4f}",
        "changed-files": str(len(result.changes)),
        "result-path": str(result_path),
    }


if __name__ == "__main__":
    main()
