"""Commands import only what they use: `plan check`, `--help`, `list` and `history`
never load the e2b SDK (nor PyGithub, nor Jinja2); `plan check` not even the log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import json, os, sys
from claude_e2b.cli import dispatch
try:
    code = dispatch(sys.argv[1:], os.environ)
except SystemExit as exc:
    code = exc.code
names = ("e2b", "github", "jinja2", "httpx", "structlog", "rich")
loaded = sorted(m for m in names if m in sys.modules)
sys.stderr.write("LOADED " + json.dumps({"code": code, "loaded": loaded}) + "\\n")
"""


def _loaded(args: list[str], tmp_path: Path) -> dict:
    env = dict(os.environ, CLAUDE_E2B_DB=str(tmp_path / "h.sqlite3"),
               CLAUDE_E2B_STATE_DIR=str(tmp_path / "state"))  # fmt: skip
    env.pop("E2B_API_KEY", None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    line = next(x for x in done.stderr.splitlines() if x.startswith("LOADED "))
    return json.loads(line.removeprefix("LOADED "))


@pytest.mark.parametrize("args", [["--help"], ["list"], ["history"], ["list", "--json"]])
def test_light_commands_never_load_the_sdks(args: list[str], tmp_path: Path) -> None:
    found = _loaded(args, tmp_path)
    assert found["code"] == 0
    assert not {"e2b", "github", "jinja2", "httpx"} & set(found["loaded"])


def test_plan_check_loads_neither_the_sdks_nor_the_log(tmp_path: Path) -> None:
    plan = tmp_path / "PLAN.md"
    plan.write_text("---\ntitle: x\n---\nDo it.\n")
    found = _loaded(["plan", "check", str(plan)], tmp_path)
    assert found["code"] == 0
    assert not {"e2b", "github", "jinja2", "httpx", "structlog", "rich"} & set(found["loaded"])
