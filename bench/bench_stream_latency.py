"""Line latency from a print in the sandbox to our event handler, through the real e2b SDK.

    uv run python bench/bench_stream_latency.py [--lines 500] [--runs 3] [--no-claude]

A python3 one-liner in the local sandbox prints --lines stream-json-shaped lines
(``assistant`` events, about one in ten padded to ~8 KB) in bursts and with
20-200 ms gaps; each line ends with ``time.time_ns()`` taken just before its
write. Our side runs it with ``SandboxSession.run(on_stdout=...)`` and, per line,
stamps the time the line came out of ``LineSplitter`` and ``parse_event``. Same
host, same clock: the difference is the line's latency (sandbox pipe → local
server's read loop → Connect stream over HTTP/1.1 → SDK → callback → our handler).

Variants, all in one run so the figures are comparable:

- ``direct-pipe``: the same generator as a plain host subprocess read straight
  from its pipe: the floor (process wake-ups, no server, no SDK).
- ``sandbox -u``: the generator with ``python3 -u`` (flush per line), the local
  server's faults all off (its default; read back from /localbox/faults).
- ``sandbox buffered``: ``python3`` without ``-u``: stdout to a pipe is block
  buffered (8 KB), so lines wait in the producer. Shows the precondition: the
  agent in the sandbox must write each line as it is made.
- ``sandbox delay_s``: the server's ``delay_s`` fault on (delays each HTTP request,
  not each streamed chunk): line latency should not move.
- ``claude``: the real Claude Code CLI (when found: $CLAUDE_E2B_CLAUDE_BIN or the
  bootstrap cache) in the sandbox against the scripted Anthropic stand-in: whether
  its stream-json arrives line by line while it runs (chunks end on line
  boundaries, events arrive turn by turn, well before the process exits).

Target: p95 ≤ 250 ms for ``sandbox -u``. Writes bench/results/stream_latency.json.
"""

# The bench reaches into the session for the local server's URL (fault switch).
# ruff: noqa: SLF001

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from claude_e2b.agent.events import AssistantEvent, LineSplitter, parse_event  # noqa: E402
from claude_e2b.sandbox.localbox.launcher import LocalBoxHost  # noqa: E402
from claude_e2b.sandbox.session import SandboxSession, SandboxSpec, open_session  # noqa: E402

TARGET_P95_MS = 250.0
CLAUDE_VERSION = "2.1.328"
BOOTSTRAP_CLAUDE = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "claude-e2b"
    / f"claude-code-{CLAUDE_VERSION}"
    / "node_modules/@anthropic-ai/claude-code/bin/claude.exe"
)

# The generator: argv = lines seed. A line is an assistant event whose last field is
# the wall-clock ns taken right before the write; ~40% of lines are followed by a
# 20-200 ms gap, the rest go out back to back (bursts); ~10% are padded to ~8 KB.
GENERATOR = r"""
import json, random, sys, time
n, seed = int(sys.argv[1]), int(sys.argv[2])
rng = random.Random(seed)
for i in range(n):
    pad = "x" * (8000 if rng.random() < 0.1 else rng.randint(20, 400))
    msg = {"id": f"msg_{i:05d}", "type": "message", "role": "assistant",
           "model": "claude-sonnet-4-5", "content": [{"type": "text", "text": pad}],
           "usage": {"input_tokens": 3, "output_tokens": 12}}
    head = json.dumps({"type": "assistant", "message": msg, "parent_tool_use_id": None,
                       "session_id": "bench", "seq": i})[:-1]
    sys.stdout.write(f'{head}, "t_ns": {time.time_ns()}}}\n')
    if rng.random() < 0.4:
        time.sleep(rng.uniform(0.02, 0.2))
"""


