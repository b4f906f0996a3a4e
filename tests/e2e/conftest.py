"""Fixtures for end-to-end runs of the claude-e2b command."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.test_run_local import CANARY_KEY


@pytest.fixture
def cli_env(tmp_path: Path, claude_bin: Path) -> dict[str, str]:
    """The environment of a run: the test's state dir, the canary key, nothing of the host's."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "E2B_", "GITHUB_", "CLAUDE_"))
    }
    env.update(
        CLAUDE_E2B_CLAUDE_BIN=str(claude_bin),
        CLAUDE_E2B_STATE_DIR=str(tmp_path / "state"),
        CLAUDE_E2B_DB=str(tmp_path / "history.sqlite3"),
        ANTHROPIC_API_KEY=CANARY_KEY,
    )
    return env
