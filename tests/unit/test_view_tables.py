"""The end-of-run rows every text view lays out: changes, skipped, cost, closing line."""

from __future__ import annotations

from typing import Any

from claude_e2b.log import REDACTED, REDACTOR
from claude_e2b.result import AgentInfo, PlanInfo, PrInfo, RunResult, SandboxInfo, TimingInfo
from claude_e2b.view.tables import (
    ChangeRow,
    change_rows,
    closing_line,
    closing_notes,
    cost_rows,
    skipped_rows,
)

PR_URL = "https://github.example/octo/app/pull/7"


def change(path: str, status: str = "modified", *, size: int = 1200, **extra: Any) -> dict:
    entry = {"path": path, "status": status, "old_path": None, "mode": "100644",
             "binary": False, "bytes": size}  # fmt: skip
    return entry | extra


def make_result(**overrides: Any) -> RunResult:
    """A finished run with a change of each kind, a skipped file, one model and a sandbox bill."""
    base: dict[str, Any] = {
        "run_id": "r1",
        "status": "completed",
        "plan": PlanInfo("PLAN.md", "Add a health endpoint", 0, 2, 3),
        "sandbox": SandboxInfo("e2b", "sbx", "anthropic-claude-code", 120.0),
        "agent": AgentInfo(0, 7, "sess", "Added GET /health."),
        "verify": None,
        "changes": (
            change("src/app.py"),
            change("tests/test_health.py", "added", size=880),
            change("old.txt", "deleted", size=0),
            change("b.py", "renamed", size=5, old_path="a.py"),
            change("logo.png", "added", size=2_500_000, binary=True),
        ),
        "skipped_changes": ({"path": ".github/workflows/ci.yml", "reason": "protected path"},),
        "cost": {
            "claude_usd": 0.4123,
            "sandbox_usd": 0.01,
            "total_usd": 0.4223,
            "input_tokens": 1200,
            "output_tokens": 3100,
            "cache_read_tokens": 81_200,
            "cache_write_tokens": 9000,
            "by_model": {
                "claude-sonnet-4-5": {
                    "input_tokens": 1200,
                    "output_tokens": 3100,
                    "cache_read_tokens": 81_200,
                    "cache_write_tokens": 9000,
                    "usd": 0.4123,
                    "source": "claude-code",
                }
            },
        },
        "timing": TimingInfo(252.0, 3.2, 240.0, 1.1),
    }
    base.update(overrides)
    return RunResult(**base)


def test_change_rows_name_kind_path_and_size():
    """Renames read old → new, deletions have no size, binaries say so."""
    assert change_rows(make_result()) == [
        ChangeRow("modified", "src/app.py", "1.2 kB"),
        ChangeRow("added", "tests/test_health.py", "880 B"),
        ChangeRow("deleted", "old.txt", ""),
        ChangeRow("renamed", "a.py → b.py", "5 B"),
        ChangeRow("added", "logo.png", "2.5 MB, binary"),
    ]


def test_cost_rows_per_model_then_sandbox_and_total():
    """Each model with its tokens and dollars, then the sandbox and the total."""
    assert cost_rows(make_result()) == [
        ("claude-sonnet-4-5", "1.2k", "3.1k", "81.2k", "9.0k", "$0.4123"),
        ("sandbox", "", "", "", "", "$0.0100"),
        ("total", "", "", "", "", "$0.4223"),
    ]


def test_cost_rows_without_models_show_claude_totals():
    """A run that never reached the agent still has a Claude row (of zeros)."""
    result = make_result(cost={"claude_usd": 0.0, "sandbox_usd": 0.0, "total_usd": 0.0})
    assert cost_rows(result)[0] == ("Claude", "0", "0", "0", "0", "$0.0000")


def test_closing_line_and_notes():
    """Status, time, files, skipped and cost on one line; the PR and the message after."""
    result = make_result(pr=PrInfo(PR_URL, 7, "b", False, "created"), message="why\n\nmore")
    assert closing_line(result) == "completed in 4m 12s · 5 files changed · 1 skipped · $0.4223"
    assert closing_notes(result) == [f"pull request created: {PR_URL}", "why", "more"]
    single = make_result(status="no_changes", changes=(change("a"),), skipped_changes=())
    assert closing_line(single) == "no changes in 4m 12s · 1 file changed · $0.4223"


def test_rows_are_redacted_and_printable():
    """A path or reason holding a secret or a control character cannot reach the screen as is."""
    REDACTOR.add("canary-secret-view-tables")
    result = make_result(
        changes=(change("evil\x1b[2J.txt"),),
        skipped_changes=({"path": "k", "reason": "holds canary-secret-view-tables"},),
    )
    assert change_rows(result)[0].path == "evil\\x1b[2J.txt"
    assert skipped_rows(result) == [("k", f"holds {REDACTED}")]
