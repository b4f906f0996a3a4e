"""The real Claude Code CLI against the scripted Anthropic stand-in; the stand-in's contract."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.stand_ins.anthropic_server import (
    Scenario,
    ScenarioError,
    ScriptedAnthropic,
    Usage,
    prompt_text,
)
from tests.stand_ins.claude_cli import find_claude

_ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = _ROOT / "tests" / "stand_ins" / "scenarios"
MODEL = "claude-sonnet-4-5"
# Sonnet 4.5 list prices, dollars per million tokens (5-minute cache writes).
PRICE_PER_MTOK = {"input": 3.0, "output": 15.0, "cache_read": 0.30, "cache_write": 3.75}
API_KEY = "sk-ant-test-0123456789"
PROMPT = (
    "Add hello.py, greet the sandbox in README.md and drop obsolete.txt.\n"
    "Keep \"double\" and 'single' quotes, $(whoami), `uname -a`, ${HOME} and \\n literally.\n"
    "Tabs\there, ünïcödé ✓, and a last line; rm -rf / # not a command"
)
TIMEOUT = 120


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "README.md").write_text("# Demo\n\nHello world.\n", encoding="utf-8")
    (path / "obsolete.txt").write_text("remove me\n", encoding="utf-8")
    (path / "PLAN.md").write_text("# Plan\n\n- [ ] Add hello.py\n- [ ] Write docs\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(path)]
    subprocess.run([*git, "init", "-q"], check=True, timeout=TIMEOUT)
    subprocess.run([*git, "add", "-A"], check=True, timeout=TIMEOUT)
    subprocess.run([*git, "commit", "-qm", "init"], check=True, timeout=TIMEOUT)
    return path


@dataclass
class CliRun:
    repo: Path
    api: ScriptedAnthropic
    proc: subprocess.CompletedProcess[str]
    events: list[dict[str, Any]]

    @property
    def result(self) -> dict[str, Any]:
        return self.events[-1]


def run_claude(api: ScriptedAnthropic, repo: Path, home: Path, prompt: str = PROMPT) -> CliRun:
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": api.url,
        "ANTHROPIC_API_KEY": API_KEY,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
    }
    if os.geteuid() == 0:
        env["IS_SANDBOX"] = "1"  # else the CLI refuses --dangerously-skip-permissions as root
    argv = [str(find_claude()), "-p", prompt, "--output-format", "stream-json", "--verbose"]
    argv += ["--dangerously-skip-permissions", "--model", MODEL]
    proc = subprocess.run(
        argv, cwd=repo, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert proc.returncode == 0, f"claude exited {proc.returncode}: {proc.stderr[-2000:]}"
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return CliRun(repo, api, proc, events)


@pytest.fixture(scope="module")
def scripted_run(tmp_path_factory: pytest.TempPathFactory) -> CliRun:
    base = tmp_path_factory.mktemp("scripted")
    repo = make_repo(base / "repo")
    with ScriptedAnthropic(SCENARIOS / "add_edit_delete.yaml") as api:
        return run_claude(api, repo, base / "home")


def scenario_total(scenario: Scenario) -> Usage:
    total = scenario.final.usage
    for turn in scenario.turns:
        total += turn.usage
    return total


# --------------------------------------------------------------------------- real CLI


@pytest.mark.e2e
def test_files_are_added_edited_and_deleted_as_scripted(scripted_run: CliRun) -> None:
    """Every scripted tool call reached the repository the CLI ran in."""
    repo = scripted_run.repo
    assert 'print("Hello from the sandbox")' in (repo / "hello.py").read_text()
    assert (repo / "README.md").read_text() == "# Demo\n\nHello, sandbox world.\n"
    assert not (repo / "obsolete.txt").exists()
    assert (repo / "PLAN.md").read_text() == "# Plan\n\n- [x] Add hello.py\n- [ ] Write docs\n"


@pytest.mark.e2e
def test_stream_json_starts_with_init_and_ends_with_result(scripted_run: CliRun) -> None:
    """The CLI's stream-json output has an init event and a successful result with costs."""
    first, result = scripted_run.events[0], scripted_run.result
    assert (first["type"], first["subtype"]) == ("system", "init")
    assert first["cwd"] == str(scripted_run.repo)
    assert (result["type"], result["subtype"], result["is_error"]) == ("result", "success", False)
    assert result["result"] == Scenario.load(SCENARIOS / "add_edit_delete.yaml").final.text
    assert {"total_cost_usd", "usage", "modelUsage"} <= result.keys()
    assert list(result["modelUsage"]) == [MODEL]


