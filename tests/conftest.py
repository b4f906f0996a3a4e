"""Fixtures shared by every layer of tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.stand_ins.claude_cli import find_claude


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    """Path of the real Claude Code binary; a test that needs it fails without it."""
    return find_claude()
