"""The per-step files behind GITHUB_OUTPUT, _ENV, _PATH, _STEP_SUMMARY and _STATE.

As actions/runner `src/Runner.Worker/FileCommandManager.cs`: before each step the runner
creates fresh empty files named `<prefix><guid>` in `$RUNNER_TEMP/_runner_file_commands`
and points the github context (and so the GITHUB_* variables) at them; after the step
it reads them back. GITHUB_OUTPUT, GITHUB_ENV and GITHUB_STATE use `NAME=value` lines
or the heredoc form `NAME<<DELIMITER` ... `DELIMITER`; GITHUB_PATH is one directory a
line; the summary is Markdown kept when it is not empty and at most 1 MiB.

    FileCommandError   a malformed line (the runner fails the step with this message)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

SUMMARY_LIMIT = 1024 * 1024
BLOCKED_ENV = frozenset({"NODE_OPTIONS"})
FOLDER = "_runner_file_commands"
PREFIXES = {
    "output": "set_output_",
    "env": "set_env_",
    "path": "add_path_",
    "step_summary": "step_summary_",
    "state": "save_state_",
}


class FileCommandError(Exception):
    """A file command the runner could not process."""


@dataclass(frozen=True)
class StepFiles:
    """The five files of one step, keyed by their github-context name."""

    paths: dict[str, Path]

    @classmethod
    def create(cls, runner_temp: Path) -> StepFiles:
        """Fresh empty files for a step, as FileCommandManager.InitializeFiles makes them."""
        folder = runner_temp / FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        suffix = str(uuid.uuid4())
        paths = {name: folder / f"{prefix}{suffix}" for name, prefix in PREFIXES.items()}
        for path in paths.values():
            path.write_bytes(b"")
        return cls(paths)

    def read(self, name: str) -> str:
        """A file's text, '' when the step deleted it."""
        try:
            return self.paths[name].read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""


def _lines(text: str) -> list[tuple[str, bool]]:
    """Lines and whether each ends with LF (ReadLine's `newline`); CR is data on Linux."""
    parts = text.split("\n")
    tail = parts.pop()
    return [(part, True) for part in parts] + ([(tail, False)] if tail else [])


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """`NAME=value` and `NAME<<DELIM` heredoc pairs, as EnvFileKeyValuePairs reads them.

    Raises FileCommandError with the runner's message for a line it rejects.
    """
    pairs: list[tuple[str, str]] = []
    lines = _lines(text)
    i = 0
    while i < len(lines):
        line, _ = lines[i]
        i += 1
        if not line:
            continue
        equals, heredoc = line.find("="), line.find("<<")
        if equals >= 0 and (heredoc < 0 or equals < heredoc):
            key, value = line.split("=", 1)
            pairs.append((key, value))
        elif heredoc >= 0:
            key, value, i = _heredoc(line, lines, i)
            pairs.append((key, value))
        else:
            raise FileCommandError(f"Invalid format '{line}'")
    return pairs


def _heredoc(line: str, lines: list[tuple[str, bool]], i: int) -> tuple[str, str, int]:
    key, delimiter = line.split("<<", 1)
    if not key or not delimiter:
        raise FileCommandError(
            f"Invalid format '{line}'. Name must not be empty and delimiter must not be empty"
        )
    body: list[str] = []
    while True:
        if i >= len(lines):
            raise FileCommandError(f"Invalid value. Matching delimiter not found '{delimiter}'")
        current, has_newline = lines[i]
        i += 1
        if current == delimiter:
            return key, "\n".join(body), i
        if not has_newline:
            raise FileCommandError("Invalid value. EOF marker missing new line.")
        body.append(current)


def path_entries(text: str) -> list[str]:
    """The directories a GITHUB_PATH file adds, in the order written."""
    return [line for line in text.split("\n") if line]


def write_pairs(path: Path, pairs: dict[str, str]) -> None:
    """Append pairs the way @actions/core's `issueFileCommand` does (always heredoc)."""
    with path.open("a", encoding="utf-8") as handle:
        for key, value in pairs.items():
            delimiter = f"ghadelimiter_{uuid.uuid4()}"
            handle.write(f"{key}<<{delimiter}\n{value}\n{delimiter}\n")
