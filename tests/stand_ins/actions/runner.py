"""Run a composite action's action.yml the way the GitHub Actions runner does.

Read from actions/runner: `Handlers/CompositeActionHandler.cs` (the step loop, the env
and steps contexts, outputs), `ActionRunner.cs` (inputs and their defaults),
`Handlers/ScriptHandler.cs` + `ScriptHandlerHelpers.cs` (shells, the script file,
the process environment), `FileCommandManager.cs`, `ActionCommandManager.cs`,
`ProcessInvoker.cs` (GITHUB_ACTIONS, CI). What a step sees:

- no INPUT_* variables (actions/runner#665): inputs exist only in the `inputs` context;
  an input not given takes its action.yml default (itself maybe an expression);
- the env context: the job's env (`env=`), then GITHUB_ENV writes of earlier steps,
  then the calling step's env (`step_env=`, which GITHUB_ENV cannot override), then the
  step's own `env:` (evaluated with the env before it);
- its process environment: the runner's own (`host_env`, by default only PATH, HOME,
  LANG of this machine), the env context, GITHUB_* from the github context (never
  GITHUB_TOKEN), RUNNER_* from the runner context, GITHUB_ACTIONS=true, CI=true; PATH
  with the GITHUB_PATH entries of earlier steps in front, newest first;
- fresh GITHUB_OUTPUT/ENV/PATH/STEP_SUMMARY/STATE files; `steps.<id>.outputs` come
  from its own GITHUB_OUTPUT (steps without an id keep none, as in the runner);
- `if:` gets `success() && (…)` unless it calls a status function; after a failed
  step success() is false, failure() true; a condition that cannot be evaluated fails
  the step and stops the action;
- `run:` needs `shell:`; bash runs `bash --noprofile --norc -e -o pipefail <file>` with
  the script in $RUNNER_TEMP/<uuid>.sh, in `working-directory` under the workspace.

After the steps, the action's `outputs:` are evaluated (also when a step failed).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.stand_ins.actions import expressions as ex
from tests.stand_ins.actions.commands import Annotation, MaskLeak, mask_leaks, masked_log
from tests.stand_ins.actions.manifest import Manifest, StepSpec, load_manifest
from tests.stand_ins.actions.process import ProcessGroups
from tests.stand_ins.actions.setup_actions import default_stand_ins
from tests.stand_ins.actions.step import Step, StepRun, unexpected_inputs
from tests.stand_ins.actions.uses import UsesTable

__all__ = [
    "TLS_VARIABLES",
    "ActionRun",
    "Job",
    "StepRun",
    "github_context",
    "host_environment",
    "run_composite_action",
]

DEFAULT_TIMEOUT = 600.0
HOST_VARIABLES = ("PATH", "HOME", "LANG")
# What a machine behind a TLS-inspecting proxy needs for uv/npm/curl to reach registries.
TLS_VARIABLES = (
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY",
)  # fmt: skip


@dataclass(frozen=True)
class ActionRun:
    """The result of running a composite action."""

    conclusion: str  # success | failure | cancelled
    outputs: dict[str, str]
    steps: tuple[StepRun, ...]
    log: str  # step headers, everything the steps printed, and the runner's ##[error] lines
    summary: str  # the steps' GITHUB_STEP_SUMMARY text, in order
    annotations: tuple[Annotation, ...]
    inputs: dict[str, str]  # the inputs context: given values and defaults
    exported_env: dict[str, str]  # GITHUB_ENV writes, which later workflow steps would see
    added_path: tuple[str, ...]  # GITHUB_PATH entries, as they would lead PATH (newest first)
    state: dict[str, str]
    timed_out: bool
    runner_temp: Path
    secrets: tuple[str, ...]  # what the runner masks from the start: `secrets=` and github.token

    def step(self, name: str) -> StepRun:
        """The step with this id (or generated context name); KeyError if none."""
        for step in self.steps:
            if name in {step.id, step.context_name}:
                return step
        raise KeyError(name)

    @property
    def failed(self) -> bool:
        return self.conclusion != "success"

    def masked_log(self) -> str:
        """The log as GitHub would display it (secrets and ::add-mask:: values as ***)."""
        return masked_log(self.log, self.secrets)

    def mask_leaks(self) -> list[MaskLeak]:
        """Values shown in clear before their ::add-mask:: line (not counting known secrets)."""
        return mask_leaks(self.log, self.secrets)


@contextlib.contextmanager
def _runner_temp(given: Path | None) -> Iterator[Path]:
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="runner-temp-") as made:
        yield Path(made)


def run_composite_action(
    action_dir: Path,
    *,
    workspace: Path,
    inputs: Mapping[str, Any] | None = None,
    github: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    step_env: Mapping[str, str] | None = None,
    event_name: str = "workflow_dispatch",
    event_payload: Mapping[str, Any] | None = None,
    runner: Mapping[str, str] | None = None,
    runner_temp: Path | None = None,
    host_env: Mapping[str, str] | None = None,
    uses: UsesTable | None = None,
    secrets: Iterable[str] = (),
    timeout: float = DEFAULT_TIMEOUT,
) -> ActionRun:
    """Run the composite action in `action_dir` as the `uses:` step of a job.

    `inputs` is the calling step's `with:`; `github` overrides the github context
    (token, repository, server_url, api_url, run_id, sha, ref, actor, ...);
    `env` is the workflow/job env and `step_env` the calling step's `env:`;
    `event_payload` is written to GITHUB_EVENT_PATH. `secrets` are values the runner
    masks from the start (as if they came from `${{ secrets.* }}`; github.token always is).
    Without `runner_temp` a temporary directory is used and removed afterwards. Every
    process is killed at `timeout` seconds.

    Raises ManifestError (action.yml breaks a rule) and UnknownActionError (a `uses:`
    without stand-in) before any step runs, as the runner fails the job's set-up.
    """
    manifest = load_manifest(action_dir)
    table = uses or default_stand_ins()
    table.check(step.uses for step in manifest.steps if step.uses)
    with _runner_temp(runner_temp) as temp:
        job = Job(
            manifest=manifest,
            workspace=workspace.resolve(),
            temp=temp.resolve(),
            table=table,
            deadline=time.monotonic() + timeout,
            timeout=timeout,
            host_env=dict(host_env if host_env is not None else host_environment()),
            global_env=dict(env or {}),
            step_env=dict(step_env or {}),
            secrets=tuple(secrets),
        )
        job.setup(github or {}, event_name, event_payload or {}, runner or {})
        try:
            return job.run(inputs or {})
        finally:
            job.groups.kill_all()


def host_environment(*names: str) -> dict[str, str]:
    """This machine's PATH, HOME, LANG and `names` (e.g. *TLS_VARIABLES): a `host_env`."""
    return {k: os.environ[k] for k in (*HOST_VARIABLES, *names) if k in os.environ}


