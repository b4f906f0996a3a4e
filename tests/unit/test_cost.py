import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from claude_e2b.cost import (
    UNATTRIBUTED,
    CostReport,
    ModelCost,
    ModelPrice,
    PriceTable,
    TokenUsage,
    build_report,
    canonical_model,
    cost_from_result_event,
    cost_from_streamed_usage,
    load_prices,
    parse_prices,
    sandbox_cost,
    unpriced_models,
    usage_cost,
)

TABLE = load_prices()
SONNET_45 = {"input": 3.0, "output": 15.0, "cache_read": 0.30, "cache_write": 3.75}

# The modelUsage of a real Claude Code 2.1.328 result event (run against the scripted API).
REAL_MODEL_USAGE = {
    "claude-sonnet-4-5": {
        "inputTokens": 2150,
        "outputTokens": 150,
        "cacheReadInputTokens": 12000,
        "cacheCreationInputTokens": 12100,
        "webSearchRequests": 0,
        "costUSD": 0.057675,
        "contextWindow": 200000,
        "maxOutputTokens": 32000,
        "cacheCreationEphemeral5mInputTokens": 0,
        "cacheCreationEphemeral1hInputTokens": 0,
        "canonicalModel": "claude-sonnet-4-5",
        "costBasis": "list",
    }
}

COST_KEYS = {
    "claude_usd",
    "sandbox_usd",
    "total_usd",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "by_model",
}
BY_MODEL_KEYS = {
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "usd",
    "source",
}


def api_usage(inp=0, out=0, read=0, write=0):
    return {
        "input_tokens": inp,
        "output_tokens": out,
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": write,
    }


def sonnet_dollars(inp, out, read, write):
    p = SONNET_45
    return (
        inp * p["input"] + out * p["output"] + read * p["cache_read"] + write * p["cache_write"]
    ) / 1e6


# --------------------------------------------------------------------------- the table


def test_packaged_table_has_a_date_and_sources():
    """The price table names the day it was recorded and Anthropic's and E2B's pricing pages."""
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", TABLE.date)
    assert "platform.claude.com/docs/en/about-claude/pricing" in TABLE.source
    assert "e2b.dev/pricing" in TABLE.source


def test_packaged_table_has_e2b_compute_prices_and_default_size():
    """Sandbox compute is $0.000014 per vCPU-second and $0.0000045 per GiB-second."""
    assert TABLE.sandbox_vcpu_second == 0.000014
    assert TABLE.sandbox_gib_second == 0.0000045
    assert (TABLE.default_vcpus, TABLE.default_memory_gib) == (2.0, 2.0)


@pytest.mark.parametrize(
    ("model", "prices"),
    [
        ("claude-sonnet-4-5", (3, 15, 0.30, 3.75, 6)),
        ("claude-sonnet-4-6", (3, 15, 0.30, 3.75, 6)),
        ("claude-opus-4-1", (15, 75, 1.50, 18.75, 30)),
        ("claude-opus-4-0", (15, 75, 1.50, 18.75, 30)),
        ("claude-opus-4-5", (5, 25, 0.50, 6.25, 10)),
        ("claude-haiku-4-5", (1, 5, 0.10, 1.25, 2)),
        ("claude-3-5-haiku", (0.80, 4, 0.08, 1, 1.6)),
        ("claude-3-7-sonnet", (3, 15, 0.30, 3.75, 6)),
    ],
)
def test_list_prices(model, prices):
    """Input, output, cache read, 5-minute and 1-hour cache write prices per MTok."""
    assert TABLE.models[model] == ModelPrice(*prices)


def test_every_model_prices_cache_by_the_usual_multiples():
    """5-minute writes cost 1.25x input and 1-hour writes 2x: a typo in the file shows here."""
    listed_apart = {"claude-3-haiku"}  # the pricing page rounds its cache prices (0.30, 0.50)
    for model, price in TABLE.models.items():
        if model in listed_apart:
            continue
        assert price.cache_write == pytest.approx(price.input * 1.25), model
        assert price.cache_write_long == pytest.approx(price.input * 2), model
        assert 0 < price.cache_read < price.input < price.output, model


