"""Fault injection for tests: dropped streams, failing transfers, a full disk, a killed sandbox.

Only a server started for tests (``--test-faults``; ``LocalBoxOptions.test_faults``)
serves ``/localbox/faults`` or takes ``--faults`` at start; any other server keeps
these all off, and the route does not exist.

Keys (all optional; ``update`` merges, so a test can switch one off with 0/false/[]):

- ``drop_output_after_bytes`` (int): cut the HTTP connection of the next
  ``drop_output_count`` (default 1) command output streams (Start/Connect) once
  that many response bytes went out. The command keeps running, as after a
  network drop.
- ``upload_errors`` (int): answer HTTP 500 to that many coming uploads;
  ``upload_error_status`` (list of HTTP statuses): answer the coming uploads with
  these, one each, before ``upload_errors`` counts. Both only for the uploads whose
  sandbox path matches ``upload_error_glob`` (fnmatch) when it is set.
- ``download_errors`` (list of HTTP statuses): answer the coming file reads with
  these, one each; only reads matching ``download_error_glob`` when it is set.
- ``drop_download_after_bytes`` (int): cut the next file read's connection once that
  many body bytes went out (once).
- ``disk_full_glob`` (str): every upload whose path matches fails as envd fails
  when the disk is full (HTTP 507 "not enough disk space available").
- ``kill_after_s`` (float): kill the sandbox that many seconds after the fault is set
  (or after the first request, when given at start), as E2B's kill does: its
  processes die and the server ends, so later calls find no sandbox.
- ``delay_s`` (float): delay every answer except /localbox/* by that many seconds.
- ``unhealthy`` (bool): /health answers 502 "sandbox was not found", which the
  SDK reads as "not running".
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

DISK_FULL_STATUS = 507
DISK_FULL_MESSAGE = "not enough disk space available"
_MIN_STATUS, _MAX_STATUS = 400, 599


@dataclass
class Faults:
    """The faults in force; mutated by /localbox/faults and consumed as they fire."""

    drop_output_after_bytes: int = 0
    drop_output_count: int = 1
    upload_errors: int = 0
    upload_error_status: list[int] = field(default_factory=list)
    upload_error_glob: str = ""
    download_errors: list[int] = field(default_factory=list)
    download_error_glob: str = ""
    drop_download_after_bytes: int = 0
    disk_full_glob: str = ""
    kill_after_s: float = 0.0
    delay_s: float = 0.0
    unhealthy: bool = False

    def update(self, changes: Mapping[str, Any]) -> None:
        """Merge ``changes`` in. Raises ValueError (unknown key) or TypeError (wrong type)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown fault keys: {', '.join(unknown)}")
        for key, value in changes.items():
            setattr(self, key, _coerce(key, getattr(self, key), value))

    def as_dict(self) -> dict[str, Any]:
        """The faults as JSON-ready data."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def take_output_drop(self) -> int:
        """Bytes after which to cut this output stream (0: don't); counts it down."""
        if self.drop_output_after_bytes <= 0 or self.drop_output_count <= 0:
            return 0
        self.drop_output_count -= 1
        return self.drop_output_after_bytes

    def take_upload_error(self, sandbox_path: str) -> int:
        """The HTTP status this upload must fail with (0: none); counts the fault down."""
        if self.disk_full_glob and fnmatch.fnmatch(sandbox_path, self.disk_full_glob):
            return DISK_FULL_STATUS
        if self.upload_error_glob and not fnmatch.fnmatch(sandbox_path, self.upload_error_glob):
            return 0
        if self.upload_error_status:
            return self.upload_error_status.pop(0)
        if self.upload_errors > 0:
            self.upload_errors -= 1
            return 500
        return 0

    def take_download_error(self, sandbox_path: str) -> int:
        """The HTTP status this file read must fail with (0: none); counts the fault down."""
        if not self.download_errors:
            return 0
        if self.download_error_glob and not fnmatch.fnmatch(sandbox_path, self.download_error_glob):
            return 0
        return self.download_errors.pop(0)

    def take_download_drop(self) -> int:
        """Body bytes after which to cut this file read (0: don't); fires once."""
        limit, self.drop_download_after_bytes = self.drop_download_after_bytes, 0
        return max(limit, 0)


def _coerce(key: str, current: object, value: object) -> object:
    """Check ``value`` against the type of the current value (bool before int)."""
    if isinstance(current, list):
        return _statuses(key, value)
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise TypeError(f"fault {key} must be true or false")
        return value
    if isinstance(current, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"fault {key} must be an integer")
        return value
    if isinstance(current, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"fault {key} must be a number")
        return float(value)
    if not isinstance(value, str):
        raise TypeError(f"fault {key} must be a string")
    return value


def _statuses(key: str, value: object) -> list[int]:
    """A list of HTTP error statuses (400-599). Raises TypeError."""
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and _MIN_STATUS <= v <= _MAX_STATUS
        for v in value
    ):
        raise TypeError(f"fault {key} must be a list of HTTP error statuses (400-599)")
    return list(value)
