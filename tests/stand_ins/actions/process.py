"""Child processes of a run: output read line by line from both pipes, a deadline, cleanup.

Like the runner's ProcessInvoker, stdout and stderr are read as they come (the log keeps
their interleaving), stdin is closed, and GITHUB_ACTIONS/CI are set by the caller. Each
process gets its own session so that the whole tree can be killed on the deadline and,
at the end of the run, any orphan it left behind ("Cleaning up orphan processes").
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

# After the process exits, how long to keep reading pipes a background child still holds.
DRAIN_SECONDS = 2.0
_CHUNK = 65536


@dataclass(frozen=True)
class ProcessResult:
    exit_code: int | None  # None when killed at the deadline
    stdout: str
    stderr: str
    lines: tuple[tuple[str, str], ...]  # ("stdout" | "stderr", line) in arrival order
    timed_out: bool


def _start_time(pid: int) -> str | None:
    """A process's start time (field 22 of /proc/<pid>/stat), None when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (FileNotFoundError, IndexError):
        return None


@dataclass
class ProcessGroups:
    """The sessions started during a run, killed together at its end."""

    started: list[tuple[int, str | None]] = field(default_factory=list)  # (pid, start time)

    def add(self, pid: int) -> None:
        self.started.append((pid, _start_time(pid)))

    def kill_all(self) -> None:
        """SIGKILL every session still alive (orphans a step left running).

        A group id stays reserved while any of its processes lives; when the leader's pid
        now belongs to a process with another start time, the number was reused: skip it.
        """
        for pgid, started in self.started:
            now = _start_time(pgid)
            if now is not None and now != started:
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        self.started.clear()


class _Pipes:
    """Reads both pipes into per-stream text and one interleaved list of lines."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.selector = selectors.DefaultSelector()
        self.partial = {"stdout": b"", "stderr": b""}
        self.whole = {"stdout": bytearray(), "stderr": bytearray()}
        self.lines: list[tuple[str, str]] = []
        for name, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            if pipe is not None:
                self.selector.register(pipe, selectors.EVENT_READ, name)

    @property
    def open(self) -> bool:
        return bool(self.selector.get_map())

    def read(self, timeout: float) -> None:
        for key, _ in self.selector.select(max(timeout, 0.0)):
            stream: IO[bytes] = key.fileobj  # type: ignore[assignment]
            chunk = os.read(stream.fileno(), _CHUNK)
            if chunk:
                self._add(key.data, chunk)
            else:
                self.selector.unregister(stream)
                self._flush(key.data)

    def _add(self, name: str, chunk: bytes) -> None:
        self.whole[name] += chunk
        *complete, self.partial[name] = (self.partial[name] + chunk).split(b"\n")
        self.lines += [(name, _text(line)) for line in complete]

    def _flush(self, name: str) -> None:
        if self.partial[name]:
            self.lines.append((name, _text(self.partial[name])))
            self.partial[name] = b""

    def close(self) -> None:
        for name in ("stdout", "stderr"):
            self._flush(name)
        for key in list(self.selector.get_map().values()):
            self.selector.unregister(key.fileobj)
        self.selector.close()


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def spawn(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    deadline: float,
    groups: ProcessGroups,
) -> ProcessResult:
    """Run `argv` to its end or to `deadline` (time.monotonic()), whichever comes first.

    Raises OSError when the program cannot be started.
    """
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    groups.add(proc.pid)
    pipes = _Pipes(proc)
    timed_out = _pump(proc, pipes, deadline)
    if timed_out:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    exit_code = proc.wait(timeout=10)
    pipes.close()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return ProcessResult(
        exit_code=None if timed_out else exit_code,
        stdout=_text(bytes(pipes.whole["stdout"])),
        stderr=_text(bytes(pipes.whole["stderr"])),
        lines=tuple(pipes.lines),
        timed_out=timed_out,
    )


def _pump(proc: subprocess.Popen[bytes], pipes: _Pipes, deadline: float) -> bool:
    """Read until the process has exited and its pipes closed (or drained); True on timeout."""
    exited_at: float | None = None
    while True:
        now = time.monotonic()
        if now >= deadline:
            return proc.poll() is None
        if exited_at is None and proc.poll() is not None:
            exited_at = now
        if not pipes.open and exited_at is not None:
            return False
        if exited_at is not None and now - exited_at > DRAIN_SECONDS:
            return False
        if pipes.open:
            pipes.read(min(deadline - now, 0.1))
        else:
            time.sleep(min(deadline - now, 0.01))
