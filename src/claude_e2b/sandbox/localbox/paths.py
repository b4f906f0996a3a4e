"""Sandbox paths ↔ host paths under the throwaway root, refusing escapes.

The sandbox sees one file system whose "/" is ROOT on the host. Symlinks are
resolved the way the sandbox would see them (an absolute target starts again at
ROOT), so a link a command made can never make the server touch a host file; a
".." that would climb above the sandbox's "/" is refused instead of clamped,
because it can only come from a confused or hostile caller.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path

USER_HOME = "/home/user"
ROOT_HOME = "/root"
# Linux gives up after 40 links as well (ELOOP).
_MAX_LINKS = 40


class PathEscapeError(ValueError):
    """A sandbox path that leaves the sandbox's root or cannot be a path at all."""


def home_of(user: str) -> str:
    """The home directory of a sandbox user ("root" or anyone else → /home/user)."""
    return ROOT_HOME if user == "root" else USER_HOME


def absolute(path: str, user: str) -> str:
    """The normalised absolute sandbox path; relative ones start at the user's home.

    Raises PathEscapeError for an empty path, a NUL byte, or ".." above "/".
    """
    if not path or "\0" in path:
        raise PathEscapeError(f"invalid path {path!r}")
    joined = path if path.startswith("/") else f"{home_of(user)}/{path}"
    return "/" + "/".join(_normal_parts(joined))


def _normal_parts(path: str) -> list[str]:
    parts: list[str] = []
    for part in path.split("/"):
        if part in {"", "."}:
            continue
        if part == "..":
            if not parts:
                raise PathEscapeError(f"path {path!r} leaves the sandbox root")
            parts.pop()
        else:
            parts.append(part)
    return parts


@dataclass(frozen=True)
class SandboxFS:
    """Maps sandbox paths onto the host directory ``root``."""

    root: Path

    def host(self, path: str, user: str, *, follow_last: bool = True) -> Path:
        """The host path for a sandbox path, with symlinks resolved inside the root.

        ``follow_last=False`` leaves a final symlink alone (for remove/rename/stat of
        the link itself). Raises PathEscapeError when the path escapes the root.
        """
        pending = _normal_parts(absolute(path, user))
        resolved: list[str] = []
        links = 0
        while pending:
            part = pending.pop(0)
            candidate = self.root.joinpath(*resolved, part)
            if candidate.is_symlink() and (pending or follow_last):
                links += 1
                if links > _MAX_LINKS:
                    raise PathEscapeError(f"too many levels of symbolic links in {path!r}")
                resolved, pending = _follow(str(candidate.readlink()), resolved, pending, path)
            else:
                resolved.append(part)
        return self.root.joinpath(*resolved)

    def sandbox_path(self, host: Path) -> str:
        """The sandbox path of a host path under the root."""
        rel = host.relative_to(self.root).as_posix()
        return "/" if rel == "." else f"/{rel}"


def _follow(
    target: str, resolved: list[str], pending: list[str], original: str
) -> tuple[list[str], list[str]]:
    """Splice a link target into the walk: absolute targets restart at the root."""
    base = [] if target.startswith("/") else list(resolved)
    for part in target.split("/"):
        if part in {"", "."}:
            continue
        if part == "..":
            if not base:
                raise PathEscapeError(f"a symlink in {original!r} leaves the sandbox root")
            base.pop()
        else:
            base.append(part)
    # The target's own components may be links too: walk them again from the root.
    return [], [*base, *pending]


def join(parent: str, name: str) -> str:
    """Join a sandbox directory path and an entry name."""
    return posixpath.join(parent, name)
