"""run_agent with the real Claude Code CLI in the local sandbox: limits, faults, bad output."""

from __future__ import annotations

import json
import shlex
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from claude_e2b.agent.command import AgentCommand, build_command
from claude_e2b.agent.meter import UsageMeter
from claude_e2b.agent.runner import KEPT_STREAM_KINDS, AgentOutcome, run_agent
from claude_e2b.agent.watchdog import Action, Stop, TimeWarning, WatchdogConfig
from claude_e2b.cost import cost_from_streamed_usage, load_prices
from claude_e2b.sandbox.session import SandboxSession, SandboxSpec, open_session
from tests.integration.conftest import live_processes, set_faults
from tests.stand_ins.anthropic_server import ScriptedAnthropic, prompt_text

SCENARIOS = Path(__file__).parents[1] / "stand_ins" / "scenarios"
REPO = "/home/user/repo"
KEY = "sk-ant-api03-runner-canary-" + "ab12" * 10
PROMPT = "Quotes \"double\" 'single', $(whoami), `uname`, ${HOME}\nsecond line\n\ttab ü\n"
TABLE = load_prices()


def running_cost(meter: UsageMeter) -> float:
    return sum(c.usd for c in cost_from_streamed_usage(meter.per_message, TABLE))


@pytest.fixture
def api_port() -> int:
    """A free port for the scripted API, known before the sandbox (which may reach only it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scripted(scenario, api_port):
    return ScriptedAnthropic(scenario, port=api_port)


@pytest.fixture
def session(fault_host, claude_bin, api_port) -> Iterator[SandboxSession]:
    spec = SandboxSpec(
        backend="local",
        lifetime_s=600,
        local_tools={"claude": claude_bin},
        local_reach=(f"127.0.0.1:{api_port}",),
    )
    with open_session(spec, fault_host) as opened:
        opened.make_dir(REPO)
        opened.write_file(f"{REPO}/README.md", b"# Demo\n\nHello world.\n")
        opened.write_file(f"{REPO}/obsolete.txt", b"remove me\n")
        opened.write_file(f"{REPO}/PLAN.md", b"- [ ] Add hello.py\n")
        yield opened


def _command(budget: float | None = None) -> AgentCommand:
    return build_command(
        claude_bin="claude",
        model="claude-sonnet-4-5",
        repo_dir=REPO,
        prompt_path="/tmp/claude-e2b/prompt.md",
        plan_file="PLAN.md",
        budget_usd=budget,
    )


def _run(session, api, tmp_path, limits, *, command=None, prompt=PROMPT):
    actions: list[Action] = []
    session.make_dir("/tmp/claude-e2b")
    outcome = run_agent(
        session,
        command or _command(),
        prompt=prompt,
        env={"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": api.url},
        transcript_path=tmp_path / "transcript.jsonl",
        limits=limits,
        on_event=lambda _e: None,
        on_action=lambda a, _o: actions.append(a),
        cost_of=running_cost,
    )
    return outcome, actions


def _no_agent_left(session: SandboxSession) -> bool:
    return live_processes(session, "claude") == []


def test_normal_run_prompt_and_key(session, tmp_path, api_port):
    """The scenario's changes happen, the prompt arrives byte for byte, the key stays hidden."""
    with scripted(SCENARIOS / "add_edit_delete.yaml", api_port) as api:
        outcome, actions = _run(session, api, tmp_path, WatchdogConfig(hard_limit_s=120))
        first = api.main_requests[0]
    assert outcome.result is not None
    assert outcome.result.subtype == "success"
    assert outcome.stopped is None
    assert actions == []
    assert prompt_text(first.body) == PROMPT
    assert first.headers["x-api-key"] == KEY
    assert session.exists(f"{REPO}/hello.py")
    assert not session.exists(f"{REPO}/obsolete.txt")
    transcript = (tmp_path / "transcript.jsonl").read_text()
    assert KEY not in transcript
    assert json.loads(transcript.splitlines()[-1])["type"] == "result"
    # The live meter agrees with Claude Code's own total.
    assert running_cost(outcome.meter) == pytest.approx(outcome.result.total_cost_usd, rel=1e-9)


