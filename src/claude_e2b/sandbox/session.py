"""SandboxSession: the one narrow interface over ``e2b.Sandbox`` that the rest uses.

Both backends go through the real e2b SDK in its normal mode: ``e2b`` talks to
E2B's cloud (or a self-hosted E2B through ``E2B_DOMAIN``), ``local`` starts our
E2B-compatible sandbox server as a child process and points the SDK's API and
sandbox URLs at it, with the API key the server gave only to us. So create, kill
and set_timeout are E2B's calls on both, and envd's access token travels as on E2B.

Every call has a timeout. Idempotent calls are retried on transient failures (5xx,
429, dropped connections, timeouts of one request) with capped exponential backoff
and full jitter, under an overall deadline (``RetryPolicy``): file writes of bytes
or of a seekable file, reads (a broken download resumes where it broke), stats,
directories, lifetime, kill, and commands the caller marks ``idempotent``. Other
commands and unseekable streams are sent once. A sandbox that is gone (killed,
evicted, its local server ended) is never retried: ``SandboxGoneError``.

SDK exceptions are mapped to ``claude_e2b.errors`` in ``mapped_errors`` and
nowhere else. Each operation on a sandbox leaves one audit line (``claude_e2b.audit``).
"""

from __future__ import annotations

import contextlib
import random
import re
import secrets
import shlex
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, Self, TypeVar

import httpx

from claude_e2b.audit import record
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
from claude_e2b.sandbox import DEFAULT_TEMPLATE, Backend, SandboxSummary
from claude_e2b.sandbox.localbox.launcher import (
    LocalBoxHandle,
    LocalBoxHost,
    LocalBoxInfo,
    LocalBoxOptions,
    kill_localbox,
    list_localboxes,
    start_localbox,
)
from claude_e2b.sandbox.localbox.netns import NetworkPolicy, parse_destination
from claude_e2b.sandbox.localbox.registry import pid_alive

if TYPE_CHECKING:
    from e2b import Sandbox
    from e2b.exceptions import SandboxException

User = Literal["user", "root"]
T = TypeVar("T")

# Metadata key that marks sandboxes started by this tool, so list/kill find only ours.
OWNER_KEY = "claude-e2b"
OWNER_VALUE = "1"
FILE_TIMEOUT_S = 300.0
CONTROL_TIMEOUT_S = 30.0
KILL_COMMAND_TIMEOUT_S = 10.0
# "503: Service Unavailable": how the SDK words an envd answer it has no class for.
_STATUS_PREFIX = re.compile(r"^(\d{3}): ")
_HTTP_TOO_MANY = 429
_HTTP_SERVER_ERROR = 500
DISK_FULL_HINT = "free space in the sandbox, or use a template with a larger disk"

