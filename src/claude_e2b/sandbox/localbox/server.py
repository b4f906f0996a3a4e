"""The local sandbox server process: one process, one sandbox.

It serves envd's protocol and the part of E2B's API the SDK uses on a loopback
port, behind two secrets it makes at start and tells only its parent (auth.py).
It ends itself — killing every process of the sandbox and removing its root —
when its lifetime runs out, when its parent process dies, on SIGTERM/SIGINT, or
on ``DELETE /sandboxes/{id}`` (the SDK's kill).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from e2b.envd.filesystem.filesystem_connect import FilesystemASGIApplication
from e2b.envd.process.process_connect import ProcessASGIApplication

from . import netns
from .app import BoxState, LocalBoxApp
from .auth import Credentials
from .faults import Faults
from .files_http import FilesAPI
from .filesystem import FilesystemService
from .isolation import Identity, Isolation, Mode, detect_mode, identity_for, username
from .link import check_link, link_for
from .paths import SandboxFS
from .processes import ProcessService
from .registry import registry_dir, remove_entry, state_dir, write_entry

_log = logging.getLogger("claude_e2b.localbox")
_TICK_S = 0.2
_GRACEFUL_S = 2
_EXIT_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@dataclass(frozen=True)
class ServerConfig:
    """Everything a server needs; built from the command line."""

    registry_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    lifetime_s: float = 3600.0
    metadata: Mapping[str, str] = field(default_factory=dict)
    tools: Mapping[str, Path] = field(default_factory=dict)
    keep_root: bool = False
    root: Path | None = None
    faults: Mapping[str, Any] = field(default_factory=dict)
    ready_fd: int | None = None
    mode: Mode | None = None
    allow_root: bool = False
    test_faults: bool = False
    network: netns.NetworkPolicy = field(default_factory=netns.NetworkPolicy)
    # The simulated link of /files (link.py): Mbit/s (None: unthrottled), round trip.
    link_mbit: float | None = None
    link_rtt_ms: float = 0.0


def prepare_root(root: Path, identity: Identity, owner: int | None) -> None:
    """Create the directories the sandbox starts with (home owned by "user")."""
    for sub, mode in (("home/user", 0o755), ("tmp", 0o1777), ("root", 0o700)):
        directory = root / sub
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(mode)
    if owner is not None:
        os.chown(root / "home/user", identity.uid, identity.gid)


def remove_root(root: Path) -> None:
    """Rm -rf, even through directories a command made read-only."""

    def retry(function: Callable[..., Any], path: str, _exc: object) -> None:
        parent = Path(path).parent
        parent.chmod(parent.stat().st_mode | stat.S_IRWXU)
        function(path)

    # onerror, not onexc: we support Python 3.11.
    shutil.rmtree(root, onerror=retry)


class _Uvicorn(uvicorn.Server):
    """uvicorn without its re-raise of SIGTERM/SIGINT after shutdown.

    uvicorn re-raises a caught signal once it stopped serving, which would kill
    us before we remove the sandbox's processes and root.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        loop = asyncio.get_running_loop()
        for signum in _EXIT_SIGNALS:
            loop.add_signal_handler(signum, self.handle_exit, signum, None)
        try:
            yield
        finally:
            for signum in _EXIT_SIGNALS:
                loop.remove_signal_handler(signum)


# A sandbox's disk is throwaway: memory-backed when there is room, as fast as a
# VM's disk and gone with the sandbox. Below this much free tmpfs, the temp dir.
TMPFS = Path("/dev/shm")  # noqa: S108 - mkdtemp below makes a private directory in it
MIN_TMPFS_FREE = 8 * 2**30


def new_root() -> Path:
    """A fresh throwaway root: on tmpfs when it has room, else in the temp directory."""
    parent: str | None = None
    try:
        stats = os.statvfs(TMPFS)
        if stats.f_bavail * stats.f_frsize >= MIN_TMPFS_FREE and os.access(TMPFS, os.W_OK):
            parent = str(TMPFS)
    except OSError:
        parent = None
    return Path(tempfile.mkdtemp(prefix="localbox-", dir=parent))


