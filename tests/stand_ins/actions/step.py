"""One step of a composite action: its env, condition, process, commands and file commands.

As actions/runner `Handlers/CompositeActionHandler.cs` (RunStepsAsync), `ActionRunner.cs`,
`Handlers/ScriptHandler.cs`, `ScriptHandlerHelpers.cs`, `FileCommandManager.cs` and
`ActionCommandManager.cs` do it for an embedded step.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tests.stand_ins.actions import expressions as ex
from tests.stand_ins.actions.commands import Annotation, parse_line
from tests.stand_ins.actions.filecommands import (
    BLOCKED_ENV,
    SUMMARY_LIMIT,
    FileCommandError,
    StepFiles,
    parse_pairs,
    path_entries,
)
from tests.stand_ins.actions.manifest import INPUT_DEFAULT_CONTEXT, StepSpec, Template
from tests.stand_ins.actions.process import ProcessResult, spawn
from tests.stand_ins.actions.uses import StandInCall, StandInFailure, escape_data, input_variable

if TYPE_CHECKING:
    from tests.stand_ins.actions.runner import Job

_SHELL_ARGS = {
    "cmd": '/D /E:ON /V:OFF /S /C "CALL "{0}""',
    "pwsh": "-command \". '{0}'\"",
    "powershell": "-command \". '{0}'\"",
    "bash": "--noprofile --norc -e -o pipefail {0}",
    "sh": "-e {0}",
    "python": "{0}",
}
_SHELL_EXTENSIONS = {"cmd": ".cmd", "pwsh": ".ps1", "powershell": ".ps1"}
_SHELL_EXTENSIONS |= {"bash": ".sh", "sh": ".sh", "python": ".py"}
# GitHubContext's allowlist: these github-context keys become GITHUB_* variables.
_GITHUB_ENV_KEYS = frozenset(
    """action_path action_ref action_repository action actor actor_id api_url artifacts
    artifacts_list base_ref env event_name event_path graphql_url head_ref job output path
    ref_name ref_protected ref_type ref repository repository_id repository_owner
    repository_owner_id retention_days run_attempt run_id run_number server_url sha state
    step_summary triggering_actor workflow workflow_ref workflow_sha workspace""".split()  # noqa: SIM905
)
_DISABLED_COMMANDS = ("set-env", "add-path")


@dataclass(frozen=True)
class StepRun:
    """What one step of the action did, for assertions."""

    context_name: str  # the id, or the generated `__run`, `__actions_setup-python`, ...
    id: str | None
    name: str
    uses: str | None
    outcome: str  # success | failure | cancelled | skipped (before continue-on-error)
    conclusion: str  # after continue-on-error
    outputs: dict[str, str]  # what it wrote to GITHUB_OUTPUT (also when it has no id)
    stdout: str
    stderr: str
    exit_code: int | None
    env: dict[str, str]  # the process environment it ran with
    env_context: dict[str, str]  # `env` in its expressions
    inputs: dict[str, str]  # for `uses:` steps: `with:` plus the action's defaults
    script: str | None  # the evaluated `run:`
    argv: tuple[str, ...]  # the shell command line (the script file last)
    working_directory: str | None
    summary: str
    records: dict[str, Any]  # what a stand-in noted (enable-cache, globs, ...)


class Step:
    """One embedded step: its contexts, condition, execution and file commands."""

    def __init__(self, job: Job, spec: StepSpec) -> None:
        self.job = job
        self.spec = spec
        self.files = StepFiles.create(job.temp)
        self.github = dict(job.github) | {name: str(p) for name, p in self.files.paths.items()}
        self.github["action_status"] = job.result
        self.env_context: dict[str, str] = {**job.global_env, **job.step_env}
        self.outcome = "success"
        self.outputs: dict[str, str] = {}
        self.process: ProcessResult | None = None
        self.lines: list[tuple[str, str]] = []
        self.process_env: dict[str, str] = {}
        self.inputs: dict[str, str] = {}
        self.script: str | None = None
        self.argv: tuple[str, ...] = ()
        self.working_directory: str | None = None
        self.summary = ""
        self.records: dict[str, Any] = {}

    @property
    def scope(self) -> ex.Scope:
        return self.job.scope(self.github, self.env_context)

    def error(self, message: str) -> None:
        self.job.note("error", message, self.spec.context_name)
        self.outcome = "failure"

    def run(self) -> bool:
        """Evaluate env and `if:`, execute, process commands; False to stop the action."""
        try:
            step_env = {key: t.string(self.scope) for key, t in self.spec.env}
        except ex.ExpressionError as exc:
            self.error(str(exc))
            self.record("failure")
            return True
        self.env_context.update(step_env)
        try:
            go = ex.truthy(ex.evaluate(self.spec.condition, self.scope))
        except ex.ExpressionError as exc:
            self.error(f"{self.spec.where}: {exc}")
            self.job.result = "failure"
            self.record("failure")
            return False
        if not go:
            self.record("skipped")
            return True
        self.job.log.append(f"##[group]Run {self.display_name()}")
        self.execute()
        self.job.log.append("##[endgroup]")
        self.after_process()
        self.record(self.outcome)
        return True

    def display_name(self) -> str:
        with contextlib.suppress(ex.ExpressionError):
            if self.spec.name is not None:
                return self.spec.name.string(self.scope)
        if self.spec.uses:
            return self.spec.uses
        raw = ex.to_str(self.spec.run.raw) if self.spec.run else ""
        return next((line.strip() for line in raw.splitlines() if line.strip()), "")

    def execute(self) -> None:
        try:
            if self.spec.uses:
                self.call_stand_in()
            else:
                self.run_script()
        except (ex.ExpressionError, _StepError, OSError) as exc:
            self.error(str(exc))
        if (
            self.process is not None and self.process.timed_out
        ) or time.monotonic() >= self.job.deadline:
            self.job.timed_out = True
            self.job.note(
                "error",
                f"The run exceeded the harness timeout of {self.job.timeout:g} seconds",
                self.spec.context_name,
            )
            self.outcome = "cancelled"

    # ------------------------------------------------------------ run: steps

    def run_script(self) -> None:
        spec = self.spec
        assert spec.run is not None
        assert spec.shell is not None
        self.script = spec.run.string(self.scope)
        shell = spec.shell.string(self.scope)
        self.working_directory = (
            spec.working_directory.string(self.scope) if spec.working_directory else None
        )
        cwd = self.job.workspace / (self.working_directory or "")
        argv, extension = self.shell_argv(shell)
        script_path = self.job.temp / f"{uuid.uuid4()}{extension}"
        script_path.write_text(_fix_up(shell.split(" ")[0], self.script), encoding="utf-8")
        self.argv = tuple(a.replace("{0}", str(script_path)) for a in argv)
        self.process_env = self.process_environment()
        shown = {"shell": f"{' '.join(self.argv[:-1])} {{0}}"}
        self.job.log.extend([f"  {line}" for line in self.script.splitlines()])
        self.job.log.extend(_header(None, shown, self.env_context))
        if not cwd.is_dir():
            raise _StepError(
                f"An error occurred trying to start process '{self.argv[0]}' with working "
                f"directory '{cwd}'. No such file or directory"
            )
        self.process = spawn(
            self.argv,
            cwd=cwd,
            env=self.process_env,
            deadline=self.job.deadline,
            groups=self.job.groups,
        )
        self.lines = list(self.process.lines)

    def shell_argv(self, shell: str) -> tuple[list[str], str]:
        """The shell's argv with `{0}` for the script path, and the script's extension."""
        command, _, args = shell.partition(" ")
        args = args.lstrip() or _SHELL_ARGS.get(command, "")
        if "{0}" not in args:
            raise _StepError(
                "Invalid shell option. Shell must be a valid built-in (bash, sh, cmd, powershell, "
                "pwsh) or a format string containing '{0}'"
            )
        search = os.pathsep.join(
            [*reversed(self.job.prepend_path), self.job.host_env.get("PATH", "")]
        )
        path = shutil.which(command, path=search)
        if path is None:
            raise _StepError(f"File not found: '{command}'")
        return [path, *shlex.split(args)], _SHELL_EXTENSIONS.get(command, "")

    def process_environment(self) -> dict[str, str]:
        """The environment ScriptHandler + ProcessInvoker give the step's process."""
        env = dict(self.job.host_env) | self.env_context
        if self.job.prepend_path:
            original = self.env_context.get("PATH") or self.job.host_env.get("PATH", "")
            env["PATH"] = os.pathsep.join(
                [*reversed(self.job.prepend_path), *([original] if original else [])]
            )
        for key, value in self.github.items():
            if key in _GITHUB_ENV_KEYS and isinstance(value, str | bool):
                env[f"GITHUB_{key.upper()}"] = ex.to_str(value)
        env |= {f"RUNNER_{k.upper()}": v for k, v in self.job.runner.items()}
        env["GITHUB_ACTIONS"] = "true"
        env.setdefault("CI", "true")
        return env

    # ------------------------------------------------------------ uses: steps

    def call_stand_in(self) -> None:
        assert self.spec.uses is not None
        action = self.job.table.resolve(self.spec.uses)
        given = {key: t.string(self.scope) for key, t in self.spec.with_}
        self.inputs = dict(given)
        default_scope = self.job.scope(self.github, {})
        for name, default in action.inputs.items():
            if name.casefold() not in {k.casefold() for k in given}:
                template = _default_template(name, default)
                self.inputs[name] = template.string(default_scope) if template else ""
        unexpected = [k for k in given if k.casefold() not in {n.casefold() for n in action.inputs}]
        if unexpected:
            message = unexpected_inputs(unexpected, list(action.inputs))
            self.job.note("warning", message, self.spec.context_name)
        inputs_env = {input_variable(k): v for k, v in self.inputs.items()}
        self.process_env = self.process_environment() | inputs_env
        self.job.log.extend(_header("with", self.inputs, self.env_context))
        call = StandInCall(
            uses=self.spec.uses, inputs=dict(self.inputs), env=dict(self.process_env),
            workspace=self.job.workspace, runner_temp=self.job.temp, files=self.files,
            deadline=self.job.deadline, groups=self.job.groups,
        )  # fmt: skip
        exit_code = 0
        try:
            action.run(call)
        except StandInFailure as exc:
            call.lines.append(("stdout", f"::error::{escape_data(str(exc))}"))
            exit_code = 1
        self.lines = call.lines
        self.records = call.records
        self.process = ProcessResult(
            exit_code=exit_code,
            stdout="".join(f"{line}\n" for stream, line in call.lines if stream == "stdout"),
            stderr="".join(f"{line}\n" for stream, line in call.lines if stream == "stderr"),
            lines=tuple(call.lines),
            timed_out=False,
        )

    # ------------------------------------------------------------ after the process

    def after_process(self) -> None:
        """Workflow commands in the output, the exit code, then the file commands."""
        for _, line in self.lines:
            self.job.log.append(line)
            self.workflow_command(line)
        if self.process is not None and not self.process.timed_out and self.process.exit_code:
            if self.spec.uses:  # a JavaScript action that fails says why itself (::error::)
                self.outcome = "failure"
            else:
                self.error(f"Process completed with exit code {self.process.exit_code}.")
        self.file_commands()

    def workflow_command(self, line: str) -> None:
        parsed = parse_line(line)
        if parsed is None:
            return
        name, properties, data = parsed
        if name in {"error", "warning", "notice"}:
            self.job.annotations.append(Annotation(name, data, properties, self.spec.context_name))
        elif name == "set-output" and properties.get("name"):
            self.outputs[properties["name"]] = data
        elif name == "save-state" and properties.get("name"):
            self.job.state[properties["name"]] = data
        elif (
            name in _DISABLED_COMMANDS
            and self.env_context.get("ACTIONS_ALLOW_UNSECURE_COMMANDS") != "true"
        ):
            self.error(
                f"Unable to process command '{line}' successfully.\n"
                f"The `{name}` command is disabled. "
                "Please upgrade to using Environment Files or opt into unsecure command execution "
                "by setting the `ACTIONS_ALLOW_UNSECURE_COMMANDS` environment variable to `true`. "
                "For more information see: "
                "https://github.blog/changelog/2020-10-01-github-actions-deprecating-set-env-and-add-path-commands/"
            )

    def file_commands(self) -> None:
        """FileCommandManager.ProcessFiles: each file read back; a bad one fails the step."""
        for name, handler in (
            ("path", self.add_path),
            ("env", self.set_env),
            ("step_summary", self.add_summary),
            ("state", self.save_state),
            ("output", self.set_outputs),
        ):
            try:
                handler(self.files.read(name))
            except FileCommandError as exc:
                self.error(f"Unable to process file command '{name}' successfully.")
                self.error(str(exc))

    def add_path(self, text: str) -> None:
        for line in path_entries(text):
            if line in self.job.prepend_path:
                self.job.prepend_path.remove(line)
            self.job.prepend_path.append(line)

    def set_env(self, text: str) -> None:
        for key, value in parse_pairs(text):
            if key.upper() in BLOCKED_ENV:
                self.job.note(
                    "error",
                    f"Can't store {key} output parameter using '$GITHUB_ENV' command.",
                    self.spec.context_name,
                )
                continue
            self.job.global_env[key] = value
            self.job.exported_env[key] = value

    def add_summary(self, text: str) -> None:
        size = len(text.encode("utf-8"))
        if size > SUMMARY_LIMIT:
            self.job.note(
                "error",
                f"$GITHUB_STEP_SUMMARY upload aborted, supports content up to a size of "
                f"{SUMMARY_LIMIT // 1024}k, got {size // 1024}k.",
                self.spec.context_name,
            )
        elif text:
            self.summary = text
            self.job.summaries.append(text)

    def save_state(self, text: str) -> None:
        self.job.state.update(parse_pairs(text))

    def set_outputs(self, text: str) -> None:
        self.outputs.update(parse_pairs(text))

    # ------------------------------------------------------------ record

    def record(self, outcome: str) -> None:
        """Apply continue-on-error, update the steps context and the action's result."""
        conclusion = outcome
        if outcome == "failure" and self.continue_on_error():
            conclusion = "success"
        if self.spec.id is not None:
            self.job.steps_context[self.spec.id] = {
                "outputs": dict(self.outputs) if outcome != "skipped" else {},
                "outcome": outcome,
                "conclusion": conclusion,
            }
        if conclusion in {"failure", "cancelled"}:
            self.job.result = _merge(self.job.result, conclusion)
        self.job.step_runs.append(self.as_run(outcome, conclusion))

    def continue_on_error(self) -> bool:
        template = self.spec.continue_on_error
        if template is None:
            return False
        try:
            value = template.evaluate(self.scope)
        except ex.ExpressionError as exc:
            self.job.note(
                "error",
                "The step failed and an error occurred when attempting to determine whether "
                f"to continue on error. {exc}",
                self.spec.context_name,
            )
            return False
        if not isinstance(value, bool):
            self.job.note(
                "error",
                f"{template.where}: Unexpected value '{ex.to_str(value)}'",
                self.spec.context_name,
            )
            return False
        return value

    def as_run(self, outcome: str, conclusion: str) -> StepRun:
        process = self.process
        return StepRun(
            context_name=self.spec.context_name, id=self.spec.id,
            name=self.display_name(), uses=self.spec.uses,
            outcome=outcome, conclusion=conclusion,
            outputs=dict(self.outputs) if outcome != "skipped" else {},
            stdout=process.stdout if process else "", stderr=process.stderr if process else "",
            exit_code=process.exit_code if process else None,
            env=dict(self.process_env), env_context=dict(self.env_context),
            inputs=dict(self.inputs), script=self.script, argv=self.argv,
            working_directory=self.working_directory, summary=self.summary,
            records=dict(self.records),
        )  # fmt: skip


