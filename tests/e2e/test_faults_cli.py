"""Faults as a user meets them: whole runs, what they say and what they leave.

Each test is a whole `claude-e2b run --sandbox local --no-pr` with the real Claude Code
CLI against the scripted Anthropic stand-in. Faults of the model's API, of the local
Claude Code, and signals go through the command itself (a subprocess, as a user runs
it). The CLI cannot be told to inject faults into its sandbox (only a server started
for tests takes them), so those runs go in-process through ``run_pipeline`` with
sessions on a test-faults host, and check what the CLI would report: the status,
``RunResult.exit_code``, the message, result.json as the CLI writes it.

For every fault: the exit code and status, a message that says what happened and
what to do, no sandbox or process left (registry empty, roots removed, every process
of the sandbox seen during the run gone), no work lost that could be kept.

Fault → status, exit code: what the user reads ([xfail] marks a product bug, see the test)

- Claude Code not installed (no CLAUDE_E2B_CLAUDE_BIN, no `claude` on PATH)
  → no run, 2: "--sandbox local needs the Claude Code CLI on this machine, and none was
  found", hint "npm install -g @anthropic-ai/claude-code@2.1.328, or set
  CLAUDE_E2B_CLAUDE_BIN"; no sandbox started.
- CLAUDE_E2B_CLAUDE_BIN names no file
  → no run, 2: "CLAUDE_E2B_CLAUDE_BIN points to PATH, which is not a file", hint "install
  Claude Code (npm install -g …) and point CLAUDE_E2B_CLAUDE_BIN at its `claude`, or unset it".

- the model's API answers 401 authentication_error
  → failed, 1: "Claude Code could not use the model's API (HTTP 401): …", hint "the API
  refused the credential: check ANTHROPIC_API_KEY (or CLAUDE_CODE_OAUTH_TOKEN …)".

- the model's API is down (529 overloaded on every call)
  → failed, 1: "Claude Code could not use the model's API (HTTP 529): …", hint "the API is
  overloaded or unreachable: try again later …".
- SIGINT while a setup command runs (before the agent)
  → cancelled, 130: "the run was cancelled (SIGINT) before the agent started; nothing was
  changed".
- SIGTERM mid-agent (instead of SIGINT)
  → cancelled, 130: "the run was cancelled (SIGTERM): the agent was stopped; 1 file(s) of
  its work were applied"; the partial work applied.
- a second SIGINT while the first is handled
  → cancelled, 130: "the run was cancelled (SIGINT): a second signal ended the run at
  once: the sandbox was killed before its work was collected"; nothing applied, as asked.
- envd unhealthy mid-run (its /health failing), the archive's reads failing a while
  → completed, 0: nothing to read; the collect keeps trying while E2B's API (the local
  server's control routes) lists the sandbox as running, and every change is applied.
  (Until session 5 envd's /health alone decided, and the sandbox was killed with the
  agent's work.)
- the sandbox killed mid-agent (as E2B kills or evicts one)
  → failed, 1: "sandbox ID ended (killed, evicted or past its lifetime) while the run was
  using it: its work could not be brought back (…)", hint "run the plan again;
  `claude-e2b logs RUN` shows what the agent did …"; the transcript and the cost kept.
- disk full when the prompt is written (the agent's start)
  → failed, 1: "write /tmp/claude-e2b/prompt.md: the sandbox's disk is full …", hint
  "free space in the sandbox, or use a template with a larger disk".
- disk full when the changes are packed
  → failed, 1: the same words, then "The agent's work is still in sandbox ID, left
  running until TIME: fetch it with `claude-e2b download RUN --apply` …"; the sandbox
  kept; a full disk is not retried.
- the agent's output stream dropped four times
  → completed, 0: nothing; every change applied, each transcript event once.
- one dropped output stream on each command of the upload
  → completed, 0: nothing; the idempotent commands run again, the receiver is followed
  again by its pid (or its exit code read back when it ended meanwhile). (Until
  session 5: failed, "command 'command -v zstd': the sandbox could not be reached".)

Claude Code retries a failing API call ten times with growing delays (a 401 took
three minutes here, and the view showed nothing of the retries); the API fault runs
set ``CLAUDE_CODE_MAX_RETRIES`` through the plan's ``env``, as a user can.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import pytest
from structlog.testing import capture_logs

from claude_e2b.collect import CollectPolicy
from claude_e2b.config import Credentials, Overrides, build_run_config
from claude_e2b.delivery import write_run_files
from claude_e2b.pipeline import run_pipeline
from claude_e2b.plan import load_plan
from claude_e2b.report import ReportContext
from claude_e2b.result import RunResult
from claude_e2b.sandbox.localbox.launcher import LocalBoxHost
from claude_e2b.sandbox.session import RetryPolicy, SandboxSession, SandboxSpec, open_session
from claude_e2b.store import RunRecord, RunStore
from tests.e2e import environment
from tests.e2e.test_run_limits import _alive, _descendants
from tests.e2e.test_run_local import CANARY_KEY, make_repo, run_args
from tests.integration.conftest import set_faults
from tests.stand_ins.anthropic_server import ScriptedAnthropic

pytestmark = pytest.mark.e2e

SCENARIOS = Path(__file__).parents[1] / "stand_ins" / "scenarios"
WRITE = SCENARIOS / "fault_write.yaml"
SLOW = SCENARIOS / "slow.yaml"
ADD_EDIT_DELETE = SCENARIOS / "add_edit_delete.yaml"
WRITTEN = {"notes.txt": "added", "obsolete.txt": "deleted"}
# Short waits: the tests check what is retried and kept, not how long the waits are.
FAST = RetryPolicy(attempts=5, base_s=0.05, cap_s=0.3, deadline_s=30.0)
QUICK_COLLECT = CollectPolicy(deadline_s=4.0, first_delay_s=0.2, max_delay_s=1.0)
RUN_ID = "run-fault"


# ── Watching the sandboxes of a run ────────────────────────────────────────────


def _entries(registry: Path) -> list[dict[str, Any]]:
    found = []
    for path in registry.glob("*.json"):
        with contextlib.suppress(OSError, ValueError):
            found.append(json.loads(path.read_text()))
    return found


class SandboxWatch:
    """Every process and root of the local sandboxes in ``registry`` while a run goes on.

    A thread polls the registry: the server of each sandbox and all its descendants
    (namespace init, the agent, its tools) are remembered, so that afterwards the
    test can check that none of them is left, however short the run was.
    """

    def __init__(self, registry: Path) -> None:
        self.registry = registry
        self.pids: set[int] = set()
        self.roots: set[Path] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._look()
            self._stop.wait(0.1)

    def _look(self) -> None:
        for entry in _entries(self.registry):
            self.pids |= {entry["pid"]} | _descendants(entry["pid"])
            self.roots.add(Path(entry["root"]))

    def assert_nothing_left(self) -> None:
        """No sandbox in the registry, no root on disk, no process of any sandbox alive."""
        assert self.pids, "no sandbox was seen: the test watched the wrong registry"
        deadline = time.monotonic() + 15
        while any(_alive(p) for p in self.pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [p for p in self.pids if _alive(p)] == []
        assert list(self.registry.glob("*.json")) == []
        assert [r for r in self.roots if r.exists()] == []


# ── The command, as a user runs it ─────────────────────────────────────────────


def user_env(tmp: Path, claude_bin: Path) -> dict[str, str]:
    """conftest's cli_env with no git configuration, for fixtures that outlive one test."""
    return environment.user_env(tmp, claude_bin, plain_git=True)