def test_hard_limit_warns_in_order_then_stops_and_keeps_work(session, tmp_path, api_port):
    """Warnings at the marks, then SIGINT at the limit; the ticks written so far remain."""
    limits = WatchdogConfig(hard_limit_s=7, warn_at_s=(2, 4), grace_s=10)
    with scripted(SCENARIOS / "slow.yaml", api_port) as api:
        outcome, actions = _run(session, api, tmp_path, limits)
    assert [type(a) for a in actions] == [TimeWarning, TimeWarning, Stop]
    assert [a.mark_s for a in actions if isinstance(a, TimeWarning)] == [2, 4]
    assert isinstance(outcome.stopped, Stop)
    assert outcome.stopped.reason == "timeout"
    ticks = session.read_bytes(f"{REPO}/ticks.txt").decode().split()
    assert 2 <= len(ticks) < 60
    assert _no_agent_left(session)
    # SIGINT usually lets Claude Code end with its own result and exact cost; when it
    # lands while a request is in flight (seen under load) Claude Code 2.1.328 exits 0
    # without one, and the cost comes from the usage streamed so far instead.
    if outcome.result is None:
        assert outcome.exit_code == 0
        assert running_cost(outcome.meter) > 0


def test_budget_stops_the_agent(session, tmp_path, api_port):
    """Our watchdog stops the agent when the running cost passes the budget."""
    limits = WatchdogConfig(hard_limit_s=120, budget_usd=0.003, grace_s=10)
    with scripted(SCENARIOS / "slow.yaml", api_port) as api:
        outcome, actions = _run(session, api, tmp_path, limits)
    assert isinstance(actions[-1], Stop)
    assert outcome.stopped is not None
    assert outcome.stopped.reason == "budget"
    assert outcome.stopped.cost_usd > 0.003
    assert session.exists(f"{REPO}/ticks.txt")
    assert _no_agent_left(session)


def test_agent_ignoring_sigint_is_killed_after_grace(session, tmp_path, api_port):
    """An agent that ignores SIGINT is killed once the grace period is over."""
    script = "trap '' INT; echo $$ > /tmp/claude-e2b/agent.pid; sleep 600"
    command = AgentCommand(
        ("bash", "-c", script), "/tmp/claude-e2b/prompt.md", REPO, "/tmp/claude-e2b/other.pid"
    )
    limits = WatchdogConfig(hard_limit_s=2, grace_s=2)
    with scripted(SCENARIOS / "slow.yaml", api_port) as api:
        outcome, _actions = _run(session, api, tmp_path, limits, command=command)
    assert outcome.stopped is not None
    assert live_processes(session, "sleep") == []


def kept(raw_line: str) -> bool:
    """Whether the transcript keeps this line of Claude Code's output (see KEPT_STREAM_KINDS)."""
    if not raw_line.strip():
        return False
    data = json.loads(raw_line)
    return data["type"] != "stream_event" or data["event"]["type"] in KEPT_STREAM_KINDS


def test_dropped_streams_lose_and_repeat_no_line(session, tmp_path, api_port):
    """The output stream cut four times: the transcript is what Claude Code printed, exactly.

    What it printed is its output file in the sandbox, written without any network
    in between: the undisturbed run.
    """
    assert session.localbox is not None
    # The first stream that can drop is the launcher's, which prints nothing: three
    # readers are cut, the fourth and fifth go on (each starts where the last stopped).
    set_faults(session.localbox, drop_output_after_bytes=3000, drop_output_count=4)
    with scripted(SCENARIOS / "add_edit_delete.yaml", api_port) as api:
        outcome, _actions = _run(session, api, tmp_path, WatchdogConfig(hard_limit_s=120))
    assert outcome.reconnects == 3
    assert outcome.broken_lines == 0
    assert (outcome.exit_code, outcome.stream_error) == (0, "")
    assert outcome.result is not None
    assert outcome.result.subtype == "success"
    printed = session.read_bytes(outcome.output_path).decode()
    transcript = (tmp_path / "transcript.jsonl").read_text()
    assert transcript.splitlines() == [line for line in printed.splitlines() if kept(line)]
    assert len(printed) > 4 * 3000
    assert session.exists(f"{REPO}/hello.py")