log = get_logger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How idempotent calls are retried: capped exponential backoff with full jitter.

    After the n-th failed attempt (from 1) the next waits a random time in
    ``[0, min(cap_s, base_s * 2**(n-1))]``; there are at most ``attempts`` in all, and
    none would start later than ``deadline_s`` after the first.
    """

    attempts: int = 6
    base_s: float = 0.5
    cap_s: float = 8.0
    deadline_s: float = 60.0

    def delay(self, failed: int) -> float:
        """Seconds to wait after the ``failed``-th failed attempt."""
        ceiling = min(self.cap_s, self.base_s * 2 ** (failed - 1))
        return random.uniform(0.0, ceiling)  # noqa: S311 - jitter, not a secret


DEFAULT_RETRY = RetryPolicy()
# What a retry may cure: a blip, a 5xx or 429, one request that ran out of time.
# A command's own timeout is not a blip: commands retry transient errors only.
RETRYABLE: tuple[type[SandboxError], ...] = (SandboxTransientError, SandboxTimeoutError)
COMMAND_RETRYABLE: tuple[type[SandboxError], ...] = (SandboxTransientError,)


def _never() -> bool:
    return False


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


OutputCallback = Callable[[str], None]


@contextlib.contextmanager
def mapped_errors(what: str) -> Iterator[None]:
    """Translate e2b SDK and transport exceptions into our error tree."""
    try:
        yield
    except Exception as exc:
        mapped = _translated(what, exc)
        if mapped is None:
            raise
        raise mapped from exc


def _translated(what: str, exc: Exception) -> SandboxError | None:  # noqa: PLR0911 - one per kind
    """Ours for an SDK or transport error; None for the others (they go on as they are).

    The SDK is imported here, not with this module: ``run`` starts faster without it,
    and an SDK error means it is loaded already.
    """
    from e2b import exceptions as sdk  # noqa: PLC0415
    from e2b.sandbox.commands.command_handle import CommandExitException  # noqa: PLC0415

    if isinstance(exc, CommandExitException):
        return None
    if isinstance(exc, (sdk.SandboxNotRunningException, sdk.SandboxNotFoundException)):
        return SandboxGoneError(f"{what}: the sandbox is gone ({exc})")
    if isinstance(exc, sdk.SandboxUnreachableException):
        return SandboxTransientError(f"{what}: the sandbox could not be reached ({exc})")
    if isinstance(exc, sdk.TimeoutException):
        return SandboxTimeoutError(f"{what}: timed out ({exc})")
    transient = (sdk.RateLimitException, sdk.ServiceBusyException, httpx.TransportError, OSError)
    if isinstance(exc, transient):
        return SandboxTransientError(f"{what}: {exc}")
    if isinstance(exc, sdk.AuthenticationException):
        return SandboxAuthError(
            f"{what}: E2B rejected the credentials ({exc})",
            hint="check E2B_API_KEY (or the e2b-api-key input), or use --sandbox local",
        )
    files = (
        sdk.NotEnoughSpaceException,
        sdk.FileNotFoundException,
        sdk.NotFoundException,
        sdk.InvalidArgumentException,
    )
    if isinstance(exc, files):
        return _file_error(what, exc)
    if isinstance(exc, sdk.SandboxException):
        return _by_status(what, exc)
    return None


def _file_error(what: str, exc: SandboxException) -> SandboxFileError:
    from e2b import exceptions as sdk  # noqa: PLC0415 - loaded: exc is one of its errors

    if isinstance(exc, sdk.NotEnoughSpaceException):
        return SandboxFileError(f"{what}: the sandbox's disk is full ({exc})", hint=DISK_FULL_HINT)
    if isinstance(exc, sdk.InvalidArgumentException):
        return SandboxFileError(f"{what}: invalid argument ({exc})")
    return SandboxFileError(f"{what}: {exc}")


def http_status(exc: SandboxException) -> int:
    """The HTTP status behind an SDK error (0 when unknown).

    The SDK sets ``status_code`` on some errors; envd answers it has no class for
    (500, 503, …) it words as ``"<status>: <message>"``.
    """
    if exc.status_code:
        return int(exc.status_code)
    found = _STATUS_PREFIX.match(str(exc))
    return int(found.group(1)) if found else 0


def _by_status(what: str, exc: SandboxException) -> SandboxError:
    status = http_status(exc)
    if status >= _HTTP_SERVER_ERROR or status == _HTTP_TOO_MANY:
        return SandboxTransientError(f"{what}: {exc}")
    return SandboxError(f"{what}: {exc}")


class Backoff:
    """The attempts of one idempotent operation: wait between them, or give up."""

    def __init__(self, what: str, policy: RetryPolicy, gone: Callable[[], bool] = _never) -> None:
        self._what = what
        self._policy = policy
        self._gone = gone
        self._started = time.monotonic()
        self.failed = 0

    def pause(self, exc: SandboxError) -> None:
        """After a failed attempt: sleep before the next one, or raise to give up.

        Raises SandboxGoneError when the sandbox is gone (no retry can help), else
        an error of ``exc``'s class saying how many attempts failed.
        """
        if self._gone():
            raise SandboxGoneError(f"{self._what}: the sandbox is gone ({exc})") from exc
        self.failed += 1
        if self._policy.attempts <= 1:
            raise exc
        delay = self._policy.delay(self.failed)
        elapsed = time.monotonic() - self._started
        if self.failed >= self._policy.attempts or elapsed + delay > self._policy.deadline_s:
            raise type(exc)(
                f"{self._what}: gave up after {self.failed} attempts in {elapsed:.1f} s; "
                f"the last error: {exc.message}",
                hint=exc.hint or "the sandbox kept failing: try again later",
            ) from exc
        log.warning(
            "sandbox.retry",
            what=self._what,
            attempt=self.failed,
            delay_s=round(delay, 3),
            error=exc.message,
        )
        time.sleep(delay)


def retrying(
    what: str,
    call: Callable[[], T],
    *,
    policy: RetryPolicy = DEFAULT_RETRY,
    retry_on: tuple[type[SandboxError], ...] = RETRYABLE,
    gone: Callable[[], bool] = _never,
) -> T:
    """Run an idempotent call, retrying what ``retry_on`` names as ``policy`` says."""
    backoff = Backoff(what, policy, gone)
    while True:
        try:
            with mapped_errors(what):
                return call()
        except retry_on as exc:
            backoff.pause(exc)


@contextlib.contextmanager
def _audit(op: str, target: str, **fields: Any) -> Iterator[dict[str, Any]]:
    """One audit line for ``op`` when the block ends; the block may add what it learns."""
    learned: dict[str, Any] = {}
    began = time.monotonic()
    outcome = "ok"
    try:
        yield learned
    except BaseException as exc:
        outcome = type(exc).__name__
        raise
    finally:
        record(
            op,
            target=learned.pop("target", target),
            outcome=outcome,
            duration_s=time.monotonic() - began,
            **fields,
            **learned,
        )


@contextlib.contextmanager
def _mapped_with(what: str, gone: Callable[[], bool]) -> Iterator[None]:
    """``mapped_errors``, with failures of a sandbox known to be gone as SandboxGoneError."""
    try:
        with mapped_errors(what):
            yield
    except (SandboxTransientError, SandboxTimeoutError) as exc:
        if gone():
            raise SandboxGoneError(f"{what}: the sandbox is gone ({exc.message})") from exc
        raise


def _replayable(data: bytes | IO[bytes]) -> tuple[int | None, Callable[[], None] | None]:
    """The size of ``data`` and how to send it again (None: it can be sent only once)."""
    if isinstance(data, bytes):
        return len(data), lambda: None
    if not data.seekable():
        return None, None
    start = data.tell()
    size = data.seek(0, 2) - start
    data.seek(start)

    def rewind() -> None:
        data.seek(start)

    return size, rewind


def _skip(chunks: Iterator[bytes], skip: int) -> Iterator[bytes]:
    """The chunks without their first ``skip`` bytes."""
    for chunk in chunks:
        if skip >= len(chunk):
            skip -= len(chunk)
            continue
        yield chunk[skip:] if skip else chunk
        skip = 0


class BackgroundCommand:
    """A command started in the background: wait for it, or kill it.

    ``reattach`` (pid → a new SDK handle) follows the command again when its output
    stream drops: the process goes on in the sandbox either way.
    """

    def __init__(
        self,
        handle: Any,
        what: str,
        kill: Callable[[int], bool],
        gone: Callable[[], bool] = _never,
        *,
        reattach: Callable[[int], Any] | None = None,
        exit_status: Callable[[], int | None] | None = None,
    ) -> None:
        self._handle = handle
        self._what = what
        self._kill = kill
        self._gone = gone
        self._reattach = reattach
        self._exit_status = exit_status

    @property
    def pid(self) -> int:
        """The command's process id in the sandbox."""
        pid: int = self._handle.pid
        return pid

    def wait(
        self, on_stdout: OutputCallback | None = None, on_stderr: OutputCallback | None = None
    ) -> CommandOutcome:
        """Stream output to the callbacks until the command ends; return how it ended.

        When the output stream drops, the command is followed again by its pid (up to
        REATTACH_TRIES times): its exit code is then still exact, but what it printed
        while no stream was attached is missing from the callbacks and the outcome.
        """
        from e2b.sandbox.commands.command_handle import CommandExitException  # noqa: PLC0415

        out, err = _Collected(on_stdout), _Collected(on_stderr)
        for tries_left in range(REATTACH_TRIES, -1, -1):
            try:
                with _mapped_with(self._what, self._gone):
                    result = self._handle.wait(on_stdout=out, on_stderr=err)
            except CommandExitException as exc:
                return _outcome(exc, out, err)
            except SandboxTransientError as exc:
                if self._reattach is None or not tries_left or self._gone():
                    raise
                log.warning("sandbox.command_reattach", what=self._what, error=str(exc)[:200])
                ended = self._follow_again()
                if ended is not None:  # it ended meanwhile: its exit code was kept
                    return CommandOutcome(ended, out.text(), err.text())
                continue
            return _outcome(result, out, err)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _follow_again(self) -> int | None:
        """Attach to the command again; its exit code instead when it has already ended."""
        assert self._reattach is not None  # noqa: S101 - only called with one
        pid = self.pid
        try:
            with _mapped_with(f"reattach {self._what}", self._gone):
                self._handle = self._reattach(pid)
        except SandboxError:
            status = self._exit_status() if self._exit_status is not None else None
            if status is None:
                raise
            return status
        return None

    def kill(self) -> bool:
        """Send SIGKILL to the command; False when it had already ended."""
        with _mapped_with(f"kill {self._what}", self._gone):
            return self._kill(self.pid)

    def kill_quietly(self) -> None:
        """Kill the command if the sandbox still answers; never raises a sandbox error."""
        with contextlib.suppress(SandboxError):
            self.kill()


