"""Caps on sandboxes: how many of ours may run at once, and how many start per hour.

A sandbox left running costs money, and a loop of workflow runs can start many. Before a
run creates its sandbox, the caller counts ours (E2B's list by our metadata, or the
local registry) and the creations of the last hour (the run history), and
:func:`check_limits` refuses the one that would go past a limit::

    limits = parse_limits(environ.get(ENV_NAMES.running), environ.get(ENV_NAMES.per_hour),
                          names=ENV_NAMES)
    limits = parse_limits(args.max_sandboxes, args.max_sandboxes_per_hour,
                          names=FLAG_NAMES, base=limits)          # flags beat the environment
    check_limits(limits, backend="e2b", running=len(ours),
                 created_last_hour=len(recent), next_slot_at=next_slot(recent, limits))

The refusal (SandboxLimitError, exit 1) names the limit, the count found, how to change
the limit and how to see and stop the sandboxes that count against it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from claude_e2b.errors import ConfigError, SandboxLimitError
from claude_e2b.sandbox import Backend

DEFAULT_MAX_RUNNING = 5
DEFAULT_MAX_PER_HOUR = 20
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class LimitNames:
    """How one source spells the two limits, for messages about them."""

    running: str
    per_hour: str


FLAG_NAMES = LimitNames("--max-sandboxes", "--max-sandboxes-per-hour")
ENV_NAMES = LimitNames("CLAUDE_E2B_MAX_SANDBOXES", "CLAUDE_E2B_MAX_SANDBOXES_PER_HOUR")
INPUT_NAMES = LimitNames("max-sandboxes", "max-sandboxes-per-hour")


@dataclass(frozen=True)
class SandboxLimits:
    """At most ``max_running`` sandboxes of ours at once, ``max_per_hour`` created per hour.

    Raises ConfigError when a limit is not a whole number greater than 0.
    """

    max_running: int = DEFAULT_MAX_RUNNING
    max_per_hour: int = DEFAULT_MAX_PER_HOUR

    def __post_init__(self) -> None:
        for name, value in (("max_running", self.max_running), ("max_per_hour", self.max_per_hour)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"sandbox limit {name} must be a whole number > 0, not {value!r}")


def parse_limit(value: str | int | None, *, name: str) -> int | None:
    """One configured limit: a whole number > 0; None (or blank) when not given.

    Raises ConfigError naming ``name`` (the flag, variable or input) for anything else.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) <= 0:
        raise ConfigError(
            f"{name} must be a whole number greater than 0, not {text!r}",
            hint=f"leave it unset for the defaults: {DEFAULT_MAX_RUNNING} running at once, "
            f"{DEFAULT_MAX_PER_HOUR} created per hour",
        )
    return int(text)


def parse_limits(
    running: str | int | None,
    per_hour: str | int | None,
    *,
    names: LimitNames = FLAG_NAMES,
    base: SandboxLimits | None = None,
) -> SandboxLimits:
    """``base`` (the defaults when None) with the values given; blank keeps base's value.

    Raises ConfigError naming the flag, variable or input whose value is not valid.
    """
    start = base or SandboxLimits()
    max_running = parse_limit(running, name=names.running)
    max_per_hour = parse_limit(per_hour, name=names.per_hour)
    return SandboxLimits(
        max_running=start.max_running if max_running is None else max_running,
        max_per_hour=start.max_per_hour if max_per_hour is None else max_per_hour,
    )


def configured_limits(
    environ: Mapping[str, str],
    running: str | int | None,
    per_hour: str | int | None,
    *,
    names: LimitNames,
) -> SandboxLimits:
    """The limits in force.

    ``running``/``per_hour`` as given (flags or inputs, spelled ``names``) beat
    ``CLAUDE_E2B_MAX_SANDBOXES[_PER_HOUR]``, which beat the defaults.
    """
    from_env = parse_limits(
        environ.get(ENV_NAMES.running), environ.get(ENV_NAMES.per_hour), names=ENV_NAMES
    )
    return parse_limits(running, per_hour, names=names, base=from_env)


def _when(value: str | datetime | None) -> datetime | None:
    """A creation time as an aware datetime (naive ones are UTC); None if unreadable."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())  # 3.11 reads "Z" too
        except ValueError:
            return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def created_in_last_hour(
    started: Iterable[str | datetime | None], *, now: datetime
) -> list[datetime]:
    """The creation times within the hour before ``now``, oldest first (unreadable skipped)."""
    found = [when for when in map(_when, started) if when is not None]
    return sorted(when for when in found if now - HOUR < when <= now)


def next_slot(recent: Sequence[datetime], limits: SandboxLimits) -> datetime | None:
    """When the hourly limit lets one more start (``recent`` sorted); None if it does now."""
    if len(recent) < limits.max_per_hour:
        return None
    return recent[len(recent) - limits.max_per_hour] + HOUR


_SEE_THEM = (
    "see them with `claude-e2b list`; stop one with `claude-e2b kill RUN_ID`, "
    "or all of ours with `claude-e2b kill --all`"
)


def check_limits(
    limits: SandboxLimits,
    *,
    backend: Backend,
    running: int,
    created_last_hour: int,
    next_slot_at: datetime | None = None,
) -> None:
    """Refuse a new sandbox on ``backend`` when it would go past a limit.

    Raises SandboxLimitError naming the limit, the count found, how to change the limit
    and how to see (and stop) the sandboxes of ours.
    """
    if running >= limits.max_running:
        raise SandboxLimitError(
            f"not starting another sandbox: {running} sandbox(es) of claude-e2b are running "
            f"on {backend}, and at most {limits.max_running} may run at once",
            hint=f"{_SEE_THEM}; or raise the limit: {_how_to_set('running', 'N')}",
        )
    if created_last_hour >= limits.max_per_hour:
        wait = f"wait until {next_slot_at:%H:%M:%S} UTC, " if next_slot_at is not None else ""
        raise SandboxLimitError(
            f"not starting another sandbox: {created_last_hour} sandbox(es) were created on "
            f"{backend} in the last hour, and at most {limits.max_per_hour} may be per hour",
            hint=f"{wait}{_SEE_THEM}; or raise the limit: {_how_to_set('per_hour', 'M')}",
        )


def _how_to_set(limit: str, value: str) -> str:
    """The flag, the environment variable and the action input that set one limit."""
    cli, env, action = (getattr(names, limit) for names in (FLAG_NAMES, ENV_NAMES, INPUT_NAMES))
    return f"`{cli} {value}`, `{env}={value}`, or the action input `{action}: {value}`"