class _StepError(Exception):
    """A step that cannot start (bad shell, missing program or directory)."""


def _merge(current: str, step: str) -> str:
    """TaskResultUtil.MergeTaskResults: cancelled and failure outrank success."""
    order = ["success", "failure", "cancelled"]
    return max(current, step, key=order.index)


def _fix_up(shell: str, script: str) -> str:
    """ScriptHandlerHelpers.FixUpScriptContents (pwsh stops on errors, keeps the exit code)."""
    if shell in {"pwsh", "powershell"}:
        prepend = "$ErrorActionPreference = 'stop'"
        append = "if ((Test-Path -LiteralPath variable:\\LASTEXITCODE)) { exit $LASTEXITCODE }"
        return f"{prepend}\n{script}\n{append}"
    return script


def _header(title: str | None, values: Mapping[str, str], env: Mapping[str, str]) -> list[str]:
    """The lines the runner prints before a step runs: `with:` or `shell:`, then `env:`."""
    lines = [f"  {title}:"] if title else []
    indent = "    " if title else "  "
    lines += [f"{indent}{key}: {_indented(value)}" for key, value in values.items()]
    if env:
        lines.append("  env:")
        lines += [f"    {key}: {_indented(value)}" for key, value in env.items()]
    return lines


def _indented(value: str) -> str:
    return value.replace("\n", "\n      ")


def unexpected_inputs(unexpected: list[str], valid: list[str]) -> str:
    given = "', '".join(unexpected)
    names = "', '".join(valid)
    return f"Unexpected input(s) '{given}', valid inputs are ['{names}']"


def _default_template(name: str, raw: str | None) -> Template | None:
    """A stand-in's default, parsed like an action.yml default (input-default context)."""
    if raw is None:
        return None
    expression = ex.template_expression(raw)
    tree = None if expression is None else ex.parse(expression, INPUT_DEFAULT_CONTEXT)
    return Template(raw, tree, f"default of input '{name}'")