class _Collected:
    """An output callback that keeps what it heard, passing it on."""

    def __init__(self, then: OutputCallback | None) -> None:
        self.parts: list[str] = []
        self._then = then

    def __call__(self, chunk: str) -> None:
        self.parts.append(chunk)
        if self._then is not None:
            self._then(chunk)

    def text(self) -> str:
        return "".join(self.parts)


def _outcome(result: Any, out: _Collected, err: _Collected) -> CommandOutcome:
    """How a command ended, with the output the streams brought (all of it, but for drops)."""
    return CommandOutcome(
        exit_code=int(result.exit_code),
        stdout=out.text() or result.stdout or "",
        stderr=err.text() or result.stderr or "",
        error=result.error,
    )


# How often a command's dropped output stream is followed again by its pid.
REATTACH_TRIES = 3
# Where a followed command leaves its exit code, for when it ends with no stream attached.
EXIT_STATUS_DIR = "/tmp/claude-e2b-exit"  # noqa: S108 - in the sandbox, not here


def _keeping_exit_status(cmd: str, status_path: str) -> str:
    """``cmd`` in a subshell, its exit code written to ``status_path`` and returned."""
    directory = shlex.quote(status_path.rsplit("/", 1)[0])
    return (
        f"(\n{cmd}\n); rc=$?; mkdir -p {directory} 2> /dev/null; "
        f"echo $rc > {shlex.quote(status_path)}; exit $rc"
    )


