r"""GitHub Actions plumbing: workflow commands, step outputs and the job summary.

Workflow commands (annotations, log groups, masks) are lines on stdout. Their data
escapes ``%``, ``\\r`` and ``\\n``; properties also ``:`` and ``,``, as the runner's
parser expects. Outside Actions every ``Workflow`` method does nothing.

Outputs go to the file named by GITHUB_OUTPUT as heredoc blocks
(``name<<DELIMITER`` … ``DELIMITER``), which the runner reads back exactly: the
value is everything between the two lines. The delimiter is random and checked
against the value, so no value can end its block early and set other outputs.
"""

from __future__ import annotations

import re
import secrets
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

# GitHub shows at most 10 annotations of each kind per step and drops the rest.
MAX_ANNOTATIONS = 10
_OUTPUT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def escape_data(text: str) -> str:
    """Escape a command's message."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a command property value (title, file…)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str = "", **properties: str) -> str:
    """One workflow command line, e.g. ``::warning title=x::message``."""
    props = ",".join(f"{k}={escape_property(v)}" for k, v in properties.items())
    head = f"{name} {props}" if props else name
    return f"::{head}::{escape_data(message)}"


@dataclass
class Workflow:
    """Writes workflow commands to the log when running on GitHub Actions.

    Annotations past ``MAX_ANNOTATIONS`` of one kind are not emitted (GitHub would
    drop them): their messages are kept in ``overflow`` for the job summary. The
    same message is annotated once (the live view and the end of the run both
    report a run's warnings).
    """

    enabled: bool = False
    stream: TextIO = field(default_factory=lambda: sys.stdout)
    overflow: list[str] = field(default_factory=list)
    _counts: dict[str, int] = field(default_factory=dict, repr=False)
    _seen: set[tuple[str, str]] = field(default_factory=set, repr=False)

    def _emit(self, line: str) -> None:
        if self.enabled:
            self.stream.write(line + "\n")
            self.stream.flush()

    def _annotate(self, kind: str, message: str, title: str) -> None:
        if not self.enabled or (kind, message) in self._seen:
            return
        self._seen.add((kind, message))
        count = self._counts.get(kind, 0) + 1
        self._counts[kind] = count
        if count > MAX_ANNOTATIONS:
            self.overflow.append(message)
        else:
            self._emit(command(kind, message, title=title))

    def warning(self, message: str, title: str = "claude-e2b") -> None:
        """A warning annotation on the run (past the tenth, kept in ``overflow``)."""
        self._annotate("warning", message, title)

    def error(self, message: str, title: str = "claude-e2b") -> None:
        """An error annotation on the run (past the tenth, kept in ``overflow``)."""
        self._annotate("error", message, title)

    def group(self, name: str) -> None:
        """Open a collapsible group in the log."""
        self._emit(command("group", name))

    def end_group(self) -> None:
        """Close the current group."""
        self._emit(command("endgroup"))

    @contextmanager
    def section(self, name: str) -> Iterator[None]:
        """A log group around a block; closed even when the block raises."""
        self.group(name)
        try:
            yield
        finally:
            self.end_group()

    def mask(self, value: str) -> None:
        """Ask the runner to mask a value (and each of its lines) in every later log line."""
        if value:
            self._emit(command("add-mask", value))


def heredoc_delimiter(value: str) -> str:
    """A random delimiter that occurs nowhere in ``value``."""
    while True:
        delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        if delimiter not in value:
            return delimiter


def write_outputs(path: Path | None, outputs: Mapping[str, str]) -> None:
    """Append step outputs to the GITHUB_OUTPUT file; nothing when ``path`` is None.

    Raises ValueError for a name the runner could not read back.
    """
    if path is None:
        return
    blocks = []
    for name, value in outputs.items():
        if not _OUTPUT_NAME.fullmatch(name):
            raise ValueError(f"invalid output name {name!r}")
        delimiter = heredoc_delimiter(value)
        blocks.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
    with path.open("a", encoding="utf-8", newline="\n") as file:
        file.write("".join(blocks))


def append_summary(path: Path | None, text: str) -> None:
    """Append Markdown to the GITHUB_STEP_SUMMARY file; nothing when ``path`` is None.

    The runner refuses a step's summary over 1 MiB: render it with
    ``claude_e2b.report.render_step_summary``, which keeps under that.
    """
    if path is None:
        return
    with path.open("a", encoding="utf-8", newline="\n") as file:
        file.write(text if text.endswith("\n") else text + "\n")
