r"""GitHub Actions workflow commands: annotations, log groups, masks — escaped properly.

Data escapes ``%``, ``\\r`` and ``\\n``; properties also ``:`` and ``,``, as the
runner's parser expects. Outside Actions every method does nothing.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TextIO


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
    """Writes workflow commands to the log when running on GitHub Actions."""

    enabled: bool = False
    stream: TextIO = field(default_factory=lambda: sys.stdout)

    def _emit(self, line: str) -> None:
        if self.enabled:
            self.stream.write(line + "\n")
            self.stream.flush()

    def warning(self, message: str, title: str = "claude-e2b") -> None:
        """A warning annotation on the run."""
        self._emit(command("warning", message, title=title))

    def error(self, message: str, title: str = "claude-e2b") -> None:
        """An error annotation on the run."""
        self._emit(command("error", message, title=title))

    def group(self, name: str) -> None:
        """Open a collapsible group in the log."""
        self._emit(command("group", name))

    def end_group(self) -> None:
        """Close the current group."""
        self._emit(command("endgroup"))

    def mask(self, value: str) -> None:
        """Ask the runner to mask a value in every later log line."""
        if value:
            self._emit(command("add-mask", value))
