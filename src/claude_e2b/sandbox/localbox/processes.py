"""envd's Process service: start, attach to, signal and feed commands.

Pids given to the SDK are host pids of each command's process-group leader (the
``setpriv``/``nsenter`` wrapper), not pids inside the sandbox's pid namespace: the
SDK only hands them back to us, so they need only be unique and stable.
"""
# ruff: noqa: ARG002 - the RPC signatures are fixed by envd's generated protocol

from __future__ import annotations

import asyncio
import base64
import builtins
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from e2b.envd.process import process_pb as pb
from e2b.envd.process.process_connect import Process
from protobuf import DescService, Oneof

from .command_env import RefusedEnvError
from .isolation import Isolation, Launch, resolve_cwd
from .paths import PathEscapeError

_CHUNK = 64 * 1024
# Per subscriber: enough to ride out a slow reader without holding much memory.
_QUEUE_EVENTS = 64
_SLOW_READER_S = 30.0
_DRAIN_AFTER_EXIT_S = 2.0
_DEFAULT_KEEPALIVE_S = 50.0
_SIGNALS = {pb.Signal.SIGKILL: signal.SIGKILL, pb.Signal.SIGTERM: signal.SIGTERM}

Resp = TypeVar("Resp", pb.StartResponse, pb.ConnectResponse)


def request_user(ctx: RequestContext[Any, Any]) -> str:
    """The sandbox user of a call, from envd's "Basic user:" header ("user" if absent).

    Raises ConnectError(UNAUTHENTICATED) for a user the sandbox does not have.
    """
    header = ctx.request_headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return "user"
    try:
        name = base64.b64decode(header[6:]).decode().split(":", 1)[0]
    except ValueError as exc:
        raise ConnectError(Code.UNAUTHENTICATED, "malformed authorization header") from exc
    if name not in {"user", "root"}:
        raise ConnectError(Code.UNAUTHENTICATED, f"invalid user: '{name}'")
    return name


