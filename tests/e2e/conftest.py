"""Fixtures for end-to-end runs of the claude-e2b command."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.environment import user_env


@pytest.fixture
def cli_env(tmp_path: Path, claude_bin: Path) -> dict[str, str]:
    """The environment of a run: the test's state dir, the canary key, nothing of the host's."""
    return user_env(tmp_path, claude_bin)
