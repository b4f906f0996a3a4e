"""Where running local sandboxes announce themselves: one JSON file per sandbox.

The server writes ``<dir>/<sandbox_id>.json`` once it is ready and removes it at
exit; readers prune entries whose server pid is gone (a server killed by SIGKILL
cannot clean up after itself). The directory is a parameter everywhere; its usual
place, ``<state dir>/localbox``, is worked out here from an environment mapping the
two edges hand in (``claude-e2b`` and a server started by hand), so they agree.

An entry holds the server's API key (the control routes': create, connect, kill,
keep), so that the user's other commands — ``claude-e2b logs``, ``download``,
``kill`` — can reach a sandbox their run started; the directory is 0700 and each
entry 0600, in the user's state directory, which no sandbox sees (its root is its
own). envd's access token is never written: ``connect`` hands it out, to the key.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def state_dir(environ: Mapping[str, str]) -> Path:
    """claude-e2b's state directory: $CLAUDE_E2B_STATE_DIR, else $XDG_STATE_HOME/claude-e2b."""
    if environ.get("CLAUDE_E2B_STATE_DIR"):
        return Path(environ["CLAUDE_E2B_STATE_DIR"])
    base = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "claude-e2b"


def registry_dir(state: Path) -> Path:
    """Where the local sandboxes of a state directory announce themselves."""
    return state / "localbox"


@dataclass(frozen=True)
class LocalBoxInfo:
    """A running local sandbox, as its registry entry describes it."""

    sandbox_id: str
    url: str
    pid: int
    root: Path
    metadata: Mapping[str, str]
    started_at: str
    end_at: str
    api_key: str = field(default="", repr=False)  # the server's control API key

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LocalBoxInfo:
        """Build from a registry entry. Raises KeyError/TypeError/ValueError if malformed."""
        return cls(
            sandbox_id=str(data["sandbox_id"]),
            url=str(data["url"]),
            pid=int(data["pid"]),
            root=Path(data["root"]),
            metadata={str(k): str(v) for k, v in dict(data["metadata"]).items()},
            started_at=str(data["started_at"]),
            end_at=str(data["end_at"]),
            api_key=str(data.get("api_key", "")),
        )


_DIR_MODE = 0o700
_ENTRY_MODE = 0o600


def private_dir(directory: Path) -> None:
    """Make ``directory`` (and its parents) and close it to others, when it is ours."""
    directory.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
    # One made by an older version, or under a wide umask: tighten it if we own it.
    with contextlib.suppress(PermissionError):
        directory.chmod(_DIR_MODE)


def write_entry(directory: Path, info: Mapping[str, Any]) -> None:
    """Write (or replace) a sandbox's entry atomically, readable by its owner only."""
    private_dir(directory)
    target = directory / f"{info['sandbox_id']}.json"
    temporary = target.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, _ENTRY_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), _ENTRY_MODE)
        handle.write(json.dumps(info, indent=2))
    temporary.replace(target)


def remove_entry(directory: Path, sandbox_id: str) -> None:
    """Forget a sandbox."""
    (directory / f"{sandbox_id}.json").unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """Whether a process exists (and is not a zombie)."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return False
    return status.rsplit(")", 1)[-1].split()[0] != "Z"


def read_entries(directory: Path) -> list[LocalBoxInfo]:
    """Live entries, oldest first; dead or unreadable ones are removed."""
    found: list[LocalBoxInfo] = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            info = LocalBoxInfo.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
            continue
        if pid_alive(info.pid):
            found.append(info)
        else:
            path.unlink(missing_ok=True)
    return sorted(found, key=lambda info: info.started_at)