@contextlib.contextmanager
def plain_git() -> Iterator[None]:
    """What the autouse _git_env fixture does, for fixtures that outlive one test."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
        patch.setenv("GIT_CONFIG_NOSYSTEM", "1")
        yield


def registry_of(env: dict[str, str]) -> Path:
    return Path(env["CLAUDE_E2B_STATE_DIR"]) / "localbox"


@dataclass
class Signals:
    """Signals to send once the sandbox has ``ready`` (a path under its root): name, delay."""

    ready: str
    sequence: tuple[tuple[signal.Signals, float], ...]
    sent_at: list[float] = field(default_factory=list)

    def due(self, run: subprocess.Popen[bytes], registry: Path) -> None:
        """Send the next signal if its time has come."""
        if len(self.sent_at) == len(self.sequence):
            return
        if not self.sent_at and not any(
            (Path(e["root"]) / self.ready).exists() for e in _entries(registry)
        ):
            return
        signum, delay = self.sequence[len(self.sent_at)]
        if self.sent_at and time.monotonic() < self.sent_at[-1] + delay:
            return
        run.send_signal(signum)
        self.sent_at.append(time.monotonic())


@dataclass(frozen=True)
class Finished:
    """A finished `claude-e2b run`: exit code, output, result.json, history row, watch."""

    returncode: int
    stdout: str
    stderr: str
    result: dict[str, Any] | None
    record: RunRecord | None
    watch: SandboxWatch
    repo: Path
    ended_at: float


def run_command(
    tmp: Path, env: dict[str, str], plan: Path | None = None, signals: Signals | None = None
) -> Finished:
    """`claude-e2b run` on a fresh checkout, watched; ``signals`` are sent as they fall due."""
    repo = make_repo(tmp / "repo")
    out = tmp / "out"
    registry = registry_of(env)
    argv = [sys.executable, "-m", "claude_e2b", *run_args(repo, plan or repo / "PLAN.md", out)]
    with (
        (tmp / "stdout").open("wb") as stdout,
        (tmp / "stderr").open("wb") as stderr,
        SandboxWatch(registry) as watch,
    ):
        run = subprocess.Popen(argv, env=env, stdout=stdout, stderr=stderr)
        _wait(run, registry, signals)
        ended_at = time.monotonic()
    result = (
        json.loads((out / "result.json").read_text()) if (out / "result.json").exists() else None
    )
    return Finished(
        returncode=run.returncode,
        stdout=(tmp / "stdout").read_text(),
        stderr=(tmp / "stderr").read_text(),
        result=result,
        record=_record(env, result["run_id"]) if result else None,
        watch=watch,
        repo=repo,
        ended_at=ended_at,
    )


def _wait(run: subprocess.Popen[bytes], registry: Path, signals: Signals | None) -> None:
    """Wait for the run to end (killed after 120 s), sending ``signals`` as they fall due."""
    try:
        deadline = time.monotonic() + 120
        while run.poll() is None and time.monotonic() < deadline:
            if signals is not None:
                signals.due(run, registry)
            time.sleep(0.05)
    finally:
        if run.poll() is None:
            run.kill()
        run.wait(30)


def _record(env: dict[str, str], run_id: str) -> RunRecord:
    with RunStore.open(Path(env["CLAUDE_E2B_DB"])) as store:
        return store.get(run_id)


def plan_file(tmp: Path, front: str) -> Path:
    """A plan beside the checkout that run_command makes, with ``front`` as its front matter."""
    plan = tmp / "PLAN-fault.md"
    plan.write_text(f"---\n{front}---\nAdd notes.txt and remove obsolete.txt.\n\n- [ ] Notes\n")
    return plan


# ── Claude Code missing ────────────────────────────────────────────────────────


def _path_without_claude() -> str:
    dirs = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(d for d in dirs if d and not shutil.which("claude", path=d))


def _run_fast(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    repo = make_repo(tmp_path / "repo")
    return subprocess.run(
        [sys.executable, "-m", "claude_e2b", *run_args(repo, repo / "PLAN.md", tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _started_nothing(tmp_path: Path, env: dict[str, str]) -> None:
    assert not (tmp_path / "out" / "result.json").exists()
    assert not registry_of(env).exists() or list(registry_of(env).glob("*.json")) == []


def test_claude_code_not_installed_fails_fast_saying_what_to_install(tmp_path, claude_bin):
    """No CLAUDE_E2B_CLAUDE_BIN and no `claude` on PATH: exit 2 at once, the npm line to
    install it, no sandbox started."""
    env = user_env(tmp_path, claude_bin)
    del env["CLAUDE_E2B_CLAUDE_BIN"]
    env["PATH"] = _path_without_claude()
    began = time.monotonic()
    done = _run_fast(tmp_path, env)
    assert done.returncode == 2, done.stderr
    assert time.monotonic() - began < 30
    assert "needs the Claude Code CLI on this machine, and none was found" in done.stderr
    assert "npm install -g @anthropic-ai/claude-code@2.1.328" in done.stderr
    assert "CLAUDE_E2B_CLAUDE_BIN" in done.stderr
    _started_nothing(tmp_path, env)


@pytest.fixture(scope="module")
def bin_points_at_nothing(
    tmp_path_factory, claude_bin
) -> tuple[subprocess.CompletedProcess[str], Path, dict[str, str]]:
    """A run with CLAUDE_E2B_CLAUDE_BIN naming a file that does not exist."""
    tmp = tmp_path_factory.mktemp("nobin")
    env = user_env(tmp, claude_bin)
    env["CLAUDE_E2B_CLAUDE_BIN"] = str(tmp / "no-such" / "claude")
    with plain_git():
        return _run_fast(tmp, env), tmp, env


def test_claude_bin_pointing_at_nothing_fails_fast(bin_points_at_nothing):
    """CLAUDE_E2B_CLAUDE_BIN names a missing file: exit 2 at once, naming the variable and
    the path, no sandbox started."""
    done, tmp, env = bin_points_at_nothing
    assert done.returncode == 2, done.stderr
    assert f"CLAUDE_E2B_CLAUDE_BIN points to {tmp / 'no-such' / 'claude'}" in done.stderr
    _started_nothing(tmp, env)


def test_claude_bin_pointing_at_nothing_says_what_to_install(bin_points_at_nothing):
    """The message for a CLAUDE_E2B_CLAUDE_BIN that names nothing says how to get Claude Code."""
    done, _tmp, _env = bin_points_at_nothing
    assert "npm install -g @anthropic-ai/claude-code@2.1.328" in done.stderr


# ── The model's API failing ────────────────────────────────────────────────────


def _api_fault_run(
    tmp: Path, claude_bin: Path, status: int, retries: int
) -> tuple[Finished, ScriptedAnthropic]:
    env = user_env(tmp, claude_bin)
    plan = plan_file(tmp, f'env:\n  CLAUDE_CODE_MAX_RETRIES: "{retries}"\n')
    with plain_git(), ScriptedAnthropic(WRITE) as api:
        api.set_faults(http_errors=10_000, http_status=status)
        env["ANTHROPIC_BASE_URL"] = api.url
        finished = run_command(tmp, env, plan)
    return finished, api


@pytest.fixture(scope="module")
def auth_refused(tmp_path_factory, claude_bin) -> tuple[Finished, ScriptedAnthropic]:
    """A run whose every API call is answered 401 authentication_error."""
    return _api_fault_run(tmp_path_factory.mktemp("auth"), claude_bin, 401, 0)


@pytest.fixture(scope="module")
def api_down(tmp_path_factory, claude_bin) -> tuple[Finished, ScriptedAnthropic]:
    """A run whose every API call is answered 529 overloaded_error (one retry allowed)."""
    return _api_fault_run(tmp_path_factory.mktemp("down"), claude_bin, 529, 1)


def test_an_auth_error_fails_the_run_and_leaves_nothing(auth_refused):
    """401 from the API: exit 1, failed (also in the history), the 401 quoted, nothing
    applied, no sandbox or process left, the key nowhere in the output."""
    run, api = auth_refused
    assert run.returncode == 1, run.stderr[-3000:]
    assert run.result is not None
    assert run.result["status"] == "failed"
    assert run.result["changes"] == []
    assert run.record is not None
    assert run.record.status == "failed"
    assert "Failed to authenticate. API Error: 401" in (run.record.message or "")
    assert "API Error: 401" in run.stderr
    assert api.main_requests
    assert all(r.fault == "http 401" for r in api.main_requests)
    assert api.turns_served == 0
    assert not (run.repo / "notes.txt").exists()
    run.watch.assert_nothing_left()
    assert CANARY_KEY not in run.stdout + run.stderr + json.dumps(run.result)


def test_an_auth_error_says_which_credential_to_check(auth_refused):
    """The message of a 401 names the credential (ANTHROPIC_API_KEY) and no 'success'."""
    run, _api = auth_refused
    message = run.record.message if run.record else ""
    assert "success" not in (message or "")
    assert "ANTHROPIC_API_KEY" in (message or "")


def test_a_model_api_that_is_down_fails_the_run_and_leaves_nothing(api_down):
    """529 on every call: exit 1, failed, Claude Code's advice to try again quoted,
    nothing applied, no sandbox or process left."""
    run, api = api_down
    assert run.returncode == 1, run.stderr[-3000:]
    assert run.result is not None
    assert run.result["status"] == "failed"
    assert run.result["changes"] == []
    message = run.record.message if run.record else ""
    assert "API Error: 529" in (message or "")
    assert "try again" in (message or "")
    assert len(api.main_requests) == 2  # the call and its one retry
    assert api.turns_served == 0
    run.watch.assert_nothing_left()


def test_a_model_api_that_is_down_is_not_called_a_success(api_down):
    """The message of a run the API failed does not say the agent ended with success."""
    run, _api = api_down
    assert "success" not in ((run.record.message if run.record else "") or "")


# ── Signals ────────────────────────────────────────────────────────────────────


@pytest.fixture
def slow_api() -> Iterator[ScriptedAnthropic]:
    with ScriptedAnthropic(SLOW) as api:
        yield api


def _cancelled_and_gone(run: Finished, signals: Signals, signal_name: str) -> None:
    assert run.returncode == 130, run.stderr[-3000:]
    assert run.ended_at - signals.sent_at[0] < 10, "the run took too long to end"
    assert run.result is not None
    assert run.result["status"] == "cancelled"
    assert run.record is not None
    assert run.record.status == "cancelled"
    assert f"cancelled ({signal_name})" in run.stderr
    run.watch.assert_nothing_left()


SETUP_SLEEP_S = 8


@pytest.fixture(scope="module")
def sigint_in_setup(tmp_path_factory, claude_bin) -> tuple[Finished, Signals, ScriptedAnthropic]:
    """SIGINT while a setup command (an 8 s sleep) runs, before the agent."""
    tmp = tmp_path_factory.mktemp("setup")
    env = user_env(tmp, claude_bin)
    plan = plan_file(tmp, f"setup: touch /home/user/setup-began && sleep {SETUP_SLEEP_S}\n")
    signals = Signals("home/user/setup-began", ((signal.SIGINT, 0.0),))
    with plain_git(), ScriptedAnthropic(SLOW) as api:
        env["ANTHROPIC_BASE_URL"] = api.url
        run = run_command(tmp, env, plan, signals)
    return run, signals, api


def test_sigint_during_setup_cancels_before_the_agent(sigint_in_setup):
    """SIGINT while a setup command runs: exit 130, cancelled, nothing changed, the
    sandbox and its setup process gone, the agent never started."""
    run, _signals, api = sigint_in_setup
    assert run.returncode == 130, run.stderr[-3000:]
    assert run.result is not None
    assert run.result["status"] == "cancelled"
    assert run.result["changes"] == []
    assert run.record is not None
    assert run.record.status == "cancelled"
    assert "cancelled (SIGINT) before the agent started; nothing was changed" in run.stderr
    assert api.main_requests == []
    run.watch.assert_nothing_left()


def test_sigint_during_setup_ends_the_run_within_seconds(sigint_in_setup):
    """The run ends within 5 s of the SIGINT, not when the setup command is done."""
    run, signals, _api = sigint_in_setup
    assert run.ended_at - signals.sent_at[0] < 5


def test_sigterm_collects_applies_and_reports_cancelled(tmp_path, claude_bin, slow_api):
    """SIGTERM instead of SIGINT mid-agent: the same as SIGINT: exit 130, the partial
    work applied, cancelled (SIGTERM), nothing left."""
    env = user_env(tmp_path, claude_bin)
    env["ANTHROPIC_BASE_URL"] = slow_api.url
    signals = Signals("home/user/repo/ticks.txt", ((signal.SIGTERM, 0.0),))
    run = run_command(tmp_path, env, signals=signals)
    _cancelled_and_gone(run, signals, "SIGTERM")
    assert "the agent was stopped; 1 file(s) of its work were applied" in (run.record.message or "")
    assert "tick" in (run.repo / "ticks.txt").read_text()
    assert [c["path"] for c in run.result["changes"]] == ["ticks.txt"]


def test_a_second_sigint_aborts_at_once(tmp_path, claude_bin, slow_api):
    """SIGINT, then SIGINT again while the first is handled: exit 130 at once, cancelled,
    the sandbox killed before collecting (nothing applied, as asked), nothing left."""
    env = user_env(tmp_path, claude_bin)
    env["ANTHROPIC_BASE_URL"] = slow_api.url
    signals = Signals("home/user/repo/ticks.txt", ((signal.SIGINT, 0.0), (signal.SIGINT, 0.3)))
    run = run_command(tmp_path, env, signals=signals)
    _cancelled_and_gone(run, signals, "SIGINT")
    assert len(signals.sent_at) == 2
    assert "a second signal ended the run at once" in (run.record.message or "")
    assert run.result["changes"] == []
    assert not (run.repo / "ticks.txt").exists()
    assert CANARY_KEY not in run.stdout + run.stderr


# ── Faults in the sandbox (in-process: the CLI cannot inject them) ─────────────


Hook = Callable[[SandboxSession], None]


class FaultySandboxes:
    """A session factory on a test-faults host: each sandbox gets ``at_open`` faults and
    then ``hook`` (which arms faults for later moments of the run)."""

    def __init__(
        self, registry: Path, at_open: dict[str, object] | None = None, hook: Hook | None = None
    ) -> None:
        self.host = LocalBoxHost(registry, os.environ, test_faults=True)
        self.at_open = at_open or {}
        self.hook = hook
        self.sessions: list[SandboxSession] = []

    def __call__(self, spec: SandboxSpec) -> SandboxSession:
        session = open_session(spec, self.host, retry=FAST)
        self.sessions.append(session)
        if self.at_open:
            set_faults(box(session), **self.at_open)
        if self.hook is not None:
            self.hook(session)
        return session


def box(session: SandboxSession):  # type: ignore[no-untyped-def]
    assert session.localbox is not None
    return session.localbox


def when_exists(relative: str, **faults: object) -> Hook:
    """Set ``faults`` once ``relative`` exists under the sandbox's root (e.g. the agent's file)."""

    def hook(session: SandboxSession) -> None:
        def watch() -> None:
            path = box(session).root / relative
            deadline = time.monotonic() + 60
            while not path.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            with contextlib.suppress(OSError, ValueError):
                set_faults(box(session), **faults)

        threading.Thread(target=watch, daemon=True).start()

    return hook


def after_writing(suffix: str, **faults: object) -> Hook:
    """Set ``faults`` right after the run writes a file whose path ends with ``suffix``."""

    def hook(session: SandboxSession) -> None:
        write = session.write_file

        def write_then_fault(path: str, data: Any, **kwargs: Any) -> None:
            write(path, data, **kwargs)
            if path.endswith(suffix):
                set_faults(box(session), **faults)

        session.write_file = write_then_fault  # type: ignore[method-assign]

    return hook


def before_each_command_until(suffix: str, **faults: object) -> Hook:
    """Set ``faults`` before every command the run starts, until it writes ``suffix``."""

    def hook(session: SandboxSession) -> None:
        armed = [True]
        write, run, start = session.write_file, session.run, session.start

        def writing(path: str, data: Any, **kwargs: Any) -> None:
            if path.endswith(suffix):
                armed[0] = False
            write(path, data, **kwargs)

        def arm(call: Callable[..., Any]) -> Callable[..., Any]:
            def armed_call(cmd: str, **kwargs: Any) -> Any:
                if armed[0]:
                    set_faults(box(session), **faults)
                return call(cmd, **kwargs)

            return armed_call

        session.write_file = writing  # type: ignore[method-assign]
        session.run = arm(run)  # type: ignore[method-assign]
        session.start = arm(start)  # type: ignore[method-assign]

    return hook


@dataclass(frozen=True)
class InProcess:
    """A run through run_pipeline, with what the CLI would have written and reported."""

    result: RunResult
    written: dict[str, Any]
    repo: Path
    out: Path
    logs: list[dict[str, Any]]
    watch: SandboxWatch
    sandboxes: FaultySandboxes

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.logs if e["event"] == name]

    def kill_kept(self) -> None:
        for session in self.sandboxes.sessions:
            session.kill()


def run_in_process(
    tmp: Path,
    claude_bin: Path,
    scenario: Path,
    *,
    at_open: dict[str, object] | None = None,
    hook: Hook | None = None,
) -> InProcess:
    """The run `claude-e2b run` makes, in this process, on sandboxes with faults."""
    repo = make_repo(tmp / "repo")
    out = tmp / "out"
    registry = tmp / "state" / "localbox"
    sandboxes = FaultySandboxes(registry, at_open, hook)
    with (
        ScriptedAnthropic(scenario) as api,
        capture_logs() as logs,
        SandboxWatch(registry) as watch,
    ):
        config = build_run_config(
            load_plan(repo / "PLAN.md"),
            Overrides(backend="local"),
            repo_dir=repo,
            output_dir=out,
            credentials=Credentials(anthropic_api_key=CANARY_KEY, anthropic_base_url=api.url),
            local_tools={"claude": claude_bin},
            run_id=RUN_ID,
        )
        result = run_pipeline(config, sandboxes, collect=QUICK_COLLECT)
    write_run_files(result, out, ReportContext())  # as cmd_run's _report does
    written = json.loads((out / "result.json").read_text())
    return InProcess(result, written, repo, out, logs, watch, sandboxes)


def _all_applied(run: InProcess, expected: dict[str, str]) -> None:
    assert {c["path"]: c["status"] for c in run.written["changes"]} == expected
    for path, status in expected.items():
        assert (run.repo / path).exists() == (status != "deleted"), path


def _failed(run: InProcess) -> None:
    assert run.result.status == "failed", run.result.message
    assert run.written["status"] == "failed"
    assert run.result.exit_code == 1


def test_envd_unhealthy_mid_run_loses_no_work(tmp_path, claude_bin):
    """envd's health fails from the agent's first file on, and the archive's reads fail
    eight times: the collect keeps trying while the sandbox lives; every change applied."""
    run = run_in_process(
        tmp_path,
        claude_bin,
        WRITE,
        hook=when_exists(
            "home/user/repo/notes.txt",
            unhealthy=True,
            download_errors=[502] * 8,
            download_error_glob="*/changes.tar.zst",
        ),
    )
    run.watch.assert_nothing_left()
    assert run.result.status == "completed", run.result.message
    _all_applied(run, WRITTEN)


@pytest.fixture(scope="module")
def killed_mid_agent(tmp_path_factory, claude_bin) -> InProcess:
    """The sandbox killed (as E2B kills or evicts one) while the agent ticks."""
    with plain_git():
        return run_in_process(
            tmp_path_factory.mktemp("killed"),
            claude_bin,
            SLOW,
            hook=when_exists("home/user/repo/ticks.txt", kill_after_s=0.3),
        )


def test_a_sandbox_killed_mid_run_fails_and_leaves_nothing(killed_mid_agent):
    """Killed under a running agent: failed, exit 1, the transcript and cost so far kept,
    nothing left."""
    run = killed_mid_agent
    _failed(run)
    assert run.written["changes"] == []
    assert run.written["agent"]["exit_code"] is None
    assert (run.out / "transcript.jsonl").read_text().count('"type":"assistant"') >= 1
    assert run.written["cost"]["input_tokens"] > 0
    run.watch.assert_nothing_left()


def test_a_sandbox_killed_mid_run_says_so_plainly(killed_mid_agent):
    """The message's first line says the sandbox was killed or ended; a hint says what to do."""
    message = killed_mid_agent.result.message
    first = message.splitlines()[0]
    assert "sandbox" in first
    assert any(word in first for word in ("killed", "gone", "ended"))
    assert "set -euo pipefail" not in message
    assert "hint:" in message


