"""The part of E2B's control-plane API the SDK uses, for the one sandbox a server holds.

With these, the unmodified SDK runs in its normal mode against a local server
(``api_url`` and ``sandbox_url`` pointed at it): ``Sandbox.create`` gets the
sandbox's id and envd access token, and ``kill``, ``set_timeout``, ``get_info`` and
``list`` reach the server as they reach E2B. Routes (all behind ``X-API-Key``):

- ``POST /v2/sandboxes`` — "create": the server's one sandbox, claimed; ``timeout``
  (seconds from now) replaces its lifetime, ``metadata`` is merged into its own.
  Other settings (``envVars``, ``network``, …) are accepted and not applied.
- ``GET /v2/sandboxes`` — the sandbox, when the ``metadata`` and ``state`` filters match.
- ``POST /v2/sandboxes/{id}/connect`` — "connect" (``Sandbox.connect`` from another
  process): the id and access token again; a ``timeout`` only ever lengthens the lifetime.
- ``GET /sandboxes/{id}`` · ``DELETE /sandboxes/{id}`` · ``POST /sandboxes/{id}/timeout``.

Errors are E2B's JSON ``{"code": status, "message": …}``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, parse_qsl

from .files_http import EnvdHTTPError, Receive, Scope, Send, send_json

if TYPE_CHECKING:
    from .app import BoxState

# The envd protocol version we answer to: every feature the SDK gates on a version
# (up to 0.6.4, the latest it knows) is one this server implements.
ENVD_VERSION = "0.6.4"
CLIENT_ID = "localbox"
_MAX_JSON_BODY = 64 * 1024
_MB = 2**20


def iso(stamp: float) -> str:
    """A Unix time as an ISO 8601 string in UTC."""
    return datetime.fromtimestamp(stamp, UTC).isoformat()


async def json_body(receive: Receive) -> Any:
    """The request's JSON body ({} when empty). Raises EnvdHTTPError 400/413."""
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


def _seconds(body: Any, key: str) -> int | None:
    """``body[key]`` as whole seconds >= 0, None when absent. Raises EnvdHTTPError(400)."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise EnvdHTTPError(400, f"{key} must be a whole number of seconds >= 0")
    return value


def _metadata(body: Any) -> dict[str, str]:
    value = body.get("metadata") or {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise EnvdHTTPError(400, "metadata must be an object of strings")
    return value


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise EnvdHTTPError(400, "expected a JSON object")
    return body


async def send_empty(send: Send, status: int) -> None:
    """Answer with a status and no body."""
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b""})


class ControlAPI:
    """The routes in the module docstring, over one ``BoxState``."""

    def __init__(self, state: BoxState, access_token: str, on_change: Callable[[], None]) -> None:
        self._state = state
        self._access_token = access_token
        self._on_change = on_change

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one control request. Raises EnvdHTTPError (404 for anything else)."""
        method, path = scope["method"], scope["path"]
        if path == "/v2/sandboxes":
            if method == "POST":
                return await self._create(_object(await json_body(receive)), send)
            if method == "GET":
                return await send_json(send, 200, self._listed(scope))
        parts = path.strip("/").split("/")
        if parts[0] == "sandboxes" and len(parts) in {2, 3}:
            return await self._one(method, parts, receive, send)
        if (method, parts[:2], parts[3:]) == ("POST", ["v2", "sandboxes"], ["connect"]):
            self._check_id(parts[2])
            return await self._connect(_object(await json_body(receive)), send)
        raise EnvdHTTPError(404, f"no route {method} {path}")

    def _check_id(self, sandbox_id: str) -> None:
        if sandbox_id != self._state.sandbox_id:
            raise EnvdHTTPError(404, f"sandbox {sandbox_id} not found")

    async def _one(self, method: str, parts: list[str], receive: Receive, send: Send) -> None:
        self._check_id(parts[1])
        route = (method, parts[2] if len(parts) == 3 else "")  # noqa: PLR2004 - /sandboxes/{id}/x
        if route == ("GET", ""):
            return await send_json(send, 200, self._detail())
        if route == ("DELETE", ""):
            await send_empty(send, 204)
            return self._state.shutdown("killed through the API")
        if route == ("POST", "timeout"):
            seconds = _seconds(_object(await json_body(receive)), "timeout")
            if seconds is None:
                raise EnvdHTTPError(400, 'expected {"timeout": seconds}')
            self._set_lifetime(seconds)
            return await send_empty(send, 204)
        raise EnvdHTTPError(404, f"no route {method} /{'/'.join(parts)}")

    async def _create(self, body: dict[str, Any], send: Send) -> None:
        seconds, metadata = _seconds(body, "timeout"), _metadata(body)
        template = body.get("templateID")
        if isinstance(template, str) and template:
            self._state.template = template
        self._state.metadata.update(metadata)
        if seconds is not None:
            self._set_lifetime(seconds)
        else:
            self._on_change()
        await send_json(send, 201, self._created())

    async def _connect(self, body: dict[str, Any], send: Send) -> None:
        """E2B's connect: a running sandbox's timeout only ever grows."""
        seconds = _seconds(body, "timeout")
        if seconds is not None and time.time() + seconds > self._state.end_at:
            self._set_lifetime(seconds)
        await send_json(send, 200, self._created())

    def _created(self) -> dict[str, Any]:
        """The answer to create and connect: the sandbox's id and envd's access token."""
        return {
            "templateID": self._state.template,
            "sandboxID": self._state.sandbox_id,
            "clientID": CLIENT_ID,
            "envdVersion": ENVD_VERSION,
            "envdAccessToken": self._access_token,
            "domain": None,
        }

    def _set_lifetime(self, seconds: int) -> None:
        self._state.end_at = time.time() + seconds
        self._on_change()

    def _detail(self) -> dict[str, Any]:
        """The sandbox as E2B's SandboxDetail / ListedSandbox (no access token)."""
        state = self._state
        return {
            "templateID": state.template,
            "sandboxID": state.sandbox_id,
            "clientID": CLIENT_ID,
            "startedAt": iso(state.started_at),
            "endAt": iso(state.end_at),
            "envdVersion": ENVD_VERSION,
            "cpuCount": os.cpu_count() or 1,
            "memoryMB": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // _MB,
            "diskSizeMB": _disk_mb(state),
            "state": "running",
            "metadata": dict(state.metadata),
        }

    def _listed(self, scope: Scope) -> list[dict[str, Any]]:
        query = parse_qs(scope.get("query_string", b"").decode(), keep_blank_values=True)
        wanted = dict(parse_qsl(query.get("metadata", [""])[0]))
        states = ",".join(query.get("state", [])).split(",")
        matches = all(self._state.metadata.get(k) == v for k, v in wanted.items())
        if not matches or (states != [""] and "running" not in states):
            return []
        return [self._detail()]


def _disk_mb(state: BoxState) -> int:
    try:
        return shutil.disk_usage(state.root).total // _MB
    except OSError:
        return 0