class Server:
    """Wires the services together and runs until something ends the sandbox."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.mode: Mode = config.mode or detect_mode()
        self.identity = identity_for(self.mode)
        self.root = (config.root or new_root()).resolve()
        self.isolation = Isolation(
            self.mode, self.root, self.identity, dict(config.tools), network=config.network
        )
        self.faults = Faults()
        if config.faults and not config.test_faults:
            raise ValueError("faults can be injected only into a server started for tests")
        self.faults.update(config.faults)
        self.credentials = Credentials.new()
        self.registry_dir = config.registry_dir
        self.state = BoxState(f"local-{secrets.token_hex(6)}", self.root, os.getpid(), {})
        self.state.metadata = dict(config.metadata)
        self.state.end_at = self.state.started_at + config.lifetime_s
        self.processes = ProcessService(self.isolation)
        self._uvicorn: _Uvicorn | None = None
        self._parent = os.getppid()
        self.exit_reason = ""

    def _owner_of(self, user: str) -> int | None:
        return self.isolation.owner_uid(user)

    def _name_of(self, uid: int) -> str:
        """A file owner's name as the sandbox sees it (the server sees host uids).

        In the userns mode every file the sandbox makes belongs to this server's own
        uid on the host (its user and its root both map to it): they read as "user".
        """
        if uid == self.identity.uid and self.mode != "plain":
            return "user"
        if self.mode == "userns" and uid == os.getuid():
            return "user"
        return "root" if uid == 0 else username(uid)

    def build_app(self) -> LocalBoxApp:
        """The ASGI app over this server's services."""
        fs = SandboxFS(self.root)
        filesystem = FilesystemService(fs, self._owner_of, self._name_of)
        return LocalBoxApp(
            state=self.state,
            faults=self.faults,
            files=FilesAPI(
                fs,
                self._owner_of,
                self.faults,
                link_for(self.config.link_mbit, self.config.link_rtt_ms),
            ),
            process=ProcessASGIApplication(self.processes),
            filesystem=FilesystemASGIApplication(filesystem),
            credentials=self.credentials,
            allow_root=self.config.allow_root,
            test_faults=self.config.test_faults,
            on_change=self._publish,
        )

    def _publish(self) -> None:
        # The API key goes into the registry entry (0600, in a 0700 directory of the
        # user's, out of the sandbox's view) so that the user's other commands
        # (`claude-e2b logs`, `download`, `kill`) can reach this sandbox too.
        write_entry(self.registry_dir, {**self.state.info(), "api_key": self.credentials.api_key})

    def shutdown(self, reason: str) -> None:
        """End the sandbox: kill its processes first, so open streams end now."""
        if not self.exit_reason:
            self.exit_reason = reason
            _log.info("localbox %s ending: %s", self.state.sandbox_id, reason)
        self.processes.kill_all()
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True

    def run(self) -> int:
        """Serve until the end; always clean up. Returns the exit status."""
        try:
            prepare_root(self.root, self.identity, self._owner_of("user"))
            self.isolation.start()
            sock = _bind(self.config.host, self.config.port)
            self.state.url = f"http://{self.config.host}:{sock.getsockname()[1]}"
            self.state.shutdown = self.shutdown
            asyncio.run(self._serve(sock))
        finally:
            self._cleanup()
        return 0

    async def _serve(self, sock: socket.socket) -> None:
        config = uvicorn.Config(
            self.build_app(),
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=_GRACEFUL_S,
        )
        self._uvicorn = _Uvicorn(config)
        watchdog = asyncio.create_task(self._watch())
        self._publish()
        _report_ready(self.config.ready_fd, self.state, self.credentials)
        try:
            await self._uvicorn.serve(sockets=[sock])
        finally:
            watchdog.cancel()

    async def _watch(self) -> None:
        """End the sandbox on lifetime, parent death, or a signal caught by uvicorn."""
        while True:
            await asyncio.sleep(_TICK_S)
            if time.time() >= self.state.end_at:
                self.shutdown("lifetime ended")
            elif os.getppid() != self._parent and not self.state.kept:
                self.shutdown("parent process died")
            elif self._uvicorn is not None and self._uvicorn.should_exit:
                self.shutdown("signalled")

    def _cleanup(self) -> None:
        self.processes.kill_all()
        self.isolation.stop()
        remove_entry(self.registry_dir, self.state.sandbox_id)
        if not self.config.keep_root:
            remove_root(self.root)


def _bind(host: str, port: int) -> socket.socket:
    # proto=IPPROTO_TCP: asyncio turns Nagle's algorithm off only on sockets that say
    # so; with proto 0 every answer sent in two writes (headers, body) waited ~40 ms
    # for the client's delayed ACK. TCP_NODELAY here too: accepted sockets inherit it.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


