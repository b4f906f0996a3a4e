"""The host programs the server runs for a sandbox, found once, by absolute path.

The server never looks a helper up through a caller's PATH: a command's ``envs``
may set PATH (to /tmp/evil, say), and a helper found through it would run as the
server's user — root on CI — outside the sandbox. ``resolve_helpers`` searches a
fixed PATH of system directories once, when the server starts; every argv names
the absolute path it found. Those directories are also bound into the sandbox's
file system (rootfs.py), so the same path names the same program on both sides.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

# System directories only: bound read-only into every sandbox, writable by root alone.
SAFE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# The whole environment of every helper (and of the shell that starts a command,
# until it reads the command's own environment): nothing of the server's or the caller's.
HELPER_ENV: Mapping[str, str] = MappingProxyType({"PATH": SAFE_PATH})
NAMES = ("setpriv", "nsenter", "unshare", "sh", "slirp4netns")


class HelperMissingError(OSError):
    """A helper the chosen isolation needs is not installed."""


@dataclass(frozen=True)
class Helpers:
    """Absolute paths of the helpers this machine has."""

    paths: Mapping[str, str] = field(default_factory=dict)

    def has(self, *names: str) -> bool:
        """Whether every one of ``names`` was found."""
        return all(name in self.paths for name in names)

    def path(self, name: str) -> str:
        """The absolute path of ``name``. Raises HelperMissingError if it was not found."""
        try:
            return self.paths[name]
        except KeyError:
            raise HelperMissingError(
                f"{name} is not installed in {SAFE_PATH.replace(':', ', ')}; "
                "scripts/bootstrap installs what the local sandbox needs"
            ) from None


def resolve_helpers(path: str = SAFE_PATH) -> Helpers:
    """Find each helper in ``path`` (never the environment's PATH)."""
    found = {name: shutil.which(name, path=path) for name in NAMES}
    return Helpers(MappingProxyType({name: p for name, p in found.items() if p}))
