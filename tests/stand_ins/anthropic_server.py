"""A scripted, Anthropic-compatible Messages API for running the real Claude Code CLI offline.

Point the CLI at it with ANTHROPIC_BASE_URL=<url> (any ANTHROPIC_API_KEY) and it answers each
main-loop request with the next turn of a Scenario, streamed as the real API streams it.

    with ScriptedAnthropic("tests/stand_ins/scenarios/demo.yaml") as api:
        env["ANTHROPIC_BASE_URL"] = api.url
        api.set_faults(http_errors=1, http_status=529)   # optional
        ...                                               # run `claude -p ...`
        api.requests[0].headers["x-api-key"], prompt_text(api.requests[0].body)

    python tests/stand_ins/anthropic_server.py --scenario FILE --port 0 --port-file F

Scenario YAML (or the same as a dict; a bare list means `turns`; keys starting with `x-` are
ignored, a place for YAML anchors; any other unknown key is an error naming it)::

    turns:                     # turn N answers the N-th main-loop request
      - text: "I'll add it."   # optional
        tool_uses:             # optional; a turn needs text, tool_uses or both
          - name: Write        # Write/Edit/Bash/Read/...: the CLI's own tool names
            input: {file_path: "{cwd}/hello.py", content: "..."}
        usage: {input_tokens: 0, output_tokens: 0,            # all optional, default 0
                cache_read_input_tokens: 0, cache_creation_input_tokens: 0}
        delay: 0.0             # seconds before answering
        chunk_delay: 0.0       # seconds between SSE events
        stop_reason: null      # default: "tool_use" with tool_uses, else "end_turn"
    final: {text: done, usage: {input_tokens: 10, output_tokens: 1}}   # after the turns run out
    side_reply: {text: OK, usage: {input_tokens: 5, output_tokens: 1}} # for side requests

`{cwd}` in tool inputs becomes the "Primary working directory: ..." the CLI sends (in 2.1.328:
the first text block of the first user message, a <system-reminder> Environment block), so a
scenario works wherever the agent runs. A turn that needs it when no request carries it gets
HTTP 400 (pass `cwd=` to override).

What Claude Code 2.1.328 does against it (checked with the real binary, `-p`, stream-json,
CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_AUTOUPDATER=1 DISABLE_TELEMETRY=1):

- Requests: exactly one `POST /v1/messages?beta=true` per turn, `stream: true`, the model
  asked for, max_tokens 32000, thinking enabled, 12 tools (Agent, Bash, Edit, Read, Write, ...;
  no TodoWrite: it is not offered), `x-api-key` header (no authorization header), user agent
  `claude-cli/2.1.328 (external, sdk-cli)`, `x-stainless-retry-count: 0` even on retries (the
  CLI retries by itself). No count_tokens, no GET/HEAD, no side requests. Without
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC it also sends `HEAD /api/hello` (answered 200).
- The prompt is the last text block of the first user message; before it come nine
  <system-reminder> text blocks (environment, model, deferred tools, agents, skills, git
  status, date, ...). `prompt_text()` extracts it. The history is normalised: one assistant
  message per turn (text + tool_use blocks together), then one user message of tool results,
  so `turn_index()` = the number of assistant messages so far.
- Retries: HTTP 500 and 529 are retried (stream-json shows `system/api_retry` events with
  `error_status`, `retry_delay_ms` ~500 doubling, `max_retries` 10); a stream cut mid-message,
  even just before message_stop, is retried too, and the partial message is neither shown nor
  counted. A request that hangs is simply waited for.
- Usage: per answer the CLI takes message_start's usage, then each field present in
  message_delta's usage replaces it (message_delta wins; missing fields keep message_start's).
  The result event's `usage` and `modelUsage[model]` are plain sums over every answer
  (all turns plus the final one):  input_tokens = sum(input_tokens), likewise output,
  cache_read and cache_creation. `total_cost_usd` = sum over models of
  (input*P_in + output*P_out + cache_read*P_read + cache_creation*P_write) / 1e6, priced by
  the model the CLI asked for; Sonnet 4.5 list prices: P_in 3, P_out 15, P_read 0.30,
  P_write 3.75 (5-minute cache) dollars per million tokens. `assistant` events in stream-json
  carry message_start's usage only (output_tokens is what message_start said, here <= 1),
  repeated per content block: do not sum them.

Side requests (none seen in the configuration above, but other settings and future versions
send them) get `side_reply` and never consume a turn; see `classify()` for the rule. Faults
(`set_faults`) never consume a turn either: the turn comes from the conversation itself, so
the CLI's retry gets the same turn again, and separate runs against one server each start at
turn 0.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import secrets
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import yaml

CWD_PLACEHOLDER = "{cwd}"
_CWD_RE = re.compile(r"Primary working directory: *([^\r\n<]+)")
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


class ScenarioError(ValueError):
    """A scenario file or dict does not follow the schema."""


# --------------------------------------------------------------------------- scenario


@dataclass(frozen=True)
class Usage:
    """Token figures reported for one answer (the Messages API `usage` object)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, where: str) -> Usage:
        if data is None:
            return cls()
        _reject_unknown(data, set(cls.__dataclass_fields__), where)
        values = {}
        for key, value in data.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ScenarioError(
                    f"{where}.{key}: expected a non-negative integer, got {value!r}"
                )
            values[key] = value
        return cls(**values)

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
        )