def test_aliases_point_at_priced_models():
    """Every alias in the file names a model the table prices."""
    assert TABLE.aliases
    assert all(target in TABLE.models for target in TABLE.aliases.values())


def test_load_prices_reads_another_file(tmp_path):
    """A table at a given path is read instead of the packaged one."""
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {
                "date": "2030-01-01",
                "source": "test",
                "models": {"m": {"input": 1, "output": 2, "cache_read": 3, "cache_write": 4}},
                "sandbox": {"vcpu_second": 0.5, "gib_second": 0.25},
            }
        )
    )
    table = load_prices(path)
    assert table.date == "2030-01-01"
    assert table.for_model("m") == ModelPrice(1, 2, 3, 4)
    assert table.models["m"].cache_write_long == 4
    assert (table.default_vcpus, table.default_memory_gib, table.aliases) == (2.0, 2.0, {})


def test_parse_prices_names_a_missing_key():
    """A table without its sandbox prices is refused, naming the key."""
    with pytest.raises(KeyError, match="sandbox"):
        parse_prices({"date": "d", "source": "s", "models": {}})


# --------------------------------------------------------------------------- model lookup


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("CLAUDE-SONNET-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5-20250929[1m]", "claude-sonnet-4-5"),
        ("sonnet-4-5", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        ("anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5"),
        ("anthropic/claude-opus-4-7", "claude-opus-4-7"),
        ("claude-sonnet-4-6", "claude-sonnet-4-6"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4-0"),
        ("claude-opus-4-20250514", "claude-opus-4-0"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("claude-opus-4-5-20251101", "claude-opus-4-5"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-3-7-sonnet-20250219", "claude-3-7-sonnet"),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("claude-opus-4-6-some-variant", "claude-opus-4-6"),
    ],
)
def test_model_ids_resolve_to_their_family(model, family):
    """Dated snapshots, [1m], Bedrock/Vertex/gateway spellings all find the family's price."""
    assert TABLE.for_model(model) == TABLE.models[family]


@pytest.mark.parametrize("alias", ["sonnet", "opus", "haiku", "fable", "sonnet[1m]", "Opus"])
def test_short_aliases_resolve_as_claude_code_resolves_them(alias):
    """The short names Claude Code accepts are priced as the model they stand for."""
    target = TABLE.aliases[canonical_model(alias)]
    assert TABLE.for_model(alias) == TABLE.models[target]


@pytest.mark.parametrize(
    "model", ["gpt-4o", "", "claude-sonnet-9", "claude-sonnet-5-1", "claude-opus-4-9", "sonnetx"]
)
def test_unknown_models_have_no_price(model):
    """A model the table does not know, including an unknown version of a known family, is None."""
    assert TABLE.for_model(model) is None


def test_for_model_on_a_hand_built_table():
    """Lookup works on any table: exact, dated, then alias."""
    price = ModelPrice(1, 2, 0.1, 1.25)
    table = PriceTable("d", "s", {"claude-x-1": price}, 0.0, 0.0, aliases={"x": "claude-x-1"})
    assert table.for_model("claude-x-1-20990101") is price
    assert table.for_model("x") is price
    assert table.for_model("y") is None


# --------------------------------------------------------------------------- usage and prices


def test_sonnet_45_reproduces_claude_codes_figure():
    """Usage priced at Sonnet 4.5 list prices equals what Claude Code computes for it."""
    usage = TokenUsage.from_api(api_usage(2200, 490, 48000, 10050))
    expected = (2200 * 3 + 490 * 15 + 48000 * 0.3 + 10050 * 3.75) / 1e6
    assert usage_cost(usage, TABLE.for_model("claude-sonnet-4-5")) == pytest.approx(expected)


def test_real_result_event_cost_matches_the_price_table():
    """The costUSD of a real Claude Code run equals our own pricing of the same tokens."""
    entry = REAL_MODEL_USAGE["claude-sonnet-4-5"]
    usage = TokenUsage.from_model_usage(entry)
    ours = usage_cost(usage, TABLE.for_model("claude-sonnet-4-5"))
    assert ours == pytest.approx(entry["costUSD"], rel=1e-12)


def test_one_hour_cache_writes_are_priced_apart():
    """The 1-hour part of the cache writes is priced at the 1-hour price, the rest at 5-minute."""
    usage = TokenUsage.from_api(
        {"cache_creation_input_tokens": 1000, "cache_creation": {"ephemeral_1h_input_tokens": 400}}
    )
    assert (usage.cache_write_tokens, usage.cache_write_1h_tokens) == (1000, 400)
    price = TABLE.models["claude-sonnet-4-5"]
    assert usage_cost(usage, price) == pytest.approx((600 * 3.75 + 400 * 6) / 1e6)


def test_one_hour_part_never_exceeds_all_cache_writes():
    """A 1-hour figure above the total of cache writes is cut to it."""
    usage = TokenUsage.from_model_usage(
        {"cacheCreationInputTokens": 10, "cacheCreationEphemeral1hInputTokens": 50}
    )
    assert usage.cache_write_1h_tokens == 10


def test_one_hour_writes_without_a_1h_price_cost_as_5_minute_ones():
    """A price without a 1-hour figure prices 1-hour writes as 5-minute ones."""
    price = ModelPrice(1, 2, 0.1, 1.25)
    assert usage_cost(TokenUsage(cache_write_tokens=8, cache_write_1h_tokens=8), price) == (
        pytest.approx(8 * 1.25 / 1e6)
    )


def test_from_api_reads_the_messages_api_keys_and_tolerates_gaps():
    """Missing, null or malformed counts are 0; extra keys are ignored."""
    usage = TokenUsage.from_api(
        {
            "input_tokens": 5,
            "output_tokens": None,
            "cache_read_input_tokens": "7",
            "cache_creation_input_tokens": "x",
            "service_tier": "standard",
            "cache_creation": None,
        }
    )
    assert usage == TokenUsage(5, 0, 7, 0)
    assert TokenUsage.from_api({}) == TokenUsage()


def test_token_usage_adds_field_by_field():
    """Adding usages adds each count."""
    total = TokenUsage(1, 2, 3, 4, 1) + TokenUsage(10, 20, 30, 40, 5)
    assert total == TokenUsage(11, 22, 33, 44, 6)


# --------------------------------------------------------------------------- sandbox


@pytest.mark.parametrize(
    ("seconds", "vcpus", "gib"),
    [(0, 2, 2), (1, 2, 2), (60, 2, 0.5), (3600, 2, 2), (3600, 8, 4), (12.5, 1, 1)],
)
def test_sandbox_cost_is_seconds_times_allocated_size(seconds, vcpus, gib):
    """Sandbox dollars = seconds x (vCPUs x 0.000014 + GiB x 0.0000045)."""
    expected = seconds * (vcpus * 0.000014 + gib * 0.0000045)
    assert sandbox_cost(seconds, vcpus=vcpus, memory_gib=gib, table=TABLE) == pytest.approx(
        expected
    )


def test_sandbox_cost_refuses_negative_figures():
    """Negative seconds or sizes are a bug in the caller, not a refund."""
    with pytest.raises(ValueError, match="negative"):
        sandbox_cost(-1, vcpus=2, memory_gib=2, table=TABLE)


# --------------------------------------------------------------------------- result event


def test_result_event_cost_is_taken_from_claude_code():
    """costUSD from modelUsage is used as it is, with its token counts."""
    (cost,) = cost_from_result_event(REAL_MODEL_USAGE, 0.057675)
    assert cost == ModelCost(
        "claude-sonnet-4-5", TokenUsage(2150, 150, 12000, 12100), 0.057675, "claude-code"
    )


def test_result_event_with_several_models():
    """Each model in modelUsage becomes one entry, in order."""
    model_usage = {
        "claude-haiku-4-5": {"inputTokens": 100, "outputTokens": 10, "costUSD": 0.00015},
        "claude-sonnet-4-5": {"inputTokens": 1000, "outputTokens": 100, "costUSD": 0.0045},
    }
    costs = cost_from_result_event(model_usage, 0.00465)
    assert [(c.model, c.usd, c.source) for c in costs] == [
        ("claude-haiku-4-5", 0.00015, "claude-code"),
        ("claude-sonnet-4-5", 0.0045, "claude-code"),
    ]


def test_result_event_without_cost_usd_is_priced_from_the_table():
    """A modelUsage entry without costUSD is priced from the table; unknown models cost 0."""
    model_usage = {
        "claude-sonnet-4-5-20250929": {"inputTokens": 1000, "outputTokens": 100},
        "mystery-model": {"inputTokens": 5},
    }
    known, unknown = cost_from_result_event(model_usage, None, table=TABLE)
    assert known.source == "price-table"
    assert known.usd == pytest.approx(sonnet_dollars(1000, 100, 0, 0))
    assert (unknown.source, unknown.usd, unknown.usage.input_tokens) == ("unknown-model", 0.0, 5)


def test_total_without_model_usage_is_kept_unattributed():
    """A total_cost_usd with no modelUsage is not lost: it is kept as one unattributed entry."""
    (cost,) = cost_from_result_event({}, 0.25)
    assert (cost.model, cost.usd, cost.source) == (UNATTRIBUTED, 0.25, "claude-code")
    assert cost_from_result_event({}, None) == ()
    assert cost_from_result_event({}, 0.0) == ()


def test_total_matching_the_models_adds_nothing():
    """When the models account for the total, no unattributed entry appears."""
    costs = cost_from_result_event(REAL_MODEL_USAGE, 0.0576750000001)
    assert [c.model for c in costs] == ["claude-sonnet-4-5"]


# --------------------------------------------------------------------------- streamed usage


def test_streamed_usage_counts_each_message_once():
    """A message's usage repeated on every content block is counted once per message id."""
    usage = api_usage(2200, 490, 48000, 10050)
    per_message = {}
    for message_id in ["msg_1", "msg_1", "msg_1"]:  # text, tool_use, tool_use of one message
        per_message[message_id] = ("claude-sonnet-4-5", usage)
    (cost,) = cost_from_streamed_usage(per_message, TABLE)
    assert cost.usage == TokenUsage(2200, 490, 48000, 10050)
    assert cost.usd == pytest.approx(sonnet_dollars(2200, 490, 48000, 10050))
    assert cost.source == "price-table"


def test_streamed_usage_sums_distinct_messages_per_model():
    """Different messages of one model add up; each model gets one entry, in order of use."""
    per_message = {
        "msg_1": ("claude-sonnet-4-5-20250929", api_usage(100, 10)),
        "msg_2": ("claude-haiku-4-5", api_usage(50, 5)),
        "msg_3": ("claude-sonnet-4-5-20250929", api_usage(200, 20, 1000, 30)),
    }
    sonnet, haiku = cost_from_streamed_usage(per_message, TABLE)
    assert sonnet.model == "claude-sonnet-4-5-20250929"
    assert sonnet.usage == TokenUsage(300, 30, 1000, 30)
    assert sonnet.usd == pytest.approx(sonnet_dollars(300, 30, 1000, 30))
    assert haiku.usd == pytest.approx((50 * 1 + 5 * 5) / 1e6)


def test_streamed_usage_of_an_unknown_model_costs_nothing_and_is_flagged():
    """An unknown model's tokens are kept, priced 0, marked unknown-model for a warning."""
    per_message = {"m1": ("gpt-4o", api_usage(100, 10)), "m2": ("sonnet", api_usage(1, 1))}
    costs = cost_from_streamed_usage(per_message, TABLE)
    assert costs[0] == ModelCost("gpt-4o", TokenUsage(100, 10), 0.0, "unknown-model")
    assert unpriced_models(costs) == ("gpt-4o",)


def test_no_streamed_usage_no_costs():
    """No messages, no entries."""
    assert cost_from_streamed_usage({}, TABLE) == ()


# --------------------------------------------------------------------------- report


def report_for(costs, seconds=100.0, estimated=False):
    return build_report(
        costs, sandbox_seconds=seconds, vcpus=2, memory_gib=2, table=TABLE, estimated=estimated
    )


def test_build_report_adds_claude_and_sandbox():
    """Total = Claude's per-model dollars + the sandbox's; usage is summed over models."""
    costs = (
        ModelCost("a", TokenUsage(1, 2, 3, 4), 0.5, "claude-code"),
        ModelCost("b", TokenUsage(10, 20, 30, 40), 0.25, "claude-code"),
    )
    report = report_for(costs, seconds=100)
    sandbox = 100 * (2 * 0.000014 + 2 * 0.0000045)
    assert report.claude_usd == pytest.approx(0.75)
    assert report.sandbox_usd == pytest.approx(sandbox)
    assert report.total_usd == pytest.approx(0.75 + sandbox)
    assert report.usage == TokenUsage(11, 22, 33, 44)
    assert (report.sandbox_seconds, report.estimated) == (100, False)


def test_report_is_estimated_when_any_figure_is_ours():
    """A figure from the price table (or an unknown model) makes the report estimated."""
    assert report_for((ModelCost("a", TokenUsage(), 0.1, "price-table"),)).estimated
    assert report_for((ModelCost("a", TokenUsage(), 0.0, "unknown-model"),)).estimated
    assert report_for((), estimated=True).estimated
    assert not report_for(()).estimated


def test_report_merges_entries_of_one_model():
    """Two entries for one model become one, with the less certain source."""
    costs = (
        ModelCost("a", TokenUsage(1), 0.5, "claude-code"),
        ModelCost("a", TokenUsage(2), 0.25, "price-table"),
    )
    (merged,) = report_for(costs).by_model
    assert merged == ModelCost("a", TokenUsage(3), 0.75, "price-table")


def test_to_result_has_exactly_the_contract_keys():
    """The cost block has result.json's keys, and each by_model entry its own."""
    report = report_for(cost_from_result_event(REAL_MODEL_USAGE, 0.057675))
    block = report.to_result()
    assert set(block) == COST_KEYS
    assert set(block["by_model"]) == {"claude-sonnet-4-5"}
    assert set(block["by_model"]["claude-sonnet-4-5"]) == BY_MODEL_KEYS
    assert block["by_model"]["claude-sonnet-4-5"]["source"] == "claude-code"
    assert (block["input_tokens"], block["cache_write_tokens"]) == (2150, 12100)
    json.dumps(block)  # plain JSON types only


def test_to_result_rounds_dollars_to_nine_decimals():
    """Dollar figures are rounded to 9 decimals (half a micro-dollar survives); tokens whole."""
    report = CostReport(
        claude_usd=0.0660375000004,
        sandbox_usd=0.0000000006,
        total_usd=0.1234570004,
        usage=TokenUsage(1, 2, 3, 4),
        by_model=(ModelCost("m", TokenUsage(1, 2, 3, 4), 0.12345660006, "claude-code"),),
        sandbox_seconds=1.0,
        estimated=False,
    )
    block = report.to_result()
    assert (block["claude_usd"], block["sandbox_usd"], block["total_usd"]) == (
        0.0660375,
        0.000000001,
        0.123457,
    )
    assert block["by_model"]["m"]["usd"] == 0.123456600


def test_empty_report_is_all_zero():
    """A run that never reached Claude costs only its sandbox seconds."""
    block = report_for((), seconds=0).to_result()
    assert block == dict.fromkeys(COST_KEYS - {"by_model"}, 0) | {"by_model": {}}


# --------------------------------------------------------------------------- properties

counts = st.integers(min_value=0, max_value=10**9)
usages = st.builds(TokenUsage, counts, counts, counts, counts)
prices = st.sampled_from(sorted(TABLE.models.values(), key=repr))


@given(usages, usages, usages)
def test_token_usage_addition_is_associative(a, b, c):
    """(a + b) + c == a + (b + c), and the empty usage is neutral."""
    assert (a + b) + c == a + (b + c)
    assert a + TokenUsage() == a == TokenUsage() + a


@given(usages, prices)
def test_costs_are_never_negative(usage, price):
    """No usage costs less than nothing."""
    assert usage_cost(usage, price) >= 0


@given(usages, usages, prices)
def test_costs_grow_with_tokens(a, more, price):
    """More tokens never cost less."""
    assert usage_cost(a + more, price) >= usage_cost(a, price) - 1e-12


@given(
    st.floats(min_value=0, max_value=86400),
    st.floats(min_value=0, max_value=64),
    st.floats(min_value=0, max_value=64),
)
def test_sandbox_cost_is_non_negative(seconds, vcpus, gib):
    """Sandbox cost is never negative for valid figures."""
    assert sandbox_cost(seconds, vcpus=vcpus, memory_gib=gib, table=TABLE) >= 0
