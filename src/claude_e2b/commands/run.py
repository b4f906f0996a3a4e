"""``claude-e2b run``: the whole job for one plan, then its pull request."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Mapping
from pathlib import Path

from claude_e2b.commands.common import open_store
from claude_e2b.config import Credentials, Overrides, RunConfig, build_run_config
from claude_e2b.delivery import (
    Delivery,
    base_for,
    branch_for,
    cli_target,
    publish_run,
    write_run_files,
)
from claude_e2b.environment import (
    credentials_from_env,
    local_claude,
    local_host,
    local_registry,
    new_run_id,
    state_dir,
)
from claude_e2b.errors import (
    ConfigError,
)
from claude_e2b.github.target import GitHubTarget
from claude_e2b.github.workflow import Workflow
from claude_e2b.log import REDACTOR
from claude_e2b.plan import load_plan
from claude_e2b.recorded import recorded_run
from claude_e2b.result import RunResult
from claude_e2b.sandbox.limits import (
    FLAG_NAMES,
    SandboxLimits,
    configured_limits,
)
from claude_e2b.sandbox.session import open_session
from claude_e2b.view import RunView
from claude_e2b.view.json_lines import JsonView


def _check_credentials(credentials: Credentials) -> None:
    if not credentials.has_model_access:
        raise ConfigError(
            "no credentials for Claude: set ANTHROPIC_API_KEY, CLAUDE_CODE_OAUTH_TOKEN, "
            "or CLAUDE_CODE_USE_BEDROCK / CLAUDE_CODE_USE_VERTEX with their usual variables",
            hint="in a workflow: anthropic-api-key: ${{ secrets.ANTHROPIC_API_KEY }}",
        )


def cmd_run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """claude-e2b run: the whole job for one plan; then its pull request unless --no-pr."""
    credentials = credentials_from_env(environ, args.key_injection)
    workflow = Workflow(enabled=environ.get("GITHUB_ACTIONS") == "true")
    for value in credentials.secret_values():
        REDACTOR.add(value)
        workflow.mask(value)
    _check_credentials(credentials)
    repo = Path(args.repo).resolve()
    plan = load_plan(Path(args.plan))
    run_id = new_run_id()
    output_dir = Path(args.output_dir) if args.output_dir else state_dir(environ) / "runs" / run_id
    limits = _limits(args, environ)
    config = build_run_config(
        plan,
        Overrides(
            backend=args.sandbox,
            template=args.template,
            model=args.model,
            timeout_minutes=args.timeout_minutes,
            budget_usd=args.budget_usd,
            max_turns=args.max_turns,
            include_untracked=args.include_untracked,
        ),
        repo_dir=repo,
        output_dir=output_dir.resolve(),
        credentials=credentials,
        local_tools={"claude": local_claude(environ)} if args.sandbox == "local" else None,
        run_id=run_id,
    )
    # Everything publishing needs is checked before the run costs anything.
    target = None if args.no_pr else cli_target(repo, environ)
    base = None if args.no_pr else base_for(config, None)
    if target is not None:
        branch_for(config)
    with recorded_run(
        config,
        functools.partial(open_session, host=local_host(environ)),
        store=open_store(args, environ, required=False),
        limits=limits,
        registry_dir=local_registry(environ),
        repository=str(repo),
    ) as run:
        result = run.run(workflow, args.view)
        delivery = Delivery(result)
        if target is not None and base is not None and result.status != "cancelled":
            delivery = _publish(config, result, target, base)
        _report(delivery, config.output_dir, as_json=args.json, view=args.view)
        run.history.end(delivery.result, config.output_dir / "result.json")
    return delivery.exit_code


def _publish(config: RunConfig, result: RunResult, target: GitHubTarget, base: str) -> Delivery:
    """Open or update the run's pull request through the GitHub API."""
    from claude_e2b.github.api import GitHubApi  # noqa: PLC0415 - PyGithub: 0.7 s, never --no-pr

    with GitHubApi.open(target) as api:
        return publish_run(config, result, target, api, base=base)


def _limits(args: argparse.Namespace, environ: Mapping[str, str]) -> SandboxLimits:
    """The sandbox limits: flags beat the environment, which beats the defaults."""
    return configured_limits(
        environ, args.max_sandboxes, args.max_sandboxes_per_hour, names=FLAG_NAMES
    )


def _report(delivery: Delivery, output_dir: Path, *, as_json: bool, view: RunView) -> None:
    result = delivery.result
    write_run_files(result, output_dir)
    view.finished(result)
    if delivery.error is not None:
        sys.stderr.write(f"claude-e2b: {REDACTOR.redact(str(delivery.error))}\n")
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(
            f"{result.status}: {len(result.changes)} file(s) changed, "
            f"{len(result.skipped_changes)} skipped; results in {output_dir}\n"
        )
        if result.pr is not None:
            sys.stdout.write(f"pull request {result.pr.operation}: {result.pr.url}\n")
    if result.message and isinstance(view, JsonView):  # the other views show it themselves
        sys.stderr.write(REDACTOR.redact(result.message) + "\n")