def test_disk_full_on_the_agents_start_fails_and_says_so(tmp_path, claude_bin):
    """The sandbox's disk is full when the prompt is written: failed before the agent,
    the message names the full disk and what to do, nothing left."""
    run = run_in_process(
        tmp_path, claude_bin, WRITE, at_open={"disk_full_glob": "/tmp/claude-e2b/prompt.md"}
    )
    _failed(run)
    assert "the sandbox's disk is full" in run.result.message
    assert "hint: free space in the sandbox, or use a template with a larger disk" in (
        run.result.message
    )
    assert run.written["changes"] == []
    assert run.written["agent"]["num_turns"] == 0
    run.watch.assert_nothing_left()


@pytest.fixture(scope="module")
def disk_full_at_pack(tmp_path_factory, claude_bin) -> Iterator[InProcess]:
    """The sandbox's disk is full when the changes are packed (the agent's work done)."""
    with plain_git():
        run = run_in_process(
            tmp_path_factory.mktemp("diskfull"),
            claude_bin,
            WRITE,
            at_open={"disk_full_glob": "/tmp/claude-e2b/changes.tar.zst.list"},
        )
    try:
        yield run
    finally:
        run.kill_kept()


def test_disk_full_during_the_pack_keeps_the_sandbox_and_says_how_to_fetch(disk_full_at_pack):
    """The pack cannot write: failed, exit 1, the sandbox kept with the agent's work, the
    message names the full disk and the download command; killed, nothing is left."""
    run = disk_full_at_pack
    _failed(run)
    message = run.result.message
    assert "the sandbox's disk is full" in message
    assert f"claude-e2b download {RUN_ID} --apply" in message
    assert f"claude-e2b kill {RUN_ID}" in message
    (session,) = run.sandboxes.sessions
    assert session.is_alive()
    assert session.read_bytes("/home/user/repo/notes.txt") == b"Notes written in the sandbox.\n"
    assert not (run.repo / "notes.txt").exists()
    run.kill_kept()
    run.watch.assert_nothing_left()


