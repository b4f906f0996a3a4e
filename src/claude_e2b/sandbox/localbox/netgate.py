"""Relay of a sandbox's allowed destinations: listens inside, connects from the host.

Run by the server as a plain script (``python -I -S netgate.py SPEC``, only the
standard library). It inherits listening sockets that nsinit made inside the
sandbox's network namespace; each one stands for exactly one destination HOST:PORT.
A connection accepted on it is joined to a new connection from the host's side to
that destination — name resolved by the host at that moment — and to nothing
else. So the sandbox reaches the allowed host and port (the scripted Messages API
on the runner's 127.0.0.1:PORT in tests, say) and no other port of the runner.

SPEC is JSON: {"parent": PID, "relays": [{"fd": N, "host": H, "port": P}, ...]}.
It drops root (to nobody) before it serves, and dies with its parent.
"""

from __future__ import annotations

import asyncio
import concurrent.futures.thread  # noqa: F401 - loaded now: as nobody we may not read the stdlib
import contextlib
import ctypes
import encodings.idna  # noqa: F401 - same: host names are encoded with it
import json
import os
import socket
import sys
from typing import Any

_NOBODY = 65534
_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38
_CONNECT_TIMEOUT_S = 30.0
_CHUNK = 64 * 1024

_libc = ctypes.CDLL(None, use_errno=True)


def _die_with(parent: int) -> None:
    """SIGKILL when the server dies (set again after setuid, which clears it)."""
    _libc.prctl(_PR_SET_PDEATHSIG, 9, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _drop_root(parent: int) -> None:
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(_NOBODY)
        os.setuid(_NOBODY)
        _die_with(parent)
    _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(_CHUNK):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.transport.abort()


async def _relay(
    host: str, port: int, inside_r: asyncio.StreamReader, inside_w: asyncio.StreamWriter
) -> None:
    try:
        connect = asyncio.open_connection(host, port)
        outside_r, outside_w = await asyncio.wait_for(connect, _CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        sys.stderr.write(f"netgate: {host}:{port}: {exc}\n")
        inside_w.transport.abort()
        return
    try:
        await asyncio.gather(_pipe(inside_r, outside_w), _pipe(outside_r, inside_w))
    finally:
        for writer in (inside_w, outside_w):
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def serve(relays: list[dict[str, Any]]) -> None:
    """Serve every relay until killed."""
    servers = []
    for relay in relays:
        sock = socket.socket(fileno=relay["fd"])

        async def handle(
            r: asyncio.StreamReader, w: asyncio.StreamWriter, relay: dict[str, Any] = relay
        ) -> None:
            await _relay(relay["host"], relay["port"], r, w)

        servers.append(await asyncio.start_server(handle, sock=sock))
    await asyncio.gather(*(server.serve_forever() for server in servers))


def main(argv: list[str]) -> int:
    """Entry point: ``netgate.py SPEC``."""
    spec = json.loads(argv[0])
    _die_with(spec["parent"])
    _drop_root(spec["parent"])
    asyncio.run(serve(spec["relays"]))
    return 0  # pragma: no cover - serves until killed


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
