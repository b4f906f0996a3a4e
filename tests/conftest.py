"""Fixtures shared by every layer of tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from tests.stand_ins.claude_cli import find_claude

# On CI the property tests draw the same examples every run, so a submission's result
# does not depend on luck; elsewhere they explore new examples each time.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _git_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Git in tests sees no user or system config and no inherited repository."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for key in ("GIT_DIR", "GIT_INDEX_FILE", "GIT_WORK_TREE"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture(autouse=True)
def _private_history(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Runs started by a test (and their children) record into a history of the test's
    own, never the user's: a shared one would also count their sandboxes for the limits."""
    data = tmp_path_factory.mktemp("xdg-data")
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    monkeypatch.setenv("CLAUDE_E2B_DB", str(data / "claude-e2b" / "history.sqlite3"))


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    """Path of the real Claude Code binary; a test that needs it fails without it."""
    return find_claude()
