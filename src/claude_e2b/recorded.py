"""A run as ``claude-e2b run`` and the Action both run it: recorded, limited, cancellable.

Around the pipeline: the audit file in the run's output directory, the run's row
in the history from start to end (also when it fails or is interrupted), the
sandbox limits in front of the session factory, and SIGINT/SIGTERM handled as a
cancel for as long as the run lasts.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from claude_e2b.audit import set_audit_file
from claude_e2b.cancel import Cancellation
from claude_e2b.config import RunConfig
from claude_e2b.github.workflow import Workflow
from claude_e2b.log import REDACTOR, get_logger
from claude_e2b.pipeline import SessionFactory, run_pipeline
from claude_e2b.result import RunResult
from claude_e2b.runs import History, Sandboxes, limited
from claude_e2b.sandbox.limits import SandboxLimits
from claude_e2b.store import RunStore
from claude_e2b.view import RunView

log = get_logger(__name__)


@dataclass(frozen=True)
class RecordedRun:
    """One run's history row, its cancel request, and its limited session factory."""

    config: RunConfig
    history: History
    cancel: Cancellation
    open_sandbox: SessionFactory

    def run(self, workflow: Workflow, view: RunView) -> RunResult:
        """The pipeline, told about the cancel and the history."""
        return run_pipeline(
            self.config,
            self.open_sandbox,
            workflow,
            cancel=self.cancel,
            journal=self.history.journal,
            view=view,
        )


@contextlib.contextmanager
def recorded_run(
    config: RunConfig,
    factory: SessionFactory,
    *,
    store: RunStore | None,
    limits: SandboxLimits,
    registry_dir: Path,
    repository: str,
) -> Iterator[RecordedRun]:
    """Record, limit and make cancellable the run of ``config`` while the block runs.

    The block records the run's end (``history.end``); leaving it by an exception
    records the run as failed with that exception's words.
    """
    set_audit_file(config.output_dir / "audit.jsonl", config.run_id)
    history = History(store, config.run_id)
    history.start(config, repository=repository, pid=os.getpid())
    guarded = limited(
        factory,
        limits=limits,
        sandboxes=Sandboxes((config.backend,), registry_dir),
        store=store,
        run_id=config.run_id,
    )
    cancel = Cancellation()
    cancel.install()
    try:
        yield RecordedRun(config, history, cancel, guarded)
    except BaseException as exc:
        history.abandon(REDACTOR.redact(str(exc) or type(exc).__name__))
        raise
    finally:
        cancel.uninstall()
