"""`uses:` steps: a table of local stand-ins for the actions an action.yml calls.

The harness cannot download actions. A stand-in is a Python function given what a
JavaScript action gets from the runner: its inputs (the `with:` values, then the real
action.yml's defaults) as `INPUT_<NAME>` variables, the step's environment, and the
step's file-command files. It answers the way @actions/core does: `set_output`,
`export_variable`, `add_path` write those files; `warning`/`error` print workflow
commands; `StandInFailure` is `core.setFailed` (an `::error::` line and exit code 1).

A `uses:` with no stand-in in the table is an error before any step runs, as the
runner fails "Set up job" when it cannot resolve an action.

    UnknownActionError   a `uses:` the table has no stand-in for (or not pinned, when required)
    StandInFailure       raised by a stand-in to fail its step
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.stand_ins.actions.filecommands import StepFiles, write_pairs
from tests.stand_ins.actions.process import ProcessGroups, ProcessResult, spawn

_SHA = re.compile(r"[0-9a-f]{40}")
_CORE_TRUE = ("true", "True", "TRUE")
_CORE_FALSE = ("false", "False", "FALSE")


class UnknownActionError(Exception):
    """A `uses:` reference the harness has no local stand-in for."""


class StandInFailure(Exception):  # noqa: N818 - named after core.setFailed, which it mirrors
    """Fails the stand-in's step with this message, as `core.setFailed` does."""


def input_variable(name: str) -> str:
    """The variable the runner gives a JavaScript action for an input (INPUT_<NAME>)."""
    return "INPUT_" + name.replace(" ", "_").upper()


def escape_data(text: str) -> str:
    """Workflow-command data escaping, as @actions/core writes it."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


@dataclass
class StandInCall:
    """What one run of a stand-in sees and does; recorded on the step for assertions."""

    uses: str
    inputs: dict[str, str]
    env: dict[str, str]  # the action's process environment; export_variable/add_path update it
    workspace: Path
    runner_temp: Path
    files: StepFiles
    deadline: float
    groups: ProcessGroups
    lines: list[tuple[str, str]] = field(default_factory=list)
    records: dict[str, Any] = field(default_factory=dict)

    def input(self, name: str) -> str:
        """core.getInput: the INPUT_ variable, trimmed; '' when absent."""
        return self.env.get(input_variable(name), "").strip()

    def boolean_input(self, name: str) -> bool:
        """core.getBooleanInput: only the YAML 1.2 core spellings are accepted."""
        value = self.input(name)
        if value in _CORE_TRUE or value in _CORE_FALSE:
            return value in _CORE_TRUE
        raise StandInFailure(
            f'Input does not meet YAML 1.2 "Core Schema" specification: {name}\n'
            "Support boolean input list: `true | True | TRUE | false | False | FALSE`"
        )

    def multiline_input(self, name: str) -> list[str]:
        """core.getMultilineInput: non-empty lines, trimmed."""
        return [line.strip() for line in self.input(name).split("\n") if line.strip()]

    def info(self, message: str) -> None:
        self.lines.append(("stdout", message))

    def warning(self, message: str) -> None:
        self.lines.append(("stdout", f"::warning::{escape_data(message)}"))

    def group(self, title: str) -> None:
        self.lines.append(("stdout", f"::group::{escape_data(title)}"))

    def end_group(self) -> None:
        self.lines.append(("stdout", "::endgroup::"))

    def set_output(self, name: str, value: str) -> None:
        write_pairs(self.files.paths["output"], {name: value})

    def save_state(self, name: str, value: str) -> None:
        write_pairs(self.files.paths["state"], {name: value})

    def export_variable(self, name: str, value: str) -> None:
        """core.exportVariable: for later steps (GITHUB_ENV) and this process."""
        write_pairs(self.files.paths["env"], {name: value})
        self.env[name] = value

    def add_path(self, directory: str) -> None:
        """core.addPath: for later steps (GITHUB_PATH) and this process."""
        with self.files.paths["path"].open("a", encoding="utf-8") as handle:
            handle.write(directory + "\n")
        self.env["PATH"] = directory + os.pathsep + self.env.get("PATH", "")

    def run(
        self, argv: Sequence[str], cwd: Path | None = None, *, silent: bool = False
    ) -> ProcessResult:
        """exec.exec: echo `[command]…`, run with this environment, keep the output."""
        if not silent:
            self.info("[command]" + shlex.join(argv))
        result = spawn(
            argv,
            cwd=cwd or self.workspace,
            env=self.env,
            deadline=self.deadline,
            groups=self.groups,
        )
        if not silent:
            self.lines.extend(result.lines)
        if result.timed_out:
            raise StandInFailure(f"{argv[0]} did not finish before the run's deadline")
        return result


@dataclass(frozen=True)
class StandInAction:
    """A local stand-in for one action (`owner/repo[/path]`, any ref)."""

    repository: str
    inputs: Mapping[str, str | None]  # the real action.yml's inputs and defaults (may hold ${{ }})
    run: Callable[[StandInCall], None]


@dataclass(frozen=True)
class ActionRef:
    repository: str  # owner/repo[/path], lower case
    ref: str


def parse_uses(uses: str) -> ActionRef:
    """`owner/repo[/path]@ref` split; UnknownActionError for docker:// and local paths."""
    if uses.startswith(("docker://", "./", ".\\")):
        raise UnknownActionError(
            f"'{uses}': the harness has stand-ins for repository actions only, "
            "not Docker images or local actions"
        )
    repository, _, ref = uses.partition("@")
    return ActionRef(repository.strip("/").lower(), ref)


class UsesTable:
    """The stand-ins a run may call, keyed by repository; `pinned_only` demands a full SHA."""

    def __init__(self, actions: Iterable[StandInAction] = (), *, pinned_only: bool = False) -> None:
        self._actions = {a.repository.lower(): a for a in actions}
        self.pinned_only = pinned_only

    def add(self, action: StandInAction) -> UsesTable:
        """A new table with `action` added (or replacing the one for its repository)."""
        return UsesTable([*self._actions.values(), action], pinned_only=self.pinned_only)

    def resolve(self, uses: str) -> StandInAction:
        """The stand-in for a `uses:` value; UnknownActionError says which exist."""
        ref = parse_uses(uses)
        action = self._actions.get(ref.repository)
        if action is None:
            known = ", ".join(sorted(self._actions)) or "none"
            raise UnknownActionError(
                f"Unable to resolve action '{uses}': the harness has no local stand-in for "
                f"'{ref.repository}' (stand-ins: {known}). Add one with UsesTable.add()."
            )
        if self.pinned_only and not _SHA.fullmatch(ref.ref):
            raise UnknownActionError(f"'{uses}' is not pinned to a full commit SHA")
        return action

    def check(self, references: Iterable[str]) -> None:
        """Resolve every reference up front, as the runner downloads all actions first."""
        for uses in references:
            self.resolve(uses)
