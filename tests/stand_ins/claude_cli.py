"""Where the pinned Claude Code CLI is, for tests and stand-ins."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CLAUDE_CODE_VERSION = "2.1.328"
_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "claude-e2b"
BOOTSTRAP_CLAUDE = (
    _CACHE
    / f"claude-code-{CLAUDE_CODE_VERSION}"
    / "node_modules"
    / "@anthropic-ai"
    / "claude-code"
    / "bin"
    / "claude.exe"
)


def find_claude() -> Path:
    """The pinned Claude Code CLI: $CLAUDE_E2B_CLAUDE_BIN, scripts/bootstrap's cache, PATH."""
    explicit = os.environ.get("CLAUDE_E2B_CLAUDE_BIN")
    if explicit:
        if not (Path(explicit).is_file() and os.access(explicit, os.X_OK)):
            pytest.fail(f"CLAUDE_E2B_CLAUDE_BIN={explicit} is not an executable file")
        return Path(explicit).resolve()
    for candidate in (str(BOOTSTRAP_CLAUDE), shutil.which("claude")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate).resolve()
    pytest.fail(
        "the Claude Code CLI is not installed: run scripts/bootstrap (scripts/test does), "
        "or set CLAUDE_E2B_CLAUDE_BIN to the binary of @anthropic-ai/claude-code@"
        + CLAUDE_CODE_VERSION
    )