@dataclass(frozen=True)
class ToolUse:
    """One `tool_use` content block: a tool name and its input (strings may contain `{cwd}`)."""

    name: str
    input: dict[str, Any]

    @classmethod
    def from_dict(cls, data: Any, where: str) -> ToolUse:
        if not isinstance(data, dict):
            raise ScenarioError(f"{where}: expected a mapping with 'name' and 'input'")
        _reject_unknown(data, {"name", "input"}, where)
        name, tool_input = data.get("name"), data.get("input", {})
        if not isinstance(name, str) or not name:
            raise ScenarioError(f"{where}.name: expected the tool's name, e.g. Write")
        if not isinstance(tool_input, dict):
            raise ScenarioError(f"{where}.input: expected a mapping")
        return cls(name, tool_input)


@dataclass(frozen=True)
class Turn:
    """One scripted assistant answer to one main-loop request."""

    text: str | None = None
    tool_uses: tuple[ToolUse, ...] = ()
    usage: Usage = Usage()
    delay: float = 0.0
    chunk_delay: float = 0.0
    stop_reason: str | None = None

    @property
    def effective_stop_reason(self) -> str:
        return self.stop_reason or ("tool_use" if self.tool_uses else "end_turn")

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Turn:
        if not isinstance(data, dict):
            raise ScenarioError(f"{where}: expected a mapping")
        _reject_unknown(
            data, {"text", "tool_uses", "usage", "delay", "chunk_delay", "stop_reason"}, where
        )
        text = data.get("text")
        if text is not None and not isinstance(text, str):
            raise ScenarioError(f"{where}.text: expected a string")
        raw_tools = data.get("tool_uses") or []
        if not isinstance(raw_tools, list):
            raise ScenarioError(f"{where}.tool_uses: expected a list")
        tools = tuple(
            ToolUse.from_dict(t, f"{where}.tool_uses[{i}]") for i, t in enumerate(raw_tools)
        )
        if text is None and not tools:
            raise ScenarioError(f"{where}: a turn needs 'text', 'tool_uses' or both")
        return cls(
            text=text,
            tool_uses=tools,
            usage=Usage.from_dict(data.get("usage"), f"{where}.usage"),
            delay=_seconds(data.get("delay", 0.0), f"{where}.delay"),
            chunk_delay=_seconds(data.get("chunk_delay", 0.0), f"{where}.chunk_delay"),
            stop_reason=data.get("stop_reason"),
        )


@dataclass(frozen=True)
class Scenario:
    """The scripted conversation: turn N answers the N-th main-loop request."""

    turns: tuple[Turn, ...] = ()
    final: Turn = Turn(text="done", usage=Usage(input_tokens=10, output_tokens=1))
    side_reply: Turn = Turn(text="OK", usage=Usage(input_tokens=5, output_tokens=1))

    @classmethod
    def from_dict(cls, data: Any, where: str = "scenario") -> Scenario:
        if isinstance(data, list):
            data = {"turns": data}
        if not isinstance(data, dict):
            raise ScenarioError(f"{where}: expected a mapping with 'turns'")
        data = {k: v for k, v in data.items() if not str(k).startswith("x-")}  # anchors
        _reject_unknown(data, {"turns", "final", "side_reply"}, where)
        turns = data.get("turns") or []
        if not isinstance(turns, list):
            raise ScenarioError(f"{where}.turns: expected a list")
        kwargs: dict[str, Any] = {
            "turns": tuple(Turn.from_dict(t, f"{where}.turns[{i}]") for i, t in enumerate(turns))
        }
        for key in ("final", "side_reply"):
            if key in data:
                kwargs[key] = Turn.from_dict(data[key], f"{where}.{key}")
        return cls(**kwargs)

    @classmethod
    def load(
        cls, source: Scenario | dict[str, Any] | list[Any] | str | os.PathLike[str]
    ) -> Scenario:
        """Accept a Scenario, a dict/list in the YAML schema, or a path to a YAML file."""
        if isinstance(source, Scenario):
            return source
        if isinstance(source, dict | list):
            return cls.from_dict(source)
        path = Path(source)
        with path.open(encoding="utf-8") as fh:
            return cls.from_dict(yaml.safe_load(fh), where=path.name)

    def turn_for(self, index: int) -> Turn:
        return self.turns[index] if index < len(self.turns) else self.final