def test_cancel_stops_the_agent_at_once_and_keeps_its_work(session, tmp_path, api_port):
    """A cancel from another thread: SIGINT, a short grace, the agent gone in seconds."""
    cancel = threading.Event()
    cancelled_at: list[float] = []

    def fire() -> None:
        cancelled_at.append(time.monotonic())
        cancel.set()

    timer = threading.Timer(4.0, fire)
    actions: list[Action] = []
    session.make_dir("/tmp/claude-e2b")
    with scripted(SCENARIOS / "slow.yaml", api_port) as api:
        timer.start()
        outcome = run_agent(
            session,
            _command(),
            prompt=PROMPT,
            env={"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": api.url},
            transcript_path=tmp_path / "transcript.jsonl",
            limits=WatchdogConfig(hard_limit_s=120, grace_s=30),
            on_event=lambda _e: None,
            on_action=lambda a, _o: actions.append(a),
            cost_of=running_cost,
            cancel=cancel,
            cancel_grace_s=2.0,
        )
        stopped_after = time.monotonic() - cancelled_at[0]
    assert outcome.stopped is not None
    assert outcome.stopped.reason == "cancelled"
    assert actions == [outcome.stopped]
    assert "cancelled" in outcome.stopped.message()
    # The lead's budget from SIGINT to collectable work is ~3 s; this only catches hangs.
    assert stopped_after < 8.0, stopped_after
    assert session.read_bytes(f"{REPO}/ticks.txt").decode().split()
    assert _no_agent_left(session)


def test_a_sandbox_killed_mid_run_ends_the_agent_run(session, tmp_path, api_port):
    """The sandbox dies under a running agent: run_agent returns, saying the stream is gone."""
    assert session.localbox is not None
    with scripted(SCENARIOS / "slow.yaml", api_port) as api:
        threading.Timer(3.0, set_faults, (session.localbox,), {"kill_after_s": 0.1}).start()
        outcome, actions = _run(session, api, tmp_path, WatchdogConfig(hard_limit_s=120))
    assert actions == []
    assert outcome.stopped is None
    assert outcome.exit_code is None
    assert outcome.stream_error
    assert outcome.turns >= 1
    deadline = time.monotonic() + 20
    while session.localbox.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not session.is_alive()


def test_broken_lines_are_skipped_and_counted(session, tmp_path, api_port):
    """Lines that are not JSON are skipped and counted; the events around them are kept."""
    lines = [
        json.dumps(
            {
                "type": "system",
                "subtype": "init",
                "session_id": "s",
                "model": "m",
                "cwd": REPO,
                "tools": [],
            }
        ),
        "this is not json",
        '{"type": "assistant", "message": {"id": "m1", "content": [{"type": "text", "text": "hi"}]',
        json.dumps(
            {
                "type": "result",
                "subtype": "success",
                "is_error": False,
                "num_turns": 1,
                "session_id": "s",
                "result": "all done",
                "usage": {},
            }
        ),
    ]
    script = "printf '%s\\n' " + " ".join(shlex.quote(line) for line in lines)
    command = AgentCommand(
        ("bash", "-c", script), "/tmp/claude-e2b/prompt.md", REPO, "/tmp/claude-e2b/agent.pid"
    )
    with scripted(SCENARIOS / "demo.yaml", api_port) as api:
        outcome: AgentOutcome
        outcome, _actions = _run(
            session, api, tmp_path, WatchdogConfig(hard_limit_s=60), command=command
        )
    assert outcome.broken_lines == 2
    assert outcome.init is not None
    assert outcome.result is not None
    assert outcome.final_message == "all done"
    kept = (tmp_path / "transcript.jsonl").read_text().splitlines()
    assert [json.loads(line)["type"] for line in kept] == ["system", "result"]
