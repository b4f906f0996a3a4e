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
import tempfile
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from claude_e2b.agent.events import LineSplitter, parse_event
from claude_e2b.agent.monitor import describe
from claude_e2b.audit import set_audit_file
from claude_e2b.cancel import Cancellation, RunAborted, RunCancelled
from claude_e2b.collect import KEPT_DIR, Fetched
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
from claude_e2b.log import REDACTOR, get_logger
from claude_e2b.pipeline import run_pipeline
from claude_e2b.plan import check_plan_file, load_plan
from claude_e2b.report import ReportContext
from claude_e2b.retrieve import (
    apply_downloaded,
    attach,
    download_policy,
    fetch_from_sandbox,
    follow_file,
    kept_changes,
    stream_sandbox_log,
    write_output,
)
from claude_e2b.runs import (
    History,
    Sandboxes,
    find_record,
    kill_matching,
    limited,
    list_rows,
    pid_alive,
    sandbox_of,
)
from claude_e2b.sandbox import Backend
from claude_e2b.sandbox.limits import (
    DEFAULT_MAX_PER_HOUR,
    DEFAULT_MAX_RUNNING,
    ENV_NAMES,
    FLAG_NAMES,
    SandboxLimits,
    parse_limits,
)
from claude_e2b.sandbox.session import SandboxSummary, open_session
from claude_e2b.store import RunLookupError, RunRecord, RunStore, default_db_path
from claude_e2b.sync.apply import ApplyPolicy
from claude_e2b.view import RunView
from claude_e2b.view.choose import configure_output
from claude_e2b.view.json_lines import JsonView

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
    set_audit_file(config.output_dir / "audit.jsonl", run_id)
    store = _open_store(args, environ, required=False)
    history = History(store, run_id)
    history.start(config, repository=str(repo), pid=os.getpid())
    open_sandbox = limited(
        functools.partial(open_session, host=local_host(environ)),
        limits=limits,
        sandboxes=Sandboxes((args.sandbox,), local_registry(environ)),
        store=store,
        run_id=run_id,
    )
    cancel = Cancellation()
    cancel.install()
    try:
        result = run_pipeline(
            config, open_sandbox, workflow, cancel=cancel, journal=history.journal, view=args.view
        )
        delivery = Delivery(result)
        if target is not None and base is not None and result.status != "cancelled":
            with GitHubApi.open(target) as api:
                delivery = publish_run(config, result, target, api, base=base, ctx=ReportContext())
        _report(delivery, config.output_dir, as_json=args.json, view=args.view)
        history.end(delivery.result, config.output_dir / "result.json")
    except BaseException as exc:
        history.abandon(REDACTOR.redact(str(exc) or type(exc).__name__))
        raise
    finally:
        cancel.uninstall()
    return delivery.exit_code


def _limits(args: argparse.Namespace, environ: Mapping[str, str]) -> SandboxLimits:
    """The sandbox limits: flags beat the environment, which beats the defaults."""
    from_env = parse_limits(
        environ.get(ENV_NAMES.running), environ.get(ENV_NAMES.per_hour), names=ENV_NAMES
    )
    return parse_limits(
        args.max_sandboxes, args.max_sandboxes_per_hour, names=FLAG_NAMES, base=from_env
    )


def _open_store(
    args: argparse.Namespace, environ: Mapping[str, str], *, required: bool
) -> RunStore | None:
    """The run history (--db, else the per-user data path).

    None when it cannot be opened and the command can do without it (a run warns
    and goes on).
    """
    path = Path(args.db) if args.db else default_db_path(environ)
    try:
        store = RunStore.open(path)
    except ConfigError as exc:
        if required:
            raise
        log.warning("history.unavailable", error=str(exc))
        return None
    store.mark_abandoned(pid_alive)
    return store


def _report(delivery: Delivery, output_dir: Path, *, as_json: bool, view: RunView) -> None:
    result = delivery.result
    write_run_files(result, output_dir, ReportContext())
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


def cmd_plan_check(args: argparse.Namespace, _environ: Mapping[str, str]) -> int:
    """claude-e2b plan check: exit 0, or 2 with PATH:LINE: message lines."""
    problems = check_plan_file(Path(args.path))
    for problem in problems:
        sys.stderr.write(problem + "\n")
    if not problems:
        sys.stdout.write(f"{args.path}: ok\n")
    return EXIT_BAD_INPUT if problems else 0


