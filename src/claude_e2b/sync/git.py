"""Running git on the runner: one place for the argv, the timeout and the errors."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from claude_e2b.errors import SyncError, UserError

# Listing a huge monorepo can take a while on a cold cache; a hung git must still end.
GIT_TIMEOUT_S = 120.0


def run_git(
    root: Path,
    *args: str,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run git in ``root``; raises UserError when git is missing, SyncError when it hangs."""
    argv = ["git", "-c", "core.quotepath=off", "-C", str(root), *args]
    command = next((a for a in args if not a.startswith("-") and "=" not in a), "")
    try:
        with tempfile.TemporaryFile() as source:
            # From a file: subprocess feeds `input` through a pipe 512 bytes per poll,
            # a tenth of a second for a listing of 20k paths.
            source.write(stdin or b"")
            source.seek(0)
            return subprocess.run(
                argv,
                stdin=source,
                capture_output=True,
                timeout=GIT_TIMEOUT_S,
                check=False,
                env=None if env is None else {**os.environ, **env},
            )
    except FileNotFoundError as exc:
        raise UserError("git is not installed", hint="install git on the runner") from exc
    except subprocess.TimeoutExpired as exc:
        raise SyncError(f"`git {command}` ran longer than {GIT_TIMEOUT_S:.0f} s in {root}") from exc


def git_output(
    root: Path,
    *args: str,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
) -> bytes:
    """Git's stdout; raises SyncError when git fails in a repository it already accepted."""
    done = run_git(root, *args, stdin=stdin, env=env)
    if done.returncode != 0:
        said = os.fsdecode(done.stderr).strip()
        raise SyncError(f"`git {' '.join(args)}` failed in {root}: {said}")
    return done.stdout
