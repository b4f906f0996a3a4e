"""A stand-in for the GitHub Actions runner that runs a composite action's action.yml.

    from tests.stand_ins.actions import run_composite_action

    run = run_composite_action(
        Path("path/to/action"),              # the directory holding action.yml
        workspace=repo,                      # GITHUB_WORKSPACE, and the steps' cwd
        inputs={"plan": "plan.md"},          # the calling step's `with:`
        github={"token": "ghs_x", "api_url": "http://127.0.0.1:8080"},
        env={"JOB_LEVEL": "x"},              # job env; step_env= for the calling step's env:
        event_name="workflow_dispatch", event_payload={"inputs": {}},
        secrets=["sk-ant-..."],              # masked from the start, like ${{ secrets.X }}
        host_env=host_environment(*TLS_VARIABLES),  # default: PATH, HOME, LANG only
        timeout=120,
    )
    run.conclusion, run.outputs["status"], run.step("entry").env, run.annotations

Modules: `expressions` (${{ }}), `manifest` (action.yml rules), `runner` (the step
loop), `filecommands` (GITHUB_OUTPUT & co.), `commands` (::workflow commands:: and
mask checks), `process` (child processes), `uses` + `setup_actions` (stand-ins for
`uses:` steps: actions/setup-python, astral-sh/setup-uv).
"""

from tests.stand_ins.actions.commands import (
    Annotation,
    Command,
    Group,
    MaskLeak,
    annotations_in,
    assert_masked,
    groups,
    mask_leaks,
    masked_log,
    parse_commands,
)
from tests.stand_ins.actions.expressions import ExpressionError
from tests.stand_ins.actions.manifest import ManifestError
from tests.stand_ins.actions.runner import (
    TLS_VARIABLES,
    ActionRun,
    StepRun,
    github_context,
    host_environment,
    run_composite_action,
)
from tests.stand_ins.actions.setup_actions import (
    SETUP_PYTHON,
    SETUP_UV,
    default_stand_ins,
    setup_python_stand_in,
)
from tests.stand_ins.actions.uses import (
    StandInAction,
    StandInCall,
    StandInFailure,
    UnknownActionError,
    UsesTable,
)

__all__ = [
    "SETUP_PYTHON",
    "SETUP_UV",
    "TLS_VARIABLES",
    "ActionRun",
    "Annotation",
    "Command",
    "ExpressionError",
    "Group",
    "ManifestError",
    "MaskLeak",
    "StandInAction",
    "StandInCall",
    "StandInFailure",
    "StepRun",
    "UnknownActionError",
    "UsesTable",
    "annotations_in",
    "assert_masked",
    "default_stand_ins",
    "github_context",
    "groups",
    "host_environment",
    "mask_leaks",
    "masked_log",
    "parse_commands",
    "run_composite_action",
    "setup_python_stand_in",
]