@pytest.mark.e2e
def test_result_usage_is_the_sum_over_all_turns(scripted_run: CliRun) -> None:
    """The result's usage adds up every answer's usage, final answer included."""
    expected = scenario_total(Scenario.load(SCENARIOS / "add_edit_delete.yaml"))
    usage = scripted_run.result["usage"]
    assert usage["input_tokens"] == expected.input_tokens
    assert usage["output_tokens"] == expected.output_tokens
    assert usage["cache_read_input_tokens"] == expected.cache_read_input_tokens
    assert usage["cache_creation_input_tokens"] == expected.cache_creation_input_tokens
    model = scripted_run.result["modelUsage"][MODEL]
    assert (model["inputTokens"], model["outputTokens"]) == (
        expected.input_tokens,
        expected.output_tokens,
    )


@pytest.mark.e2e
def test_total_cost_is_list_price_of_the_summed_usage(scripted_run: CliRun) -> None:
    """total_cost_usd = tokens x Sonnet 4.5 list prices, cache reads and writes priced apart."""
    u = scenario_total(Scenario.load(SCENARIOS / "add_edit_delete.yaml"))
    p = PRICE_PER_MTOK
    expected = (
        u.input_tokens * p["input"]
        + u.output_tokens * p["output"]
        + u.cache_read_input_tokens * p["cache_read"]
        + u.cache_creation_input_tokens * p["cache_write"]
    ) / 1_000_000
    assert scripted_run.result["total_cost_usd"] == pytest.approx(expected, rel=1e-9)
    assert scripted_run.result["modelUsage"][MODEL]["costUSD"] == pytest.approx(expected)


@pytest.mark.e2e
def test_one_main_request_per_turn_and_no_side_requests(scripted_run: CliRun) -> None:
    """The CLI makes one POST /v1/messages?beta=true per turn and nothing else."""
    requests = scripted_run.api.requests
    turns = len(Scenario.load(SCENARIOS / "add_edit_delete.yaml").turns)
    assert [(r.method, r.path, r.kind) for r in requests] == [
        ("POST", "/v1/messages?beta=true", "main")
    ] * (turns + 1)
    assert [r.turn for r in requests] == list(range(turns + 1))
    assert all(r.body["stream"] is True and r.body["model"] == MODEL for r in requests)


@pytest.mark.e2e
def test_prompt_and_api_key_arrive_unchanged(scripted_run: CliRun) -> None:
    """The prompt reaches the API byte for byte and the key travels in x-api-key."""
    first = scripted_run.api.requests[0]
    assert prompt_text(first.body) == PROMPT
    assert first.headers["x-api-key"] == API_KEY
    assert "authorization" not in first.headers


@pytest.mark.e2e
def test_cli_retries_after_http_500(tmp_path: Path) -> None:
    """One injected HTTP 500 is retried by the CLI and the run still succeeds."""
    repo = make_repo(tmp_path / "repo")
    with ScriptedAnthropic(SCENARIOS / "add_edit_delete.yaml") as api:
        api.set_faults(http_errors=1, http_status=500)
        run = run_claude(api, repo, tmp_path / "home")
    first, second = api.requests[:2]
    assert (first.fault, first.turn, second.fault, second.turn) == ("http 500", 0, None, 0)
    retries = [e for e in run.events if e.get("subtype") == "api_retry"]
    assert [e["error_status"] for e in retries] == [500]
    assert run.result["subtype"] == "success"
    assert not (repo / "obsolete.txt").exists()


# --------------------------------------------------------------------------- stand-in contract


def post(api: ScriptedAnthropic, body: Any, path: str = "/v1/messages") -> tuple[int, bytes]:
    request = urllib.request.Request(
        api.url + path,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", "x-api-key": "k"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for chunk in raw.decode().split("\n\n"):
        if chunk.strip():
            name, data = chunk.split("\n", 1)
            events.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return events


def main_body(messages: list[dict[str, Any]], *, stream: bool = True) -> dict[str, Any]:
    return {
        "model": "claude-x-test",
        "max_tokens": 1000,
        "stream": stream,
        "system": [{"type": "text", "text": "env\n - Primary working directory: /w/repo\n"}],
        "tools": [{"name": "Write", "input_schema": {"type": "object"}}],
        "messages": messages,
    }


WRITE_TURN = {
    "text": "Writing.",
    "tool_uses": [{"name": "Write", "input": {"file_path": "{cwd}/a.py", "content": "x = {1}\n"}}],
    "usage": {"input_tokens": 7, "output_tokens": 3, "cache_read_input_tokens": 2},
}
FIRST_USER = {"role": "user", "content": [{"type": "text", "text": "go"}]}


def test_stream_follows_the_messages_api_event_order() -> None:
    """A streamed turn is message_start … message_stop with the tool input split in pieces."""
    with ScriptedAnthropic({"turns": [WRITE_TURN]}) as api:
        status, raw = post(api, main_body([FIRST_USER]))
    events = sse(raw)
    names = [name for name, _ in events]
    assert status == 200
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-2:] == ["message_delta", "message_stop"]
    start = events[0][1]["message"]
    assert start["model"] == "claude-x-test"
    assert start["usage"]["input_tokens"] == 7
    assert start["usage"]["cache_read_input_tokens"] == 2
    pieces = [
        d["delta"]["partial_json"] for n, d in events if d.get("index") == 1 and n.endswith("delta")
    ]
    assert len(pieces) > 2
    assert json.loads("".join(pieces)) == {"file_path": "/w/repo/a.py", "content": "x = {1}\n"}
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"]["output_tokens"] == 3