def github_context(
    workspace: Path, event_name: str, payload: Mapping[str, Any], given: Mapping[str, Any]
) -> dict[str, Any]:
    """A github context with the keys the runner fills in, `given` taking precedence."""
    repository = str(given.get("repository", "octo-org/octo-repo"))
    api_url = str(given.get("api_url", "https://api.github.com")).rstrip("/")
    graphql = (
        api_url[: -len("/v3")] + "/graphql" if api_url.endswith("/api/v3") else api_url + "/graphql"
    )
    sha = str(given.get("sha", "0" * 40))
    ref = str(given.get("ref", "refs/heads/main"))
    context: dict[str, Any] = {
        "token": "ghs_" + "0" * 36,
        "job": "job", "ref": ref, "ref_name": ref.rsplit("/", 1)[-1],
        "ref_type": "tag" if ref.startswith("refs/tags/") else "branch", "ref_protected": False,
        "sha": sha, "repository": repository, "repository_owner": repository.partition("/")[0],
        "repository_id": "1", "repository_owner_id": "1",
        "run_id": "1", "run_number": "1", "run_attempt": "1", "retention_days": "90",
        "actor": "octocat", "actor_id": "1", "triggering_actor": "octocat",
        "workflow": "CI", "workflow_ref": f"{repository}/.github/workflows/ci.yml@{ref}",
        "workflow_sha": sha, "server_url": "https://github.com", "api_url": api_url,
        "graphql_url": graphql, "head_ref": "", "base_ref": "", "secret_source": "Actions",
        "action": "__self", "action_ref": "", "action_repository": "",
    }  # fmt: skip
    context |= dict(given)
    context |= {"workspace": str(workspace), "event_name": event_name, "event": dict(payload)}
    return context