def _command_what(cmd: str) -> str:
    return f"command {cmd[:80]!r}"


class SandboxSession:
    """An open sandbox; create one with :func:`open_session` or :func:`attach_session`.

    A session from ``open_session`` owns its sandbox: leaving its ``with`` block kills
    it, unless ``keep_alive()`` was called (``kept``). One from ``attach_session``
    (``attached``) borrows a sandbox another process started: leaving the block
    leaves it running. ``kill()`` ends the sandbox in every case.
    ``retry`` is the policy of the idempotent calls (tests shrink its delays).
    """

    def __init__(
        self,
        sandbox: Sandbox,
        spec: SandboxSpec,
        sandbox_id: str,
        localbox: LocalBoxHandle | None = None,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        attached: bool = False,
        gone: Callable[[], bool] | None = None,
    ) -> None:
        self._sandbox = sandbox
        self.spec = spec
        self.sandbox_id = sandbox_id
        self._localbox = localbox
        self._killed = False
        self.retry = retry
        self.attached = attached
        self.kept = False
        self._gone_check = gone or (lambda: localbox is not None and not localbox.running)
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

    def _gone(self) -> bool:
        """Whether the sandbox is known to be gone (killed here, or its local server ended)."""
        return self._killed or self._gone_check()

    def _check_alive(self, what: str) -> None:
        if self._killed:
            raise SandboxGoneError(f"{what}: the sandbox was already killed")

    def _retrying(
        self,
        what: str,
        call: Callable[[], T],
        retry_on: tuple[type[SandboxError], ...] = RETRYABLE,
    ) -> T:
        self._check_alive(what)
        return retrying(what, call, policy=self.retry, retry_on=retry_on, gone=self._gone)

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
        idempotent: bool = False,
        reattach: bool = False,
    ) -> CommandOutcome:
        """Run ``bash -l -c cmd`` and wait; output streams to the callbacks as it comes.

        ``idempotent``: the command may run again from the start when its start or its
        output stream fails on the way (the callbacks then see the output of both
        tries); any other command runs once. ``reattach``: a dropped output stream is
        followed again by pid (see ``start``). A command whose wait fails is killed,
        so nothing outlives the call. Raises CommandError when ``check`` and the exit
        code is not 0; SandboxTimeoutError when ``timeout`` seconds pass first;
        SandboxGoneError when the sandbox died; SandboxTransientError when the stream
        broke (after the retries, for an idempotent command).
        """

        def once() -> CommandOutcome:
            handle = self._start(
                cmd, timeout=timeout, cwd=cwd, envs=envs, user=user, reattach=reattach
            )
            try:
                return handle.wait(on_stdout=on_stdout, on_stderr=on_stderr)
            except SandboxError:
                # The stream's end does not end the process; nor may a retry run beside it.
                handle.kill_quietly()
                raise

        with _audit("command.run", self.sandbox_id, command=cmd[:80]) as learned:
            if idempotent:
                outcome = self._retrying(_command_what(cmd), once, COMMAND_RETRYABLE)
            else:
                outcome = once()
            learned["exit_code"] = outcome.exit_code
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
        idempotent: bool = False,
        reattach: bool = False,
    ) -> BackgroundCommand:
        """Start a command in the background; ``timeout`` bounds its whole life (0: none).

        ``idempotent``: the start is retried on transient failures (a start that did
        reach the sandbox may then run twice: only for commands where that is fine).
        ``reattach``: when its output stream drops, ``wait`` follows it again by pid
        (for commands whose exit code matters, not every byte of their output).
        """
        with _audit("command.start", self.sandbox_id, command=cmd[:80]) as learned:

            def once() -> BackgroundCommand:
                return self._start(
                    cmd, timeout=timeout, cwd=cwd, envs=envs, user=user, stdin=stdin,
                    reattach=reattach,
                )  # fmt: skip

            if idempotent:
                handle = self._retrying(_command_what(cmd), once, COMMAND_RETRYABLE)
            else:
                handle = once()
            learned["pid"] = handle.pid
        return handle

    def _start(
        self,
        cmd: str,
        *,
        timeout: float,
        cwd: str | None,
        envs: Mapping[str, str] | None,
        user: User,
        stdin: bool = False,
        reattach: bool = False,
    ) -> BackgroundCommand:
        what = _command_what(cmd)
        self._check_alive(what)
        status_path = f"{EXIT_STATUS_DIR}/{secrets.token_hex(8)}" if reattach else None
        with _mapped_with(what, self._gone):
            handle = self._sandbox.commands.run(
                _keeping_exit_status(cmd, status_path) if status_path else cmd,
                background=True,
                envs=self._command_envs(envs),
                user=user,
                cwd=cwd,
                stdin=stdin,
                timeout=timeout,
            )
        return self._background(handle, what, timeout if reattach else None, status_path)

    def _background(
        self,
        handle: Any,
        what: str,
        reattach_timeout: float | None = None,
        status_path: str | None = None,
    ) -> BackgroundCommand:
        """The SDK's handle as ours.

        With ``reattach_timeout``, a dropped stream is followed again by pid (its stream
        then bounded by that many seconds, 0: none); a command that ended meanwhile is
        known by the exit code it left at ``status_path``.
        """
        commands = self._sandbox.commands

        def kill(pid: int) -> bool:
            return bool(commands.kill(pid, request_timeout=KILL_COMMAND_TIMEOUT_S))

        def reattach(pid: int) -> Any:
            self._check_alive(what)
            with _audit("command.connect", self.sandbox_id, pid=pid):
                return retrying(
                    f"reattach to process {pid}",
                    lambda: commands.connect(pid, timeout=reattach_timeout),
                    policy=self.retry,
                    gone=self._gone,
                )

        if reattach_timeout is None or status_path is None:
            return BackgroundCommand(handle, what, kill, self._gone)

        def exit_status() -> int | None:
            try:
                text = self.read_bytes(status_path).decode().strip()
            except SandboxError:
                return None
            return int(text) if text.lstrip("-").isdigit() else None

        return BackgroundCommand(
            handle, what, kill, self._gone, reattach=reattach, exit_status=exit_status
        )

    def connect(self, pid: int, *, timeout: float) -> BackgroundCommand:
        """Attach again to a running command: its output from now on, then its end."""
        what = f"reconnect to process {pid}"
        with _audit("command.connect", self.sandbox_id, pid=pid):
            handle = self._retrying(
                what, lambda: self._sandbox.commands.connect(pid, timeout=timeout)
            )
        return self._background(handle, what)

    def write_file(
        self,
        path: str,
        data: bytes | IO[bytes],
        *,
        timeout: float = FILE_TIMEOUT_S,
        user: User = "user",
    ) -> None:
        """Upload ``data`` to ``path``, replacing the file.

        Bytes and seekable files are retried (a whole-file write is idempotent; a file
        is sent again from where it stood); an unseekable stream is sent once.
        Raises SandboxFileError (also when the sandbox's disk is full), SandboxGoneError,
        SandboxTransientError after the retries.
        """
        size, rewind = _replayable(data)
        what = f"write {path}"
        with _audit("file.write", self.sandbox_id, path=path, bytes=size):
            if rewind is None:
                self._check_alive(what)
                with _mapped_with(what, self._gone):
                    self._sandbox.files.write(path, data, user=user, request_timeout=timeout)
                return

            def once() -> None:
                rewind()
                self._sandbox.files.write(path, data, user=user, request_timeout=timeout)

            self._retrying(what, once)

    def read_stream(self, path: str, *, timeout: float = FILE_TIMEOUT_S) -> Iterator[bytes]:
        """Download ``path`` as a stream of byte chunks (bounded memory).

        A download that fails is retried; one that broke on the way goes on where
        it broke (read again from the start, the bytes already given skipped), so
        the chunks are the file's bytes once each.
        """
        what = f"read {path}"
        with _audit("file.read", self.sandbox_id, path=path) as learned:
            backoff = Backoff(what, self.retry, self._gone)
            learned["bytes"] = 0
            while True:
                self._check_alive(what)
                try:
                    for chunk in self._read_from(path, learned["bytes"], timeout):
                        learned["bytes"] += len(chunk)
                        yield chunk
                except RETRYABLE as exc:
                    backoff.pause(exc)
                else:
                    return

    def _read_from(self, path: str, offset: int, timeout: float) -> Iterator[bytes]:
        with _mapped_with(f"read {path}", self._gone):
            stream = self._sandbox.files.read(path, format="stream", request_timeout=timeout)
            with stream:
                yield from _skip(stream, offset)

    def read_bytes(self, path: str, *, timeout: float = FILE_TIMEOUT_S) -> bytes:
        """Download a small file whole; retried on transient errors."""

        def once() -> bytes:
            return bytes(self._sandbox.files.read(path, format="bytes", request_timeout=timeout))

        with _audit("file.read", self.sandbox_id, path=path) as learned:
            data = self._retrying(f"read {path}", once)
            learned["bytes"] = len(data)
        return data

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists in the sandbox."""
        return self._retrying(
            f"stat {path}",
            lambda: bool(self._sandbox.files.exists(path, request_timeout=CONTROL_TIMEOUT_S)),
        )

    def make_dir(self, path: str) -> None:
        """Create a directory and its parents (fine if it exists)."""
        self._retrying(
            f"mkdir {path}",
            lambda: self._sandbox.files.make_dir(path, request_timeout=CONTROL_TIMEOUT_S),
        )

    def is_alive(self) -> bool:
        """Whether the sandbox still lives: envd's /health answers, or else E2B's API says so.

        envd can fail its health check while the sandbox lives (busy, restarting): the
        control plane has the last word, so a sandbox holding work is not taken for gone.
        """
        if self._gone():
            return False
        return self._envd_healthy() or self._listed_running()

    def _envd_healthy(self) -> bool:
        try:
            return retrying(
                "health",
                lambda: bool(self._sandbox.is_running(request_timeout=10)),
                policy=replace(self.retry, attempts=2),
                gone=self._gone,
            )
        except SandboxError:
            return False

    def _listed_running(self) -> bool:
        """Whether E2B's API (the local server's control routes) lists it as running."""
        try:
            info = retrying(
                "describe",
                lambda: self._sandbox.get_info(request_timeout=CONTROL_TIMEOUT_S),
                policy=replace(self.retry, attempts=2),
                gone=self._gone,
            )
        except SandboxError:
            return False
        return str(getattr(info.state, "value", info.state)) == "running"

    def extend_lifetime(self, seconds: int) -> None:
        """Set the server-side lifetime to ``seconds`` from now."""
        with _audit("sandbox.set_timeout", self.sandbox_id, seconds=seconds):
            self._retrying(
                "extend lifetime",
                lambda: self._sandbox.set_timeout(seconds, request_timeout=CONTROL_TIMEOUT_S),
            )

    def keep_alive(self) -> None:
        """Leave the sandbox running when this session ends, to its lifetime (for a download).

        Leaving the ``with`` block no longer kills it; ``kill()`` still does. A local
        sandbox, which otherwise ends with the process that started it, is told to
        live on. Raises SandboxGoneError, or SandboxError when the local server refuses.
        """
        box = self._localbox
        if box is not None:
            self._retrying("keep the local sandbox", lambda: _keep_local(box))
        self.kept = True

    def kill(self) -> None:
        """Kill the sandbox and everything in it; safe to call more than once."""
        if self._killed:
            return
        with _audit("sandbox.kill", self.sandbox_id, backend=self.spec.backend):
            self._killed = True
            self.ended_at = time.monotonic()
            if self._localbox is None:
                with contextlib.suppress(SandboxGoneError):
                    self._kill_through_sdk(self.retry)
                return
            try:
                if self._localbox.running:
                    # stop() below ends the server whatever this answers.
                    with contextlib.suppress(SandboxError):
                        self._kill_through_sdk(replace(self.retry, attempts=1))
            finally:
                # The server ends itself on the kill call; this reaps it (or makes sure).
                self._localbox.stop()

    def _kill_through_sdk(self, policy: RetryPolicy) -> None:
        retrying(
            "kill sandbox",
            lambda: self._sandbox.kill(request_timeout=CONTROL_TIMEOUT_S),
            policy=policy,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not (self.attached or self.kept):
            self.kill()


def _keep_local(box: LocalBoxHandle) -> None:
    answer = box.call("POST", "/localbox/keep")
    if answer.status_code != httpx.codes.OK:
        raise SandboxError(f"the local sandbox refused to be kept: HTTP {answer.status_code}")


def _sdk_sandbox() -> type[Sandbox]:
    """The SDK's Sandbox class, imported on first use (see _translated)."""
    from e2b import Sandbox  # noqa: PLC0415

    return Sandbox


