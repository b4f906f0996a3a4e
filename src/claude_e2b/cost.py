"""Prices, token usage, and what a run cost: Claude's tokens plus the sandbox's seconds.

Claude Code prices its own run (the result event's ``modelUsage[model].costUSD``
and ``total_cost_usd``); that figure is taken as it is. When a run is cut before
the result event, the usage streamed per assistant message is priced from the
packaged price table (``data/prices.json``, with its date and source). The
sandbox is priced per second of the vCPUs and memory it was allocated.

Dollar figures for Claude are per million tokens (MTok), as Anthropic lists them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

MTOK = 1_000_000
USD_DECIMALS = 9  # nano-dollars: sums of figures stay exact to the cent and beyond
UNATTRIBUTED = "(unattributed)"

CostSource = Literal["claude-code", "price-table", "unknown-model"]
# When entries for one model are merged, the less certain source wins.
_SOURCE_RANK: dict[CostSource, int] = {"claude-code": 0, "price-table": 1, "unknown-model": 2}

# Spellings of one model id that name no different price, removed in this order.
_DECORATIONS = (
    re.compile(r"\[[^\]]*\]$"),  # context-window suffix: sonnet[1m]
    re.compile(r"^(?:[a-z0-9_-]+/)+"),  # gateway route: anthropic/claude-...
    re.compile(r"^(?:[a-z]+\.)?anthropic\."),  # Bedrock: us.anthropic.claude-...
    re.compile(r"-v\d+(?::\d+)?$"),  # Bedrock version: ...-v1:0
    re.compile(r"@.*$"),  # Vertex: claude-...@20250929
)
_SNAPSHOT = re.compile(r"-(?:\d{8}|latest)$")
# After a known id, "-1" or "-5-..." is another version, not a variant of that one.
_VERSION_NEXT = re.compile(r"^\d{1,2}(?:-|$)")


@dataclass(frozen=True)
class ModelPrice:
    """One model's list prices in dollars per million tokens."""

    input: float
    output: float
    cache_read: float
    cache_write: float  # 5-minute cache write
    cache_write_1h: float | None = None  # None: priced as a 5-minute write

    @property
    def cache_write_long(self) -> float:
        """The price of a 1-hour cache write."""
        return self.cache_write if self.cache_write_1h is None else self.cache_write_1h


@dataclass(frozen=True)
class PriceTable:
    """Model prices and sandbox compute prices, as of ``date``, from ``source``."""

    date: str
    source: str
    models: Mapping[str, ModelPrice]
    sandbox_vcpu_second: float
    sandbox_gib_second: float
    aliases: Mapping[str, str] = field(default_factory=dict)
    default_vcpus: float = 2.0
    default_memory_gib: float = 2.0

    def for_model(self, model: str) -> ModelPrice | None:
        """The price of a model id, alias or dated snapshot id; None if unknown."""
        name = canonical_model(model)
        for candidate in _candidates(name):
            price = self.models.get(self.aliases.get(candidate, candidate))
            if price is not None:
                return price
        return self._by_prefix(name)

    def _by_prefix(self, name: str) -> ModelPrice | None:
        for key in sorted(self.models, key=len, reverse=True):
            rest = name.removeprefix(f"{key}-")
            if rest != name and not _VERSION_NEXT.match(rest):
                return self.models[key]
        return None


def canonical_model(model: str) -> str:
    """A model id without provider prefixes, version tags or context suffixes."""
    name = model.strip().lower()
    for pattern in _DECORATIONS:
        name = pattern.sub("", name)
    return name


def _candidates(name: str) -> tuple[str, ...]:
    names = (name, _SNAPSHOT.sub("", name))
    return (*names, *(f"claude-{n}" for n in names if not n.startswith("claude-")))


def parse_prices(data: Mapping[str, Any]) -> PriceTable:
    """Build a PriceTable from the JSON document; raises KeyError/TypeError/ValueError."""
    sandbox = data["sandbox"]
    return PriceTable(
        date=str(data["date"]),
        source=str(data["source"]),
        models={str(k): _model_price(v) for k, v in data["models"].items()},
        sandbox_vcpu_second=float(sandbox["vcpu_second"]),
        sandbox_gib_second=float(sandbox["gib_second"]),
        aliases={str(k): str(v) for k, v in data.get("aliases", {}).items()},
        default_vcpus=float(sandbox.get("default_vcpus", 2.0)),
        default_memory_gib=float(sandbox.get("default_memory_gib", 2.0)),
    )


