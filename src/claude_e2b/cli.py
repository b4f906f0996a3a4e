"""The ``claude-e2b`` command: parse arguments, read the environment, dispatch.

Of the command's modules only this one reads the environment; what it finds goes
down as parameters (credentials, the state directory, the environment a local
sandbox server takes its allow-listed variables from). ``sync/git.py`` hands
``os.environ`` on to git unread, and the e2b SDK reads its own ``E2B_*`` variables.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from claude_e2b.config import Credentials, Overrides, build_run_config
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
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    ClaudeE2BError,
    ConfigError,
)
from claude_e2b.github.api import GitHubApi
from claude_e2b.github.workflow import Workflow
from claude_e2b.log import REDACTOR, configure_logging, get_logger
from claude_e2b.pipeline import run_pipeline
from claude_e2b.plan import check_plan_file, load_plan
from claude_e2b.report import ReportContext
from claude_e2b.sandbox import Backend
from claude_e2b.sandbox.session import kill_sandbox, list_sandboxes, open_session

log = get_logger(__name__)


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
    open_sandbox = functools.partial(open_session, host=local_host(environ))
    result = run_pipeline(config, open_sandbox, workflow)
    delivery = Delivery(result)
    if target is not None and base is not None:
        with GitHubApi.open(target) as api:
            delivery = publish_run(config, result, target, api, base=base, ctx=ReportContext())
    _report(delivery, config.output_dir, as_json=args.json)
    return delivery.exit_code


def _report(delivery: Delivery, output_dir: Path, *, as_json: bool) -> None:
    result = delivery.result
    write_run_files(result, output_dir, ReportContext())
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
    if result.message:
        sys.stderr.write(REDACTOR.redact(result.message) + "\n")


def cmd_plan_check(args: argparse.Namespace, _environ: Mapping[str, str]) -> int:
    """claude-e2b plan check: exit 0, or 2 with PATH:LINE: message lines."""
    problems = check_plan_file(Path(args.path))
    for problem in problems:
        sys.stderr.write(problem + "\n")
    if not problems:
        sys.stdout.write(f"{args.path}: ok\n")
    return EXIT_BAD_INPUT if problems else 0


def _backends(args: argparse.Namespace, environ: Mapping[str, str]) -> list[Backend]:
    """The backends a list or kill looks at (E2B's only with a key to ask it with)."""
    asked: list[Backend] = [args.sandbox] if args.sandbox else ["local", "e2b"]
    return [b for b in asked if b == "local" or environ.get("E2B_API_KEY")]


def cmd_list(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """claude-e2b list: running sandboxes of ours."""
    local = local_registry(environ)
    rows = [row for b in _backends(args, environ) for row in list_sandboxes(b, local)]
    if args.json:
        sys.stdout.write(json.dumps([r.__dict__ | {"metadata": dict(r.metadata)} for r in rows]))
        sys.stdout.write("\n")
        return 0
    for row in rows:
        run = row.metadata.get("run-id", "")
        sys.stdout.write(f"{row.backend}\t{row.sandbox_id}\t{run}\tends {row.end_at}\n")
    if not rows:
        sys.stdout.write("no running sandboxes\n")
    return 0


def cmd_kill(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """claude-e2b kill: kill one sandbox (by sandbox or run id) or all of ours."""
    if bool(args.id) == bool(args.all):
        raise ConfigError("kill needs either a sandbox id or run id, or --all (not both)")
    local = local_registry(environ)
    killed = 0
    for backend in _backends(args, environ):
        for row in list_sandboxes(backend, local):
            if args.all or args.id in (row.sandbox_id, row.metadata.get("run-id")):
                killed += kill_sandbox(backend, row.sandbox_id, local)
    sys.stdout.write(f"killed {killed} sandbox(es)\n")
    if not args.all and not killed:
        sys.stderr.write(f"no running sandbox of ours matches {args.id}\n")
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="claude-e2b", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    plan = sub.add_parser("plan", help="plan file tools").add_subparsers(
        dest="plan_command", required=True
    )
    check = plan.add_parser("check", help="validate a plan file")
    check.add_argument("path")
    check.set_defaults(func=cmd_plan_check)
    listing = sub.add_parser("list", help="running sandboxes of ours")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--sandbox", choices=["e2b", "local"])
    listing.set_defaults(func=cmd_list)
    kill = sub.add_parser("kill", help="kill a sandbox by sandbox id or run id, or --all")
    kill.add_argument("id", nargs="?")
    kill.add_argument("--all", action="store_true")
    kill.add_argument("--sandbox", choices=["e2b", "local"])
    kill.set_defaults(func=cmd_kill)
    return parser


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0: {text}")
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"must be a whole number greater than 0: {text!r}")
    return int(text)


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser("run", help="run a plan in a sandbox and bring the changes back")
    run.add_argument("--plan", required=True, help="the plan file (Markdown + YAML front matter)")
    run.add_argument("--repo", default=".", help="the checkout to upload and apply changes to")
    run.add_argument("--sandbox", choices=["e2b", "local"], default="e2b")
    run.add_argument("--output-dir", help="where result.json, summary.md, transcript.jsonl go")
    run.add_argument(
        "--no-pr",
        action="store_true",
        help="apply the changes, open no pull request (otherwise: GITHUB_TOKEN or GH_TOKEN, "
        "and the origin remote's repository)",
    )
    run.add_argument("--timeout-minutes", type=_positive_float)
    run.add_argument("--budget-usd", type=_positive_float)
    run.add_argument("--model")
    run.add_argument("--template")
    run.add_argument("--max-turns", type=_positive_int)
    run.add_argument("--include-untracked", action="store_true", default=None)
    run.add_argument(
        "--key-injection",
        choices=["env", "proxy"],
        default="env",
        help="env: the key is an environment variable in the sandbox; proxy: E2B's egress "
        "proxy adds it to API requests, so it never exists in the sandbox",
    )
    run.add_argument("--json", action="store_true", help="print result.json on stdout")
    run.set_defaults(func=cmd_run)


def dispatch(argv: Sequence[str] | None, environ: Mapping[str, str]) -> int:
    """Parse ``argv``, run the command, and map every way out to an exit code."""
    args = build_parser().parse_args(argv)
    configure_logging(verbose=args.verbose)
    func: Callable[[argparse.Namespace, Mapping[str, str]], int] = args.func
    try:
        return func(args, environ)
    except ClaudeE2BError as exc:
        sys.stderr.write(f"claude-e2b: {REDACTOR.redact(str(exc))}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("claude-e2b: interrupted\n")
        return EXIT_INTERRUPTED
    except Exception as exc:  # the one place that turns a bug into exit 3
        log.exception("internal_error", error=REDACTOR.redact(repr(exc)))
        sys.stderr.write("claude-e2b: internal error; please report it with the log above\n")
        return EXIT_INTERNAL


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``claude-e2b`` script."""
    sys.exit(dispatch(argv, os.environ))
