"""Sandbox limits: the N+1th sandbox and the M+1th of the hour are refused, clearly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from claude_e2b.errors import EXIT_RUN_INCOMPLETE, ConfigError, SandboxLimitError
from claude_e2b.sandbox.limits import (
    ENV_NAMES,
    FLAG_NAMES,
    INPUT_NAMES,
    SandboxLimits,
    check_limits,
    created_in_last_hour,
    next_slot,
    parse_limit,
    parse_limits,
)

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def test_defaults_are_five_running_and_twenty_per_hour():
    """Without configuration: 5 at once, 20 created per hour."""
    assert SandboxLimits() == SandboxLimits(max_running=5, max_per_hour=20)


def test_up_to_the_limit_is_allowed():
    """N-1 running and M-1 created this hour: one more may start."""
    check_limits(SandboxLimits(3, 10), backend="e2b", running=2, created_last_hour=9)


def test_the_n_plus_first_sandbox_is_refused_with_a_message_that_says_what_to_do():
    """3 running with a limit of 3: refused, naming the count, the limit, the fixes."""
    with pytest.raises(SandboxLimitError) as raised:
        check_limits(SandboxLimits(max_running=3), backend="e2b", running=3, created_last_hour=3)
    error = raised.value
    assert error.exit_code == EXIT_RUN_INCOMPLETE == 1
    assert "3 sandbox(es) of claude-e2b are running on e2b" in error.message
    assert "at most 3 may run at once" in error.message
    text = str(error)
    for needle in (
        "claude-e2b list",
        "claude-e2b kill RUN_ID",
        "claude-e2b kill --all",
        "--max-sandboxes N",
        "CLAUDE_E2B_MAX_SANDBOXES=N",
        "max-sandboxes: N",
    ):
        assert needle in text, needle
    assert "per-hour" not in text  # the other limit is not the one in the way


def test_the_hourly_limit_names_itself_and_when_a_slot_frees():
    """20 created in the hour: refused with the count, the limit and when to try again."""
    recent = [NOW - timedelta(minutes=59 - i) for i in range(20)]
    slot = next_slot(recent, SandboxLimits())
    assert slot == recent[0] + timedelta(hours=1)
    with pytest.raises(SandboxLimitError) as raised:
        check_limits(
            SandboxLimits(), backend="local", running=1, created_last_hour=20, next_slot_at=slot
        )
    text = str(raised.value)
    assert "20 sandbox(es) were created on local in the last hour" in text
    assert "at most 20 may be per hour" in text
    assert "wait until 12:01:00 UTC" in text
    assert "--max-sandboxes-per-hour M" in text
    assert "CLAUDE_E2B_MAX_SANDBOXES_PER_HOUR=M" in text
    assert "max-sandboxes-per-hour: M" in text


def test_running_limit_is_reported_before_the_hourly_one():
    """Both limits reached: the running one is named (stopping sandboxes is the quick fix)."""
    with pytest.raises(SandboxLimitError, match="may run at once"):
        check_limits(SandboxLimits(1, 1), backend="e2b", running=1, created_last_hour=1)


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", "3 4", "+3", True, 0])
def test_bad_values_are_refused_naming_their_source(value):
    """Not a whole number > 0: ConfigError (exit 2) naming the flag, variable or input."""
    for names in (FLAG_NAMES, ENV_NAMES, INPUT_NAMES):
        with pytest.raises(ConfigError) as raised:
            parse_limits(value, None, names=names)
        assert raised.value.exit_code == 2
        assert raised.value.message.startswith(f"{names.running} must be a whole number")


def test_given_values_replace_the_base_and_blanks_keep_it():
    """Environment first, then flags over it: a flag left out keeps the environment's value."""
    from_env = parse_limits("7", "30", names=ENV_NAMES)
    assert from_env == SandboxLimits(7, 30)
    assert parse_limits(None, "40", names=FLAG_NAMES, base=from_env) == SandboxLimits(7, 40)
    assert parse_limits("", " ", base=from_env) == from_env
    assert parse_limit(" 9 ", name="--max-sandboxes") == 9
    assert parse_limits(2, 3) == SandboxLimits(2, 3)


def test_limits_themselves_are_checked():
    """A SandboxLimits built in code with a nonsense value fails at once."""
    with pytest.raises(ConfigError):
        SandboxLimits(max_running=0)
    with pytest.raises(ConfigError):
        SandboxLimits(max_per_hour=True)


def test_creations_of_the_last_hour_are_counted_from_any_timestamp_form():
    """ISO strings (Z, offsets, E2B's str(datetime)), datetimes; older and unreadable skipped."""
    started = [
        "2026-03-01T11:30:00Z",
        "2026-03-01 11:45:00+00:00",
        "2026-03-01T12:30:00+01:00",  # 11:30 UTC
        datetime(2026, 3, 1, 11, 59),  # noqa: DTZ001 - a naive one is taken as UTC
        "2026-03-01T10:59:59Z",  # more than an hour ago
        "yesterday",
        None,
    ]
    recent = created_in_last_hour(started, now=NOW)
    assert len(recent) == 4
    assert recent == sorted(recent)
    assert next_slot(recent, SandboxLimits(max_per_hour=5)) is None
    assert next_slot(recent, SandboxLimits(max_per_hour=4)) == datetime(
        2026, 3, 1, 12, 30, tzinfo=UTC
    )