def _model_price(entry: Mapping[str, Any]) -> ModelPrice:
    one_hour = entry.get("cache_write_1h")
    return ModelPrice(
        input=float(entry["input"]),
        output=float(entry["output"]),
        cache_read=float(entry["cache_read"]),
        cache_write=float(entry["cache_write"]),
        cache_write_1h=None if one_hour is None else float(one_hour),
    )


def load_prices(path: Path | None = None) -> PriceTable:
    """The price table packaged with claude-e2b, or the one at ``path``."""
    if path is None:
        text = resources.files("claude_e2b.data").joinpath("prices.json").read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    return parse_prices(json.loads(text))


@dataclass(frozen=True)
class TokenUsage:
    """Token counts, as the Messages API reports them (cache writes include 1-hour ones)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0  # the part of cache_write_tokens cached for 1 hour

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            cache_write_1h_tokens=self.cache_write_1h_tokens + other.cache_write_1h_tokens,
        )

    @classmethod
    def from_api(cls, usage: Mapping[str, Any]) -> TokenUsage:
        """From a Messages API ``usage`` object (snake_case keys, missing ones are 0)."""
        creation = usage.get("cache_creation")
        one_hour = creation.get("ephemeral_1h_input_tokens") if isinstance(creation, Mapping) else 0
        return cls._clamped(
            _count(usage.get("input_tokens")),
            _count(usage.get("output_tokens")),
            _count(usage.get("cache_read_input_tokens")),
            _count(usage.get("cache_creation_input_tokens")),
            _count(one_hour),
        )

    @classmethod
    def from_model_usage(cls, entry: Mapping[str, Any]) -> TokenUsage:
        """From one entry of Claude Code's result ``modelUsage`` (camelCase keys)."""
        return cls._clamped(
            _count(entry.get("inputTokens")),
            _count(entry.get("outputTokens")),
            _count(entry.get("cacheReadInputTokens")),
            _count(entry.get("cacheCreationInputTokens")),
            _count(entry.get("cacheCreationEphemeral1hInputTokens")),
        )

    @classmethod
    def _clamped(cls, inp: int, out: int, read: int, write: int, write_1h: int) -> TokenUsage:
        # As Claude Code does: the 1-hour part can never exceed all cache writes.
        return cls(inp, out, read, write, min(write_1h, write))


def _count(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


@dataclass(frozen=True)
class ModelCost:
    """What one model's tokens cost, and where the figure comes from."""

    model: str
    usage: TokenUsage
    usd: float
    source: CostSource


@dataclass(frozen=True)
class CostReport:
    """A run's cost: Claude's tokens, the sandbox's seconds, and the sum."""

    claude_usd: float
    sandbox_usd: float
    total_usd: float
    usage: TokenUsage
    by_model: tuple[ModelCost, ...]
    sandbox_seconds: float
    estimated: bool

    def to_result(self) -> dict[str, Any]:
        """The result.json ``cost`` block (schema 1); dollars rounded to 9 decimals."""
        return {
            "claude_usd": _usd(self.claude_usd),
            "sandbox_usd": _usd(self.sandbox_usd),
            "total_usd": _usd(self.total_usd),
            **_token_fields(self.usage),
            "by_model": {m.model: _model_result(m) for m in self.by_model},
        }


def _usd(value: float) -> float:
    return round(value, USD_DECIMALS)


def _token_fields(usage: TokenUsage) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
    }


def _model_result(cost: ModelCost) -> dict[str, Any]:
    return {**_token_fields(cost.usage), "usd": _usd(cost.usd), "source": cost.source}


def usage_cost(usage: TokenUsage, price: ModelPrice) -> float:
    """Dollars for ``usage`` at ``price``; 1-hour cache writes at their own price."""
    five_minute = usage.cache_write_tokens - usage.cache_write_1h_tokens
    return (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cache_read_tokens * price.cache_read
        + five_minute * price.cache_write
        + usage.cache_write_1h_tokens * price.cache_write_long
    ) / MTOK


def sandbox_cost(seconds: float, *, vcpus: float, memory_gib: float, table: PriceTable) -> float:
    """Dollars for a sandbox allocated ``vcpus`` and ``memory_gib`` for ``seconds``.

    Raises ValueError for a negative figure.
    """
    if min(seconds, vcpus, memory_gib) < 0:
        raise ValueError("sandbox seconds, vCPUs and memory must not be negative")
    per_second = vcpus * table.sandbox_vcpu_second + memory_gib * table.sandbox_gib_second
    return seconds * per_second


