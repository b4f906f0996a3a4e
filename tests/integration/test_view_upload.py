"""Upload progress for the views: on_sent / on_total against the local sandbox, real SDK."""

from __future__ import annotations

import random
import sys
import threading
from pathlib import Path

import pytest

from claude_e2b.sandbox.session import SandboxSession
from claude_e2b.sync.select import SelectOptions, select_files
from claude_e2b.sync.upload import upload_repository
from tests import gitrepo
from tests.gitrepo import make_repo
from tests.integration.conftest import set_faults

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the local sandbox needs Linux")

REPO = "/home/user/repo"
WORK = "/tmp/claude-e2b"


class Heard:
    """What the hooks were told, and from which thread."""

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.totals: list[int] = []
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def on_sent(self, nbytes: int) -> None:
        with self._lock:
            self.sent.append(nbytes)
            self.threads.add(threading.current_thread().name)

    def on_total(self, total: int) -> None:
        self.totals.append(total)


@pytest.fixture
def mixed_repo(tmp_path: Path) -> Path:
    """Committed files (they go as a pack) and edited, untracked ones (they go in the tar)."""
    rng = random.Random(11)
    files = {f"data/{i:02d}.bin": rng.randbytes(50_000) for i in range(8)}
    files["src/app.py"] = b"print('hello')\n" * 100
    root = make_repo(tmp_path / "mixed", files)
    gitrepo.commit_all(root, "init")
    gitrepo.repack(root)
    (root / "src/app.py").write_bytes(b"print('edited')\n" * 50)
    for i in range(6):
        (root / f"new/{i}.bin").parent.mkdir(exist_ok=True)
        (root / f"new/{i}.bin").write_bytes(rng.randbytes(40_000))
    return root


def test_on_sent_adds_up_to_the_bytes_sent(session: SandboxSession, mixed_repo: Path) -> None:
    """Each file of a pack or chunk is heard once, from the sender thread; they sum to the total."""
    heard = Heard()
    selection = select_files(mixed_repo, SelectOptions(include_untracked=True))
    report = upload_repository(
        session, selection, repo_dir=REPO, work_dir=WORK, chunk_bytes=64 * 1024,
        on_sent=heard.on_sent, on_total=heard.on_total,
    )  # fmt: skip
    assert report.packs >= 1
    assert report.chunks >= 3
    assert sum(heard.sent) == report.sent_bytes
    assert heard.totals == [report.sent_bytes]
    # A pack is three files (pack, index, paths); a chunk is one: no per-byte calls.
    assert len(heard.sent) == 3 * report.packs + report.chunks
    assert heard.threads == {"claude-e2b-upload"}


def test_a_retried_chunk_is_heard_once(session: SandboxSession, tmp_path: Path) -> None:
    """An HTTP 500 on a chunk is retried; the bar does not count its bytes twice."""
    rng = random.Random(5)
    root = make_repo(tmp_path / "chunks", {f"d/{i}.bin": rng.randbytes(60_000) for i in range(8)})
    gitrepo.commit_all(root, "init")
    assert session.localbox is not None
    set_faults(session.localbox, upload_errors=1, upload_error_glob=f"{WORK}/upload/chunk-000002")
    heard = Heard()
    report = upload_repository(
        session, select_files(root), repo_dir=REPO, work_dir=WORK, chunk_bytes=128 * 1024,
        transfer="tar", on_sent=heard.on_sent, on_total=heard.on_total,
    )  # fmt: skip
    assert set_faults(session.localbox)["upload_errors"] == 0  # the 500 did fire
    assert len(heard.sent) == report.chunks
    assert sum(heard.sent) == report.sent_bytes == heard.totals[0]