def test_disk_full_during_the_pack_is_not_retried(disk_full_at_pack):
    """A full disk is not a blip: the collect does not wait and try it again."""
    assert disk_full_at_pack.events("collect.retry") == []


def test_a_dropped_agent_stream_loses_and_repeats_nothing(tmp_path, claude_bin):
    """The agent's output stream dropped four times: completed, every change applied,
    each event of the transcript once (tool uses and results by id)."""
    run = run_in_process(
        tmp_path,
        claude_bin,
        ADD_EDIT_DELETE,
        hook=after_writing("/prompt.md", drop_output_after_bytes=1500, drop_output_count=5),
    )
    assert run.result.status == "completed", run.result.message
    assert run.result.exit_code == 0
    _all_applied(
        run,
        {
            "hello.py": "added",
            "README.md": "modified",
            "obsolete.txt": "deleted",
            "PLAN.md": "modified",
        },
    )
    assert len(run.events("agent.stream_dropped")) >= 3
    lines = [json.loads(line) for line in (run.out / "transcript.jsonl").read_text().splitlines()]
    uuids = [line["uuid"] for line in lines if "uuid" in line]
    assert len(uuids) == len(set(uuids))
    assert lines[-1]["type"] == "result"
    assert lines[-1]["num_turns"] == run.written["agent"]["num_turns"] >= 5
    run.watch.assert_nothing_left()


def test_a_dropped_stream_on_each_upload_command_is_survived(tmp_path, claude_bin):
    """Each command before the agent's start has its output stream cut once: the run
    completes with every change applied."""
    run = run_in_process(
        tmp_path,
        claude_bin,
        WRITE,
        hook=before_each_command_until(
            "/prompt.md", drop_output_after_bytes=60, drop_output_count=1
        ),
    )
    run.watch.assert_nothing_left()
    assert run.result.status == "completed", run.result.message
    _all_applied(run, WRITTEN)
