"""SandboxSession: the one narrow interface over ``e2b.Sandbox`` that the rest uses.

Both backends go through the real e2b SDK in its normal mode: ``e2b`` talks to
E2B's cloud (or a self-hosted E2B through ``E2B_DOMAIN``), ``local`` starts our
E2B-compatible sandbox server as a child process and points the SDK's API and
sandbox URLs at it, with the API key the server gave only to us. So create, kill
and set_timeout are E2B's calls on both, and envd's access token travels as on E2B.

Every call has a timeout. Idempotent calls (reads, stats, lifetime, kill) are
retried with backoff on transient errors; commands and streamed uploads are not.
SDK exceptions are mapped to ``claude_e2b.errors`` here and nowhere else.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, Self, TypeVar

import httpx
from e2b import Sandbox
from e2b.exceptions import (
    AuthenticationException,
    FileNotFoundException,
    InvalidArgumentException,
    NotEnoughSpaceException,
    NotFoundException,
    RateLimitException,
    SandboxException,
    SandboxNotFoundException,
    SandboxNotRunningException,
    SandboxUnreachableException,
    ServiceBusyException,
    TimeoutException,
)
from e2b.sandbox.commands.command_handle import CommandExitException

from claude_e2b.errors import (
    CommandError,
    SandboxAuthError,
    SandboxError,
    SandboxFileError,
    SandboxGoneError,
    SandboxStartError,
    SandboxTimeoutError,
    SandboxTransientError,
)
from claude_e2b.log import get_logger
from claude_e2b.sandbox import DEFAULT_TEMPLATE, Backend
from claude_e2b.sandbox.localbox.launcher import (
    LocalBoxHandle,
    LocalBoxHost,
    LocalBoxOptions,
    kill_localbox,
    list_localboxes,
    start_localbox,
)
from claude_e2b.sandbox.localbox.netns import NetworkPolicy, parse_destination

User = Literal["user", "root"]
T = TypeVar("T")

# Metadata key that marks sandboxes started by this tool, so list/kill find only ours.
OWNER_KEY = "claude-e2b"
OWNER_VALUE = "1"
FILE_TIMEOUT_S = 300.0
CONTROL_TIMEOUT_S = 30.0
RETRY_ATTEMPTS = 4
RETRY_BASE_DELAY_S = 0.5

log = get_logger(__name__)


@dataclass(frozen=True)
class SandboxSpec:
    """What to create: backend, template, server-side lifetime, metadata, env, egress."""

    backend: Backend = "e2b"
    template: str = DEFAULT_TEMPLATE
    lifetime_s: int = 3600
    metadata: Mapping[str, str] = field(default_factory=dict)
    envs: Mapping[str, str] = field(default_factory=dict)
    allow_out: tuple[str, ...] | None = None
    network_rules: Mapping[str, Any] | None = None
    local_tools: Mapping[str, Path] = field(default_factory=dict)
    # HOST:PORT the local sandbox must reach whatever allow_out says (the model's API):
    # it cannot reach this machine's own services otherwise (localbox/netns.py).
    local_reach: tuple[str, ...] = ()
    create_timeout_s: float = 120.0


@dataclass(frozen=True)
class CommandOutcome:
    """How a finished command ended, with its retained output."""

    exit_code: int
    stdout: str
    stderr: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the command exited with 0."""
        return self.exit_code == 0


@dataclass(frozen=True)
class SandboxSummary:
    """One running sandbox of ours, as ``list`` shows it."""

    backend: Backend
    sandbox_id: str
    metadata: Mapping[str, str]
    started_at: str | None
    end_at: str | None


OutputCallback = Callable[[str], None]


@contextlib.contextmanager
def mapped_errors(what: str) -> Iterator[None]:
    """Translate e2b SDK and transport exceptions into our error tree."""
    try:
        yield
    except CommandExitException:
        raise
    except (SandboxNotRunningException, SandboxNotFoundException) as exc:
        raise SandboxGoneError(f"{what}: the sandbox is gone ({exc})") from exc
    except SandboxUnreachableException as exc:
        raise SandboxTransientError(f"{what}: the sandbox could not be reached ({exc})") from exc
    except TimeoutException as exc:
        raise SandboxTimeoutError(f"{what}: timed out ({exc})") from exc
    except (RateLimitException, ServiceBusyException, httpx.TransportError, OSError) as exc:
        raise SandboxTransientError(f"{what}: {exc}") from exc
    except AuthenticationException as exc:
        raise SandboxAuthError(
            f"{what}: E2B rejected the credentials ({exc})",
            hint="check E2B_API_KEY (or the e2b-api-key input), or use --sandbox local",
        ) from exc
    except (FileNotFoundException, NotFoundException, NotEnoughSpaceException) as exc:
        raise SandboxFileError(f"{what}: {exc}") from exc
    except InvalidArgumentException as exc:
        raise SandboxFileError(f"{what}: invalid argument ({exc})") from exc
    except SandboxException as exc:
        raise _by_status(what, exc) from exc


