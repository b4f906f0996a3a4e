"""How values read on a screen: bytes, durations, counts, the agent's status, safe text.

Every view formats through these, so the rich terminal, the plain log and the
final tables say the same thing the same way. ``safe`` is applied to every
text that comes from outside (the agent's words, commands and paths, error
messages): a secret the agent echoed is redacted as in the logs, and a control
character could move the cursor, rewrite a line or, in an Actions log, hide what
follows.
"""

from __future__ import annotations

import math
import re

from claude_e2b.log import REDACTOR
from claude_e2b.view import AgentStatus

_KILO = 1000.0
_UNITS = ("B", "kB", "MB", "GB", "TB")
# C0 and C1 controls (tab and newline included: a view line is one line) and the
# bidirectional overrides that make text read differently from what it is.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_LATIN1_MAX = 0xFF
_THOUSAND = 1_000
_MILLION = 1_000_000
_MINUTE = 60.0
_HOUR = 3600.0


def safe(text: str) -> str:
    r"""``text`` with the run's secrets redacted and control characters shown as escapes.

    Control and bidi-override characters read as ``\xNN`` / ``\uNNNN``.
    """
    return _UNPRINTABLE.sub(_escaped, REDACTOR.redact(text))


def safe_lines(text: str) -> str:
    """Like ``safe``, but line breaks stay (a traceback from the log keeps its lines)."""
    return "\n".join(safe(line) for line in text.rstrip().splitlines())


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= _LATIN1_MAX else f"\\u{code:04x}"


def human_bytes(count: float) -> str:
    """``0 B``, ``880 B``, ``1.2 kB``, ``453.2 MB`` (decimal multiples, as rich and uv show)."""
    value = float(count)
    for unit in _UNITS[:-1]:
        if abs(value) < _KILO:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= _KILO
    return f"{value:.1f} {_UNITS[-1]}"


def duration(seconds: float) -> str:
    """``0.4s``, ``12.3s``, ``4m 12s``, ``1h 02m``: short, and exact enough to compare runs."""
    if not math.isfinite(seconds):
        return "—"
    seconds = max(seconds, 0.0)
    if seconds < _MINUTE:
        return f"{seconds:.1f}s"
    if seconds < _HOUR:
        minutes, rest = divmod(int(seconds), 60)
        return f"{minutes}m {rest:02d}s"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h {rest // 60:02d}m"


def rate(nbytes: float, seconds: float) -> str:
    """``141.6 MB/s``; ``—`` before any time has passed."""
    return f"{human_bytes(nbytes / seconds)}/s" if seconds > 0 else "—"


def count(value: int) -> str:
    """Token counts: ``812``, ``81.2k``, ``1.31M``."""
    if value < _THOUSAND:
        return str(value)
    if value < _MILLION:
        return f"{value / _THOUSAND:.1f}k"
    return f"{value / _MILLION:.2f}M"


def usd(value: float) -> str:
    """Dollars with four decimals: a run's cost is often cents."""
    return f"${value:.4f}"


def status_parts(status: AgentStatus, *, since_s: float = 0.0) -> list[str]:
    """The agent's live counters, ``since_s`` seconds after they were taken."""
    parts = [
        f"{status.turns} turn{'' if status.turns == 1 else 's'}",
        f"{count(status.tokens)} tokens",
        usd(status.cost_usd),
        f"{duration(status.elapsed_s + since_s)} elapsed",
    ]
    if math.isfinite(status.left_s):
        parts.append(f"{duration(max(status.left_s - since_s, 0.0))} left")
    return parts


def status_line(status: AgentStatus, *, since_s: float = 0.0) -> str:
    """``12 turns · 81.2k tokens · $0.4123 · 3m 12s elapsed · 26m 48s left``."""
    return " · ".join(status_parts(status, since_s=since_s))
