"""The ASGI application of a local sandbox: envd's routes, E2B's control routes, /localbox/*.

Every route but ``/health`` needs a secret that only the process that started the
server holds (it came through the launcher's ready pipe; see auth.py):

- envd's routes — ``/files``, ``/process.Process/*``, ``/filesystem.Filesystem/*`` —
  need ``X-Access-Token``, exactly as envd in an E2B sandbox;
- the control routes — E2B's ``/v2/sandboxes``, ``/sandboxes/{id}``,
  ``/sandboxes/{id}/timeout`` (control.py) and ours, ``GET /localbox/info`` and
  ``POST /localbox/keep`` (the sandbox is to outlive the process that started it,
  to its lifetime: ``BoxState.kept``) — need ``X-API-Key``, exactly as E2B's API.

A request without the right one gets 401 and nothing runs. ``/health`` answers 204
with no body to anyone. ``/localbox/faults`` (GET/POST, see faults.py) exists only
when the server was started for tests (``--test-faults``); faults apply to envd's
routes only, so a test can always reach the control routes to switch them off
(``kill_after_s`` aside: it ends the whole sandbox, as E2B's kill does).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .auth import Credentials, Guard, Refusal
from .control import ControlAPI, iso, json_body
from .faults import Faults
from .files_http import EnvdHTTPError, Message, Receive, Scope, Send, send_failure, send_json

ASGIApp = Callable[[Scope, Receive, Send], Any]
_STREAM_ROUTES = ("/process.Process/Start", "/process.Process/Connect")
_ENVD_PREFIXES = ("/process.Process/", "/filesystem.Filesystem/")


class StreamDroppedError(Exception):
    """Raised from ``send`` to cut a connection on purpose (fault injection)."""


@dataclass
class BoxState:
    """What the control routes report, and the switch that ends the sandbox.

    ``info()`` is also the registry entry, which is why no secret lives here.
    ``kept``: the sandbox is to live on when the process that started it ends.
    """

    sandbox_id: str
    root: Path
    pid: int
    metadata: dict[str, str]
    url: str = ""
    template: str = "local"
    started_at: float = field(default_factory=time.time)
    end_at: float = 0.0
    kept: bool = False
    shutdown: Callable[[str], None] = lambda _reason: None

    def info(self) -> dict[str, Any]:
        """JSON-ready description (also the registry entry)."""
        return {
            "sandbox_id": self.sandbox_id,
            "url": self.url,
            "metadata": self.metadata,
            "started_at": iso(self.started_at),
            "end_at": iso(self.end_at),
            "root": str(self.root),
            "pid": self.pid,
            "kept": self.kept,
        }


def is_envd_route(path: str) -> bool:
    """Whether ``path`` is one of envd's routes (``X-Access-Token``) rather than a control one."""
    return path == "/files" or path.startswith(_ENVD_PREFIXES)


@dataclass
class LocalBoxApp:
    """Routes requests; see the module docstring."""

    state: BoxState
    faults: Faults
    files: ASGIApp
    process: ASGIApp
    filesystem: ASGIApp
    credentials: Credentials
    allow_root: bool = False
    test_faults: bool = False
    on_change: Callable[[], None] = lambda: None
    _kill_timer: asyncio.TimerHandle | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._guard = Guard(self.credentials, allow_root=self.allow_root)
        self._control = ControlAPI(self.state, self.credentials.access_token, self.on_change)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point: authenticate first, then route."""
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if self._kill_timer is None and self.faults.kill_after_s > 0:
            self._schedule_kill()
        try:
            if path == "/health":
                await self._health(send)
            elif is_envd_route(path):
                await self._guard.envd(scope, receive)
                await self._envd(path, scope, receive, send)
            else:
                self._guard.control(scope)
                await self._ours(path, scope, receive, send)
        except Refusal as refusal:
            await send_json(send, refusal.status, refusal.body)
        except EnvdHTTPError as failure:
            await send_failure(send, failure)
        except StreamDroppedError:
            # Returning without ending the response makes the server close the socket.
            return

    async def _envd(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        await self._delay()
        if path == "/files":
            limit = self.faults.take_download_drop() if scope["method"] == "GET" else 0
            await self.files(scope, receive, _dropping(send, limit))
        elif path.startswith("/process.Process/"):
            limit = self.faults.take_output_drop() if path in _STREAM_ROUTES else 0
            await self.process(scope, receive, _dropping(send, limit))
        else:
            await self.filesystem(scope, receive, send)

    async def _delay(self) -> None:
        if self.faults.delay_s > 0:
            await asyncio.sleep(self.faults.delay_s)

    async def _health(self, send: Send) -> None:
        await self._delay()
        if self.faults.unhealthy:
            # The SDK reads a 502 saying "was not found" as "sandbox not running".
            raise EnvdHTTPError(502, "The sandbox was not found")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def _ours(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if (method, path) == ("GET", "/localbox/info"):
            await send_json(send, 200, self.state.info())
        elif (method, path) == ("POST", "/localbox/keep"):
            self.state.kept = True
            self.on_change()
            await send_json(send, 200, self.state.info())
        elif self.test_faults and path == "/localbox/faults" and method in {"GET", "POST"}:
            if method == "POST":
                self._set_faults(await json_body(receive))
            await send_json(send, 200, self.faults.as_dict())
        else:
            await self._control(scope, receive, send)

    def _set_faults(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise EnvdHTTPError(400, "expected a JSON object of faults")
        try:
            self.faults.update(body)
        except (ValueError, TypeError) as exc:
            raise EnvdHTTPError(400, str(exc)) from exc
        if "kill_after_s" in body:
            self._schedule_kill()

    def _schedule_kill(self) -> None:
        """Kill the sandbox ``kill_after_s`` from now (a fault); 0 calls a pending kill off."""
        if self._kill_timer is not None:
            self._kill_timer.cancel()
            self._kill_timer = None
        if self.faults.kill_after_s > 0:
            self._kill_timer = asyncio.get_running_loop().call_later(
                self.faults.kill_after_s, self.state.shutdown, "killed by an injected fault"
            )


def _dropping(send: Send, limit: int) -> Send:
    """``send``, cutting the connection once more than ``limit`` body bytes went (0: never)."""
    if limit <= 0:
        return send
    sent = 0

    async def dropping_send(message: Message) -> None:
        nonlocal sent
        sent += len(message.get("body", b""))
        if sent > limit:
            raise StreamDroppedError
        await send(message)

    return dropping_send