@dataclass
class Job:
    """The mutable state of one run (the runner's Global and the composite's context)."""

    manifest: Manifest
    workspace: Path
    temp: Path
    table: UsesTable
    deadline: float
    timeout: float
    host_env: dict[str, str]
    global_env: dict[str, str]
    step_env: dict[str, str]
    secrets: tuple[str, ...]
    github: dict[str, Any] = field(default_factory=dict)
    runner: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    steps_context: dict[str, Any] = field(default_factory=dict)
    prepend_path: list[str] = field(default_factory=list)
    exported_env: dict[str, str] = field(default_factory=dict)
    state: dict[str, str] = field(default_factory=dict)
    result: str = "success"
    timed_out: bool = False
    log: list[str] = field(default_factory=list)
    summaries: list[str] = field(default_factory=list)
    annotations: list[Annotation] = field(default_factory=list)
    step_runs: list[StepRun] = field(default_factory=list)
    groups: ProcessGroups = field(default_factory=ProcessGroups)

    # ------------------------------------------------------------ set-up

    def setup(
        self,
        github: Mapping[str, Any],
        event_name: str,
        payload: Mapping[str, Any],
        runner: Mapping[str, str],
    ) -> None:
        event_path = self.temp / "_github_workflow" / "event.json"
        event_path.parent.mkdir(parents=True, exist_ok=True)
        event_path.write_text(json.dumps(payload), encoding="utf-8")
        self.github = github_context(self.workspace, event_name, payload, github)
        self.github["event_path"] = str(event_path)
        self.github["action_path"] = str(self.manifest.path.parent.resolve())
        self.runner = {
            "os": "Linux", "arch": "X64", "name": "GitHub Actions 1",
            "environment": "github-hosted", "temp": str(self.temp),
            "tool_cache": str(self.temp / "_tool"), "workspace": str(self.workspace.parent),
        } | dict(runner)  # fmt: skip

    def scope(self, github: Mapping[str, Any], env: Mapping[str, str]) -> ex.Scope:
        """Contexts for an expression, with the status functions of a composite main step."""
        contexts = {
            "github": github, "inputs": self.inputs, "steps": self.steps_context,
            "env": ex.CaseSensitiveDict(env), "runner": self.runner,
            "job": {"status": self.result}, "strategy": {
                "fail-fast": True, "job-index": 0.0, "job-total": 1.0, "max-parallel": 1.0,
            }, "matrix": None,
        }  # fmt: skip
        return ex.Scope(
            contexts,
            {
                "success": lambda: self.result == "success",
                "failure": lambda: self.result == "failure",
                "cancelled": lambda: self.result == "cancelled",
                "always": lambda: True,
            },
        )

    def resolve_inputs(self, given: Mapping[str, Any]) -> None:
        """The `with:` values, then each declared input's default (ActionRunner.RunAsync)."""
        self.inputs = {key: ex.to_str(value) for key, value in given.items()}
        declared = {spec.name.casefold(): spec for spec in self.manifest.inputs}
        default_scope = self.scope(self.github, {})
        for spec in self.manifest.inputs:
            if spec.name.casefold() not in {k.casefold() for k in self.inputs}:
                self.inputs[spec.name] = spec.default.string(default_scope) if spec.default else ""
        for key in given:
            deprecated = declared.get(key.casefold())
            if deprecated is not None and deprecated.deprecation:
                self.note(
                    "warning",
                    f"Input '{key}' has been deprecated with message: {deprecated.deprecation}",
                )
        unexpected = [k for k in given if k.casefold() not in declared]
        if unexpected:
            self.note(
                "warning", unexpected_inputs(unexpected, [s.name for s in self.manifest.inputs])
            )

    def note(self, level: str, message: str, step: str | None = None) -> None:
        """An annotation of the runner's own, also shown in the log as ##[level]."""
        self.annotations.append(Annotation(level, message, {}, step, "runner"))
        self.log.append(f"##[{level}]{message}")

    # ------------------------------------------------------------ the run

    def run(self, given_inputs: Mapping[str, Any]) -> ActionRun:
        try:
            self.resolve_inputs(given_inputs)
        except ex.ExpressionError as exc:
            self.note("error", str(exc))
            self.result = "failure"
            return self.finish({})
        for spec in self.manifest.steps:
            if self.timed_out or not self.run_step(spec):
                break
        return self.finish(self.evaluate_outputs())

    def evaluate_outputs(self) -> dict[str, str]:
        """The action's outputs, evaluated after its steps (ProcessOutputs)."""
        env = {**self.global_env, **self.step_env}
        scope = self.scope(self.github, env)
        outputs: dict[str, str] = {}
        try:
            for name, template in self.manifest.outputs:
                if template is not None:
                    outputs[name] = template.string(scope)
        except ex.ExpressionError as exc:
            self.note("error", str(exc))
            self.result = "failure"
            return {}  # the runner evaluates the outputs mapping as one: no partial outputs
        return outputs

    def finish(self, outputs: dict[str, str]) -> ActionRun:
        return ActionRun(
            conclusion=self.result,
            outputs=outputs,
            steps=tuple(self.step_runs),
            log="\n".join(self.log) + ("\n" if self.log else ""),
            summary="".join(self.summaries),
            annotations=tuple(self.annotations),
            inputs=dict(self.inputs),
            exported_env=dict(self.exported_env),
            added_path=tuple(reversed(self.prepend_path)),
            state=dict(self.state),
            timed_out=self.timed_out,
            runner_temp=self.temp,
            secrets=tuple(s for s in (*self.secrets, ex.to_str(self.github.get("token"))) if s),
        )

    def run_step(self, spec: StepSpec) -> bool:
        """Run one step; False when the action must stop (a condition that cannot be evaluated)."""
        step = Step(self, spec)
        return step.run()
