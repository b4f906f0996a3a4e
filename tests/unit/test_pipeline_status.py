"""The run's status and result, decided from the values the steps return."""

from __future__ import annotations

from pathlib import Path

import pytest

from claude_e2b.agent.events import ResultEvent
from claude_e2b.agent.runner import AgentOutcome
from claude_e2b.agent.watchdog import Stop
from claude_e2b.config import Credentials, Overrides, build_run_config
from claude_e2b.cost import load_prices
from claude_e2b.outcome import (
    AgentRun,
    Collected,
    SandboxWork,
    Screened,
    build_result,
    cost_report,
    cost_warnings,
    run_status,
)
from claude_e2b.plan import load_plan
from claude_e2b.result import VerifyInfo
from claude_e2b.sync.apply import ApplyResult, Skipped
from claude_e2b.sync.changes import Change, Changeset
from claude_e2b.sync.select import Selection

NOT_BLOCKED = Screened(Selection(root=Path(), files=(), excluded=(), submodules=(), notes=()))
BLOCKED = Screened(NOT_BLOCKED.selection, blocked="the secret scan found 1 secret(s)")
ADDED = Change("hello.py", "added", None, "100644", None, binary=False, bytes=6, link_target=None)


def result_event(
    subtype: str = "success", *, is_error: bool = False, model_usage=None, total: float = 0.01
):
    return ResultEvent(
        subtype=subtype,
        is_error=is_error,
        num_turns=3,
        session_id="s-1",
        result_text="done",
        total_cost_usd=total,
        usage={},
        model_usage=model_usage or {},
        duration_ms=10,
        raw={},
    )


def agent(result: ResultEvent | None = None, stopped: Stop | None = None, code: int | None = 0):
    return AgentRun(AgentOutcome(exit_code=code, result=result, stopped=stopped))


def collected(*changes: Change, skipped: tuple[Skipped, ...] = ()) -> Collected:
    return Collected(Changeset(changes), ApplyResult(applied=changes, skipped=skipped))


FINISHED = agent(result_event())
TIMEOUT = Stop("timeout", elapsed_s=3600.0, cost_usd=1.0)
BUDGET = Stop("budget", elapsed_s=60.0, cost_usd=5.1)
VERIFY_FAILED = VerifyInfo("pytest -q", 1, "1 failed")


@pytest.mark.parametrize(
    ("screened", "work", "expected"),
    [
        (NOT_BLOCKED, SandboxWork(FINISHED, collected=collected(ADDED)), "completed"),
        (NOT_BLOCKED, SandboxWork(FINISHED, collected=collected()), "no_changes"),
        (BLOCKED, SandboxWork(), "blocked"),
        # The upload or a setup command failed: the agent never ran.
        (NOT_BLOCKED, SandboxWork(error="setup command failed (exit 2): make"), "failed"),
        # The agent ran, then detecting or downloading its changes failed.
        (NOT_BLOCKED, SandboxWork(FINISHED, error="could not pack the changes"), "failed"),
        # The agent ended without a result event, or with an error result.
        (NOT_BLOCKED, SandboxWork(agent(None, code=1), collected=collected()), "failed"),
        (
            NOT_BLOCKED,
            SandboxWork(agent(result_event("error_during_execution", is_error=True))),
            "failed",
        ),
        (
            NOT_BLOCKED,
            SandboxWork(agent(result_event("error_max_turns", is_error=True))),
            "failed",
        ),
        # Stopped by the watchdog: the partial work is still collected.
        (NOT_BLOCKED, SandboxWork(agent(stopped=TIMEOUT), collected=collected(ADDED)), "timed_out"),
        (NOT_BLOCKED, SandboxWork(agent(stopped=BUDGET), collected=collected()), "budget_exceeded"),
        # Claude Code's own --max-budget-usd ended it.
        (
            NOT_BLOCKED,
            SandboxWork(agent(result_event("error_max_budget_usd", is_error=True))),
            "budget_exceeded",
        ),
        # A stop outranks a collect failure's cause only when nothing failed after it.
        (NOT_BLOCKED, SandboxWork(agent(stopped=TIMEOUT), error="download failed"), "failed"),
        # The verify command's result is reported beside the status, not in it.
        (
            NOT_BLOCKED,
            SandboxWork(FINISHED, VERIFY_FAILED, collected(ADDED)),
            "completed",
        ),
        # Every change refused by the apply policy: the agent did change something.
        (
            NOT_BLOCKED,
            SandboxWork(
                FINISHED,
                collected=Collected(
                    Changeset((ADDED,)),
                    ApplyResult(applied=(), skipped=(Skipped("hello.py", "protected"),)),
                ),
            ),
            "completed",
        ),
    ],
)
def test_status(screened, work, expected):
    """Each combination of screen verdict and sandbox work maps to one status."""
    assert run_status(screened, work) == expected