def _by_status(what: str, exc: SandboxException) -> SandboxError:
    status = exc.status_code or 0
    if status >= 500 or status == 429:  # noqa: PLR2004 - HTTP status classes
        return SandboxTransientError(f"{what}: {exc}")
    return SandboxError(f"{what}: {exc}")


def retrying(what: str, call: Callable[[], T], *, attempts: int = RETRY_ATTEMPTS) -> T:
    """Run an idempotent call, retrying transient failures with exponential backoff."""
    for attempt in range(1, attempts + 1):
        try:
            with mapped_errors(what):
                return call()
        except SandboxTransientError as exc:
            if attempt == attempts:
                raise
            delay = RETRY_BASE_DELAY_S * 2 ** (attempt - 1)
            log.warning("sandbox.retry", what=what, attempt=attempt, delay_s=delay, error=str(exc))
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


class BackgroundCommand:
    """A command started in the background: wait for it, or kill it."""

    def __init__(self, handle: Any, what: str) -> None:
        self._handle = handle
        self._what = what

    @property
    def pid(self) -> int:
        """The command's process id in the sandbox."""
        pid: int = self._handle.pid
        return pid

    def wait(
        self, on_stdout: OutputCallback | None = None, on_stderr: OutputCallback | None = None
    ) -> CommandOutcome:
        """Stream output to the callbacks until the command ends; return how it ended."""
        try:
            with mapped_errors(self._what):
                result = self._handle.wait(on_stdout=on_stdout, on_stderr=on_stderr)
        except CommandExitException as exc:
            return _outcome(exc)
        return _outcome(result)

    def kill(self) -> bool:
        """Send SIGKILL to the command; False when it had already ended."""
        with mapped_errors(f"kill {self._what}"):
            killed: bool = self._handle.kill()
        return killed

    def kill_quietly(self) -> None:
        """Kill the command if the sandbox still answers; never raises a sandbox error."""
        with contextlib.suppress(SandboxError):
            self.kill()


def _outcome(result: Any) -> CommandOutcome:
    return CommandOutcome(
        exit_code=int(result.exit_code),
        stdout=result.stdout or "",
        stderr=result.stderr or "",
        error=result.error,
    )


