"""`claude-e2b run`: secrets kept from the sandbox and from the checkout; setup and verify."""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

import pytest

from tests.e2e.test_run_local import CANARY_KEY, SCENARIOS, make_repo, run_args, run_cli
from tests.gitrepo import commit_all
from tests.stand_ins.anthropic_server import ScriptedAnthropic

pytestmark = pytest.mark.e2e


def _github_token() -> str:
    # Built at run time so no token-shaped string is ever committed.
    alphabet = string.ascii_letters + string.digits
    rng = random.Random(7)
    return "gh" + "p_" + "".join(rng.choice(alphabet) for _ in range(36))


def _args(repo: Path, out: Path) -> list[str]:
    return run_args(repo, repo / "PLAN.md", out)


def _commit(repo: Path, plan_front: str) -> None:
    plan = repo / "PLAN.md"
    plan.write_text(f"---\n{plan_front}---\nDo the scripted work.\n\n- [ ] Work\n")
    (repo / "settings.py").write_text(f'TOKEN = "{_github_token()}"\n')
    commit_all(repo, "more")


LIST_FILES = {
    "turns": [
        {
            "tool_uses": [
                {
                    "name": "Bash",
                    "input": {
                        "command": "ls -a {cwd} > {cwd}/listing.txt",
                        "description": "List the files",
                    },
                }
            ]
        }
    ],
    "final": {"text": "Listed."},
}


def test_a_file_with_a_secret_is_not_uploaded(tmp_path, cli_env):
    """`secrets: exclude` (the default): the file stays on the runner; the hit is reported."""
    repo = make_repo(tmp_path / "repo")
    _commit(repo, "title: list\n")
    out = tmp_path / "out"
    with ScriptedAnthropic(LIST_FILES) as api:
        cli_env["ANTHROPIC_BASE_URL"] = api.url
        done = run_cli(_args(repo, out), cli_env)
    assert done.returncode == 0, done.stderr[-3000:]
    listing = (repo / "listing.txt").read_text().split()
    assert "README.md" in listing
    assert "settings.py" not in listing
    assert ".env" not in listing
    assert (repo / "settings.py").exists()  # not deleted on the way back either
    result = json.loads((out / "result.json").read_text())
    assert [c["path"] for c in result["changes"]] == ["listing.txt"]
    assert any(
        w.startswith("secret found before upload: settings.py:1: github")
        for w in result["warnings"]
    )
    assert _github_token() not in (out / "result.json").read_text() + done.stdout + done.stderr


def test_secrets_fail_blocks_the_run_before_any_sandbox(tmp_path, cli_env):
    """`secrets: fail`: status blocked, exit 1, and no sandbox was ever started."""
    repo = make_repo(tmp_path / "repo")
    _commit(repo, "secrets: fail\n")
    out = tmp_path / "out"
    with ScriptedAnthropic(LIST_FILES) as api:
        cli_env["ANTHROPIC_BASE_URL"] = api.url
        done = run_cli(_args(repo, out), cli_env)
        assert api.requests == []
    assert done.returncode == 1
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "blocked"
    assert "secrets: fail" in done.stderr
    assert not (Path(cli_env["CLAUDE_E2B_STATE_DIR"]) / "localbox").exists() or not list(
        (Path(cli_env["CLAUDE_E2B_STATE_DIR"]) / "localbox").glob("*.json")
    )


def test_leaked_key_and_protected_paths_are_refused_on_the_way_back(tmp_path, cli_env):
    """A file with the run's own key and a workflow file are listed as skipped, not applied."""
    repo = make_repo(tmp_path / "repo")
    scenario = {
        "turns": [
            {
                "tool_uses": [
                    {"name": "Write", "input": {"file_path": "{cwd}/ok.txt", "content": "fine\n"}},
                    {
                        "name": "Write",
                        "input": {
                            "file_path": "{cwd}/leak.txt",
                            "content": f"ANTHROPIC_API_KEY={CANARY_KEY}\n",
                        },
                    },
                    {
                        "name": "Write",
                        "input": {
                            "file_path": "{cwd}/.github/workflows/evil.yml",
                            "content": "on: push\n",
                        },
                    },
                ]
            }
        ],
        "final": {"text": "Wrote three files."},
    }
    out = tmp_path / "out"
    with ScriptedAnthropic(scenario) as api:
        cli_env["ANTHROPIC_BASE_URL"] = api.url
        done = run_cli(_args(repo, out), cli_env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (repo / "ok.txt").read_text() == "fine\n"
    assert not (repo / "leak.txt").exists()
    assert not (repo / ".github").exists()
    result = json.loads((out / "result.json").read_text())
    skipped = {s["path"]: s["reason"] for s in result["skipped_changes"]}
    assert set(skipped) == {"leak.txt", ".github/workflows/evil.yml"}
    assert "run-secret" in skipped["leak.txt"]
    assert "protected" in skipped[".github/workflows/evil.yml"]
    for name in ("result.json", "transcript.jsonl", "summary.md"):
        assert CANARY_KEY not in (out / name).read_text()
    assert CANARY_KEY not in done.stdout + done.stderr


def test_setup_and_verify_results_are_reported(tmp_path, cli_env):
    """Setup runs before the agent; verify's exit code and output tail reach result.json."""
    repo = make_repo(tmp_path / "repo")
    (repo / "PLAN.md").write_text(
        "---\nsetup: ['echo prepared > /tmp/setup-marker']\n"
        "verify: 'cat /tmp/setup-marker && test -f HELLO_FROM_CLAUDE.md && echo verified'\n"
        "---\nSay hello.\n"
    )
    out = tmp_path / "out"
    with ScriptedAnthropic(SCENARIOS / "demo.yaml") as api:
        cli_env["ANTHROPIC_BASE_URL"] = api.url
        done = run_cli(_args(repo, out), cli_env)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["verify"]["exit_code"] == 0
    assert result["verify"]["output_tail"] == "prepared\nverified\n"


def test_a_failing_setup_stops_the_run_with_its_output(tmp_path, cli_env):
    """A setup command that fails ends the run before the agent, showing why."""
    repo = make_repo(tmp_path / "repo")
    (repo / "PLAN.md").write_text("---\nsetup: ['echo broken-setup >&2; exit 4']\n---\nWork.\n")
    out = tmp_path / "out"
    with ScriptedAnthropic(SCENARIOS / "demo.yaml") as api:
        cli_env["ANTHROPIC_BASE_URL"] = api.url
        done = run_cli(_args(repo, out), cli_env)
        assert api.main_requests == []
    assert done.returncode == 1
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "failed"
    assert "setup command failed (exit 4)" in done.stderr
    assert "broken-setup" in done.stderr
