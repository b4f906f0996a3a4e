"""Real git repositories for tests: run git, commit everything."""

from __future__ import annotations

import subprocess
from pathlib import Path

GIT_TIMEOUT_S = 60
IDENTITY = ("-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false")


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo``; its stdout without the trailing newline."""
    return subprocess.run(
        ["git", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT_S,
    ).stdout.strip()


def make_repo(root: Path, files: dict[str, bytes], *, executable: tuple[str, ...] = ()) -> Path:
    """``git init`` at ``root`` with ``files`` written (nothing committed)."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    for rel in executable:
        (root / rel).chmod(0o755)
    return root


def commit_all(repo: Path, message: str) -> str:
    """Stage everything (ignored files too) and commit; return the new commit id."""
    git(repo, "add", "-A", "-f")
    git(repo, *IDENTITY, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def repack(repo: Path) -> None:
    """Move every object into one pack, as a clone or actions/checkout leaves them."""
    git(repo, "repack", "-q", "-a", "-d")