class SandboxSession:
    """An open sandbox; create one with :func:`open_session`."""

    def __init__(
        self,
        sandbox: Sandbox,
        spec: SandboxSpec,
        sandbox_id: str,
        localbox: LocalBoxHandle | None = None,
    ) -> None:
        self._sandbox = sandbox
        self.spec = spec
        self.sandbox_id = sandbox_id
        self._localbox = localbox
        self._killed = False
        self.started_at = time.monotonic()
        self.ended_at: float | None = None

    @property
    def localbox(self) -> LocalBoxHandle | None:
        """The local sandbox server behind this session (None on E2B)."""
        return self._localbox

    @property
    def alive_seconds(self) -> float:
        """Seconds from creation to kill (or to now while it runs): what compute is billed."""
        end = self.ended_at if self.ended_at is not None else time.monotonic()
        return end - self.started_at

    def _check_alive(self, what: str) -> None:
        if self._killed:
            raise SandboxGoneError(f"{what}: the sandbox was already killed")

    def _command_envs(self, envs: Mapping[str, str] | None) -> dict[str, str]:
        # The local server takes the envs given at create but does not apply them
        # to commands, so the local backend sends them with each one; the call's win.
        merged = dict(self.spec.envs) if self._localbox is not None else {}
        merged.update(envs or {})
        return merged

    def run(
        self,
        cmd: str,
        *,
        timeout: float,
        cwd: str | None = None,
        envs: Mapping[str, str] | None = None,
        user: User = "user",
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
        check: bool = False,
    ) -> CommandOutcome:
        """Run ``bash -l -c cmd`` and wait; output streams to the callbacks as it comes.

        Raises CommandError when ``check`` and the exit code is not 0; SandboxTimeoutError
        when ``timeout`` seconds pass first; SandboxGoneError when the sandbox died.
        """
        handle = self.start(cmd, timeout=timeout, cwd=cwd, envs=envs, user=user)
        try:
            outcome = handle.wait(on_stdout=on_stdout, on_stderr=on_stderr)
        except SandboxTimeoutError:
            # The stream's end does not end the process: kill it, so nothing outlives the call.
            handle.kill_quietly()
            raise
        if check and not outcome.ok:
            raise CommandError(
                f"command failed with exit code {outcome.exit_code}: {cmd[:200]}",
                exit_code=outcome.exit_code,
                stdout=outcome.stdout,
                stderr=outcome.stderr,
            )
        return outcome

    def start(
        self,
        cmd: str,
        *,
        timeout: float,
        cwd: str | None = None,
        envs: Mapping[str, str] | None = None,
        user: User = "user",
        stdin: bool = False,
    ) -> BackgroundCommand:
        """Start a command in the background; ``timeout`` bounds its whole life (0: none)."""
        what = f"command {cmd[:80]!r}"
        self._check_alive(what)
        with mapped_errors(what):
            handle = self._sandbox.commands.run(
                cmd,
                background=True,
                envs=self._command_envs(envs),
                user=user,
                cwd=cwd,
                stdin=stdin,
                timeout=timeout,
            )
        return BackgroundCommand(handle, what)

    def connect(self, pid: int, *, timeout: float) -> BackgroundCommand:
        """Attach again to a running command, e.g. after its output stream dropped."""
        what = f"reconnect to process {pid}"
        self._check_alive(what)
        with mapped_errors(what):
            handle = self._sandbox.commands.connect(pid, timeout=timeout)
        return BackgroundCommand(handle, what)

    def write_file(
        self,
        path: str,
        data: bytes | IO[bytes],
        *,
        timeout: float = FILE_TIMEOUT_S,
        user: User = "user",
    ) -> None:
        """Upload ``data`` to ``path``; bytes are retried, a stream is sent once."""

        def call() -> None:
            self._sandbox.files.write(path, data, user=user, request_timeout=timeout)

        if isinstance(data, bytes):
            retrying(f"write {path}", call)
            return
        with mapped_errors(f"write {path}"):
            call()

    def read_stream(self, path: str, *, timeout: float = FILE_TIMEOUT_S) -> Iterator[bytes]:
        """Download ``path`` as a stream of byte chunks (bounded memory)."""
        with mapped_errors(f"read {path}"):
            stream = self._sandbox.files.read(path, format="stream", request_timeout=timeout)
        with mapped_errors(f"read {path}"):
            yield from stream

    def read_bytes(self, path: str, *, timeout: float = FILE_TIMEOUT_S) -> bytes:
        """Download a small file whole; retried on transient errors."""

        def call() -> bytes:
            data: bytes = bytes(
                self._sandbox.files.read(path, format="bytes", request_timeout=timeout)
            )
            return data

        return retrying(f"read {path}", call)

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists in the sandbox."""
        return retrying(
            f"stat {path}",
            lambda: bool(self._sandbox.files.exists(path, request_timeout=CONTROL_TIMEOUT_S)),
        )

    def make_dir(self, path: str) -> None:
        """Create a directory and its parents (fine if it exists)."""
        retrying(
            f"mkdir {path}",
            lambda: self._sandbox.files.make_dir(path, request_timeout=CONTROL_TIMEOUT_S),
        )

    def is_alive(self) -> bool:
        """Whether the sandbox still answers."""
        if self._killed:
            return False
        try:
            return retrying(
                "health", lambda: bool(self._sandbox.is_running(request_timeout=10)), attempts=2
            )
        except SandboxError:
            return False

    def extend_lifetime(self, seconds: int) -> None:
        """Set the server-side lifetime to ``seconds`` from now."""
        retrying(
            "extend lifetime",
            lambda: self._sandbox.set_timeout(seconds, request_timeout=CONTROL_TIMEOUT_S),
        )

    def kill(self) -> None:
        """Kill the sandbox and everything in it; safe to call more than once."""
        if self._killed:
            return
        self._killed = True
        self.ended_at = time.monotonic()
        if self._localbox is None:
            with contextlib.suppress(SandboxGoneError):
                self._kill_through_sdk(RETRY_ATTEMPTS)
            return
        try:
            if self._localbox.running:
                # stop() below ends the server whatever this answers.
                with contextlib.suppress(SandboxError):
                    self._kill_through_sdk(1)
        finally:
            # The server ends itself on the kill call; this reaps it (or makes sure).
            self._localbox.stop()

    def _kill_through_sdk(self, attempts: int) -> None:
        retrying(
            "kill sandbox",
            lambda: self._sandbox.kill(request_timeout=CONTROL_TIMEOUT_S),
            attempts=attempts,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()


def _owner_metadata(spec: SandboxSpec) -> dict[str, str]:
    return {**spec.metadata, OWNER_KEY: OWNER_VALUE}


def open_session(spec: SandboxSpec, host: LocalBoxHost) -> SandboxSession:
    """Create a sandbox as ``spec`` says and return the open session.

    ``host`` serves the local backend only (its registry, its server's environment).
    Raises SandboxStartError (or SandboxAuthError) when it cannot be created.
    """
    if spec.backend == "local":
        return _open_local(spec, host)
    return _open_e2b(spec)


def _network_opts(spec: SandboxSpec) -> dict[str, Any] | None:
    if spec.allow_out is None and not spec.network_rules:
        return None
    network: dict[str, Any] = {}
    if spec.allow_out is not None:
        # An allow list only means something when everything else is denied.
        network["allow_out"] = list(spec.allow_out)
        network["deny_out"] = ["0.0.0.0/0"]
    if spec.network_rules:
        network["rules"] = dict(spec.network_rules)
    return network


def _open_e2b(spec: SandboxSpec) -> SandboxSession:
    what = f"create E2B sandbox from template {spec.template!r}"
    try:
        with mapped_errors(what):
            sandbox = Sandbox.create(
                template=spec.template,
                timeout=spec.lifetime_s,
                metadata=_owner_metadata(spec),
                envs=dict(spec.envs),
                network=_network_opts(spec),  # type: ignore[arg-type]
                request_timeout=spec.create_timeout_s,
            )
    except (SandboxTransientError, SandboxTimeoutError, SandboxGoneError) as exc:
        raise SandboxStartError(str(exc), hint="E2B may be busy: try again shortly") from exc
    log.info("sandbox.created", backend="e2b", sandbox_id=sandbox.sandbox_id)
    return SandboxSession(sandbox, spec, sandbox.sandbox_id)


def _local_network(spec: SandboxSpec) -> NetworkPolicy:
    """The local sandbox's network: allow_out (ports 80 and 443) plus local_reach.

    The internet too when there is no allow list, as on E2B. Raises SandboxStartError
    for an entry the local sandbox cannot allow (a CIDR range).
    """
    entries = (*(spec.allow_out or ()), *spec.local_reach)
    try:
        allow = tuple(d for entry in entries for d in parse_destination(entry))
    except ValueError as exc:
        raise SandboxStartError(str(exc), hint="list host names or addresses") from exc
    return NetworkPolicy(allow, internet=spec.allow_out is None)


def _open_local(spec: SandboxSpec, host: LocalBoxHost) -> SandboxSession:
    handle = start_localbox(
        LocalBoxOptions(
            lifetime_s=float(spec.lifetime_s),
            metadata=_owner_metadata(spec),
            tools=dict(spec.local_tools),
            test_faults=host.test_faults,
            network=_local_network(spec),
        ),
        host,
        ready_timeout=spec.create_timeout_s,
    )
    try:
        with mapped_errors("create the local sandbox"):
            sandbox = Sandbox.create(
                template=spec.template,
                timeout=spec.lifetime_s,
                metadata=_owner_metadata(spec),
                envs=dict(spec.envs),
                request_timeout=spec.create_timeout_s,
                **handle.sdk_options(),
            )
    except Exception:
        handle.stop()
        raise
    log.info("sandbox.created", backend="local", sandbox_id=handle.sandbox_id, url=handle.url)
    return SandboxSession(sandbox, spec, handle.sandbox_id, localbox=handle)


def list_sandboxes(backend: Backend, registry_dir: Path) -> list[SandboxSummary]:
    """Running sandboxes started by this tool on ``backend`` (local: in ``registry_dir``)."""
    if backend == "local":
        return [
            SandboxSummary("local", b.sandbox_id, b.metadata, b.started_at, b.end_at)
            for b in list_localboxes(registry_dir)
        ]
    return retrying("list E2B sandboxes", _list_e2b)


def _list_e2b() -> list[SandboxSummary]:
    from e2b import SandboxQuery  # noqa: PLC0415 - only the e2b backend needs it

    paginator = Sandbox.list(
        query=SandboxQuery(metadata={OWNER_KEY: OWNER_VALUE}), request_timeout=CONTROL_TIMEOUT_S
    )
    found: list[SandboxSummary] = []
    while paginator.has_next:
        found.extend(
            SandboxSummary(
                "e2b",
                info.sandbox_id,
                dict(info.metadata or {}),
                str(info.started_at),
                str(info.end_at),
            )
            for info in paginator.next_items()
        )
    return found


def kill_sandbox(backend: Backend, sandbox_id: str, registry_dir: Path) -> bool:
    """Kill one sandbox of ours by id (local: announced in ``registry_dir``); False if not found."""
    if backend == "local":
        return kill_localbox(sandbox_id, registry_dir)
    return retrying(
        f"kill sandbox {sandbox_id}",
        lambda: bool(Sandbox.kill(sandbox_id, request_timeout=CONTROL_TIMEOUT_S)),
    )
