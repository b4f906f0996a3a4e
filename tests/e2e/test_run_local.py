"""The whole run: `claude-e2b run --sandbox local --no-pr` with the real Claude Code CLI.

The real e2b SDK talks to the local sandbox server; Claude Code talks to the scripted
Messages API stand-in; the repository is a real git checkout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.gitrepo import commit_all, git, repack
from tests.stand_ins.anthropic_server import ScriptedAnthropic

SCENARIOS = Path(__file__).parents[1] / "stand_ins" / "scenarios"
# Sonnet 4.5 list prices in dollars per million tokens (input, output, cache read,
# cache write), from Anthropic's pricing page; Claude Code prices by the model it asked for.
SONNET_45 = (3.0, 15.0, 0.30, 3.75)
CANARY_KEY = "sk-ant-api03-canary-" + "c0ffee" * 8

pytestmark = pytest.mark.e2e


def make_repo(path: Path) -> Path:
    path.mkdir()
    (path / "README.md").write_text("# Demo\n\nHello world.\n")
    (path / "obsolete.txt").write_text("remove me\n")
    (path / "PLAN.md").write_text(
        "---\ntitle: Scenario plan\ntimeout-minutes: 5\n---\n"
        "Add hello.py, greet the sandbox in README.md, delete obsolete.txt.\n\n"
        "- [ ] Add hello.py\n- [ ] Something for later\n"
    )
    (path / ".env").write_text(f"ANTHROPIC_API_KEY={CANARY_KEY}\n")
    (path / ".gitignore").write_text("build/\n")
    git(path, "init", "-q", "-b", "main")
    commit_all(path, "init")
    repack(path)  # as actions/checkout leaves it: clean files go up as git objects
    return path


def expected_usage(scenario: Path) -> dict[str, int]:
    """Sum the scenario's per-turn usage, the final answer included."""
    data = yaml.safe_load(scenario.read_text())
    answers = [*data["turns"], data["final"]]
    keys = (
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
    )
    return {k: sum(int(a.get("usage", {}).get(k, 0)) for a in answers) for k in keys}


def run_args(repo: Path, plan: Path, out: Path) -> list[str]:
    """`claude-e2b run` on ``repo`` in the local sandbox, without a PR, results in ``out``."""
    return [
        "run",
        "--plan",
        str(plan),
        "--repo",
        str(repo),
        "--sandbox",
        "local",
        "--no-pr",
        "--output-dir",
        str(out),
    ]


def run_cli(
    args: list[str], env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "claude_e2b", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_run_adds_edits_deletes_and_reports(tmp_path, cli_env):
    """A scenario that adds, edits and deletes files ends applied, with a full result.json."""
    repo = make_repo(tmp_path / "repo")
    out = tmp_path / "out"
    scenario = SCENARIOS / "add_edit_delete.yaml"
    with ScriptedAnthropic(scenario) as api:
        cli_env["ANTHROPIC_BASE_URL"] = api.url
        done = run_cli(
            run_args(repo, repo / "PLAN.md", out),
            cli_env,
        )
        requests = api.main_requests
    assert done.returncode == 0, done.stderr[-3000:]

    # The repository: exactly the scripted changes.
    assert 'print("Hello from the sandbox")' in (repo / "hello.py").read_text()
    assert "Hello, sandbox world." in (repo / "README.md").read_text()
    assert not (repo / "obsolete.txt").exists()
    assert "- [x] Add hello.py" in (repo / "PLAN.md").read_text()
    status = git(repo, "status", "--porcelain")
    assert sorted(line.split(None, 1)[1] for line in status.splitlines()) == [
        "PLAN.md",
        "README.md",
        "hello.py",
        "obsolete.txt",
    ]

    result = json.loads((out / "result.json").read_text())
    assert result["schema"] == 1
    assert result["status"] == "completed"
    assert result["sandbox"]["backend"] == "local"
    assert result["sandbox"]["seconds"] > 0
    changes = {c["path"]: c["status"] for c in result["changes"]}
    assert changes == {
        "hello.py": "added",
        "README.md": "modified",
        "obsolete.txt": "deleted",
        "PLAN.md": "modified",
    }
    assert result["plan"] == {
        "path": str(repo / "PLAN.md"),
        "title": "Scenario plan",
        "tasks_done_before": 0,
        "tasks_done_after": 1,
        "tasks_total": 2,
    }
    assert result["agent"]["num_turns"] >= 5
    assert result["agent"]["session_id"]
    assert "removed obsolete.txt" in result["agent"]["final_message"]

    usage = expected_usage(scenario)
    assert result["cost"]["input_tokens"] == usage["input_tokens"]
    assert result["cost"]["output_tokens"] == usage["output_tokens"]
    assert result["cost"]["cache_read_tokens"] == usage["cache_read_input_tokens"]
    assert result["cost"]["cache_write_tokens"] == usage["cache_creation_input_tokens"]
    p_in, p_out, p_read, p_write = SONNET_45
    dollars = (
        usage["input_tokens"] * p_in
        + usage["output_tokens"] * p_out
        + usage["cache_read_input_tokens"] * p_read
        + usage["cache_creation_input_tokens"] * p_write
    ) / 1e6
    assert result["cost"]["claude_usd"] == pytest.approx(dollars, rel=1e-6)

    # The transcript is the stream-json, ending in the result event.
    events = [json.loads(line) for line in (out / "transcript.jsonl").read_text().splitlines()]
    assert events[0]["type"] == "system"
    assert events[-1]["type"] == "result"
    assert (out / "summary.md").read_text().startswith("## Scenario plan")

    # .env never left the runner: the agent's first request shows no such file in git status,
    # and the key only ever travelled in the x-api-key header.
    assert requests[0].headers["x-api-key"] == CANARY_KEY
    for text in (
        done.stdout,
        done.stderr,
        (out / "result.json").read_text(),
        (out / "transcript.jsonl").read_text(),
        (out / "summary.md").read_text(),
    ):
        assert CANARY_KEY not in text


def test_plan_check_reports_file_and_line(tmp_path, cli_env):
    """`plan check` prints PATH:LINE: message and exits 2 for a bad plan."""
    plan = tmp_path / "bad.md"
    plan.write_text("---\ntitle: x\ntimeout-minuts: 5\n---\nDo it.\n")
    done = run_cli(["plan", "check", str(plan)], cli_env, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith(f"{plan}:3: ")
    assert "timeout-minutes" in done.stderr


def test_run_without_token_is_refused_before_any_work(tmp_path, cli_env):
    """Without --no-pr and without a GitHub token, `run` stops with exit 2 and says what to set."""
    repo = make_repo(tmp_path / "repo")
    done = run_cli(
        ["run", "--plan", str(repo / "PLAN.md"), "--repo", str(repo), "--sandbox", "local"],
        cli_env,
        timeout=60,
    )
    assert done.returncode == 2
    assert "GITHUB_TOKEN" in done.stderr
    assert "--no-pr" in done.stderr
    assert git(repo, "status", "--porcelain") == ""
