"""Fault injection for tests: dropped streams, failing uploads, slowness, ill health.

Only a server started for tests (``--test-faults``; ``LocalBoxOptions.test_faults``)
serves ``/localbox/faults`` or takes ``--faults`` at start; any other server keeps
these all off, and the route does not exist.

Keys (all optional; ``update`` merges, so a test can switch one off with 0/false):

- ``drop_output_after_bytes`` (int): cut the HTTP connection of the next
  ``drop_output_count`` (default 1) command output streams (Start/Connect) once
  that many response bytes went out. The command keeps running, as after a
  network drop.
- ``upload_errors`` (int): answer HTTP 500 to that many coming uploads, only those
  whose sandbox path matches ``upload_error_glob`` (fnmatch) when it is set.
- ``delay_s`` (float): delay every answer except /localbox/* by that many seconds.
- ``unhealthy`` (bool): /health answers 502 "sandbox was not found", which the
  SDK reads as "not running".
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


@dataclass
class Faults:
    """The faults in force; mutated by /localbox/faults and consumed as they fire."""

    drop_output_after_bytes: int = 0
    drop_output_count: int = 1
    upload_errors: int = 0
    upload_error_glob: str = ""
    delay_s: float = 0.0
    unhealthy: bool = False

    def update(self, changes: Mapping[str, Any]) -> None:
        """Merge ``changes`` in. Raises ValueError (unknown key) or TypeError (wrong type)."""
        known = {f.name: f.type for f in fields(self)}
        unknown = sorted(set(changes) - set(known))
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

    def take_upload_error(self, sandbox_path: str) -> bool:
        """Whether this upload must fail; counts the fault down when it fires."""
        if self.upload_errors <= 0:
            return False
        if self.upload_error_glob and not fnmatch.fnmatch(sandbox_path, self.upload_error_glob):
            return False
        self.upload_errors -= 1
        return True


def _coerce(key: str, current: object, value: object) -> object:
    """Check ``value`` against the type of the current value (bool before int)."""
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
