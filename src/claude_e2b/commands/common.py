"""What several commands share: the run history, the sandboxes of ours, JSON output."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path

from claude_e2b.log import get_logger
from claude_e2b.runs import (
    Sandboxes,
    pid_alive,
)
from claude_e2b.sandbox import Backend
from claude_e2b.sandbox.localbox.registry import registry_dir, state_dir
from claude_e2b.store import RunStore, default_db_path, open_history

log = get_logger(__name__)


def open_store(
    args: argparse.Namespace, environ: Mapping[str, str], *, required: bool
) -> RunStore | None:
    """The run history (--db, else the per-user data path).

    None when it cannot be opened and the command can do without it (a run warns
    and goes on).
    """
    path = Path(args.db) if args.db else default_db_path(environ)
    store = open_history(path, required=required)
    if store is None:
        return None
    store.mark_abandoned(pid_alive)
    return store


def backends(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[Backend, ...]:
    """The backends a list or kill looks at (E2B's only with a key to ask it with)."""
    asked: list[Backend] = [args.sandbox] if args.sandbox else ["local", "e2b"]
    return tuple(b for b in asked if b == "local" or environ.get("E2B_API_KEY"))


def sandboxes(args: argparse.Namespace, environ: Mapping[str, str]) -> Sandboxes:
    """The sandboxes of ours that a command looks at (``--sandbox``, E2B only with a key)."""
    return Sandboxes(backends(args, environ), registry_dir(state_dir(environ)))


def print_json(data: object) -> None:
    """``--json`` output: indented, on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
