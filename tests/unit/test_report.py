from claude_e2b.report import render_summary
from claude_e2b.result import (
    AgentInfo,
    PlanInfo,
    RunResult,
    SandboxInfo,
    TimingInfo,
    VerifyInfo,
)


def _result(**overrides):
    base = {
        "run_id": "r1",
        "status": "completed",
        "plan": PlanInfo("PLAN.md", "Add a health endpoint", 0, 2, 3),
        "sandbox": SandboxInfo("e2b", "sbx", "anthropic-claude-code", 120.0),
        "agent": AgentInfo(0, 7, "sess", "Added GET /health and a test."),
        "verify": VerifyInfo("pytest -q", 0, "3 passed"),
        "changes": (
            {
                "path": "src/app.py",
                "status": "modified",
                "old_path": None,
                "mode": "100644",
                "binary": False,
                "bytes": 120,
            },
            {
                "path": "b.py",
                "status": "renamed",
                "old_path": "a.py",
                "mode": "100644",
                "binary": False,
                "bytes": 5,
            },
        ),
        "skipped_changes": ({"path": ".github/workflows/ci.yml", "reason": "protected path"},),
        "cost": {
            "claude_usd": 0.5,
            "sandbox_usd": 0.0102,
            "total_usd": 0.5102,
            "input_tokens": 1200,
            "output_tokens": 300,
            "cache_read_tokens": 50000,
            "cache_write_tokens": 9000,
            "by_model": {
                "claude-sonnet-4-5": {
                    "input_tokens": 1200,
                    "output_tokens": 300,
                    "cache_read_tokens": 50000,
                    "cache_write_tokens": 9000,
                    "usd": 0.5,
                    "source": "claude-code",
                }
            },
        },
        "timing": TimingInfo(130.0, 2.0, 120.0, 1.0),
        "warnings": ("the agent has run 30 min of its 60 min limit",),
    }
    base.update(overrides)
    return RunResult(**base)


def test_summary_shows_every_section():
    """Title, status, what was done, progress, files, skipped, verification, cost, warnings."""
    text = render_summary(_result())
    assert text.startswith("## Add a health endpoint\n")
    assert "Added GET /health and a test." in text
    assert "2 of 3 tasks done (0 before this run)." in text
    assert "| `src/app.py` | modified | 120 B |" in text
    assert "| `b.py` | renamed from `a.py` | 5 B |" in text
    assert "- `.github/workflows/ci.yml`: protected path" in text
    assert "`pytest -q` exited with 0." in text
    assert "| Claude `claude-sonnet-4-5` | 1,200 | 300 | 50,000 | 9,000 | $0.5000 |" in text
    assert "| Sandbox (e2b, 120 s) | | | | | $0.0102 |" in text
    assert "**$0.5102**" in text
    assert "30 min of its 60 min limit" in text


def test_summary_for_a_timed_out_run_without_verify_or_changes():
    """An incomplete run says so and renders without optional parts."""
    text = render_summary(
        _result(status="timed_out", verify=None, changes=(), skipped_changes=(), warnings=())
    )
    assert "time limit" in text
    assert "No files changed." in text
    assert "No verify command in the plan." in text