def load_sdk() -> None:
    """Import the e2b SDK now (0.4 s), e.g. while a local sandbox's server starts.

    In the thread that would otherwise select and scan: imported beside them, it
    shares the interpreter's lock with them and slows both.
    """
    _sdk_sandbox()


def _owner_metadata(spec: SandboxSpec) -> dict[str, str]:
    return {**spec.metadata, OWNER_KEY: OWNER_VALUE}


def open_session(
    spec: SandboxSpec, host: LocalBoxHost, *, retry: RetryPolicy = DEFAULT_RETRY
) -> SandboxSession:
    """Create a sandbox as ``spec`` says and return the open session (which owns it).

    ``host`` serves the local backend only (its registry, its server's environment).
    Raises SandboxStartError (or SandboxAuthError) when it cannot be created.
    """
    with _audit("sandbox.create", "", backend=spec.backend, template=spec.template) as learned:
        session = _open_local(spec, host) if spec.backend == "local" else _open_e2b(spec)
        learned["target"] = session.sandbox_id
    session.retry = retry
    return session


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
    Sandbox = _sdk_sandbox()  # noqa: N806 - the SDK's class
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
        Sandbox = _sdk_sandbox()  # noqa: N806 - the SDK's class
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


def attach_session(
    backend: Backend,
    sandbox_id: str,
    *,
    registry_dir: Path,
    local_api_key: str = "",
    retry: RetryPolicy = DEFAULT_RETRY,
) -> SandboxSession:
    """Attach to a running sandbox of ours by id, e.g. from another process than its run.

    The session borrows the sandbox (``attached``): leaving its ``with`` block leaves
    the sandbox running; ``kill()`` still ends it. E2B's credentials come as for
    ``open_session``; a local sandbox is found in ``registry_dir``, whose entry
    holds its server's API key (``local_api_key`` overrides it). Raises
    SandboxGoneError when no such sandbox runs, SandboxError when it is not one of
    ours or cannot be reached, SandboxAuthError on refused credentials.
    """
    with _audit("sandbox.connect", sandbox_id, backend=backend):
        if backend == "local":
            sandbox, gone = _attach_local(sandbox_id, registry_dir, local_api_key)
        else:
            sandbox, gone = _attach_e2b(sandbox_id), _never
        metadata = _owned_metadata(sandbox, sandbox_id)
    spec = SandboxSpec(backend=backend, template="", metadata=metadata)
    return SandboxSession(sandbox, spec, sandbox_id, retry=retry, attached=True, gone=gone)