def _reject_unknown(data: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ScenarioError(f"{where}: unknown key {unknown[0]!r} (allowed: {sorted(allowed)})")


def _seconds(value: Any, where: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise ScenarioError(f"{where}: expected a non-negative number of seconds")
    return float(value)


# --------------------------------------------------------------------------- faults & records


@dataclass
class Faults:
    """Faults to inject, consumed one request at a time (counters go down as they fire)."""

    http_errors: int = 0
    http_status: int = 500
    retry_after: float | None = None
    drop_streams: int = 0
    drop_after_events: int = 3
    hang_requests: int = 0
    hang_seconds: float = 0.0
    scope: Literal["main", "any"] = "main"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as it arrived, with what the server did about it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    kind: str  # "main", "side", "count_tokens" or "other"
    turn: int | None = None  # index into Scenario.turns (len(turns) = the final answer)
    usage: Usage | None = None  # usage the answer reported (None when faulted / not a message)
    fault: str | None = None
    side_reason: str | None = None
    time: float = field(default_factory=time.time)

    def as_json(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "method": self.method,
            "path": self.path,
            "headers": self.headers,
            "kind": self.kind,
            "turn": self.turn,
            "fault": self.fault,
            "side_reason": self.side_reason,
            "usage": None if self.usage is None else self.usage.__dict__,
            "body": self.body,
        }


# --------------------------------------------------------------------------- request analysis


def classify(body: Any) -> tuple[str, str | None]:
    """Tell a main-loop request from a side request; returns (kind, why it is a side request).

    A main-loop request offers tools, asks for more than one token, and ends with the user
    turn the agent loop produces: the first user message (the prompt) or tool results. Side
    requests fail one of these: the quota probe (max_tokens 1, "quota"), title/summary/
    classifier queries on the small model (no tools), and forked helpers that reuse the main
    prompt and tools for cache hits but append their own instruction as a new user message
    (prompt suggestion, compaction, memory extraction).
    """
    if not isinstance(body, dict):
        return "side", "body is not a JSON object"
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, int) and max_tokens <= 1:
        return "side", "max_tokens <= 1 (quota probe)"
    if not body.get("tools"):
        return "side", "no tools offered (title/summary/classifier query)"
    messages = body.get("messages") or []
    if not messages or not isinstance(messages[-1], dict) or messages[-1].get("role") != "user":
        return "side", "does not end with a user message (prefill)"
    if len(messages) > 1 and _new_instruction(messages[-1]):
        return "side", "ends with a new user instruction (forked helper query)"
    return "main", None


def _new_instruction(message: dict[str, Any]) -> bool:
    """True when a later user message carries text of its own rather than tool results."""
    content = message.get("content")
    if isinstance(content, str):
        return not content.lstrip().startswith("<system-reminder>")
    blocks = [b for b in content or [] if isinstance(b, dict)]
    if any(b.get("type") == "tool_result" for b in blocks):
        return False
    return any(
        b.get("type") == "text"
        and not str(b.get("text", "")).lstrip().startswith("<system-reminder>")
        for b in blocks
    )


def turn_index(body: dict[str, Any]) -> int:
    """Which scenario turn a main-loop request asks for: the assistant messages so far.

    Derived from the conversation rather than a counter, so a retried request (after a fault)
    gets the same turn again and separate CLI runs against one server each start at turn 0.
    """
    return sum(
        1
        for m in body.get("messages") or []
        if isinstance(m, dict) and m.get("role") == "assistant"
    )


def prompt_text(body: Any) -> str | None:
    """The user's prompt: the first user message's last text that is not a system reminder."""
    if not isinstance(body, dict):
        return None
    for message in body.get("messages") or []:
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            texts = [
                str(b.get("text", ""))
                for b in content or []
                if isinstance(b, dict)
                and b.get("type") == "text"
                and not str(b.get("text", "")).lstrip().startswith("<system-reminder>")
            ]
            return texts[-1] if texts else None
    return None


def find_cwd(body: Any) -> str | None:
    """Return the 'Primary working directory: …' the CLI puts in its system prompt or messages."""
    for text in _strings(body):
        match = _CWD_RE.search(text)
        if match:
            return match.group(1).strip()
    return None


def _strings(value: Any) -> itertools.chain[str] | list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return itertools.chain.from_iterable(_strings(v) for v in value.values())
    if isinstance(value, list):
        return itertools.chain.from_iterable(_strings(v) for v in value)
    return []


def substitute_cwd(value: Any, cwd: str) -> Any:
    """Replace `{cwd}` in every string of a tool input (plain replace: other braces stay)."""
    if isinstance(value, str):
        return value.replace(CWD_PLACEHOLDER, cwd)
    if isinstance(value, dict):
        return {k: substitute_cwd(v, cwd) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_cwd(v, cwd) for v in value]
    return value


def _uses_cwd(turn: Turn) -> bool:
    return any(CWD_PLACEHOLDER in s for t in turn.tool_uses for s in _strings(t.input))


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def _text_chunks(text: str) -> list[str]:
    words = re.findall(r"\s*\S+\s*|\s+", text) or [""]
    return ["".join(words[i : i + 3]) for i in range(0, len(words), 3)]


def _json_chunks(encoded: str) -> list[str]:
    # Like the real API: an empty first delta, then the JSON in several pieces.
    pieces = max(2, min(6, len(encoded) // 16))
    size = -(-len(encoded) // pieces)
    return [""] + [encoded[i : i + size] for i in range(0, len(encoded), size)]


def _usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "output_tokens": usage.output_tokens,
    }


def _content_blocks(turn: Turn, cwd: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if turn.text is not None:
        blocks.append({"type": "text", "text": turn.text})
    blocks.extend(
        {
            "type": "tool_use",
            "id": _new_id("toolu_"),
            "name": tool.name,
            "input": substitute_cwd(tool.input, cwd),
        }
        for tool in turn.tool_uses
    )
    return blocks


def message_json(turn: Turn, model: str, cwd: str) -> dict[str, Any]:
    """The whole message, as a non-streaming answer."""
    return {
        "id": _new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": _content_blocks(turn, cwd),
        "stop_reason": turn.effective_stop_reason,
        "stop_sequence": None,
        "usage": {**_usage_json(turn.usage), "service_tier": "standard"},
    }


def sse_events(turn: Turn, model: str, cwd: str) -> list[tuple[str, dict[str, Any]]]:
    """The same message as the SSE events the real API streams."""
    message = message_json(turn, model, cwd)
    start_usage = {**_usage_json(turn.usage), "output_tokens": min(1, turn.usage.output_tokens)}
    events: list[tuple[str, dict[str, Any]]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    **message,
                    "content": [],
                    "stop_reason": None,
                    "usage": {**start_usage, "service_tier": "standard"},
                },
            },
        ),
        ("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(message["content"]):
        events.extend(_block_events(index, block))
    events += [
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": _usage_json(turn.usage),
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events


def _block_events(index: int, block: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    start: dict[str, Any]
    if block["type"] == "text":
        start = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": c} for c in _text_chunks(block["text"])]
    else:
        start = {**block, "input": {}}
        encoded = json.dumps(block["input"], ensure_ascii=False)
        deltas = [{"type": "input_json_delta", "partial_json": c} for c in _json_chunks(encoded)]
    return [
        (
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": start},
        ),
        *(
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
            for d in deltas
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": index}),
    ]


def error_json(status: int, message: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message},
    }


# --------------------------------------------------------------------------- the server


class _DroppedError(Exception):
    """The connection was cut on purpose (fault) or by the client."""


class ScriptedAnthropic:
    """A Messages API on 127.0.0.1 that answers from a Scenario, records requests, injects faults.

    Usable as a context manager (`with ScriptedAnthropic(scenario) as api: api.url`).
    """

    def __init__(
        self,
        scenario: Scenario | dict[str, Any] | list[Any] | str | os.PathLike[str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        record_path: str | os.PathLike[str] | None = None,
        cwd: str | None = None,
        log: bool = False,
    ) -> None:
        self.scenario = Scenario.load(scenario if scenario is not None else [])
        self._host, self._port = host, port
        self._record_path = Path(record_path) if record_path is not None else None
        self._cwd_override = cwd
        self._log = log
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._answers = 0
        self._faults = Faults()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.cwd_seen: str | None = None

    # -- lifecycle

    def start(self) -> Self:
        """Bind and serve in a daemon thread; returns self."""
        server = ThreadingHTTPServer((self._host, self._port), _Handler)
        server.daemon_threads = True
        server.api = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hung requests are released."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("call start() (or use `with`) first")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    # -- what happened

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def main_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.kind == "main"]

    @property
    def side_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.kind == "side"]

    @property
    def turns_served(self) -> int:
        """How many main-loop answers were sent in full (scenario turns plus final answers)."""
        with self._lock:
            return self._answers

    def served_usage(self, kind: str = "main") -> Usage:
        """Sum of the usage of every answer of this kind that was sent in full."""
        total = Usage()
        for record in self.requests:
            if record.kind == kind and record.usage is not None:
                total += record.usage
        return total

    # -- faults

    def set_faults(
        self,
        *,
        http_errors: int = 0,
        http_status: int = 500,
        retry_after: float | None = None,
        drop_streams: int = 0,
        drop_after_events: int = 3,
        hang_requests: int = 0,
        hang_seconds: float = 0.0,
        scope: Literal["main", "any"] = "main",
    ) -> None:
        """Replace the pending faults.

        - http_errors: the next K requests get `http_status` (500, 529 overloaded, 429…) with
          an Anthropic error body (and `retry-after` when given).
        - drop_streams: the next K streamed answers are cut after `drop_after_events` SSE events.
        - hang_requests: the next K requests wait `hang_seconds` before being answered.
        - scope: "main" counts only main-loop requests; "any" every /v1/messages request.
        A faulted request never consumes a scenario turn: the CLI's retry gets the same turn.
        """
        with self._lock:
            self._faults = Faults(
                http_errors=http_errors,
                http_status=http_status,
                retry_after=retry_after,
                drop_streams=drop_streams,
                drop_after_events=drop_after_events,
                hang_requests=hang_requests,
                hang_seconds=hang_seconds,
                scope=scope,
            )

    # -- used by the handler

    def _take_faults(self, kind: str, *, streaming: bool) -> tuple[float, int | None, int | None]:
        """Return (hang seconds, HTTP error status, drop after N events) for this request."""
        with self._lock:
            f = self._faults
            if f.scope == "main" and kind != "main":
                return 0.0, None, None
            hang = 0.0
            if f.hang_requests > 0:
                f.hang_requests -= 1
                hang = f.hang_seconds
            if f.http_errors > 0:
                f.http_errors -= 1
                return hang, f.http_status, None
            if streaming and f.drop_streams > 0:
                f.drop_streams -= 1
                return hang, None, f.drop_after_events
            return hang, None, None

    def _finish_turn(self) -> None:
        with self._lock:
            self._answers += 1

    def _record(self, record: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(record)
            if self._record_path is not None:
                with self._record_path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record.as_json(), ensure_ascii=False) + "\n")
        if self._log:
            extra = f" turn={record.turn}" if record.turn is not None else ""
            reason = f" ({record.side_reason})" if record.side_reason else ""
            fault = f" FAULT={record.fault}" if record.fault else ""
            print(
                f"[anthropic-stand-in] {record.method} {record.path} {record.kind}"
                f"{reason}{extra}{fault}",
                file=sys.stderr,
                flush=True,
            )

    def _resolve_cwd(self, body: Any) -> str | None:
        cwd = self._cwd_override or find_cwd(body)
        if cwd is not None:
            self.cwd_seen = cwd
        return cwd

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "scripted-anthropic/1"
    timeout = 120  # idle keep-alive connections go away on their own

    @property
    def api(self) -> ScriptedAnthropic:
        return self.server.api  # type: ignore[attr-defined, no-any-return]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # requests are recorded instead

    # -- verbs

    def do_HEAD(self) -> None:
        self._record_plain(None)
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self._record_plain(None)
        if self._route() == "/v1/models":
            self._send_json(200, {"data": [], "has_more": False, "first_id": None, "last_id": None})
        else:
            self._send_json(404, error_json(404, f"no such endpoint: GET {self.path}"))

    def do_POST(self) -> None:
        raw = self._read_body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._record_plain(raw.decode("utf-8", "replace"))
            self._send_json(400, error_json(400, "request body is not JSON"))
            return
        route = self._route()
        if route == "/v1/messages":
            self._messages(body)
        elif route == "/v1/messages/count_tokens":
            self._record_plain(body, kind="count_tokens")
            count = max(1, len(json.dumps(body)) // 4)
            self._send_json(200, {"input_tokens": count})
        else:
            self._record_plain(body)
            self._send_json(404, error_json(404, f"no such endpoint: POST {self.path}"))

    # -- /v1/messages

    def _messages(self, body: Any) -> None:
        api = self.api
        kind, side_reason = classify(body)
        streaming = isinstance(body, dict) and bool(body.get("stream"))
        hang, status, drop_after = api._take_faults(kind, streaming=streaming)
        api._sleep(hang)
        if api._stopping.is_set():
            return
        index = turn_index(body) if kind == "main" else None
        record = replace(self._new_record(body, kind, side_reason), turn=index)
        if status is not None:
            api._record(replace(record, fault=f"http {status}"))
            self._send_error(status)
            return
        turn = api.scenario.turn_for(index) if index is not None else api.scenario.side_reply
        cwd = api._resolve_cwd(body)
        if cwd is None and _uses_cwd(turn):
            api._record(replace(record, fault="no cwd"))
            message = "scenario uses {cwd} but the request has no 'Primary working directory:'"
            self._send_json(400, error_json(400, message + " line; pass cwd=..."))
            return
        api._sleep(turn.delay)
        fault = self._answer(
            turn,
            str(body.get("model") or "claude-sonnet-4-5") if isinstance(body, dict) else "claude",
            cwd or "",
            streaming=streaming,
            drop_after=drop_after,
        )
        if fault is None and index is not None:
            api._finish_turn()
        api._record(replace(record, fault=fault, usage=None if fault else turn.usage))

    def _answer(
        self, turn: Turn, model: str, cwd: str, *, streaming: bool, drop_after: int | None
    ) -> str | None:
        """Send the answer; return what went wrong, if anything."""
        try:
            if streaming:
                self._stream(turn, model, cwd, drop_after)
            else:
                self._send_json(200, message_json(turn, model, cwd))
        except _DroppedError:
            return "dropped stream"
        except OSError:
            return "client went away"
        return None

    def _stream(self, turn: Turn, model: str, cwd: str, drop_after: int | None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", _new_id("req_"))
        self.end_headers()
        for count, (event, data) in enumerate(sse_events(turn, model, cwd)):
            if drop_after is not None and count >= drop_after:
                self._cut_connection()
                raise _DroppedError
            if count and turn.chunk_delay:
                self.api._sleep(turn.chunk_delay)
            payload = f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _cut_connection(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # -- helpers

    def _route(self) -> str:
        return self.path.split("?", 1)[0].rstrip("/")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}

    def _new_record(self, body: Any, kind: str, side_reason: str | None) -> RecordedRequest:
        return RecordedRequest(
            method=self.command,
            path=self.path,
            headers=self._headers(),
            body=body,
            kind=kind,
            side_reason=side_reason,
        )

    def _record_plain(self, body: Any, kind: str = "other") -> None:
        self.api._record(self._new_record(body, kind, None))

    def _send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", _new_id("req_"))
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, status: int) -> None:
        data = json.dumps(error_json(status, f"injected fault: HTTP {status}")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        retry_after = self.api._faults.retry_after
        if retry_after is not None:
            self.send_header("retry-after", str(retry_after))
        self.end_headers()
        self.wfile.write(data)


# --------------------------------------------------------------------------- script mode


def main(argv: list[str] | None = None) -> int:
    """Serve a scenario until killed; write the chosen port to --port-file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", required=True, help="scenario YAML file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", help="write the port here once listening")
    parser.add_argument("--record", help="append every request as JSON lines to this file")
    parser.add_argument("--quiet", action="store_true", help="do not log requests to stderr")
    args = parser.parse_args(argv)
    try:
        scenario = Scenario.load(args.scenario)
    except (OSError, ScenarioError, yaml.YAMLError) as exc:
        print(f"error: cannot load scenario {args.scenario}: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    api = ScriptedAnthropic(
        scenario, host=args.host, port=args.port, record_path=args.record, log=not args.quiet
    )
    with api:
        if args.port_file:
            tmp = Path(args.port_file + ".tmp")
            tmp.write_text(f"{api.port}\n", encoding="utf-8")
            tmp.replace(args.port_file)
        print(f"[anthropic-stand-in] serving {api.url}", file=sys.stderr, flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
