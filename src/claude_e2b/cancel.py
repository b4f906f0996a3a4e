"""Cancellation of a run by SIGINT or SIGTERM, as GitHub cancels a workflow.

GitHub sends SIGINT, then SIGTERM about 7.5 s later, then SIGKILL. The first
signal asks the run to end early but keep what exists: the agent is stopped
(SIGINT, a short grace, SIGKILL), its partial changes are collected and applied,
result.json says ``cancelled``, then the sandbox is killed. Before the agent has
started there is nothing to keep, so the step under way is interrupted at once.
A second signal skips straight to killing the sandbox.

``cli.py`` and ``action.py`` install the handlers (:meth:`Cancellation.install`);
the pipeline asks :meth:`Cancellation.check` between steps and marks the regions
that may be interrupted with :meth:`Cancellation.interruptible`.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")


class RunCancelled(BaseException):
    """The run was asked to stop (first signal) where nothing is lost by unwinding."""


class RunAborted(BaseException):
    """A second signal: stop everything now, kill the sandbox, keep nothing more."""


class Cancellation:
    """The cancel request of one run: set by a signal handler, read by the steps."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.signal_name = ""
        self.at: float | None = None
        self.count = 0
        self._interruptible = 0
        self._previous: dict[int, object] = {}

    @property
    def is_set(self) -> bool:
        """Whether a cancel was asked for."""
        return self.requested.is_set()

    def request(self, name: str = "SIGINT") -> None:
        """Ask the run to stop (what a signal does); a second request aborts it."""
        self.count += 1
        if self.count > 1:
            raise RunAborted(name)
        self.signal_name = name
        self.at = time.monotonic()
        self.requested.set()
        if self._interruptible:
            raise RunCancelled(name)

    def check(self) -> None:
        """Raise RunCancelled when a cancel was asked for (between steps)."""
        if self.is_set:
            raise RunCancelled(self.signal_name)

    def seconds_since(self) -> float:
        """Seconds since the cancel request (0 without one)."""
        return 0.0 if self.at is None else time.monotonic() - self.at

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """A region that a signal interrupts at once (nothing in it is worth keeping)."""
        self.check()
        self._interruptible += 1
        try:
            yield
        finally:
            self._interruptible -= 1

    def call(self, func: Callable[[], T], *, poll_s: float = 0.1) -> T:
        """Run ``func`` in a worker thread while this (main) thread waits for it.

        A signal's handler runs in the main thread only between bytecodes: while the
        main thread is blocked in a library's read (a command's output stream) it
        would wait until the command prints or ends. Waiting in short joins lets it
        run at once; in an interruptible region the RunCancelled it raises ends the
        wait, and the worker is left to fail when the sandbox is killed.
        """
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["value"] = func()
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                box["error"] = exc

        worker = threading.Thread(target=work, name="claude-e2b-step", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(poll_s)
        if "error" in box:
            raise box["error"]
        value: T = box["value"]
        return value

    def install(self) -> None:
        """Handle SIGINT and SIGTERM with :meth:`request` (main thread only)."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)

    def uninstall(self) -> None:
        """Restore the handlers that were there before :meth:`install`."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]
        self._previous.clear()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.request(signal.Signals(signum).name)

    def message(self) -> str:
        """What happened, for result.json and the log."""
        name = self.signal_name or "a signal"
        return f"the run was cancelled ({name})"