def _report_ready(ready_fd: int | None, state: BoxState, credentials: Credentials) -> None:
    """Tell the launcher (one JSON line on its pipe) or a human (stdout) we are up.

    The pipe is the only way out for the secrets: argv and the environment can be
    read by others (/proc), and the registry is on disk.
    """
    if ready_fd is None:
        sys.stdout.write(
            f"localbox {state.sandbox_id} ready at {state.url} (root {state.root})\n"
            f"connect: e2b.Sandbox.create(api_url=URL, sandbox_url=URL, "
            f"api_key={credentials.api_key!r}, http_version='1.1')\n"
        )
        sys.stdout.flush()
        return
    keys = {"api_key": credentials.api_key, "access_token": credentials.access_token}
    with os.fdopen(ready_fd, "w", encoding="utf-8") as pipe:
        pipe.write(json.dumps({**state.info(), **keys}) + "\n")


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise SystemExit(f"{flag} expects KEY=VALUE, got {value!r}")
        pairs[key] = rest
    return pairs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m claude_e2b.sandbox.localbox",
        description="Run an E2B-compatible local sandbox (envd protocol and E2B's "
        "sandbox API, behind a random API key printed at start). Connect with "
        "e2b.Sandbox.create(api_url=URL, sandbox_url=URL, api_key=KEY, http_version='1.1').",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free one)")
    parser.add_argument("--lifetime", type=float, default=3600.0, help="seconds to live")
    parser.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--tool", action="append", default=[], metavar="NAME=PATH",
                        help="make a host executable available as NAME on the PATH")  # fmt: skip
    parser.add_argument("--root", type=Path, help="sandbox root directory (default: a temp dir)")
    parser.add_argument("--keep-root", action="store_true", help="keep the root at exit")
    parser.add_argument("--test-faults", action="store_true",
                        help="for tests: serve /localbox/faults and accept --faults")  # fmt: skip
    parser.add_argument("--faults", default="{}", help="fault injection, as JSON (--test-faults)")
    parser.add_argument("--allow-root-user", action="store_true",
                        help="let callers act as root (host root in the root mode)")  # fmt: skip
    parser.add_argument("--registry-dir", type=Path, help="where to announce the sandbox "
                        "(default: where claude-e2b list looks)")  # fmt: skip
    parser.add_argument("--mode", choices=["root", "userns", "plain"], help="isolation mode")
    parser.add_argument("--link-mbit", type=float, metavar="N",
                        help="pace /files transfers to N Mbit/s (10^6 bits)")  # fmt: skip
    parser.add_argument("--link-rtt-ms", type=float, default=0.0, metavar="N",
                        help="add a round trip of N ms to each /files request")  # fmt: skip
    parser.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    netns.add_arguments(parser)
    return parser


def parse_args(argv: list[str], environ: Mapping[str, str]) -> ServerConfig:
    """The command line of ``python -m claude_e2b.sandbox.localbox``.

    ``environ`` gives the default of --registry-dir (by hand; the launcher passes it).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    faults = json.loads(args.faults)
    if faults and not args.test_faults:
        parser.error("--faults needs --test-faults")
    try:
        check_link(args.link_mbit, args.link_rtt_ms)
    except ValueError as exc:
        parser.error(str(exc))
    return ServerConfig(
        # Worked out only when needed: a launched server's environment has no HOME.
        registry_dir=args.registry_dir or registry_dir(state_dir(environ)),
        host=args.host,
        port=args.port,
        lifetime_s=args.lifetime,
        metadata=_pairs(args.metadata, "--metadata"),
        tools={k: Path(v) for k, v in _pairs(args.tool, "--tool").items()},
        keep_root=args.keep_root,
        root=args.root,
        faults=faults,
        ready_fd=args.ready_fd,
        mode=args.mode,
        allow_root=args.allow_root_user,
        test_faults=args.test_faults,
        network=netns.policy_from_args(args),
        link_mbit=args.link_mbit,
        link_rtt_ms=args.link_rtt_ms,
    )


def main(argv: list[str], environ: Mapping[str, str]) -> int:
    """Entry point of ``python -m claude_e2b.sandbox.localbox``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s localbox %(message)s")
    config = parse_args(argv, environ)
    return Server(config).run()