def _backends(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[Backend, ...]:
    """The backends a list or kill looks at (E2B's only with a key to ask it with)."""
    asked: list[Backend] = [args.sandbox] if args.sandbox else ["local", "e2b"]
    return tuple(b for b in asked if b == "local" or environ.get("E2B_API_KEY"))


def _sandboxes(args: argparse.Namespace, environ: Mapping[str, str]) -> Sandboxes:
    return Sandboxes(_backends(args, environ), local_registry(environ))


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def cmd_list(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """claude-e2b list: running sandboxes of ours, joined with their runs; runs still running."""
    store = _open_store(args, environ, required=False)
    rows = list_rows(_sandboxes(args, environ).running(), store, datetime.now(UTC))
    if args.json:
        _print_json([row.to_dict() for row in rows])
        return 0
    if not rows:
        sys.stdout.write("no running sandboxes or runs\n")
        return 0
    table = [("RUN", "STATUS", "BACKEND", "SANDBOX", "AGE", "COST", "PLAN")]
    table += [
        (r.run_id, r.status, r.backend, r.sandbox_id or "-", _duration(r.age_s),
         f"${r.cost_usd:.2f}", r.plan)
        for r in rows
    ]  # fmt: skip
    sys.stdout.write(_columns(table))
    return 0


def cmd_status(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """claude-e2b status RUN_ID: one run, as recorded, with its sandbox if it still runs."""
    store = _open_store(args, environ, required=True)
    assert store is not None  # noqa: S101 - required=True raises instead
    record = find_record(store, args.run_id)
    box = sandbox_of(_sandboxes(args, environ).running(), record.run_id)
    data = record.to_dict() | {"sandbox_running": box is not None}
    if args.json:
        _print_json(data)
        return 0
    fields = [
        ("run", record.run_id), ("status", record.status), ("plan", record.plan_title),
        ("repository", record.repository), ("backend", record.backend),
        ("sandbox", f"{record.sandbox_id or '-'}" + (" (running)" if box else "")),
        ("started", record.started_at), ("ended", record.ended_at or "-"),
        ("cost", f"${record.total_usd:.4f}" if record.total_usd is not None else "-"),
        ("pull request", record.pr_url or "-"), ("result", record.result_path or "-"),
        ("message", (record.message or "-").splitlines()[0] if record.message else "-"),
    ]  # fmt: skip
    sys.stdout.write("".join(f"{k:>13}  {v}\n" for k, v in fields))
    return 0


def cmd_history(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """claude-e2b history: past runs with their cost, and totals per day and per plan."""
    store = _open_store(args, environ, required=True)
    assert store is not None  # noqa: S101 - required=True raises instead
    runs = store.runs(limit=args.limit)
    per_day, per_plan = store.totals("day"), store.totals("plan")
    if args.json:
        _print_json(
            {
                "runs": [r.to_dict() for r in runs],
                "per_day": [t.to_dict() for t in per_day],
                "per_plan": [t.to_dict() for t in per_plan],
            }
        )
        return 0
    if not runs:
        sys.stdout.write("no runs recorded yet\n")
        return 0
    table = [("RUN", "STARTED", "STATUS", "BACKEND", "COST", "PLAN")]
    table += [
        (r.run_id, r.started_at, r.status, r.backend,
         f"${r.total_usd:.2f}" if r.total_usd is not None else "-", r.plan_title)
        for r in runs
    ]  # fmt: skip
    sys.stdout.write(_columns(table))
    for title, totals in (("per day", per_day), ("per plan", per_plan)):
        sys.stdout.write(f"\ntotals {title}\n")
        rows = [("", "RUNS", "COMPLETED", "CLAUDE", "SANDBOX", "TOTAL")]
        rows += [
            (t.key, str(t.runs), str(t.completed), f"${t.claude_usd:.2f}",
             f"${t.sandbox_usd:.2f}", f"${t.total_usd:.2f}")
            for t in totals
        ]  # fmt: skip
        sys.stdout.write(_columns(rows))
    return 0


def _run_and_box(
    args: argparse.Namespace, environ: Mapping[str, str]
) -> tuple[RunRecord | None, SandboxSummary | None]:
    """The run's history record (if this machine has one) and its running sandbox (if any)."""
    store = _open_store(args, environ, required=False)
    record = None
    if store is not None:
        try:
            record = store.get(args.run_id)
        except RunLookupError:
            record = None
    box = sandbox_of(_sandboxes(args, environ).running(), record.run_id if record else args.run_id)
    if record is None and box is None:
        raise ConfigError(
            f"no run {args.run_id} in the history ({store.path if store else 'unavailable'}) "
            "and no running sandbox of ours for it",
            hint="`claude-e2b history` lists past runs, `claude-e2b list` the running ones",
        )
    return record, box


def _redact_from(environ: Mapping[str, str]) -> tuple[str, ...]:
    """What this process knows of the secrets never reaches its output; returns them."""
    values = tuple(credentials_from_env(environ, "env").secret_values())
    for value in values:
        REDACTOR.add(value)
    return values


def cmd_logs(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """claude-e2b logs RUN_ID [--follow]: the agent's log, live from its sandbox or as kept."""
    _redact_from(environ)
    record, box = _run_and_box(args, environ)
    printer = _LogPrinter(as_json=args.json)
    if box is not None:
        with attach(box, local_registry(environ)) as session:
            stream_sandbox_log(session, printer.feed, follow=args.follow)
        printer.flush()
        return 0
    assert record is not None  # noqa: S101 - _run_and_box raises when both are missing
    path = Path(record.transcript_path or "")
    if not record.transcript_path or not path.is_file():
        raise ConfigError(f"run {record.run_id} has no transcript on this machine ({path})")
    run_pid = record.pid

    def still_running() -> bool:
        return run_pid is not None and pid_alive(run_pid)

    for line in follow_file(path, follow=args.follow, still_running=still_running):
        printer.feed(line)
    printer.flush()
    return 0


class _LogPrinter:
    """Claude Code's stream-json lines, printed raw (--json) or as readable lines."""

    def __init__(self, *, as_json: bool) -> None:
        self.as_json = as_json
        self._splitter = LineSplitter()

    def feed(self, chunk: str) -> None:
        for line in self._splitter.feed(chunk):
            self._line(line)

    def flush(self) -> None:
        for line in self._splitter.flush():
            self._line(line)

    def _line(self, line: str) -> None:
        line = REDACTOR.redact(line.rstrip("\r\n"))
        if not line.strip():
            return
        if self.as_json:
            sys.stdout.write(line + "\n")
            return
        event = parse_event(line)
        for text in describe(event) if event is not None else [line]:
            sys.stdout.write(text + "\n")
        sys.stdout.flush()


def cmd_download(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """claude-e2b download RUN_ID --output DIR | --apply: a run's changes, safely."""
    secrets = _redact_from(environ)
    record, box = _run_and_box(args, environ)
    policy = ApplyPolicy()
    if box is not None:
        keep_in = Path(record.output_dir) / KEPT_DIR if record and record.output_dir else None
        with tempfile.TemporaryDirectory(prefix="claude-e2b-download-") as tmp:
            with attach(box, local_registry(environ)) as session:
                fetched = fetch_from_sandbox(
                    session, record, keep_in or Path(tmp) / KEPT_DIR, policy.max_archive_bytes
                )
            return _deliver_download(args, fetched, "sandbox " + box.sandbox_id, secrets)
    assert record is not None  # noqa: S101 - _run_and_box raises when both are missing
    return _deliver_download(args, kept_changes(record), "the copy kept by the run", secrets)


def _deliver_download(
    args: argparse.Namespace, fetched: Fetched, source: str, secrets: tuple[str, ...]
) -> int:
    if args.output:
        applied = write_output(fetched, Path(args.output), ApplyPolicy(protected_paths=()))
        where = args.output
    else:
        repo = Path(args.repo).resolve()
        applied = apply_downloaded(fetched, repo, download_policy(repo, secrets))
        where = str(repo)
    if args.json:
        _print_json(
            {
                "source": source,
                "changes": [c.to_result() for c in fetched.changeset.changes],
                "applied": [c.to_result() for c in applied.applied],
                "skipped_changes": applied.skipped_result_list(),
                "into": where,
            }
        )
    else:
        sys.stdout.write(
            f"{len(applied.applied)} change(s) from {source} written to {where}"
            + (f"; {len(applied.skipped)} skipped:" if applied.skipped else "")
            + "\n"
        )
        for skipped in applied.skipped:
            sys.stdout.write(f"  {skipped.path}: {skipped.reason}\n")
    return 1 if applied.skipped and not applied.applied else 0


def cmd_kill(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """claude-e2b kill: kill one sandbox of ours (by run id or sandbox id), or all of ours."""
    if bool(args.id) == bool(args.all):
        raise ConfigError("kill needs either a run id or sandbox id, or --all (not both)")
    killed = kill_matching(_sandboxes(args, environ), None if args.all else args.id)
    if args.json:
        _print_json([{"backend": k.backend, "sandbox_id": k.sandbox_id,
                      "run_id": k.metadata.get("run-id", "")} for k in killed])  # fmt: skip
    else:
        sys.stdout.write(f"killed {len(killed)} sandbox(es)\n")
    if not args.all and not killed:
        sys.stderr.write(f"no running sandbox of ours matches {args.id}\n")
        return 1
    return 0


def _duration(seconds: float) -> str:
    if seconds < 120:  # noqa: PLR2004 - below two minutes, seconds read better
        return f"{seconds:.0f}s"
    if seconds < 7200:  # noqa: PLR2004
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _columns(rows: Sequence[Sequence[str]]) -> str:
    """Rows as left-aligned columns (the last one is not padded)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]])
             for row in rows]  # fmt: skip
    return "\n".join(line.rstrip() for line in lines) + "\n"


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
    check.set_defaults(func=cmd_plan_check)
    _add_run_commands(sub)
    return parser


def _add_run_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """list, status, logs, download, kill, history."""
    listing = sub.add_parser("list", help="running sandboxes of ours and their runs")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--sandbox", choices=["e2b", "local"])
    listing.set_defaults(func=cmd_list)
    status = sub.add_parser("status", help="one run: its status, cost, sandbox, pull request")
    status.add_argument("run_id", metavar="RUN_ID", help="a run id (or a unique prefix)")
    status.add_argument("--json", action="store_true")
    status.add_argument("--sandbox", choices=["e2b", "local"])
    status.set_defaults(func=cmd_status)
    logs = sub.add_parser("logs", help="a run's agent log: live from its sandbox, or as stored")
    logs.add_argument("run_id", metavar="RUN_ID")
    logs.add_argument("-f", "--follow", action="store_true", help="keep following a live run")
    logs.add_argument("--json", action="store_true", help="Claude Code's stream-json lines")
    logs.add_argument("--sandbox", choices=["e2b", "local"])
    logs.set_defaults(func=cmd_logs)
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
    download.set_defaults(func=cmd_download)
    kill = sub.add_parser("kill", help="kill a sandbox of ours by run id or sandbox id, or --all")
    kill.add_argument("id", nargs="?")
    kill.add_argument("--all", action="store_true")
    kill.add_argument("--json", action="store_true")
    kill.add_argument("--sandbox", choices=["e2b", "local"])
    kill.set_defaults(func=cmd_kill)
    history = sub.add_parser("history", help="past runs with their cost; totals per day and plan")
    history.add_argument("--limit", type=_positive_int, default=50, help="runs to show")
    history.add_argument("--json", action="store_true")
    history.set_defaults(func=cmd_history)


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
    run.set_defaults(func=cmd_run)


def dispatch(argv: Sequence[str] | None, environ: Mapping[str, str]) -> int:
    """Parse ``argv``, run the command, and map every way out to an exit code."""
    args = build_parser().parse_args(argv)
    args.view = configure_output(
        sys.stderr,
        log_format=args.log_format,
        verbose=args.verbose,
        github_actions=environ.get("GITHUB_ACTIONS") == "true",
        no_color=bool(environ.get("NO_COLOR")),
        dumb_terminal=environ.get("TERM") == "dumb",
    )
    func: Callable[[argparse.Namespace, Mapping[str, str]], int] = args.func
    try:
        return func(args, environ)
    except ClaudeE2BError as exc:
        sys.stderr.write(f"claude-e2b: {REDACTOR.redact(str(exc))}\n")
        return exc.exit_code
    except (KeyboardInterrupt, RunCancelled, RunAborted):
        sys.stderr.write("claude-e2b: interrupted\n")
        return EXIT_INTERRUPTED
    except Exception as exc:  # the one place that turns a bug into exit 3
        log.exception("internal_error", error=REDACTOR.redact(repr(exc)))
        sys.stderr.write("claude-e2b: internal error; please report it with the log above\n")
        return EXIT_INTERNAL


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``claude-e2b`` script."""
    sys.exit(dispatch(argv, os.environ))
