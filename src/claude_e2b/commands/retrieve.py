"""``logs`` and ``download``: a run's log and changes, from its sandbox or as the run kept them."""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from claude_e2b.agent.events import LineSplitter, parse_event
from claude_e2b.agent.monitor import describe
from claude_e2b.collect import KEPT_DIR, Fetched
from claude_e2b.commands.common import open_store, print_json, sandboxes
from claude_e2b.environment import (
    credentials_from_env,
    local_registry,
)
from claude_e2b.errors import (
    ConfigError,
)
from claude_e2b.log import REDACTOR
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
    pid_alive,
    sandbox_of,
)
from claude_e2b.sandbox import SandboxSummary
from claude_e2b.store import RunLookupError, RunRecord
from claude_e2b.sync.apply import ApplyPolicy


def _run_and_box(
    args: argparse.Namespace, environ: Mapping[str, str]
) -> tuple[RunRecord | None, SandboxSummary | None]:
    """The run's history record (if this machine has one) and its running sandbox (if any)."""
    store = open_store(args, environ, required=False)
    record = None
    if store is not None:
        try:
            record = store.get(args.run_id)
        except RunLookupError:
            record = None
    box = sandbox_of(sandboxes(args, environ).running(), record.run_id if record else args.run_id)
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
        print_json(
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