@dataclass
class Recorder:
    """The on_stdout side: LineSplitter → parse_event → per-line latency."""

    latencies_ms: list[float] = field(default_factory=list)
    callback_ms: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    chunks: int = 0
    chunks_ending_on_newline: int = 0
    broken: int = 0
    splitter: LineSplitter = field(default_factory=LineSplitter)

    def on_stdout(self, chunk: str) -> None:
        """The session's on_stdout callback."""
        arrived = time.time_ns()
        self.chunks += 1
        self.chunks_ending_on_newline += chunk.endswith("\n")
        for line in self.splitter.feed(chunk):
            event = parse_event(line)
            handled = time.time_ns()
            if not isinstance(event, AssistantEvent) or "t_ns" not in event.raw:
                self.broken += 1
                continue
            printed = int(event.raw["t_ns"])
            self.latencies_ms.append((handled - printed) / 1e6)
            self.callback_ms.append((arrived - printed) / 1e6)
            self.sizes.append(len(line))
            self.seqs.append(int(event.raw["seq"]))


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p95/p99/max/mean in ms (nearest-rank percentiles)."""
    if not values:
        return {}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    return {
        "p50": rank(50),
        "p95": rank(95),
        "p99": rank(99),
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


def summary(name: str, recorders: list[Recorder], expected: int) -> dict[str, Any]:
    """Pool the runs of one variant into one row."""
    lat = [v for r in recorders for v in r.latencies_ms]
    cb = [v for r in recorders for v in r.callback_ms]
    long_lat = [
        v for r in recorders for v, s in zip(r.latencies_ms, r.sizes, strict=True) if s > 4000
    ]
    per_run = [percentiles(r.latencies_ms) for r in recorders]
    worst = sorted(
        (
            {"run": i, "seq": q, "bytes": s, "ms": v}
            for i, r in enumerate(recorders)
            for v, s, q in zip(r.latencies_ms, r.sizes, r.seqs, strict=True)
        ),
        key=lambda w: -w["ms"],
    )[:5]
    return {
        "variant": name,
        "runs": len(recorders),
        "lines": len(lat),
        "lines_expected": expected * len(recorders),
        "broken_lines": sum(r.broken for r in recorders),
        "chunks": sum(r.chunks for r in recorders),
        "chunks_ending_on_newline": sum(r.chunks_ending_on_newline for r in recorders),
        "handler_ms": percentiles(lat),
        "callback_ms": percentiles(cb),
        "long_lines_ms": percentiles(long_lat),
        "per_run_p95_ms": [p.get("p95") for p in per_run],
        "worst_lines": worst,
    }


def run_direct(lines: int, seed: int) -> Recorder:
    """The floor: the generator as a host subprocess, read straight from its pipe."""
    rec = Recorder()
    argv = [sys.executable, "-u", "-c", GENERATOR, str(lines), str(seed)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        while data := os.read(proc.stdout.fileno(), 64 * 1024):
            rec.on_stdout(data.decode())
    return rec


def run_sandbox(session: SandboxSession, lines: int, seed: int, *, unbuffered: bool) -> Recorder:
    """The generator in the sandbox, through the SDK and the local server."""
    rec = Recorder()
    python = "python3 -u" if unbuffered else "python3"
    cmd = f"{python} -c {shlex.quote(GENERATOR)} {lines} {seed}"
    outcome = session.run(cmd, timeout=300, on_stdout=rec.on_stdout)
    if not outcome.ok:
        raise RuntimeError(f"generator failed ({outcome.exit_code}): {outcome.stderr[-2000:]}")
    return rec


def set_faults(session: SandboxSession, faults: dict[str, Any]) -> dict[str, Any]:
    """POST (or, with {}, read) the local server's faults; returns them as now in force."""
    assert session._localbox is not None
    answer = session._localbox.call("POST" if faults else "GET", "/localbox/faults", faults or None)
    answer.raise_for_status()
    found: dict[str, Any] = answer.json()
    return found


def find_claude() -> Path | None:
    """The pinned Claude Code CLI, if installed."""
    for candidate in (os.environ.get("CLAUDE_E2B_CLAUDE_BIN"), str(BOOTSTRAP_CLAUDE)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate).resolve()
    return None


