"""The ``claude-e2b`` command: parse arguments, read the environment, dispatch.

Of the command's modules only this one reads the environment; what it finds goes
down as parameters (credentials, the state directory, the environment a local
sandbox server takes its allow-listed variables from). ``sync/git.py`` hands
``os.environ`` on to git unread, and the e2b SDK reads its own ``E2B_*`` variables.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from claude_e2b.cancel import RunAborted, RunCancelled
from claude_e2b.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, ClaudeE2BError
from claude_e2b.sandbox.limits import DEFAULT_MAX_PER_HOUR, DEFAULT_MAX_RUNNING, ENV_NAMES


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="claude-e2b", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--log-format",
        choices=["auto", "text", "json"],
        default="auto",
        help="auto: a live view on a terminal, plain lines otherwise; json: structured lines",
    )
    parser.add_argument(
        "--db", help="the run history (default: $XDG_DATA_HOME/claude-e2b/history.sqlite3)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    plan = sub.add_parser("plan", help="plan file tools").add_subparsers(
        dest="plan_command", required=True
    )
    check = plan.add_parser("check", help="validate a plan file")
    check.add_argument("path")
    check.set_defaults(func="plan:cmd_plan_check")
    _add_run_commands(sub)
    return parser


def _add_run_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """list, status, logs, download, kill, history."""
    listing = sub.add_parser("list", help="running sandboxes of ours and their runs")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--sandbox", choices=["e2b", "local"])
    listing.set_defaults(func="runs:cmd_list")
    status = sub.add_parser("status", help="one run: its status, cost, sandbox, pull request")
    status.add_argument("run_id", metavar="RUN_ID", help="a run id (or a unique prefix)")
    status.add_argument("--json", action="store_true")
    status.add_argument("--sandbox", choices=["e2b", "local"])
    status.set_defaults(func="runs:cmd_status")
    logs = sub.add_parser("logs", help="a run's agent log: live from its sandbox, or as stored")
    logs.add_argument("run_id", metavar="RUN_ID")
    logs.add_argument("-f", "--follow", action="store_true", help="keep following a live run")
    logs.add_argument("--json", action="store_true", help="Claude Code's stream-json lines")
    logs.add_argument("--sandbox", choices=["e2b", "local"])
    logs.set_defaults(func="retrieve:cmd_logs")
    download = sub.add_parser(
        "download", help="a run's changes, from its sandbox or as kept: into a folder or applied"
    )
    download.add_argument("run_id", metavar="RUN_ID")
    where = download.add_mutually_exclusive_group(required=True)
    where.add_argument("--output", help="write the changed files (and changes.json) here")
    where.add_argument("--apply", action="store_true", help="apply them to --repo, safely")
    download.add_argument("--repo", default=".", help="the checkout --apply writes to")
    download.add_argument("--json", action="store_true")
    download.add_argument("--sandbox", choices=["e2b", "local"])
    download.set_defaults(func="retrieve:cmd_download")
    kill = sub.add_parser("kill", help="kill a sandbox of ours by run id or sandbox id, or --all")
    kill.add_argument("id", nargs="?")
    kill.add_argument("--all", action="store_true")
    kill.add_argument("--json", action="store_true")
    kill.add_argument("--sandbox", choices=["e2b", "local"])
    kill.set_defaults(func="runs:cmd_kill")
    history = sub.add_parser("history", help="past runs with their cost; totals per day and plan")
    history.add_argument("--limit", type=_positive_int, default=50, help="runs to show")
    history.add_argument("--json", action="store_true")
    history.set_defaults(func="runs:cmd_history")


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
    run.add_argument(
        "--max-sandboxes",
        type=_positive_int,
        help=f"refuse to start past N running sandboxes of ours (default "
        f"{DEFAULT_MAX_RUNNING}; env {ENV_NAMES.running})",
    )
    run.add_argument(
        "--max-sandboxes-per-hour",
        type=_positive_int,
        help=f"refuse to start past M sandboxes created in the last hour (default "
        f"{DEFAULT_MAX_PER_HOUR}; env {ENV_NAMES.per_hour})",
    )
    run.add_argument("--json", action="store_true", help="print result.json on stdout")
    run.set_defaults(func="run:cmd_run")


def dispatch(argv: Sequence[str] | None, environ: Mapping[str, str]) -> int:
    """Parse ``argv``, run the command, and map every way out to an exit code.

    A command's module (``claude_e2b.commands.*``) is imported only when it runs.
    """
    args = build_parser().parse_args(argv)
    module_name, _, func_name = str(args.func).partition(":")
    if args.command == "run":
        from claude_e2b.view.choose import configure_output  # noqa: PLC0415 - only a run needs rich

        args.view = configure_output(
            sys.stderr,
            log_format=args.log_format,
            verbose=args.verbose,
            github_actions=environ.get("GITHUB_ACTIONS") == "true",
            no_color=bool(environ.get("NO_COLOR")),
            dumb_terminal=environ.get("TERM") == "dumb",
        )
    elif args.command != "plan":  # plan check prints its problems itself: no log needed
        from claude_e2b.log import configure_logging  # noqa: PLC0415 - structlog costs 0.2 s

        configure_logging(json_lines=args.log_format == "json" or None, verbose=args.verbose)
    try:
        module = importlib.import_module(f"claude_e2b.commands.{module_name}")
        func: Callable[[argparse.Namespace, Mapping[str, str]], int] = getattr(module, func_name)
        return func(args, environ)
    except ClaudeE2BError as exc:
        sys.stderr.write(f"claude-e2b: {_redact(str(exc))}\n")
        return exc.exit_code
    except (KeyboardInterrupt, RunCancelled, RunAborted):
        sys.stderr.write("claude-e2b: interrupted\n")
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the one place that turns a bug into exit 3
        from claude_e2b.log import get_logger  # noqa: PLC0415

        get_logger(__name__).exception("internal_error", error=_redact(repr(exc)))
        sys.stderr.write("claude-e2b: internal error; please report it with the log above\n")
        return EXIT_INTERNAL


def _redact(text: str) -> str:
    from claude_e2b.log import REDACTOR  # noqa: PLC0415 - loaded by every command but plan check

    return REDACTOR.redact(text)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``claude-e2b`` script."""
    sys.exit(dispatch(argv, os.environ))
