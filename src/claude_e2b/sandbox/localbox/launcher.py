"""Start, find and stop local sandbox servers (what the rest of the project uses).

``start_localbox`` runs ``python -m claude_e2b.sandbox.localbox`` as a child
process on a free loopback port. The child watches its parent: if this process
dies, the sandbox ends too, so nothing outlives the run. The child inherits only an
allow-list of the caller's environment (``server_env``), never its secrets.

The child makes its own API key and envd access token and hands them back on the
ready pipe, with its URL: the handle holds them, and ``sdk_options`` gives the
e2b SDK what it needs to talk to the server in its normal mode, as to E2B::

    handle = start_localbox(LocalBoxOptions(), host)
    sandbox = Sandbox.create(timeout=600, **handle.sdk_options())
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from claude_e2b.errors import SandboxError, SandboxStartError

from .link import check_link
from .netns import NetworkPolicy
from .registry import LocalBoxInfo, pid_alive, read_entries

__all__ = [
    "LocalBoxHandle",
    "LocalBoxHost",
    "LocalBoxInfo",
    "LocalBoxOptions",
    "kill_localbox",
    "list_localboxes",
    "start_localbox",
]

_STDERR_TAIL = 4000
_HTTP_TIMEOUT_S = 5.0
# All the server takes from its caller's environment: PATH (to find unshare, nsenter,
# setpriv), the dynamic linker's and Python's own paths, the locale and time zone of
# its log, and TMPDIR (a root's place when tmpfs is small). Nothing else: the caller's
# environment holds GITHUB_TOKEN, E2B_API_KEY, AWS_* and the like, and a command in a
# plain-mode sandbox runs as the server's user and could read /proc/SERVER/environ.
# Commands get none of it either way (isolation.Isolation.env builds theirs).
SERVER_ENV = frozenset(
    {"PATH", "LANG", "TZ", "TMPDIR", "LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONHOME"}
)
_LOCALE_PREFIX = "LC_"


@dataclass(frozen=True)
class LocalBoxOptions:
    """How to start a local sandbox.

    ``test_faults`` (tests only) serves /localbox/faults; ``faults`` (see faults.py)
    are set at start and need it. ``allow_root`` lets calls act as root, which in the
    root isolation mode is root on the host: nothing in the project needs it.
    """

    lifetime_s: float = 3600.0
    metadata: Mapping[str, str] = field(default_factory=dict)
    tools: Mapping[str, Path] = field(default_factory=dict)
    keep_root: bool = False
    root: Path | None = None
    faults: Mapping[str, object] = field(default_factory=dict)
    test_faults: bool = False
    allow_root: bool = False
    network: NetworkPolicy = field(default_factory=NetworkPolicy)

    def __post_init__(self) -> None:
        if self.faults and not self.test_faults:
            raise ValueError("faults need test_faults=True (a server started for tests)")


@dataclass(frozen=True)
class LocalBoxHost:
    """The machine's side of local sandboxes: their registry, the caller's environment.

    ``environ`` is where the server's allowed variables come from (see ``server_env``);
    it may be the whole environment of the caller, so it is kept out of the repr.
    ``test_faults``: sessions opened on this host start servers for tests (faults on).
    ``link_mbit`` and ``link_rtt_ms`` put a simulated link (see link.py) in front of
    the /files API of the servers started here: its rate in Mbit/s (10^6 bits; None:
    unthrottled) and a round trip added to each request. The bench measures uploads
    through it. Raises ValueError for a rate <= 0 or a negative round trip.
    """

    registry_dir: Path
    environ: Mapping[str, str] = field(repr=False)
    test_faults: bool = False
    link_mbit: float | None = None
    link_rtt_ms: float = 0.0

    def __post_init__(self) -> None:
        check_link(self.link_mbit, self.link_rtt_ms)

    def link_argv(self) -> list[str]:
        """The server's flags for this host's link (none when there is no link)."""
        argv = [] if self.link_mbit is None else ["--link-mbit", repr(float(self.link_mbit))]
        if self.link_rtt_ms > 0:
            argv += ["--link-rtt-ms", repr(float(self.link_rtt_ms))]
        return argv


@dataclass
class LocalBoxHandle:
    """A running local sandbox server, child of this process, and its secrets."""

    url: str
    sandbox_id: str
    pid: int
    root: Path
    api_key: str = field(default="", repr=False)
    access_token: str = field(default="", repr=False)
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        """Whether the server process is still alive."""
        return self._process is not None and self._process.poll() is None

    def sdk_options(self) -> dict[str, Any]:
        """Keyword arguments that point the e2b SDK (normal mode) at this server.

        ``api_url`` and ``sandbox_url`` are the SDK's own overrides for a self-hosted
        E2B; the key authenticates its API calls, and create hands it the access token.
        """
        return {
            "api_key": self.api_key,
            "api_url": self.url,
            "sandbox_url": self.url,
            "debug": False,
            "http_version": "1.1",
        }

    def call(self, method: str, path: str, body: object = None) -> httpx.Response:
        """One authenticated request to the server's control side (``/localbox/*`` etc.)."""
        return httpx.request(
            method,
            f"{self.url}{path}",
            json=body,
            headers={"X-API-Key": self.api_key},
            timeout=_HTTP_TIMEOUT_S,
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Kill the server and everything in the sandbox; idempotent."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            # SIGTERM lets the server kill its process groups and remove its root.
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout)
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None


