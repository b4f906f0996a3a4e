"""A run's log and changes, fetched after the fact: ``claude-e2b logs`` and ``download``.

Both look for the run's sandbox first (it may still run: the agent is working, or
its work could not be fetched and it was left to its lifetime), then for what the
run kept on this machine (``transcript.jsonl``, ``changes/``). A sandbox of ours is
reached from this process with :func:`attach_session` — E2B's API key from the
environment, a local sandbox's key from its registry entry.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from claude_e2b.agent.command import AgentCommand
from claude_e2b.collect import (
    BASELINE_FILE,
    KEPT_DIR,
    Fetched,
    fetch_changes,
    load_fetched,
)
from claude_e2b.config import SANDBOX_WORK_DIR
from claude_e2b.errors import ConfigError, SandboxError
from claude_e2b.sandbox import SandboxSummary
from claude_e2b.sandbox.localbox.launcher import list_localboxes
from claude_e2b.sandbox.session import SandboxSession, attach_session
from claude_e2b.store import RunRecord
from claude_e2b.sync.apply import ApplyPolicy, ApplyResult, apply_changes, git_ignored
from claude_e2b.sync.changes import Change, Changeset
from claude_e2b.sync.screen import ContentCheck
from claude_e2b.sync.secrets import SecretScanner
from claude_e2b.sync.select import SelectOptions, select_files

# The files the run's agent writes in the sandbox (agent/command.py's launcher).
AGENT_FILES = AgentCommand((), "", "", f"{SANDBOX_WORK_DIR}/agent.pid")
FOLLOW_LIMIT_S = 6 * 3600.0
FILE_POLL_S = 0.5
KEPT_ONLY = "the run's sandbox no longer runs"


def attach(box: SandboxSummary, registry_dir: Path) -> SandboxSession:
    """A session on a running sandbox of ours (from any process of this user)."""
    key = ""
    if box.backend == "local":
        key = next(
            (b.api_key for b in list_localboxes(registry_dir) if b.sandbox_id == box.sandbox_id),
            "",
        )
    return attach_session(box.backend, box.sandbox_id, registry_dir=registry_dir, local_api_key=key)


# ── logs ───────────────────────────────────────────────────────────────────────


def sandbox_log_command(*, follow: bool) -> str:
    """Print the agent's output file; with ``follow``, until the agent ends."""
    out, launcher = shlex.quote(AGENT_FILES.output_path), shlex.quote(AGENT_FILES.launcher_path)
    if not follow:
        return f"cat -- {out}"
    return (
        f'pid=""; if [ -s {launcher} ]; then read -r _ pid < {launcher}; fi; '
        f'if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; '
        f'then exec tail -s 0.2 -c +1 --pid="$pid" -f -- {out}; else exec cat -- {out}; fi'
    )


def stream_sandbox_log(
    session: SandboxSession, on_chunk: Callable[[str], None], *, follow: bool
) -> None:
    """Send the agent's output, as the sandbox holds it, to ``on_chunk`` (live with follow)."""
    handle = session.start(
        sandbox_log_command(follow=follow), timeout=FOLLOW_LIMIT_S if follow else 120.0
    )
    outcome = handle.wait(on_stdout=on_chunk)
    if not outcome.ok and not outcome.stdout:
        raise SandboxError(
            f"could not read the agent's output in the sandbox: {outcome.stderr.strip()[-500:]}",
            hint="the agent may not have started yet; try again in a moment",
        )


def follow_file(
    path: Path, *, follow: bool, still_running: Callable[[], bool], poll_s: float = FILE_POLL_S
) -> Iterator[str]:
    """The lines of a local transcript; with ``follow``, new ones while the run goes on."""
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        yield from _lines(handle)
        if not follow:
            return
        deadline = time.monotonic() + FOLLOW_LIMIT_S
        while time.monotonic() < deadline:
            running = still_running()
            yield from _lines(handle)
            if not running:
                return
            time.sleep(poll_s)


def _lines(handle: IO[str]) -> Iterator[str]:
    while True:
        position = handle.tell()
        line = handle.readline()
        if not line:
            return
        if not line.endswith("\n"):  # half a line: read it whole next time
            handle.seek(position)
            return
        yield line


# ── download ───────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Downloaded:
    """What ``download`` found, and where it came from ("sandbox" or "kept")."""

    fetched: Fetched
    source: str


def fetch_from_sandbox(
    session: SandboxSession, record: RunRecord | None, keep_in: Path, limit: int
) -> Fetched:
    """The changes in a running sandbox since the run's upload (the recorded baseline)."""
    baseline = record.baseline if record is not None and record.baseline else ""
    if not baseline:
        baseline = session.read_bytes(BASELINE_FILE).decode("ascii", "replace").strip()
    if not baseline:
        raise ConfigError("the sandbox does not say which commit its upload made")
    return fetch_changes(session, baseline, keep_in, limit)


def kept_changes(record: RunRecord) -> Fetched:
    """What the run kept on this machine of the agent's changes. Raises ConfigError."""
    folder = Path(record.output_dir or "") / KEPT_DIR
    fetched = load_fetched(folder) if record.output_dir else None
    if fetched is None:
        raise ConfigError(
            f"{KEPT_ONLY}, and no copy of its changes is kept in {folder}",
            hint="runs keep their changes in their output directory; was it removed?",
        )
    return fetched


def write_output(fetched: Fetched, folder: Path, policy: ApplyPolicy) -> ApplyResult:
    """The new contents of the changed files under ``folder`` (empty or new), + changes.json.

    Written through the same safe apply, as additions to an empty tree; deletions
    and renames are listed in changes.json.
    """
    if folder.exists() and any(folder.iterdir()):
        raise ConfigError(f"{folder} is not empty", hint="give --output a new or empty folder")
    folder.mkdir(parents=True, exist_ok=True)
    additions = tuple(_as_addition(c) for c in fetched.changeset.changes if c.has_content)
    result = apply_changes(folder, Changeset(additions), fetched.archive, policy=policy)
    listing = {
        "changes": [c.to_result() for c in fetched.changeset.changes],
        "written": [c.path for c in result.applied],
        "skipped": result.skipped_result_list(),
    }
    (folder / "changes.json").write_text(json.dumps(listing, indent=2) + "\n", "utf-8")
    return result


def _as_addition(change: Change) -> Change:
    return Change(
        path=change.path,
        status="added",
        old_path=None,
        mode=change.mode,
        old_mode=None,
        binary=change.binary,
        bytes=change.bytes,
        link_target=change.link_target,
    )


def download_policy(repo: Path, secrets: Iterable[str]) -> ApplyPolicy:
    """The safe apply of a run, rebuilt for ``repo`` as it is now.

    Only paths git would upload from it may change (the run's own rule: nothing
    ignored, never-uploaded or protected), and no file that holds a secret.
    """
    selection = select_files(repo, SelectOptions())
    return ApplyPolicy(
        secret_check=ContentCheck(SecretScanner(tuple(secrets))),
        uploaded=frozenset(f.path for f in selection.files),
        ignored=git_ignored(repo),
    )


def apply_downloaded(fetched: Fetched, repo: Path, policy: ApplyPolicy) -> ApplyResult:
    """Apply the changes to ``repo`` through the safe apply (what a run itself does)."""
    return apply_changes(repo, fetched.changeset, fetched.archive, policy=policy)
