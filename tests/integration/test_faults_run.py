"""Whole runs through run_pipeline with faults on the sandbox's file API: no work is lost.

The real e2b SDK, the local sandbox server with faults switched on as soon as the
sandbox is open, the real Claude Code CLI against the scripted API. An upload that
fails once, a download that fails three times: each run completes with every
change the agent made applied to the checkout.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from claude_e2b.pipeline import run_pipeline
from claude_e2b.sandbox.localbox.launcher import LocalBoxHost
from claude_e2b.sandbox.session import RetryPolicy, SandboxSession, SandboxSpec
from tests.integration.conftest import set_faults
from tests.integration.test_pipeline import SCENARIO, Opened, make_repo, run_config
from tests.stand_ins.anthropic_server import ScriptedAnthropic

FAST = RetryPolicy(attempts=5, base_s=0.05, cap_s=0.3, deadline_s=30.0)
EXPECTED = {
    "hello.py": "added",
    "README.md": "modified",
    "obsolete.txt": "deleted",
    "PLAN.md": "modified",
}


def faulty(
    host: LocalBoxHost, **faults: object
) -> tuple[Opened, Callable[[SandboxSpec], SandboxSession]]:
    """A session factory whose sandboxes get ``faults`` the moment they are open."""
    opened = Opened(host)

    def open_with_faults(spec: SandboxSpec) -> SandboxSession:
        session = opened(spec)
        session.retry = FAST
        assert session.localbox is not None
        set_faults(session.localbox, **faults)
        return session

    return opened, open_with_faults


def completed_with_every_change(result, repo: Path, opened: Opened) -> None:
    assert result.status == "completed", result.message
    assert {c["path"]: c["status"] for c in result.changes} == EXPECTED
    assert 'print("Hello from the sandbox")' in (repo / "hello.py").read_text()
    assert not (repo / "obsolete.txt").exists()
    assert result.skipped_changes == ()
    assert not opened.sessions[0].is_alive()


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param({"upload_errors": 1, "upload_error_glob": "*/PACKS"}, id="PACKS-note"),
        pytest.param({"upload_errors": 1, "upload_error_glob": "*/chunk-000001"}, id="tar-chunk"),
    ],
)
def test_one_500_on_an_upload(tmp_path, localbox_registry, fault_host, claude_bin, faults):
    """HTTP 500 on the small PACKS note, or on a chunk of the tar: sent again, the run completes."""
    repo = make_repo(tmp_path / "repo")
    opened, factory = faulty(fault_host, **faults)
    with ScriptedAnthropic(SCENARIO) as api, capture_logs() as logs:
        result = run_pipeline(run_config(repo, tmp_path / "out", api.url, claude_bin), factory)
    completed_with_every_change(result, repo, opened)
    resent = [e for e in logs if e["event"] in {"sandbox.retry", "upload.file_retry"}]
    assert len(resent) == 1
    assert "500" in str(resent[0]["error"])


def test_a_500_and_two_503_on_the_download_of_the_changes(
    tmp_path, localbox_registry, fault_host, claude_bin
):
    """The archive of the changes fails three times to come down; the fourth time it does."""
    repo = make_repo(tmp_path / "repo")
    opened, factory = faulty(
        fault_host, download_errors=[500, 503, 503], download_error_glob="*/changes.tar.zst"
    )
    with ScriptedAnthropic(SCENARIO) as api, capture_logs() as logs:
        result = run_pipeline(run_config(repo, tmp_path / "out", api.url, claude_bin), factory)
    completed_with_every_change(result, repo, opened)
    retried = [e for e in logs if e["event"] == "sandbox.retry" and "changes.tar.zst" in e["what"]]
    assert [e["attempt"] for e in retried] == [1, 2, 3]