def _argv(options: LocalBoxOptions, ready_fd: int, host: LocalBoxHost) -> list[str]:
    argv = [sys.executable, "-m", "claude_e2b.sandbox.localbox", "--port", "0"]
    argv += ["--lifetime", str(options.lifetime_s), "--ready-fd", str(ready_fd)]
    argv += ["--registry-dir", str(host.registry_dir), *host.link_argv()]
    if options.test_faults:
        argv += ["--test-faults", "--faults", json.dumps(dict(options.faults))]
    if options.allow_root:
        argv.append("--allow-root-user")
    argv += options.network.argv()
    for key, value in options.metadata.items():
        argv += ["--metadata", f"{key}={value}"]
    for name, path in options.tools.items():
        argv += ["--tool", f"{name}={path}"]
    if options.keep_root:
        argv.append("--keep-root")
    if options.root is not None:
        argv += ["--root", str(options.root)]
    return argv


def server_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The allowed part of ``environ``, with this package importable even when not installed."""
    env = {
        name: value
        for name, value in environ.items()
        if name in SERVER_ENV or name.startswith(_LOCALE_PREFIX)
    }
    src = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return env


def _tail(log: IO[bytes]) -> str:
    log.flush()
    log.seek(0, os.SEEK_END)
    size = log.tell()
    log.seek(max(0, size - _STDERR_TAIL))
    return log.read().decode("utf-8", "replace")


def _read_ready(read_fd: int, process: subprocess.Popen[bytes], deadline: float) -> dict[str, Any]:
    """The JSON line the server writes once it listens. Raises TimeoutError/ValueError."""
    buffer = b""
    while not buffer.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the local sandbox did not report ready in time")
        readable, _, _ = select.select([read_fd], [], [], min(remaining, 0.2))
        if readable:
            chunk = os.read(read_fd, 4096)
            if not chunk:
                raise ValueError(f"the local sandbox exited early (status {process.poll()})")
            buffer += chunk
    info = json.loads(buffer)
    if not isinstance(info, dict):
        raise TypeError("the local sandbox reported garbage")
    return info


def _healthy(url: str, deadline: float) -> None:
    """Wait until /health answers 2xx. Raises TimeoutError."""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=_HTTP_TIMEOUT_S) as answer:  # noqa: S310 - our own http URL
                if 200 <= answer.status < 300:  # noqa: PLR2004
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    raise TimeoutError("the local sandbox did not answer /health in time")


def start_localbox(
    options: LocalBoxOptions, host: LocalBoxHost, *, ready_timeout: float = 20.0
) -> LocalBoxHandle:
    """Start a local sandbox server as a child process and wait until it is healthy.

    Raises SandboxStartError (with the tail of the server's stderr) on failure.
    """
    read_fd, write_fd = os.pipe()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - the handle owns it until stop()
    try:
        process = subprocess.Popen(
            _argv(options, write_fd, host),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=(write_fd,),
            env=server_env(host.environ),
            # A session of its own: Ctrl-C on a terminal signals the whole foreground
            # process group, and the sandbox must outlive that signal long enough for
            # the run to collect the agent's work. It still dies with its parent.
            start_new_session=True,
        )
    finally:
        os.close(write_fd)
    handle = LocalBoxHandle("", "", process.pid, Path(), _process=process, _log=log)
    deadline = time.monotonic() + ready_timeout
    try:
        info = _read_ready(read_fd, process, deadline)
        handle.url, handle.sandbox_id = str(info["url"]), str(info["sandbox_id"])
        handle.root = Path(info["root"])
        handle.api_key, handle.access_token = str(info["api_key"]), str(info["access_token"])
        _healthy(handle.url, deadline)
    except (TimeoutError, ValueError, TypeError, KeyError) as exc:
        tail = _tail(log)
        handle.stop(timeout=5.0)
        raise SandboxStartError(
            f"could not start the local sandbox: {exc}\n{tail}",
            hint="run `python -m claude_e2b.sandbox.localbox` by hand to see why",
        ) from exc
    finally:
        os.close(read_fd)
    return handle


def list_localboxes(registry_dir: Path) -> list[LocalBoxInfo]:
    """Running local sandboxes announced in ``registry_dir`` (stale entries are pruned)."""
    return read_entries(registry_dir)


def kill_localbox(sandbox_id: str, registry_dir: Path) -> bool:
    """End a running local sandbox by id; False if there is no such sandbox.

    Another process (``claude-e2b kill``) has no key to the server's API, so this
    sends the server SIGTERM, on which it ends the sandbox as on a kill call.
    Raises SandboxError when the server belongs to a user we may not signal.
    """
    found = [i for i in list_localboxes(registry_dir) if i.sandbox_id == sandbox_id]
    if not found or not _is_localbox_server(found[0].pid):
        return False
    pid = found[0].pid
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    except PermissionError as exc:
        raise SandboxError(
            f"local sandbox {sandbox_id} (pid {pid}) belongs to another user: {exc}"
        ) from exc
    _wait_gone(pid, 10.0)
    return True


def _is_localbox_server(pid: int) -> bool:
    """Whether ``pid`` runs this package's server, not a process that reused the pid."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"claude_e2b.sandbox.localbox" in argv


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
