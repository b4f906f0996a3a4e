"""The audit log: one JSON line per operation on a sandbox or on GitHub.

Each line says what was done (``op``), to what (``target``: a sandbox id, a
repository, a pull request), for which run, how it ended (``outcome``: ok or the
error's class name) and how long it took. Lines go through structlog under the
logger name ``claude_e2b.audit`` (so the redaction processor removes the run's
secrets from them like from every other line) and, when a file is set with
:func:`set_audit_file`, are also appended to that file as JSON lines.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from claude_e2b.log import REDACTOR, get_logger

log = get_logger("claude_e2b.audit")

_lock = threading.Lock()
_state: dict[str, Any] = {"file": None, "run_id": ""}


def set_audit_file(path: Path | None, run_id: str = "") -> None:
    """Append audit lines to ``path`` too (None: only the log); ``run_id`` is the default run."""
    with _lock:
        _state["file"] = path
        _state["run_id"] = run_id
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def record(op: str, *, target: str, outcome: str, duration_s: float, **fields: Any) -> None:
    """Write one audit line (already finished operation)."""
    run_id = fields.pop("run_id", None) or _state["run_id"]
    line = {
        "audit": op,
        "target": target,
        "run_id": run_id,
        "outcome": outcome,
        "duration_ms": round(duration_s * 1000, 1),
        **fields,
    }
    log.info("audit", **line)
    path = _state["file"]
    if path is None:
        return
    stamped = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), **line}
    text = json.dumps(REDACTOR.redact_value(stamped), default=str)
    with _lock, Path(path).open("a", encoding="utf-8") as out:
        out.write(text + "\n")


@contextlib.contextmanager
def audited(op: str, *, target: str, **fields: Any) -> Iterator[None]:
    """Record ``op`` on ``target`` when the block ends: ok, or the exception's class name."""
    began = time.monotonic()
    outcome = "ok"
    try:
        yield
    except BaseException as exc:
        outcome = type(exc).__name__
        raise
    finally:
        record(op, target=target, outcome=outcome, duration_s=time.monotonic() - began, **fields)