CLAUDE_TURNS = 6
CLAUDE_SLEEP_S = 0.5


def run_claude(claude: Path, host: LocalBoxHost) -> dict[str, Any]:
    """Real Claude Code in the sandbox vs the scripted API: is its stream-json line-flushed?"""
    from tests.stand_ins.anthropic_server import ScriptedAnthropic  # noqa: PLC0415

    turn = {
        "text": "Working. " + "y" * 7000,  # a long assistant event, like a real one
        "tool_uses": [
            {
                "name": "Bash",
                "input": {"command": f"sleep {CLAUDE_SLEEP_S}", "description": "wait"},
            }
        ],
    }
    scenario = {"turns": [turn] * CLAUDE_TURNS, "final": {"text": "done"}}
    arrivals: list[tuple[float, str, str]] = []  # (time, event type, message id)
    splitter = LineSplitter()
    chunks = [0, 0]

    def on_stdout(chunk: str) -> None:
        now = time.time()
        chunks[0] += 1
        chunks[1] += chunk.endswith("\n")
        for line in splitter.feed(chunk):
            event = parse_event(line)
            kind = type(event).__name__ if event is not None else "blank"
            message = event.message_id if isinstance(event, AssistantEvent) else ""
            arrivals.append((now, kind, message))

    with ScriptedAnthropic(scenario) as api:
        # The sandbox's own network reaches only the scripted API on the runner.
        spec = SandboxSpec(
            backend="local",
            lifetime_s=600,
            local_tools={"claude": claude},
            local_reach=(f"127.0.0.1:{api.port}",),
        )
        with open_session(spec, host) as session:
            envs = {
                "ANTHROPIC_BASE_URL": api.url,
                "ANTHROPIC_API_KEY": "sk-ant-bench-0000",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                "DISABLE_AUTOUPDATER": "1",
                "DISABLE_TELEMETRY": "1",
                "IS_SANDBOX": "1",
            }
            argv = ["claude", "-p", "Tick a few times.", "--output-format", "stream-json"]
            argv += ["--verbose", "--dangerously-skip-permissions", "--model", "claude-sonnet-4-5"]
            started = time.time()
            outcome = session.run(shlex.join(argv), timeout=300, envs=envs, on_stdout=on_stdout)
            ended = time.time()
            requests = [r.time for r in api.main_requests]
    # The CLI emits one assistant event per content block (text, then tool_use): per
    # API answer, the first and last arrival of its message id.
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for t, kind, message in arrivals:
        if kind == "AssistantEvent":
            first.setdefault(message, t)
            last[message] = t
    messages = sorted(first, key=first.__getitem__)
    # Answer i's events must reach us before the CLI sends request i+1, which it does
    # only after the Bash tool slept CLAUDE_SLEEP_S: else they were held back.
    before_next = sum(
        1 for i, m in enumerate(messages) if i + 1 < len(requests) and last[m] < requests[i + 1]
    )
    # Upper bound of the line latency: from the request reaching the API (which answers
    # at once) to the answer's first assistant event here; includes the CLI's own work.
    gaps_ms = [(first[m] - r) * 1000 for m, r in zip(messages, requests, strict=False)]
    return {
        "exit_code": outcome.exit_code,
        "events": len(arrivals),
        "assistant_events": sum(1 for _, kind, _ in arrivals if kind == "AssistantEvent"),
        "assistant_messages": len(messages),
        "main_requests": len(requests),
        "chunks": chunks[0],
        "chunks_ending_on_newline": chunks[1],
        "messages_done_before_next_request": before_next,
        "request_to_assistant_event_ms": percentiles(gaps_ms),
        "first_event_after_start_s": (arrivals[0][0] - started) if arrivals else None,
        "last_event_before_exit_s": (ended - arrivals[-1][0]) if arrivals else None,
        "wall_s": ended - started,
    }