def _attach_e2b(sandbox_id: str) -> Sandbox:
    what = f"connect to E2B sandbox {sandbox_id}"
    sandbox = _sdk_sandbox()
    return retrying(what, lambda: sandbox.connect(sandbox_id, request_timeout=CONTROL_TIMEOUT_S))


def _attach_local(
    sandbox_id: str, registry_dir: Path, api_key: str
) -> tuple[Sandbox, Callable[[], bool]]:
    info = _local_entry(sandbox_id, registry_dir)
    api_key = api_key or info.api_key
    if not api_key:
        raise SandboxError(
            f"cannot attach to local sandbox {sandbox_id}: its server's API key is not known",
            hint="its registry entry holds none: it was started by an older claude-e2b",
        )
    options = _local_sdk_options(info, api_key)
    sandbox = retrying(
        f"connect to local sandbox {sandbox_id}",
        lambda: _sdk_sandbox().connect(sandbox_id, request_timeout=CONTROL_TIMEOUT_S, **options),
    )
    return sandbox, lambda: not pid_alive(info.pid)


def _local_entry(sandbox_id: str, registry_dir: Path) -> LocalBoxInfo:
    """The registry entry of a running local sandbox. Raises SandboxGoneError."""
    for info in list_localboxes(registry_dir):
        if info.sandbox_id == sandbox_id:
            return info
    raise SandboxGoneError(
        f"no local sandbox {sandbox_id} is running", hint="`claude-e2b list` shows the running ones"
    )


def _local_sdk_options(info: LocalBoxInfo, api_key: str) -> dict[str, Any]:
    """What points the SDK at a local server found in the registry (see LocalBoxHandle)."""
    return {
        "api_key": api_key,
        "api_url": info.url,
        "sandbox_url": info.url,
        "debug": False,
        "http_version": "1.1",
    }


def _owned_metadata(sandbox: Sandbox, sandbox_id: str) -> dict[str, str]:
    """The sandbox's metadata, once it is known to be one of ours. Raises SandboxError."""
    info = retrying(
        f"describe sandbox {sandbox_id}",
        lambda: sandbox.get_info(request_timeout=CONTROL_TIMEOUT_S),
    )
    metadata = dict(info.metadata or {})
    if metadata.get(OWNER_KEY) != OWNER_VALUE:
        raise SandboxError(
            f"sandbox {sandbox_id} was not started by claude-e2b",
            hint="claude-e2b only acts on its own sandboxes (`claude-e2b list` shows them)",
        )
    return metadata


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

    paginator = _sdk_sandbox().list(
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
        lambda: bool(_sdk_sandbox().kill(sandbox_id, request_timeout=CONTROL_TIMEOUT_S)),
    )
