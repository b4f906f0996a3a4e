"""Canary secrets through a whole run of the Action: none may appear in any output.

The job holds canary values in every place a secret lives: the anthropic-api-key
and e2b-api-key inputs, the workflow token (github.token, which pushes and opens
the PR), E2B_API_KEY in the job's env, and an extra secret of the user's
(DEPLOY_TOKEN). Triggered by an issue comment, the run reacts, comments, pushes
and opens a pull request. The scripted agent, through the real Claude Code CLI
in the local sandbox, prints its environment and the key, writes the key into a
changed file, a new file, a file name and stderr.

Then every output is searched for every canary (and the token's git form): what
each step printed (::add-mask:: lines aside), the job's log as GitHub shows it (no
value shown before its mask), the job summary and outputs, every file and file name
under the job's HOME, state directory, runner temp (result.json, summary.md,
transcript.jsonl, audit files, the run history database) and workspace, the pull
request's branch on GitHub, its body, the comments, and every request GitHub
received. New outputs under those directories are covered without changes here.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from claude_e2b.github.api import basic_credential
from tests.e2e.test_action import REPO, action_dir, comment_payload
from tests.gitrepo import commit_all, git
from tests.stand_ins.actions import TLS_VARIABLES, ActionRun, host_environment, run_composite_action
from tests.stand_ins.anthropic_server import ScriptedAnthropic
from tests.stand_ins.github_server import GitHubStandIn

__all__ = ["action_dir"]  # the session fixture that builds the action's venv, shared

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ANTHROPIC_KEY = "sk-ant-api03-canary-anthropic-" + "a1" * 20
GITHUB_TOKEN = "ghs_canarygithubtoken" + "b2" * 10
E2B_KEY = "e2b_canary_" + "c3" * 20
DEPLOY_TOKEN = "deploy-canary-" + "d4" * 16
CANARIES = {
    "anthropic-api-key": ANTHROPIC_KEY,
    "github.token": GITHUB_TOKEN,
    "github.token as git sends it": basic_credential(GITHUB_TOKEN),
    "e2b-api-key": E2B_KEY,
    "DEPLOY_TOKEN": DEPLOY_TOKEN,
}
NOT_FOR_THE_SANDBOX = (GITHUB_TOKEN, E2B_KEY, DEPLOY_TOKEN)
PLAN = "---\ntitle: Say hello\n---\nAdd hello.py.\n"
USAGE = {"input_tokens": 400, "output_tokens": 40}
SCENARIO = {
    "turns": [
        {
            "text": "Let me look at my environment first.",
            "tool_uses": [
                {
                    "name": "Bash",
                    "input": {
                        "command": (
                            'echo "key=$ANTHROPIC_API_KEY"; '
                            'echo "gh=$GITHUB_TOKEN e2b=$E2B_API_KEY deploy=$DEPLOY_TOKEN"; '
                            "env | sort; "
                            "for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $f; done "
                            "2>/dev/null | sort -u"
                        ),
                        "description": "Print every secret I can reach",
                    },
                }
            ],
            "usage": USAGE,
        },
        {
            "text": "Now I will keep the key where it would travel.",
            "tool_uses": [
                {
                    "name": "Bash",
                    "input": {
                        "command": (
                            "printf 'ANTHROPIC_API_KEY=%s\\n' \"$ANTHROPIC_API_KEY\" "
                            "> {cwd}/leaked.env; "
                            "printf '\\nThe key: %s\\n' \"$ANTHROPIC_API_KEY\" >> {cwd}/README.md; "
                            'touch "{cwd}/notes-$ANTHROPIC_API_KEY.txt"; '
                            'echo "stderr has $ANTHROPIC_API_KEY" >&2; echo written'
                        ),
                        "description": "Write the key into files",
                    },
                }
            ],
            "usage": USAGE,
        },
        {
            "tool_uses": [
                {
                    "name": "Write",
                    "input": {"file_path": "{cwd}/hello.py", "content": "print('hello')\n"},
                }
            ],
            "usage": USAGE,
        },
    ],
    "final": {"text": "Done: added hello.py.", "usage": USAGE},
}


@pytest.fixture
def gh(tmp_path: Path) -> Iterator[GitHubStandIn]:
    """The GitHub stand-in whose workflow token is the canary, with octo/app and alice."""
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "README.md").write_text("# Demo\n")
    (seed / "PLAN.md").write_text(PLAN)
    git(seed, "init", "-q", "-b", "main")
    commit_all(seed, "init")
    with GitHubStandIn(tmp_path / "github", token=GITHUB_TOKEN) as stand_in:
        stand_in.create_repo(REPO, source=seed)
        stand_in.add_user("alice", permission="write")
        yield stand_in


def run_job(
    gh: GitHubStandIn, action: Path, claude_bin: Path, tmp: Path, workspace: Path
) -> tuple[ActionRun, list[str]]:
    """The action on an issue comment by alice; its run and the bodies the model received."""
    payload = comment_payload(gh, "alice", "/claude-e2b run PLAN.md", "CONTRIBUTOR")
    host = host_environment(*TLS_VARIABLES) | {"HOME": str(tmp / "home")}
    with ScriptedAnthropic(SCENARIO) as api:
        run = run_composite_action(
            action,
            workspace=workspace,
            inputs={
                "plan": "PLAN.md",
                "anthropic-api-key": ANTHROPIC_KEY,
                "e2b-api-key": E2B_KEY,
                "sandbox": "local",
            },
            github={
                "token": GITHUB_TOKEN,
                "api_url": gh.api_url,
                "server_url": gh.server_url,
                "graphql_url": gh.graphql_url,
                "repository": REPO,
                "run_id": "777",
            },
            env={
                "ANTHROPIC_BASE_URL": api.url,
                "CLAUDE_E2B_CLAUDE_BIN": str(claude_bin),
                "CLAUDE_E2B_STATE_DIR": str(tmp / "state"),
                "CLAUDE_E2B_DB": str(tmp / "history.sqlite3"),
                "UV_PROJECT_ENVIRONMENT": str(action / ".venv"),
                "UV_CACHE_DIR": str(Path.home() / ".cache" / "uv"),
                "E2B_API_KEY": E2B_KEY,
                "DEPLOY_TOKEN": DEPLOY_TOKEN,
            },
            event_name="issue_comment",
            event_payload=payload,
            secrets=[ANTHROPIC_KEY, E2B_KEY, DEPLOY_TOKEN],
            runner_temp=tmp / "runner-temp",
            host_env=host,
            timeout=300,
        )
        bodies = [json.dumps(r.body) for r in api.requests]
    return run, bodies


def printed(run: ActionRun) -> dict[str, str]:
    """What each step printed (as printed, ::add-mask:: commands aside), the job's log as
    GitHub shows it (the runner itself echoes each step's inputs and env, masked), the
    summary and the outputs."""
    texts = {"log": run.masked_log(), "summary": run.summary, "outputs": repr(run.outputs)}
    for step in run.steps:
        texts[f"step {step.context_name} stdout"] = step.stdout
        texts[f"step {step.context_name} stderr"] = step.stderr
    return {
        where: "\n".join(line for line in text.splitlines() if "::add-mask::" not in line)
        for where, text in texts.items()
    }


def hits(where: str, text: str) -> list[str]:
    """One line per canary found in ``text``: where, and the words around it."""
    found = []
    for name, value in CANARIES.items():
        at = text.find(value)
        if at >= 0:
            around = text[max(at - 60, 0) : at + len(value) + 20].replace(value, f"<{name}>")
            found.append(f"{name} in {where}: ...{around!r}...")
    return found


def files_under(*roots: Path) -> Iterator[tuple[Path, bytes]]:
    """Every regular file (and every name) under ``roots``, .git objects aside."""
    for root in roots:
        for path in sorted(root.rglob("*")) if root.exists() else ():
            if ".git" in path.relative_to(root).parts:
                continue
            yield path, path.name.encode()
            if path.is_file() and not path.is_symlink():
                yield path, path.read_bytes()


def branch_contents(gh: GitHubStandIn) -> str:
    """Every path and blob of every branch on GitHub, and the commit messages."""
    refs = gh.git(REPO, "for-each-ref", "--format=%(refname)", "refs/heads").split()
    parts = [gh.git(REPO, "log", "--format=%B", *refs)]
    for ref in refs:
        parts.append(gh.git(REPO, "ls-tree", "-r", "--name-only", ref))
        parts.append(gh.git(REPO, "grep", "-I", "-e", ".", ref, "--", ".") or "")
    return "\n".join(parts)


def test_no_canary_reaches_any_output(gh, action_dir, claude_bin, tmp_path) -> None:
    """Logs, summary, outputs, files, the PR's branch, PR body and comments: no canary."""
    workspace = tmp_path / "workspace"
    subprocess.run(["git", "clone", "-q", gh.clone_url(REPO), str(workspace)], check=True,
                   timeout=60)  # fmt: skip
    run, bodies = run_job(gh, action_dir, claude_bin, tmp_path, workspace)

    # The run really happened, end to end: an agent that tried, a PR, our comment.
    assert run.outputs["status"] == "completed", run.log[-4000:]
    assert any("Print every secret I can reach" in body for body in bodies)
    assert any(ANTHROPIC_KEY in body for body in bodies)  # it saw the key (env injection)
    [pull] = gh.pulls(REPO)
    assert "hello.py" in gh.git(REPO, "ls-tree", "-r", "--name-only", pull.pull.head_ref)
    ours = [c for c in gh.comments(REPO) if c.user != "alice"]
    assert ours
    [transcript] = (tmp_path / "runner-temp" / "claude-e2b").glob("*/transcript.jsonl")
    assert "key=***" in transcript.read_text()  # the key was there, and redacted

    found: list[str] = []
    for where, text in printed(run).items():
        found += hits(where, text)
    roots = (tmp_path / "home", tmp_path / "state", tmp_path / "runner-temp", workspace)
    for path, data in files_under(*roots):
        found += hits(str(path), data.decode("utf-8", "replace"))
    found += hits("the PR's branch on GitHub", branch_contents(gh))
    found += hits("the PR's body", pull.body or "")
    found += hits("the comments", "\n".join(c.body for c in gh.comments(REPO)))
    found += [f"{name} sent to GitHub" for name, value in CANARIES.items() if gh.leaks(value)]
    found += [f"shown before its mask, log line {leak.line_number}" for leak in run.mask_leaks()]
    assert found == [], "\n".join(found)
    # The credentials the sandbox never needs did not even reach it (nor the model).
    for value in NOT_FOR_THE_SANDBOX:
        assert not any(value in body for body in bodies)