def git_sha() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def fmt(row: dict[str, Any]) -> str:
    h = row["handler_ms"]
    if not h:
        return f"{row['variant']:22s} no lines"
    return (
        f"{row['variant']:22s} {row['lines']:6d} {h['p50']:8.2f} {h['p95']:8.2f} "
        f"{h['p99']:8.2f} {h['max']:9.2f}  {row['chunks']:6d}"
    )


def repeat(runs: int, make: Callable[[int], Recorder]) -> list[Recorder]:
    return [make(seed) for seed in range(1, runs + 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--delay-s", type=float, default=0.5, help="delay_s of that variant")
    parser.add_argument("--no-claude", action="store_true", help="skip the real-CLI check")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "stream_latency.json"
    )
    args = parser.parse_args()
    # A private registry for the local sandboxes, removed at the end.
    with tempfile.TemporaryDirectory(prefix="claude-e2b-bench-state-") as state:
        # test_faults: the delay_s variant switches the server's fault on and off.
        bench(args, LocalBoxHost(Path(state) / "localbox", os.environ, test_faults=True))


def bench(args: argparse.Namespace, host: LocalBoxHost) -> None:

    rows = [
        summary("direct-pipe", repeat(args.runs, lambda s: run_direct(args.lines, s)), args.lines)
    ]
    spec = SandboxSpec(backend="local", lifetime_s=900)
    with open_session(spec, host) as session:
        faults_default = set_faults(session, {})
        run_sandbox(session, 20, 0, unbuffered=True)  # warm-up: first spawn, connection
        fast = repeat(args.runs, lambda s: run_sandbox(session, args.lines, s, unbuffered=True))
        rows.append(summary("sandbox -u", fast, args.lines))
        buffered = [run_sandbox(session, args.lines, 1, unbuffered=False)]
        rows.append(summary("sandbox buffered", buffered, args.lines))
        set_faults(session, {"delay_s": args.delay_s})
        delayed = [run_sandbox(session, args.lines, 1, unbuffered=True)]
        set_faults(session, {"delay_s": 0.0})
        rows.append(summary(f"sandbox delay_s={args.delay_s:g}", delayed, args.lines))

    print(f"{'variant':22s} {'lines':>6s} {'p50 ms':>8s} {'p95 ms':>8s} {'p99 ms':>8s} "
          f"{'max ms':>9s}  {'chunks':>6s}")  # fmt: skip
    for row in rows:
        print(fmt(row))
    main_row = rows[1]
    p95 = main_row["handler_ms"]["p95"]
    floor = rows[0]["handler_ms"]["p95"]
    verdict = "meets" if p95 <= TARGET_P95_MS else "MISSES"
    print(f"sandbox -u p95 {p95:.2f} ms {verdict} the {TARGET_P95_MS:g} ms target "
          f"({p95 / floor:.1f}x the direct-pipe p95 of {floor:.2f} ms)")  # fmt: skip

    claude: dict[str, Any] | None = None
    if not args.no_claude:
        binary = find_claude()
        if binary is None:
            claude = {"skipped": "Claude Code CLI not found"}
        else:
            claude = {"binary": str(binary), **run_claude(binary, host)}
            worst = claude["request_to_assistant_event_ms"]["max"]
            print(
                f"claude: {claude['assistant_messages']} answers, "
                f"{claude['messages_done_before_next_request']} streamed before the next request; "
                f"{claude['chunks_ending_on_newline']}/{claude['chunks']} chunks end on a "
                f"newline; request→event max {worst:.1f} ms"
            )
        if "skipped" in claude:
            print(f"claude: skipped ({claude['skipped']})")

    report = {
        "benchmark": "stream_latency",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_sha": git_sha(),
        "machine": machine(),
        "params": {"lines": args.lines, "runs": args.runs, "delay_s_variant": args.delay_s},
        "target_p95_ms": TARGET_P95_MS,
        "server_faults_default": faults_default,
        "meets_target": p95 <= TARGET_P95_MS,
        "ratio_p95_vs_direct_pipe": p95 / floor if floor else None,
        "variants": rows,
        "claude_cli": claude,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
