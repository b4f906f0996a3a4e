"""The ASGI application of a local sandbox: envd's routes plus /localbox/*.

Routes: /health, /files, /process.Process/*, /filesystem.Filesystem/* (envd), and
ours: GET /localbox/info, POST /localbox/timeout {"seconds": N}, POST
/localbox/kill, GET/POST /localbox/faults. Faults (see faults.py) apply to envd's
routes only, so a test can always reach /localbox/* to switch them off.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .faults import Faults
from .files_http import EnvdHTTPError, Message, Receive, Scope, Send, send_failure, send_json

ASGIApp = Callable[[Scope, Receive, Send], Any]
_MAX_JSON_BODY = 64 * 1024
_STREAM_ROUTES = ("/process.Process/Start", "/process.Process/Connect")


class StreamDroppedError(Exception):
    """Raised from ``send`` to cut a connection on purpose (fault injection)."""


@dataclass
class BoxState:
    """What /localbox/info reports, and the switch that ends the sandbox."""

    sandbox_id: str
    root: Path
    pid: int
    metadata: dict[str, str]
    url: str = ""
    started_at: float = field(default_factory=time.time)
    end_at: float = 0.0
    shutdown: Callable[[str], None] = lambda _reason: None

    def info(self) -> dict[str, Any]:
        """JSON-ready description (also the registry entry)."""
        return {
            "sandbox_id": self.sandbox_id,
            "url": self.url,
            "metadata": self.metadata,
            "started_at": _iso(self.started_at),
            "end_at": _iso(self.end_at),
            "root": str(self.root),
            "pid": self.pid,
        }


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).isoformat()


@dataclass
class LocalBoxApp:
    """Routes requests; see the module docstring."""

    state: BoxState
    faults: Faults
    files: ASGIApp
    process: ASGIApp
    filesystem: ASGIApp
    on_change: Callable[[], None] = lambda: None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        try:
            if path.startswith("/localbox/"):
                await self._ours(path, scope, receive, send)
            else:
                await self._envd(path, scope, receive, send)
        except EnvdHTTPError as failure:
            await send_failure(send, failure)
        except StreamDroppedError:
            # Returning without ending the response makes the server close the socket.
            return

    async def _envd(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        if self.faults.delay_s > 0:
            await asyncio.sleep(self.faults.delay_s)
        if path == "/health":
            await self._health(send)
        elif path == "/files":
            await self.files(scope, receive, send)
        elif path.startswith("/process.Process/"):
            await self.process(scope, receive, self._maybe_dropping(path, send))
        elif path.startswith("/filesystem.Filesystem/"):
            await self.filesystem(scope, receive, send)
        else:
            raise EnvdHTTPError(404, f"no route {path}")

    async def _health(self, send: Send) -> None:
        if self.faults.unhealthy:
            # The SDK reads a 502 saying "was not found" as "sandbox not running".
            message = f"The sandbox {self.state.sandbox_id} was not found"
            raise EnvdHTTPError(502, message)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def _maybe_dropping(self, path: str, send: Send) -> Send:
        limit = self.faults.take_output_drop() if path in _STREAM_ROUTES else 0
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

    async def _ours(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if (method, path) == ("GET", "/localbox/info"):
            await send_json(send, 200, self.state.info())
        elif (method, path) == ("POST", "/localbox/timeout"):
            await self._set_timeout(await _json_body(receive), send)
        elif (method, path) == ("POST", "/localbox/kill"):
            await send_json(send, 200, {"killed": True})
            self.state.shutdown("killed through /localbox/kill")
        elif path == "/localbox/faults" and method in {"GET", "POST"}:
            if method == "POST":
                self._set_faults(await _json_body(receive))
            await send_json(send, 200, self.faults.as_dict())
        else:
            raise EnvdHTTPError(404, f"no route {method} {path}")

    async def _set_timeout(self, body: Any, send: Send) -> None:
        seconds = body.get("seconds") if isinstance(body, dict) else None
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise EnvdHTTPError(400, 'expected {"seconds": N} with N >= 0')
        self.state.end_at = time.time() + float(seconds)
        self.on_change()
        await send_json(send, 200, self.state.info())

    def _set_faults(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise EnvdHTTPError(400, "expected a JSON object of faults")
        try:
            self.faults.update(body)
        except (ValueError, TypeError) as exc:
            raise EnvdHTTPError(400, str(exc)) from exc


async def _json_body(receive: Receive) -> Any:
    data = bytearray()
    while True:
        message = await receive()
        data.extend(message.get("body", b""))
        if len(data) > _MAX_JSON_BODY:
            raise EnvdHTTPError(413, "body too large")
        if not message.get("more_body", False):
            break
    try:
        return json.loads(data or b"{}")
    except ValueError as exc:
        raise EnvdHTTPError(400, f"invalid JSON: {exc}") from exc