@pytest.fixture
def config(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    plan_path = repo / "PLAN.md"
    plan_path.write_text("---\ntitle: T\n---\n- [x] one\n- [ ] two\n")
    return build_run_config(
        load_plan(plan_path),
        Overrides(backend="e2b"),
        repo_dir=repo,
        output_dir=tmp_path / "out",
        credentials=Credentials(anthropic_api_key="sk-ant-x"),
        run_id="r1",
    )


def test_result_keeps_agent_cost_and_verify_when_collect_failed(config):
    """A failed download keeps the agent's exact cost, its verify result and the reason."""
    usage = {
        "claude-sonnet-4-5": {
            "inputTokens": 100,
            "outputTokens": 10,
            "cacheReadInputTokens": 0,
            "cacheCreationInputTokens": 0,
            "costUSD": 0.00045,
        }
    }
    work = SandboxWork(
        agent(result_event(model_usage=usage, total=0.00045)),
        VERIFY_FAILED,
        error="could not pack the changes in the sandbox: disk full",
        sandbox_id="sbx",
        sandbox_seconds=100.0,
    )
    result = build_result(config, NOT_BLOCKED, work, load_prices(), started=0.0)
    assert result.status == "failed"
    assert result.message == "could not pack the changes in the sandbox: disk full"
    assert result.verify == VERIFY_FAILED
    assert result.cost["claude_usd"] == pytest.approx(0.00045)
    assert result.cost["sandbox_usd"] > 0  # e2b bills its seconds
    assert result.agent.num_turns == 3
    assert result.changes == ()


def test_result_warnings_in_order_screen_agent_cost(config):
    """Warnings come from the screen, then the agent, then the cost (an unpriced model)."""
    usage = {"gpt-4o": {"inputTokens": 5, "outputTokens": 1}}
    screened = Screened(NOT_BLOCKED.selection, warnings=("secret found before upload: a:1: k",))
    run = AgentRun(
        AgentOutcome(exit_code=0, result=result_event(model_usage=usage)),
        warnings=("the agent has run 30 min of its 60 min limit",),
    )
    result = build_result(
        config, screened, SandboxWork(run, collected=collected(ADDED)), load_prices(), 0.0
    )
    assert result.warnings[:2] == (
        "secret found before upload: a:1: k",
        "the agent has run 30 min of its 60 min limit",
    )
    assert len(result.warnings) == 3
    assert "'gpt-4o'" in result.warnings[2]


def test_no_cost_warning_for_priced_models(config):
    """A run on a model of the price table warns about nothing."""
    result = build_result(config, NOT_BLOCKED, SandboxWork(FINISHED), load_prices(), 0.0)
    assert result.warnings == ()


def test_blocked_result_names_reason_and_counts_plan(config):
    """A blocked run reports why, touched no sandbox, and counts the plan's boxes."""
    result = build_result(config, BLOCKED, SandboxWork(), load_prices(), 0.0)
    assert result.status == "blocked"
    assert result.message.startswith("the secret scan found")
    assert result.sandbox.id == ""
    assert (result.plan.tasks_done_before, result.plan.tasks_total) == (1, 2)
    assert result.cost["total_usd"] == 0


def test_cost_warnings_name_each_unpriced_model(config):
    """cost_warnings gives one line per model without a price."""
    usage = {
        "mystery-1": {"inputTokens": 1, "outputTokens": 1},
        "claude-sonnet-4-5": {"inputTokens": 1, "outputTokens": 1},
    }
    report = cost_report(config, agent(result_event(model_usage=usage)).outcome, 0.0, load_prices())
    assert cost_warnings(report) == (
        "no price is known for model 'mystery-1': its tokens are counted as $0 in the cost",
    )
