"""Faults on request: the next N matching requests get a scripted failure instead of the answer.

A fault matches a method (or "*") and a path pattern on the *route* of a request:

- REST: the path under the API root, as GitHub's docs write it: ``/repos/o/r/pulls/7``
- GraphQL: ``/graphql``
- git smart HTTP: the request path, ``/o/r.git/info/refs`` or ``/o/r.git/git-receive-pack``

In patterns ``*`` matches within one path segment and ``**`` across segments; a compiled
regular expression is used as is (``fullmatch``). ``when="before"`` answers instead of doing
the work; ``when="after"`` does the work (the PR is created, the ref moved) and then answers
with the fault: the classic way a client retries into a duplicate.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

SECONDARY_RATE_LIMIT_MESSAGE = (
    "You have exceeded a secondary rate limit and have been temporarily blocked from "
    "content creation. Please retry your request again later. If you reach out to GitHub "
    "Support for help, please include the request ID."
)
_STATUS_MESSAGES = {
    401: "Bad credentials",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    422: "Validation Failed",
    500: "Server Error",
    502: "Server Error",
    503: "Service Unavailable",
}


def compile_pattern(pattern: str | re.Pattern[str]) -> re.Pattern[str]:
    """``*`` within a segment, ``**`` across segments; anything else literal."""
    if isinstance(pattern, re.Pattern):
        return pattern
    parts = re.split(r"(\*\*|\*)", pattern)
    regex = "".join(
        ".*" if part == "**" else "[^/]*" if part == "*" else re.escape(part) for part in parts
    )
    return re.compile(regex)


@dataclass
class Fault:
    """One scripted failure; `fired` counts how often it was used.

    Build with the class methods: `Fault.status(...)`, `Fault.secondary_rate_limit(...)`,
    `Fault.primary_rate_limit(...)`, `Fault.drop(...)`.
    """

    method: str
    path: str | re.Pattern[str]
    status_code: int | None = 502
    when: Literal["before", "after"] = "before"
    times: int = 1
    message: str | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop_connection: bool = False
    fired: int = 0

    def __post_init__(self) -> None:
        self._regex = compile_pattern(self.path)
        self.method = self.method.upper()

    @classmethod
    def status(
        cls,
        method: str,
        path: str | re.Pattern[str],
        status: int,
        *,
        message: str | None = None,
        errors: list[dict[str, str]] | None = None,
        when: Literal["before", "after"] = "before",
        times: int = 1,
        headers: dict[str, str] | None = None,
    ) -> Fault:
        """Answer with ``status`` and a GitHub error body (`message`, `errors` for 422)."""
        text = message or _STATUS_MESSAGES.get(status, "Error")
        body: dict[str, Any] = {"message": text, "documentation_url": _DOCS, "status": str(status)}
        if errors is not None:
            body["errors"] = errors
        return cls(method, path, status, when, times, text, body, dict(headers or {}))

    @classmethod
    def secondary_rate_limit(
        cls,
        method: str,
        path: str | re.Pattern[str],
        *,
        retry_after: int | None = 1,
        when: Literal["before", "after"] = "before",
        times: int = 1,
    ) -> Fault:
        """403 with GitHub's secondary-rate-limit message (and `Retry-After` unless None)."""
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        return cls.status(
            method,
            path,
            403,
            message=SECONDARY_RATE_LIMIT_MESSAGE,
            when=when,
            times=times,
            headers=headers,
        )

    @classmethod
    def primary_rate_limit(
        cls,
        method: str,
        path: str | re.Pattern[str],
        *,
        reset_in: int = 60,
        times: int = 1,
    ) -> Fault:
        """403 "API rate limit exceeded" with X-RateLimit-Remaining 0 and a reset time."""
        headers = {
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(time.time()) + reset_in),
        }
        message = "API rate limit exceeded for installation ID 1001."
        return cls.status(method, path, 403, message=message, times=times, headers=headers)

    @classmethod
    def drop(
        cls,
        method: str,
        path: str | re.Pattern[str],
        *,
        when: Literal["before", "after"] = "before",
        times: int = 1,
    ) -> Fault:
        """Close the connection without any answer."""
        return cls(method, path, None, when, times, drop_connection=True)

    def matches(self, method: str, route: str, when: str) -> bool:
        return (
            self.fired < self.times
            and self.when == when
            and self.method in {"*", method.upper()}
            and self._regex.fullmatch(route) is not None
        )

    def describe(self) -> str:
        what = "drop" if self.drop_connection else f"http {self.status_code}"
        return f"{what} {self.when} ({self.method} {self.path})"


_DOCS = "https://docs.github.com/rest"


class FaultBook:
    """Pending faults, taken first-added first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, method: str, route: str, when: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, route, when):
                    fault.fired += 1
                    return fault
        return None

    @property
    def pending(self) -> list[Fault]:
        with self._lock:
            return [f for f in self._faults if f.fired < f.times]
