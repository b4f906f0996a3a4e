"""Sandbox paths ↔ host paths under the throwaway root, refusing escapes.

The sandbox sees one file system whose "/" is ROOT on the host. Symlinks are
resolved the way the sandbox would see them (an absolute target starts again at
ROOT), so a link a command made can never make the server touch a host file; a
".." that would climb above the sandbox's "/" is refused instead of clamped,
because it can only come from a confused or hostile caller. The walk itself is
safe_fs's: by descriptors, never by a host path a command could change meanwhile.
"""

from __future__ import annotations

import posixpath
from contextlib import AbstractContextManager
from pathlib import Path

from .safe_fs import Entry, PathEscapeError, SafeRoot

__all__ = ["ROOT_HOME", "USER_HOME", "PathEscapeError", "SandboxFS", "absolute", "home_of", "join"]

USER_HOME = "/home/user"
ROOT_HOME = "/root"


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


class SandboxFS:
    """The sandbox's file system: its paths, resolved on the host under ``root``.

    Only descriptors leave it (see safe_fs): no host path is ever built from a
    sandbox path, so a command swapping in a symlink cannot redirect the server.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.safe = SafeRoot(root)

    def locate(
        self,
        path: str,
        user: str,
        *,
        follow_last: bool = True,
        make_parents: bool = False,
        owner: int | None = None,
    ) -> AbstractContextManager[Entry]:
        """The ``Entry`` of a sandbox path of ``user`` (see ``SafeRoot.locate``).

        Raises PathEscapeError, FileNotFoundError, NotADirectoryError.
        """
        return self.safe.locate(
            absolute(path, user), follow_last=follow_last, make_parents=make_parents, owner=owner
        )


def join(parent: str, name: str) -> str:
    """Join a sandbox directory path and an entry name."""
    return posixpath.join(parent, name)