def test_non_streaming_answer_and_exhausted_scenario() -> None:
    """stream=false gets one JSON message; past the last turn the answer is 'done'."""
    history = [FIRST_USER, {"role": "assistant", "content": [{"type": "text", "text": "hi"}]}]
    history.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]})
    with ScriptedAnthropic({"turns": [WRITE_TURN]}) as api:
        status, raw = post(api, main_body(history, stream=False))
    message = json.loads(raw)
    assert status == 200
    assert message["content"] == [{"type": "text", "text": "done"}]
    assert message["stop_reason"] == "end_turn"
    assert api.requests[0].turn == 1


def test_side_requests_do_not_consume_turns() -> None:
    """Quota probes, tool-less queries and forked helpers get the side reply."""
    quota = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "quota"}]}
    title = {**main_body([FIRST_USER], stream=False), "tools": []}
    forked_history = [FIRST_USER, {"role": "assistant", "content": "ok"}]
    forked_history.append({"role": "user", "content": "[SUGGESTION MODE] suggest a next step"})
    forked = main_body(forked_history, stream=False)
    with ScriptedAnthropic({"turns": [WRITE_TURN]}) as api:
        answers = [json.loads(post(api, b)[1]) for b in (quota, title, forked)]
        status, raw = post(api, main_body([FIRST_USER], stream=False))
    assert status == 200
    assert [a["content"] for a in answers] == [[{"type": "text", "text": "OK"}]] * 3
    assert [r.kind for r in api.requests] == ["side", "side", "side", "main"]
    assert json.loads(raw)["content"][1]["name"] == "Write"


def test_count_tokens_and_unknown_paths() -> None:
    """count_tokens answers a number; unknown endpoints get an Anthropic-shaped 404."""
    with ScriptedAnthropic([WRITE_TURN]) as api:
        count_status, count = post(api, main_body([FIRST_USER]), "/v1/messages/count_tokens")
        missing_status, missing = post(api, {}, "/v1/nothing")
    assert count_status == 200
    assert json.loads(count)["input_tokens"] > 0
    assert (missing_status, json.loads(missing)["error"]["type"]) == (404, "not_found_error")


def test_faults_fire_in_order_and_requests_are_recorded(tmp_path: Path) -> None:
    """529 then a dropped stream, each once; the JSONL record lists them all."""
    record = tmp_path / "requests.jsonl"
    with ScriptedAnthropic([WRITE_TURN], record_path=record) as api:
        api.set_faults(http_errors=1, http_status=529, drop_streams=1, drop_after_events=2)
        overloaded = post(api, main_body([FIRST_USER]))
        with pytest.raises(http.client.IncompleteRead):
            post(api, main_body([FIRST_USER]))
        healthy = post(api, main_body([FIRST_USER]))
    assert overloaded[0] == 529
    assert json.loads(overloaded[1])["error"]["type"] == "overloaded_error"
    assert sse(healthy[1])[-1][0] == "message_stop"
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [line["fault"] for line in lines] == ["http 529", "dropped stream", None]
    assert lines[0]["headers"]["x-api-key"] == "k"
    assert api.turns_served == 1


def test_scenario_schema_rejects_unknown_keys() -> None:
    """A typo in a scenario names the key and where it is."""
    with pytest.raises(ScenarioError, match=r"scenario\.turns\[0\]: unknown key 'txt'"):
        Scenario.from_dict({"turns": [{"txt": "hi"}]})


@pytest.mark.parametrize("name", ["add_edit_delete", "demo", "slow"])
def test_shipped_scenarios_load(name: str) -> None:
    """Every shipped scenario parses and uses {cwd} for its paths."""
    scenario = Scenario.load(SCENARIOS / f"{name}.yaml")
    assert scenario.turns
    inputs = [json.dumps(t.input) for turn in scenario.turns for t in turn.tool_uses]
    assert all("{cwd}/" in text for text in inputs)
