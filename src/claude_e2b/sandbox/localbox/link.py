"""A simulated network link in front of the /files API (for the bench: 100 Mbit/s, 1 Gbit/s).

``Link(mbit, rtt_ms)`` paces what travels through ``/files``: upload bodies are read
no faster than ``mbit`` megabits (10^6 bits) a second, download bodies sent no faster,
and each request waits one round trip (``rtt_ms``) before its transfer starts, so a
transfer of N bytes takes about ``rtt + N / rate``. Commands and their output streams
do not go through it.

Each direction is one token bucket shared by every request of the server, as a real
link is shared by its connections: two uploads at once get half the rate each. The
bucket holds a small burst (``burst_bytes``), so a request's first bytes go at once
and an idle link saves up no more than that. All waits are ``asyncio.sleep``: the
event loop never blocks. A server without a link (``link_for`` gives None) adds nothing.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
Direction = Literal["up", "down"]

# The bucket holds the larger of these: 64 KiB, or 5 ms at the link's rate. Time lost
# between two reads of the body (the event loop's latency, uvicorn resuming its reads)
# is lost to the link beyond that: with 64 KiB alone, 1 Gbit/s gave 660-930 Mbit/s.
BURST_BYTES = 64 * 1024
BURST_S = 0.005
# Download bodies are cut into slices this big, so that they leave evenly, not 1 MiB at once.
SLICE_BYTES = 64 * 1024
_BITS_PER_BYTE = 8
_MBIT = 1_000_000


def check_link(mbit: float | None, rtt_ms: float) -> None:
    """Raise ValueError unless ``mbit`` is None or a finite rate > 0 and ``rtt_ms`` >= 0."""
    if mbit is not None and not (math.isfinite(mbit) and mbit > 0):
        raise ValueError(f"the link's rate must be a number of Mbit/s above 0, not {mbit}")
    if not (math.isfinite(rtt_ms) and rtt_ms >= 0):
        raise ValueError(f"the link's round trip must be a number of ms >= 0, not {rtt_ms}")


class _Bucket:
    """One direction of the link: bytes leave no faster than the rate, after a burst."""

    def __init__(self, bytes_per_s: float, burst: int, clock: Clock) -> None:
        self._rate = bytes_per_s
        self._burst_s = burst / bytes_per_s
        self._clock = clock
        self._free_at = -math.inf

    def reserve(self, nbytes: int) -> float:
        """Book ``nbytes`` on the link; the seconds to wait before they may pass."""
        now = self._clock()
        # The link is busy until _free_at; time it stood idle is lost but for the burst.
        self._free_at = max(self._free_at, now) + nbytes / self._rate
        return self._free_at - self._burst_s - now


@dataclass
class Link:
    """A link's rate (None: unthrottled) and round trip; see the module docstring.

    ``clock`` and ``sleep`` are the monotonic clock and the wait (a test gives fakes).
    Raises ValueError for a rate <= 0 or a negative round trip.
    """

    mbit: float | None = None
    rtt_ms: float = 0.0
    clock: Clock = field(default=time.monotonic, repr=False, compare=False)
    sleep: Sleep = field(default=asyncio.sleep, repr=False, compare=False)
    _buckets: dict[Direction, _Bucket] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_link(self.mbit, self.rtt_ms)
        self._buckets = {}
        if self.mbit is not None:
            rate = self.mbit * _MBIT / _BITS_PER_BYTE
            self._buckets = {d: _Bucket(rate, self.burst_bytes, self.clock) for d in ("up", "down")}

    @property
    def burst_bytes(self) -> int:
        """What the link lets through at once: 64 KiB or 5 ms at its rate, the larger."""
        if self.mbit is None:
            return 0
        return max(BURST_BYTES, round(self.mbit * _MBIT / _BITS_PER_BYTE * BURST_S))

    @property
    def shaped(self) -> bool:
        """Whether the link changes anything (a rate, or a round trip above 0)."""
        return self.mbit is not None or self.rtt_ms > 0

    async def round_trip(self) -> None:
        """Wait one round trip (nothing when it is 0)."""
        if self.rtt_ms > 0:
            await self.sleep(self.rtt_ms / 1000)

    async def pace(self, direction: Direction, nbytes: int) -> None:
        """Wait until ``nbytes`` more may pass in ``direction`` (at once when unthrottled)."""
        bucket = self._buckets.get(direction)
        if bucket is not None and nbytes > 0:
            delay = bucket.reserve(nbytes)
            if delay > 0:
                await self.sleep(delay)

    async def shape(self, receive: Receive, send: Send) -> tuple[Receive, Send]:
        """Start a request on the link: one round trip, then its body paced both ways."""
        await self.round_trip()
        if self.mbit is None:
            return receive, send
        return self._paced_receive(receive), self._paced_send(send)

    def _paced_receive(self, receive: Receive) -> Receive:
        async def paced_receive() -> Message:
            message = await receive()
            await self.pace("up", len(message.get("body", b"")))
            return message

        return paced_receive

    def _paced_send(self, send: Send) -> Send:
        async def paced_send(message: Message) -> None:
            body = message.get("body", b"")
            if len(body) <= SLICE_BYTES:
                await self.pace("down", len(body))
                await send(message)
                return
            more = message.get("more_body", False)
            view = memoryview(body)
            for start in range(0, len(body), SLICE_BYTES):
                piece = bytes(view[start : start + SLICE_BYTES])
                await self.pace("down", len(piece))
                last = start + SLICE_BYTES >= len(body)
                await send({**message, "body": piece, "more_body": more or not last})

        return paced_send


def link_for(mbit: float | None, rtt_ms: float) -> Link | None:
    """The link a server puts in front of /files: None when it would change nothing."""
    link = Link(mbit, rtt_ms)
    return link if link.shaped else None