@dataclass
class Command:
    """One running command and the streams attached to it."""

    proc: asyncio.subprocess.Process
    config: pb.ProcessConfig
    tag: str | None
    subscribers: set[asyncio.Queue[pb.ProcessEvent | None]] = field(default_factory=set)
    on_exit: Callable[[], None] = lambda: None

    @property
    def pid(self) -> int:
        """The pid reported to the SDK."""
        return self.proc.pid

    async def publish(self, event: pb.ProcessEvent) -> None:
        """Hand an event to every stream; a stream that stops reading is cut off."""
        for queue in list(self.subscribers):
            try:
                await asyncio.wait_for(queue.put(event), _SLOW_READER_S)
            except TimeoutError:
                self.subscribers.discard(queue)
                _force_put(queue, None)

    def subscribe(self) -> asyncio.Queue[pb.ProcessEvent | None]:
        """A new queue that receives every event from now on."""
        queue: asyncio.Queue[pb.ProcessEvent | None] = asyncio.Queue(_QUEUE_EVENTS)
        self.subscribers.add(queue)
        return queue

    def signal(self, signum: int) -> None:
        """Signal the command's whole process group."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)


def _force_put(queue: asyncio.Queue[pb.ProcessEvent | None], item: pb.ProcessEvent | None) -> None:
    while True:
        try:
            queue.put_nowait(item)
        except asyncio.QueueFull:
            queue.get_nowait()
        else:
            return


def _end_event(returncode: int) -> pb.ProcessEvent:
    """Envd's end event: Go's ExitCode() is -1 and Exited() false after a signal."""
    if returncode < 0:
        name = signal.Signals(-returncode).name.removeprefix("SIG").lower()
        status = "signal: killed" if returncode == -signal.SIGKILL else f"signal: {name}"
        end = pb.ProcessEvent.EndEvent(exit_code=-1, exited=False, status=status)
    else:
        end = pb.ProcessEvent.EndEvent(
            exit_code=returncode, exited=True, status=f"exit status {returncode}"
        )
    event: Oneof[Literal["end"], pb.ProcessEvent.EndEvent] = Oneof("end", end)
    return pb.ProcessEvent(event=event)


def _data_event(kind: str, chunk: bytes) -> pb.ProcessEvent:
    data = pb.ProcessEvent.DataEvent(output=Oneof(kind, chunk))  # type: ignore[arg-type]
    event: Oneof[Literal["data"], pb.ProcessEvent.DataEvent] = Oneof("data", data)
    return pb.ProcessEvent(event=event)


class ProcessService:
    """Implements envd's process.Process on top of ``Isolation``."""

    def __init__(self, isolation: Isolation) -> None:
        self._isolation = isolation
        self._commands: dict[int, Command] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def desc(cls) -> DescService:
        """The service descriptor (part of the generated protocol)."""
        return Process.desc()

    # --- RPCs -----------------------------------------------------------------

    async def list(self, request: pb.ListRequest, ctx: RequestContext[Any, Any]) -> pb.ListResponse:
        """Running commands."""
        infos = [pb.ProcessInfo(config=c.config, pid=c.pid, tag=c.tag) for c in self._live()]
        return pb.ListResponse(processes=infos)

    def start(
        self, request: pb.StartRequest, ctx: RequestContext[Any, Any]
    ) -> AsyncIterator[pb.StartResponse]:
        """Start a command and stream its events."""
        return self._start(request, ctx)

    def connect(
        self, request: pb.ConnectRequest, ctx: RequestContext[Any, Any]
    ) -> AsyncIterator[pb.ConnectResponse]:
        """Attach to a running command: its output from now on, then its end."""
        command = self._find(request.process)
        queue = command.subscribe()
        start = _start_event(command.pid)
        return self._stream(command, queue, start, ctx, pb.ConnectResponse)

    async def update(
        self, request: pb.UpdateRequest, ctx: RequestContext[Any, Any]
    ) -> pb.UpdateResponse:
        """PTY resizing: no PTYs here."""
        raise ConnectError(Code.UNIMPLEMENTED, "the local sandbox has no PTY")

    async def stream_input(
        self, request: AsyncIterator[pb.StreamInputRequest], ctx: RequestContext[Any, Any]
    ) -> pb.StreamInputResponse:
        """Feed stdin from a client stream: a start event naming the command, then data."""
        command: Command | None = None
        async for message in request:
            value = message.event.value if message.event is not None else None
            if isinstance(value, pb.StreamInputRequest.StartEvent):
                command = self._find(value.process)
            elif isinstance(value, pb.StreamInputRequest.DataEvent):
                if command is None:
                    raise ConnectError(Code.INVALID_ARGUMENT, "data before start event")
                await self._write_stdin(command, value.input)
        return pb.StreamInputResponse()

    async def send_input(
        self, request: pb.SendInputRequest, ctx: RequestContext[Any, Any]
    ) -> pb.SendInputResponse:
        """Write to a command's stdin."""
        await self._write_stdin(self._find(request.process), request.input)
        return pb.SendInputResponse()

    async def send_signal(
        self, request: pb.SendSignalRequest, ctx: RequestContext[Any, Any]
    ) -> pb.SendSignalResponse:
        """Signal a command's process group."""
        command = self._find(request.process)
        signum = _SIGNALS.get(request.signal)
        if signum is None:
            raise ConnectError(Code.INVALID_ARGUMENT, f"unsupported signal {request.signal}")
        command.signal(signum)
        return pb.SendSignalResponse()

    async def close_stdin(
        self, request: pb.CloseStdinRequest, ctx: RequestContext[Any, Any]
    ) -> pb.CloseStdinResponse:
        """Close a command's stdin (EOF)."""
        stdin = self._stdin(self._find(request.process))
        stdin.close()
        return pb.CloseStdinResponse()

    # --- lifecycle --------------------------------------------------------------

    def kill_all(self) -> None:
        """SIGKILL every command's process group."""
        for command in self._commands.values():
            command.signal(signal.SIGKILL)

    def pids(self) -> builtins.list[int]:
        """Pids of the commands still running."""
        return [c.pid for c in self._live()]

    # --- internals --------------------------------------------------------------

    async def _start(
        self, request: pb.StartRequest, ctx: RequestContext[Any, Any]
    ) -> AsyncIterator[pb.StartResponse]:
        if request.pty is not None:
            raise ConnectError(Code.UNIMPLEMENTED, "the local sandbox has no PTY")
        command = await self._spawn(request, request_user(ctx))
        queue = command.subscribe()
        self._pump(command)
        stream = self._stream(command, queue, _start_event(command.pid), ctx, pb.StartResponse)
        async for message in stream:
            yield message

    def _launch(self, config: pb.ProcessConfig, user: str) -> Launch:
        """How to start ``config``; ConnectError(INVALID_ARGUMENT) for a bad cwd or env."""
        try:
            cwd = resolve_cwd(config.cwd if config.has_field("cwd") else None, user)
            return self._isolation.launch([config.cmd, *config.args], user, cwd, dict(config.envs))
        except (PathEscapeError, RefusedEnvError) as exc:
            raise ConnectError(Code.INVALID_ARGUMENT, str(exc)) from exc

    async def _spawn(self, request: pb.StartRequest, user: str) -> Command:
        config = request.process or pb.ProcessConfig()
        launch = self._launch(config, user)
        try:
            proc = await asyncio.create_subprocess_exec(
                *launch.argv,
                stdin=asyncio.subprocess.PIPE if request.stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=launch.env,
                cwd=launch.cwd,
                start_new_session=True,
            )
        except BaseException:
            launch.cleanup()
            raise
        tag = request.tag if request.has_field("tag") else None
        command = Command(proc=proc, config=config, tag=tag, on_exit=launch.cleanup)
        self._commands[proc.pid] = command
        return command

    def _pump(self, command: Command) -> None:
        task = asyncio.create_task(self._run_pumps(command))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_pumps(self, command: Command) -> None:
        proc = command.proc
        assert proc.stdout is not None  # noqa: S101 - stdout=PIPE in _spawn
        assert proc.stderr is not None  # noqa: S101 - stderr=PIPE in _spawn
        readers = [
            asyncio.create_task(_read_into(proc.stdout, "stdout", command)),
            asyncio.create_task(_read_into(proc.stderr, "stderr", command)),
        ]
        returncode = await proc.wait()
        command.on_exit()
        # A grandchild may keep the pipes open after the command itself exited.
        _done, pending = await asyncio.wait(readers, timeout=_DRAIN_AFTER_EXIT_S)
        for task in pending:
            task.cancel()
        self._commands.pop(command.pid, None)
        await command.publish(_end_event(returncode))

    async def _stream(
        self,
        command: Command,
        queue: asyncio.Queue[pb.ProcessEvent | None],
        first: pb.ProcessEvent,
        ctx: RequestContext[Any, Any],
        wrap: Callable[..., Resp],
    ) -> AsyncIterator[Resp]:
        interval = _keepalive_interval(ctx)
        try:
            yield wrap(event=first)
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), interval)
                except TimeoutError:
                    yield wrap(event=_keepalive_event())
                    continue
                if event is None:
                    return
                yield wrap(event=event)
                if isinstance(event.event, Oneof) and event.event.field == "end":
                    return
        finally:
            command.subscribers.discard(queue)

    def _live(self) -> builtins.list[Command]:
        return [c for c in self._commands.values() if c.proc.returncode is None]

    def _find(self, selector: pb.ProcessSelector | None) -> Command:
        chosen = selector.selector if selector is not None else None
        if chosen is None:
            raise ConnectError(Code.INVALID_ARGUMENT, "no process selector")
        if chosen.field == "pid" and isinstance(chosen.value, int):
            command = self._commands.get(chosen.value)
        else:
            command = next((c for c in self._live() if c.tag == chosen.value), None)
        if command is None or command.proc.returncode is not None:
            raise ConnectError(Code.NOT_FOUND, f"process with {selector} not found")
        return command

    @staticmethod
    def _stdin(command: Command) -> asyncio.StreamWriter:
        if command.proc.stdin is None:
            raise ConnectError(Code.FAILED_PRECONDITION, "stdin is not enabled for this process")
        return command.proc.stdin

    async def _write_stdin(self, command: Command, data: pb.ProcessInput | None) -> None:
        stdin = self._stdin(command)
        match data.input if data is not None else None:
            case Oneof(field="stdin", value=chunk):
                try:
                    stdin.write(chunk)
                    await stdin.drain()
                except (BrokenPipeError, ConnectionResetError) as exc:
                    raise ConnectError(Code.FAILED_PRECONDITION, "stdin is closed") from exc
            case _:
                raise ConnectError(Code.INVALID_ARGUMENT, "only stdin input is supported")


async def _read_into(stream: asyncio.StreamReader, kind: str, command: Command) -> None:
    while chunk := await stream.read(_CHUNK):
        await command.publish(_data_event(kind, chunk))


def _start_event(pid: int) -> pb.ProcessEvent:
    start = pb.ProcessEvent.StartEvent(pid=pid)
    event: Oneof[Literal["start"], pb.ProcessEvent.StartEvent] = Oneof("start", start)
    return pb.ProcessEvent(event=event)


def _keepalive_event() -> pb.ProcessEvent:
    alive = pb.ProcessEvent.KeepAlive()
    event: Oneof[Literal["keepalive"], pb.ProcessEvent.KeepAlive] = Oneof("keepalive", alive)
    return pb.ProcessEvent(event=event)


def _keepalive_interval(ctx: RequestContext[Any, Any]) -> float:
    """Envd sends keepalives as often as the client's Keepalive-Ping-Interval asks."""
    try:
        seconds = float(ctx.request_headers.get("keepalive-ping-interval", ""))
    except ValueError:
        return _DEFAULT_KEEPALIVE_S
    return seconds if seconds > 0 else _DEFAULT_KEEPALIVE_S
