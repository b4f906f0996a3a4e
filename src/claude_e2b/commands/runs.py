"""``list``, ``status``, ``history``, ``kill``: the runs and the sandboxes of ours (no e2b SDK)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from claude_e2b.commands.common import open_store, print_json, sandboxes
from claude_e2b.errors import (
    ConfigError,
)
from claude_e2b.runs import (
    find_record,
    kill_matching,
    list_rows,
    sandbox_of,
)


def cmd_list(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """claude-e2b list: running sandboxes of ours, joined with their runs; runs still running."""
    store = open_store(args, environ, required=False)
    rows = list_rows(sandboxes(args, environ).running(), store, datetime.now(UTC))
    if args.json:
        print_json([row.to_dict() for row in rows])
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
    store = open_store(args, environ, required=True)
    assert store is not None  # noqa: S101 - required=True raises instead
    record = find_record(store, args.run_id)
    box = sandbox_of(sandboxes(args, environ).running(), record.run_id)
    data = record.to_dict() | {"sandbox_running": box is not None}
    if args.json:
        print_json(data)
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
    store = open_store(args, environ, required=True)
    assert store is not None  # noqa: S101 - required=True raises instead
    runs = store.runs(limit=args.limit)
    per_day, per_plan = store.totals("day"), store.totals("plan")
    if args.json:
        print_json(
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


def cmd_kill(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """claude-e2b kill: kill one sandbox of ours (by run id or sandbox id), or all of ours."""
    if bool(args.id) == bool(args.all):
        raise ConfigError("kill needs either a run id or sandbox id, or --all (not both)")
    killed = kill_matching(sandboxes(args, environ), None if args.all else args.id)
    if args.json:
        print_json([{"backend": k.backend, "sandbox_id": k.sandbox_id,
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