def cost_from_result_event(
    model_usage: Mapping[str, Any],
    total_cost_usd: float | None,
    *,
    table: PriceTable | None = None,
) -> tuple[ModelCost, ...]:
    """Per-model costs from Claude Code's result event (``modelUsage``, ``total_cost_usd``).

    ``costUSD`` is taken as Claude Code computed it; a model without it is priced
    from ``table`` (the packaged one by default). Whatever part of ``total_cost_usd``
    no model accounts for is kept as an ``(unattributed)`` entry.
    """
    costs = tuple(
        _result_entry(str(model), entry, table)
        for model, entry in model_usage.items()
        if isinstance(entry, Mapping)
    )
    return costs + _unattributed(total_cost_usd, costs)


def _result_entry(model: str, entry: Mapping[str, Any], table: PriceTable | None) -> ModelCost:
    usage = TokenUsage.from_model_usage(entry)
    reported = entry.get("costUSD")
    if isinstance(reported, int | float) and not isinstance(reported, bool):
        return ModelCost(model, usage, float(reported), "claude-code")
    return _priced(model, usage, table or load_prices())


def _unattributed(total: float | None, costs: tuple[ModelCost, ...]) -> tuple[ModelCost, ...]:
    if total is None or any(c.source != "claude-code" for c in costs):
        return ()  # a model priced here may be what the rest is: never count it twice
    rest = total - sum(c.usd for c in costs)
    if rest <= 10**-USD_DECIMALS / 2:
        return ()
    return (ModelCost(UNATTRIBUTED, TokenUsage(), rest, "claude-code"),)


def cost_from_streamed_usage(
    per_message: Mapping[str, tuple[str, Mapping[str, Any]]], table: PriceTable
) -> tuple[ModelCost, ...]:
    """Per-model costs from usage streamed per assistant message id, priced from ``table``.

    Each message id counts once (Claude Code repeats a message's usage on every
    content block: keep the latest per id, never a sum). Models are listed in the
    order they first answered; an unknown model costs 0 with source "unknown-model".
    """
    totals: dict[str, TokenUsage] = {}
    for model, usage in per_message.values():
        totals[model] = totals.get(model, TokenUsage()) + TokenUsage.from_api(usage)
    return tuple(_priced(model, usage, table) for model, usage in totals.items())


def _priced(model: str, usage: TokenUsage, table: PriceTable) -> ModelCost:
    price = table.for_model(model)
    if price is None:
        return ModelCost(model, usage, 0.0, "unknown-model")
    return ModelCost(model, usage, usage_cost(usage, price), "price-table")


def unpriced_models(by_model: Iterable[ModelCost]) -> tuple[str, ...]:
    """The models whose tokens could not be priced (for the run's warnings)."""
    return tuple(m.model for m in by_model if m.source == "unknown-model")


def build_report(
    by_model: tuple[ModelCost, ...],
    *,
    sandbox_seconds: float,
    vcpus: float,
    memory_gib: float,
    table: PriceTable,
    estimated: bool,
) -> CostReport:
    """Add up Claude's per-model costs and the sandbox's; entries of one model are merged.

    ``estimated`` is also set when any figure did not come from Claude Code itself.
    """
    merged = _merge_by_model(by_model)
    claude = sum(m.usd for m in merged)
    sandbox = sandbox_cost(sandbox_seconds, vcpus=vcpus, memory_gib=memory_gib, table=table)
    return CostReport(
        claude_usd=claude,
        sandbox_usd=sandbox,
        total_usd=claude + sandbox,
        usage=sum((m.usage for m in merged), TokenUsage()),
        by_model=merged,
        sandbox_seconds=sandbox_seconds,
        estimated=estimated or any(m.source != "claude-code" for m in merged),
    )


def _merge_by_model(costs: Iterable[ModelCost]) -> tuple[ModelCost, ...]:
    merged: dict[str, ModelCost] = {}
    for cost in costs:
        seen = merged.get(cost.model)
        merged[cost.model] = cost if seen is None else _merge(seen, cost)
    return tuple(merged.values())


def _merge(a: ModelCost, b: ModelCost) -> ModelCost:
    source = max(a.source, b.source, key=_SOURCE_RANK.__getitem__)
    return replace(a, usage=a.usage + b.usage, usd=a.usd + b.usd, source=source)
