from claude_e2b.cost import (
    build_report,
    cost_from_result_event,
    cost_from_streamed_usage,
    load_prices,
)
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


def _cost_rows(text):
    table = text.split("### Cost\n", 1)[1].split("\n\n", 1)[0]
    return table.splitlines()[2:]  # below the header and the rule


def test_cost_table_renders_a_real_cost_report():
    """One row per model (with its source unless Claude Code's own), the sandbox, the total."""
    reported = cost_from_result_event(
        {"claude-sonnet-4-5": {"inputTokens": 2150, "outputTokens": 150,
                               "cacheReadInputTokens": 12000,
                               "cacheCreationInputTokens": 12100, "costUSD": 0.057675}},
        0.057675,
    )  # fmt: skip
    streamed = cost_from_streamed_usage(
        {
            "msg_1": ("claude-haiku-4-5", {"input_tokens": 10000, "output_tokens": 2000}),
            "msg_2": ("gpt-4o", {"input_tokens": 5}),
        },
        load_prices(),
    )
    report = build_report(
        reported + streamed,
        sandbox_seconds=125.0,
        vcpus=2,
        memory_gib=2,
        table=load_prices(),
        estimated=False,
    )
    text = render_summary(
        _result(cost=report.to_result(), sandbox=SandboxInfo("local", "sbx", "local", 125.0))
    )
    # haiku 4.5: 10k in at $1 + 2k out at $5 per MTok; sandbox: 125 s x (2 x $0.000014
    # + 2 GiB x $0.0000045) = $0.004625; total 0.057675 + 0.02 + 0.004625.
    assert _cost_rows(text) == [
        "| Claude `claude-sonnet-4-5` | 2,150 | 150 | 12,000 | 12,100 | $0.0577 |",
        "| Claude `claude-haiku-4-5` (price-table) | 10,000 | 2,000 | 0 | 0 | $0.0200 |",
        "| Claude `gpt-4o` (unknown-model) | 5 | 0 | 0 | 0 | $0.0000 |",
        "| Sandbox (local, 125 s) | | | | | $0.0046 |",
        "| **Total** | 12,155 | 2,150 | 12,000 | 12,100 | **$0.0823** |",
    ]
