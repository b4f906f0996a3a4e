"""The environment a user's ``claude-e2b`` runs in, for the end-to-end tests."""

from __future__ import annotations

import os
from pathlib import Path

from tests.e2e.test_run_local import CANARY_KEY


def user_env(tmp: Path, claude_bin: Path, *, plain_git: bool = False) -> dict[str, str]:
    """The test's state dir and history, the canary key, nothing of the host's credentials.

    ``plain_git``: no global or system git configuration either.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "E2B_", "GITHUB_", "CLAUDE_"))
    }
    env.update(
        CLAUDE_E2B_CLAUDE_BIN=str(claude_bin),
        CLAUDE_E2B_STATE_DIR=str(tmp / "state"),
        CLAUDE_E2B_DB=str(tmp / "history.sqlite3"),
        ANTHROPIC_API_KEY=CANARY_KEY,
    )
    if plain_git:
        env.update(GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_NOSYSTEM="1")
    return env
