"""structlog setup: JSON lines for machines, or records handed to a view for people.

With a text view (see ``claude_e2b.view``) the log and the view share one output:
the view shows what happens, and the log only adds warnings and errors (with
``verbose``, everything) as short ``event key=value`` lines that the view prints
its own way — above a terminal's live area, or as plain ``warning: …`` lines —
so the two never garble each other. Without a view, the console renderer on a
TTY and JSON lines otherwise, as before.

Every event passes through a redaction processor that replaces the values of
the run's own secrets with ``***`` wherever they appear, so a key that leaks into
an error message or a command's output never reaches the log.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any, TextIO

import structlog

MIN_SECRET_LENGTH = 8
REDACTED = "***"
# Receives each record for a text view: its level name and its rendered text.
LogSink = Callable[[str, str], None]


class Redactor:
    """Replaces known secret values in strings; shared by logs, transcripts and results."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        for value in secrets:
            self.add(value)

    def add(self, value: str | None) -> None:
        """Remember a secret value; short values are ignored (they would redact ordinary text)."""
        if value and len(value) >= MIN_SECRET_LENGTH:
            self._secrets.add(value)

    def redact(self, text: str) -> str:
        """Return ``text`` with every known secret replaced by ``***``."""
        # Longest first, so a secret that contains another is replaced whole.
        for value in sorted(self._secrets, key=len, reverse=True):
            if value in text:
                text = text.replace(value, REDACTED)
        return text

    def redact_value(self, value: Any) -> Any:
        """Redact strings inside nested dicts, lists and tuples; other values pass."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {k: self.redact_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.redact_value(v) for v in value)
        return value


REDACTOR = Redactor()


def _redact_processor(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        event_dict[key] = REDACTOR.redact_value(value)
    return event_dict


def configure_logging(
    *,
    json_lines: bool | None = None,
    verbose: bool = False,
    stream: TextIO | None = None,
    sink: LogSink | None = None,
) -> None:
    """Set up structlog for the CLI and the action.

    ``json_lines`` True: JSON lines on ``stream``. Otherwise, given a ``sink`` (a
    text view's ``log_line``): warnings and errors — everything with ``verbose`` —
    go to it as ``event key=value`` text. Otherwise the console renderer on
    ``stream`` (``json_lines=None`` picks JSON when it is not a TTY).
    """
    if sink is not None and not json_lines:
        level = logging.DEBUG if verbose else logging.WARNING
        _configure(_render_for_view, level, _SinkLoggerFactory(sink), timestamps=False)
        return
    out = stream or sys.stderr
    if json_lines is None:
        json_lines = not out.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    level = logging.DEBUG if verbose else logging.INFO
    _configure(renderer, level, structlog.PrintLoggerFactory(file=out), timestamps=True)


def _configure(renderer: Any, level: int, factory: Any, *, timestamps: bool) -> None:
    """Configure structlog: the shared processors (level, redaction, tracebacks), ``renderer``."""
    stamp = [structlog.processors.TimeStamper(fmt="iso", utc=True)] if timestamps else []
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            *stamp,
            _redact_processor,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )


def _render_for_view(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> str:
    """``event key=value …`` (a traceback on the lines after): no time, no level."""
    event = event_dict.pop("event", "")
    event_dict.pop("level", None)
    trace = event_dict.pop("exception", None)
    fields = " ".join(f"{key}={_field(value)}" for key, value in event_dict.items())
    text = f"{event} {fields}" if fields else str(event)
    return f"{text}\n{trace}" if trace else text


def _field(value: Any) -> str:
    """A value as it reads in ``key=value``: bare when it is one plain word, else quoted."""
    if isinstance(value, str):
        plain = value and not any(c.isspace() or c in "='\"" for c in value)
        return value if plain else repr(value)
    return str(value)


class _SinkLogger:
    """A structlog logger that hands each rendered record, with its level, to a sink."""

    def __init__(self, sink: LogSink) -> None:
        self._sink = sink

    def debug(self, message: str) -> None:
        """A debug record."""
        self._sink("debug", message)

    def info(self, message: str) -> None:
        """An info record."""
        self._sink("info", message)

    def warning(self, message: str) -> None:
        """A warning."""
        self._sink("warning", message)

    def error(self, message: str) -> None:
        """An error (``log.exception`` too)."""
        self._sink("error", message)

    def critical(self, message: str) -> None:
        """A critical error, shown as an error."""
        self._sink("error", message)

    msg = info
    warn = warning
    exception = error
    fatal = critical


class _SinkLoggerFactory:
    """Makes the one ``_SinkLogger`` of a sink for every named logger."""

    def __init__(self, sink: LogSink) -> None:
        self._logger = _SinkLogger(sink)

    def __call__(self, *_args: Any) -> _SinkLogger:
        return self._logger


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """Return a named structlog logger."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
