"""Commands import only what they use: `plan check`, `--help`, `list` and `history`
never load the e2b SDK (nor PyGithub, nor Jinja2); `plan check` not even the log;
`run --no-pr` never loads PyGithub, and Jinja2 only once the run is over."""

from __future__ import annotations

import json
import os
import random
import string
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.gitrepo import commit_all, git, make_repo

PROBE = """
import json, os, sys
from claude_e2b.cli import dispatch
try:
    code = dispatch(sys.argv[1:], os.environ)
except SystemExit as exc:
    code = exc.code
names = ("e2b", "github", "jinja2", "httpx", "structlog", "rich")
loaded = sorted(m for m in names if m in sys.modules)
sys.stderr.write("LOADED " + json.dumps({"code": code, "loaded": loaded}) + "\\n")
"""


def _loaded(args: list[str], tmp_path: Path, extra: Mapping[str, str] | None = None) -> dict:
    env = dict(os.environ, CLAUDE_E2B_DB=str(tmp_path / "h.sqlite3"),
               CLAUDE_E2B_STATE_DIR=str(tmp_path / "state"), **(extra or {}))  # fmt: skip
    env.pop("E2B_API_KEY", None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    line = next(x for x in done.stderr.splitlines() if x.startswith("LOADED "))
    return json.loads(line.removeprefix("LOADED "))


@pytest.mark.parametrize("args", [["--help"], ["list"], ["history"], ["list", "--json"]])
def test_light_commands_never_load_the_sdks(args: list[str], tmp_path: Path) -> None:
    found = _loaded(args, tmp_path)
    assert found["code"] == 0
    assert not {"e2b", "github", "jinja2", "httpx"} & set(found["loaded"])


def test_plan_check_loads_neither_the_sdks_nor_the_log(tmp_path: Path) -> None:
    plan = tmp_path / "PLAN.md"
    plan.write_text("---\ntitle: x\n---\nDo it.\n")
    found = _loaded(["plan", "check", str(plan)], tmp_path)
    assert found["code"] == 0
    assert not {"e2b", "github", "jinja2", "httpx", "structlog", "rich"} & set(found["loaded"])


def test_importing_the_run_command_loads_no_sdk() -> None:
    """What `claude-e2b run` imports before its pipeline starts holds no PyGithub, no Jinja2
    and not the e2b SDK (loaded beside the sandbox's start, in the thread that creates it)."""
    probe = (
        "import json, sys, claude_e2b.commands.run\n"
        "print(json.dumps(sorted(m for m in ('github', 'jinja2', 'e2b') if m in sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(done.stdout) == []


def _blocked_repo(root: Path) -> Path:
    """A repository whose plan says `secrets: fail` and holds a token: the run stops at the
    scan, before any sandbox or agent, and still writes result.json and summary.md."""
    alphabet, rng = string.ascii_letters + string.digits, random.Random(3)
    token = "gh" + "p_" + "".join(rng.choice(alphabet) for _ in range(36))  # built: none committed
    repo = make_repo(root, {
        "PLAN.md": b"---\ntitle: Imports\nsecrets: fail\n---\nDo it.\n",
        "settings.py": f'TOKEN = "{token}"\n'.encode(),
    })  # fmt: skip
    commit_all(repo, "init")
    git(repo, "remote", "add", "origin", "http://127.0.0.1:9/owner/name.git")  # never reached
    return repo


def _run_blocked(tmp_path: Path, *flags: str, extra: Mapping[str, str] | None = None) -> dict:
    repo = _blocked_repo(tmp_path / "repo")
    claude = tmp_path / "claude"  # never started: the run is blocked before the sandbox
    claude.write_text("#!/bin/sh\nexit 1\n")
    out = tmp_path / "out"
    args = ["run", "--plan", str(repo / "PLAN.md"), "--repo", str(repo), "--sandbox", "local",
            "--output-dir", str(out), *flags]  # fmt: skip
    env = {"ANTHROPIC_API_KEY": "sk-ant-imports-test", "CLAUDE_E2B_CLAUDE_BIN": str(claude)}
    found = _loaded(args, tmp_path, {**env, **(extra or {})})
    assert json.loads((out / "result.json").read_text())["status"] == "blocked"
    assert (out / "summary.md").read_text().strip()
    return found


def test_a_no_pr_run_never_loads_pygithub(tmp_path: Path) -> None:
    """`run --no-pr` runs its pipeline (to the scan) and writes its files without PyGithub."""
    found = _run_blocked(tmp_path, "--no-pr")
    assert found["code"] == 1
    assert "github" not in found["loaded"]
    assert "jinja2" in found["loaded"]  # summary.md was rendered, after the run


def test_a_run_that_publishes_still_loads_pygithub(tmp_path: Path) -> None:
    """Without `--no-pr` the run opens the GitHub API after the pipeline (nothing to publish
    here, so no request is made): the deferred import of PyGithub works."""
    found = _run_blocked(tmp_path, extra={"GITHUB_TOKEN": "imports-test-token"})
    assert found["code"] == 1
    assert "github" in found["loaded"]


def test_the_local_sandbox_server_starts_without_the_sdk_client() -> None:
    """The server's entry point loads envd's generated modules, not e2b's client (0.4 s)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "claude_e2b.sandbox.localbox", "--help"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--lifetime" in done.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert "e2b.envd.process.process_connect" in imported
    assert "e2b.envd.filesystem.filesystem_connect" in imported
    client = {m for m in imported if m.startswith("e2b.") and not m.startswith("e2b.envd")}
    assert client == set()
    assert not {"e2b.envd.api", "e2b.envd.rpc", "httpx"} & imported
