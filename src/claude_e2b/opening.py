"""A sandbox created in a thread of its own while the run selects and scans its files.

Creating a sandbox takes a second or more (E2B's API, or the local server's
namespaces); selecting and scanning a large checkout takes as long. Neither needs
the other, so the run starts the sandbox first and waits for it only when the
upload is about to begin (see run_scan: once it is ready, the upload may begin
while the scan goes on, each file only after its scan). A run that is blocked or
cancelled before it needs the sandbox discards it: killed as soon as it exists
(and, at the latest, when the interpreter joins the thread at exit).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from claude_e2b.errors import ClaudeE2BError
from claude_e2b.log import get_logger
from claude_e2b.sandbox.session import SandboxSession, SandboxSpec

log = get_logger(__name__)
SessionFactory = Callable[[SandboxSpec], SandboxSession]


class OpeningSandbox:
    """The sandbox of one run, being created in the background."""

    def __init__(self, factory: SessionFactory, spec: SandboxSpec) -> None:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="claude-e2b-open")
        self._future: Future[SandboxSession] = executor.submit(factory, spec)
        executor.shutdown(wait=False)
        self._taken = False

    def session(self) -> SandboxSession:
        """Wait for the sandbox; raises what creating it raised (a limit, a start error)."""
        session = self._future.result()
        self._taken = True
        return session

    def on_ready(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the sandbox is created or failed to be (now if it is)."""
        self._future.add_done_callback(lambda _done: callback())

    def discard(self, *, wait: bool) -> None:
        """Kill the sandbox once it exists, unless the run took it; never raises.

        ``wait``: until it is created and killed (a blocked run has time); else the
        kill happens in the creating thread when it is done (a cancelled run has not).
        """
        if self._taken:
            return
        if not wait:
            self._future.add_done_callback(_kill_when_open)
            return
        with contextlib.suppress(Exception):
            self._future.result()
        _kill_when_open(self._future)


def _kill_when_open(future: Future[SandboxSession]) -> None:
    if future.cancelled() or future.exception() is not None:
        return
    try:
        future.result().kill()
    except ClaudeE2BError as exc:
        log.warning("sandbox.discard_failed", error=str(exc))
