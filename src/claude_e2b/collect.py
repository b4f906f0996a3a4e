"""Bringing the agent's work back from a sandbox: detect, pack, download, verify.

Nothing here writes to the checkout (that is apply's job), so a fetch can be
repeated: :func:`fetch_with_retries` keeps trying while the sandbox lives and time
is left. What is fetched is kept in a directory of its own (the run's
``changes/``: the detect output and the verified archive), written whole or not at
all, so ``claude-e2b download`` can apply or extract it again later.
"""

from __future__ import annotations

import random
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from claude_e2b.config import SANDBOX_REPO_DIR, SANDBOX_WORK_DIR
from claude_e2b.errors import (
    SandboxError,
    SandboxFileError,
    SandboxGoneError,
    SyncError,
    UnsafeChangeError,
)
from claude_e2b.log import get_logger
from claude_e2b.sandbox.session import SandboxSession
from claude_e2b.sync.apply import verify_archive, write_capped
from claude_e2b.sync.changes import (
    Changeset,
    detect_script,
    pack_script,
    parse_detect_output,
    parse_pack_output,
)
from claude_e2b.sync.upload import stat_cache_path
from claude_e2b.view import NullView, RunView, counted

STEP_TIMEOUT_S = 600.0
KEPT_DIR = "changes"
DETECT_FILE = "changes.bin"
ARCHIVE_FILE = "changes.archive"
BASELINE_FILE = f"{SANDBOX_WORK_DIR}/baseline"

log = get_logger(__name__)


@dataclass(frozen=True)
class CollectPolicy:
    """How long the collect phase keeps trying while the sandbox lives."""

    deadline_s: float = 600.0
    cancelled_deadline_s: float = 3.0
    first_delay_s: float = 1.0
    max_delay_s: float = 30.0


@dataclass(frozen=True)
class Fetched:
    """The agent's changes, and the archive of their contents (None: nothing to pack)."""

    changeset: Changeset
    archive: Path | None


def detect_output(session: SandboxSession, baseline: str) -> bytes:
    """What changed since the baseline commit, as the detect script prints it."""
    out_path = f"{SANDBOX_WORK_DIR}/changes.bin"
    script = detect_script(
        SANDBOX_REPO_DIR, baseline, stat_cache_path(SANDBOX_WORK_DIR), output_path=out_path
    )
    done = session.run(f"bash -c {shlex.quote(script)}", timeout=STEP_TIMEOUT_S, idempotent=True)
    if not done.ok:
        raise SyncError(f"could not list the changes in the sandbox: {done.stderr[-2000:]}")
    return session.read_bytes(out_path)


def download_archive(
    session: SandboxSession,
    changeset: Changeset,
    local: Path,
    limit: int,
    view: RunView | None = None,
) -> Path | None:
    """Pack the changed files into one archive in the sandbox; returns it downloaded, verified.

    Raises UnsafeChangeError when the archive is over ``limit`` bytes (never read into memory).
    """
    if not changeset.pack_paths():
        return None
    archive = f"{SANDBOX_WORK_DIR}/changes.tar.zst"
    job = pack_script(SANDBOX_REPO_DIR, changeset, archive)
    session.write_file(job.list_path, job.list_content)
    done = session.run(
        f"bash -c {shlex.quote(job.script)}", timeout=STEP_TIMEOUT_S, idempotent=True
    )
    if not done.ok:
        raise SyncError(f"could not pack the changes in the sandbox: {done.stderr[-2000:]}")
    packed = parse_pack_output(done.stdout.encode())
    with (view or NullView()).transfer("Downloading", packed.bytes) as transfer:
        write_capped(counted(session.read_stream(archive), transfer), local, limit)
    verify_archive(local, packed)
    return local


def fetch_changes(
    session: SandboxSession,
    baseline: str,
    keep_in: Path,
    limit: int,
    *,
    view: RunView | None = None,
) -> Fetched:
    """Detect and download the agent's changes into ``keep_in`` (replaced whole on success)."""
    keep_in.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{keep_in.name}-", dir=keep_in.parent))
    try:
        raw = detect_output(session, baseline)
        (staging / DETECT_FILE).write_bytes(raw)
        changeset = parse_detect_output(raw)
        archive = download_archive(session, changeset, staging / ARCHIVE_FILE, limit, view)
        shutil.rmtree(keep_in, ignore_errors=True)
        staging.rename(keep_in)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Fetched(changeset, keep_in / ARCHIVE_FILE if archive is not None else None)


def load_fetched(keep_in: Path) -> Fetched | None:
    """What an earlier fetch kept in ``keep_in`` (None when nothing was kept)."""
    detect = keep_in / DETECT_FILE
    if not detect.is_file():
        return None
    archive = keep_in / ARCHIVE_FILE
    return Fetched(parse_detect_output(detect.read_bytes()), archive if archive.is_file() else None)


def fetch_with_retries(
    session: SandboxSession,
    fetch: Callable[[], Fetched],
    deadline_s: float,
    policy: CollectPolicy,
) -> Fetched:
    """Repeat ``fetch`` while the sandbox lives and time is left; raise the last error."""
    started = time.monotonic()
    delay = policy.first_delay_s
    while True:
        try:
            return fetch()
        except (UnsafeChangeError, SandboxFileError):
            raise  # the same archive would be refused again; a full disk stays full
        except (SandboxError, SyncError) as exc:
            left = deadline_s - (time.monotonic() - started)
            if isinstance(exc, SandboxGoneError) or left <= delay or not _alive(session):
                raise
            log.warning("collect.retry", error=str(exc), delay_s=delay, left_s=round(left, 1))
            time.sleep(random.uniform(delay / 2, delay))  # noqa: S311 - jitter, not crypto
            delay = min(delay * 2, policy.max_delay_s)


def _alive(session: SandboxSession) -> bool:
    try:
        return session.is_alive()
    except SandboxError:
        return False
