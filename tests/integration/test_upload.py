"""upload_repository against the local sandbox server, through the real e2b SDK."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from claude_e2b.sandbox.localbox.launcher import LocalBoxHost
from claude_e2b.sandbox.session import SandboxSession
from claude_e2b.sync import gitpack, pieces, tarstream, upload
from claude_e2b.sync import prepared as prepared_module
from claude_e2b.sync.changes import detect_script, parse_detect_output
from claude_e2b.sync.prepared import PreparedSplit
from claude_e2b.sync.select import Selection, SelectOptions, select_files
from claude_e2b.sync.upload import UploadReport, upload_repository
from tests import gitrepo
from tests.gitrepo import git, make_repo
from tests.integration.conftest import local_session
from tests.integration.conftest import set_faults as set_localbox_faults

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the local sandbox needs Linux")

REPO = "/home/user/repo"
WORK = "/tmp/claude-e2b"


# --- helpers ---------------------------------------------------------------------


def commit_all(root: Path) -> None:
    gitrepo.commit_all(root, "init")
    # As a clone or actions/checkout leaves it: loose objects would take the tar.
    gitrepo.repack(root)


def expected_tree(selection: Selection) -> dict[str, tuple[str, str]]:
    """path -> (kind, sha256 of content or link target), plus the exec bit in the kind."""
    tree: dict[str, tuple[str, str]] = {}
    for entry in selection.files:
        full = selection.root / entry.path
        if entry.is_symlink:
            tree[entry.path] = ("link", str(full.readlink()))
        else:
            kind = "exec" if entry.mode & 0o100 else "file"
            tree[entry.path] = (kind, hashlib.sha256(full.read_bytes()).hexdigest())
    return tree


def sandbox_tree(session: SandboxSession, root: str = REPO) -> dict[str, tuple[str, str]]:
    """The same description of the tree in the sandbox (without .git)."""
    listing = (
        f"cd {shlex.quote(root)} && find . -path ./.git -prune -o "
        r"\( -type l -printf 'l\0%P\0%l\0' \) -o \( -type f -printf 'f\0%P\0%m\0' \)"
        f" > {WORK}/listing"
    )
    session.run(listing, timeout=60, check=True)
    fields = session.read_bytes(f"{WORK}/listing").split(b"\0")[:-1]
    tree: dict[str, tuple[str, str]] = {}
    for kind, raw_path, extra in zip(fields[::3], fields[1::3], fields[2::3], strict=True):
        path = os.fsdecode(raw_path)
        if kind == b"l":
            tree[path] = ("link", os.fsdecode(extra))
        else:
            digest = hashlib.sha256(session.read_bytes(f"{root}/{path}")).hexdigest()
            tree[path] = ("exec" if int(extra, 8) & 0o100 else "file", digest)
    return tree


def set_faults(session: SandboxSession, **faults: object) -> None:
    assert session.localbox is not None
    set_localbox_faults(session.localbox, **faults)


def baseline_tree(session: SandboxSession, report: UploadReport) -> str:
    out = session.run(
        f"cd {REPO} && git -c core.quotepath=off ls-tree -r --name-only {report.baseline}",
        timeout=60,
    )
    return out.stdout


@pytest.fixture
def varied_repo(tmp_path: Path) -> Path:
    rng = random.Random(7)
    files = {
        "README.md": b"# demo\n",
        "src/app.py": b"print('hello')\n" * 200,
        "src/empty.py": b"",
        "bin/run.sh": b"#!/bin/sh\necho run\n",
        "data/blob.bin": rng.randbytes(200_000),
        "docs/notes with spaces.md": b"spaces\n",
        "docs/r\u00e9sum\u00e9 \u65e5\u672c.txt": "unicode \u2713\n".encode(),
        "-dash-first.txt": b"dash\n",
        "deep/a/b/c/d/e/f.txt": b"deep\n",
        ".gitignore": b"build/\n",
    }
    root = make_repo(tmp_path / "varied", files, executable=("bin/run.sh",))
    (root / "links").mkdir()
    (root / "links/to-app").symlink_to("../src/app.py")
    (root / "links/dangling").symlink_to("nowhere/at/all")
    commit_all(root)
    (root / "build").mkdir()
    (root / "build/out.o").write_bytes(b"ignored build output")
    return root


# --- tests -----------------------------------------------------------------------


def test_varied_tree_arrives_byte_for_byte(session: SandboxSession, varied_repo: Path) -> None:
    """Symlinks, executables, empty files and odd names arrive as they are; ignored files do not."""
    selection = select_files(varied_repo)
    report = upload_repository(session, selection, repo_dir=REPO, work_dir=WORK)
    assert sandbox_tree(session) == expected_tree(selection)
    assert "build/out.o" not in sandbox_tree(session)
    assert report.codec == "zstd"
    assert report.files == len(selection.files)
    assert sorted(baseline_tree(session, report).splitlines()) == sorted(
        f.path for f in selection.files
    )


def test_chunk_failing_once_is_resent_alone(session: SandboxSession, tmp_path: Path) -> None:
    """An HTTP 500 on one chunk: the session writes that chunk again, alone; the tree is whole."""
    rng = random.Random(3)
    files = {f"data/{i:02d}.bin": rng.randbytes(60_000) for i in range(12)}
    root = make_repo(tmp_path / "chunks", files)
    commit_all(root)
    selection = select_files(root)
    set_faults(session, upload_errors=1, upload_error_glob=f"{WORK}/upload/chunk-000002")
    with capture_logs() as logs:
        report = upload_repository(
            session, selection, repo_dir=REPO, work_dir=WORK, chunk_bytes=128 * 1024,
            transfer="tar",
        )  # fmt: skip
    retries = [e for e in logs if e["event"] == "sandbox.retry"]
    assert report.chunks >= 4
    assert report.resends == 0  # no checksum failed: the write itself was retried
    assert [e["what"] for e in retries] == [f"write {WORK}/upload/chunk-000002"]
    assert sandbox_tree(session) == expected_tree(selection)


@pytest.mark.parametrize("stream_extract", [True, False])
def test_gzip_fallback(session: SandboxSession, varied_repo: Path, stream_extract: bool) -> None:
    """When the sandbox has no zstd, gzip carries the same tree, streamed or not."""
    selection = select_files(varied_repo)
    report = upload_repository(
        session, selection, repo_dir=REPO, work_dir=WORK, codec="gzip",
        stream_extract=stream_extract, transfer="tar",
    )  # fmt: skip
    assert report.codec == "gzip"
    assert sandbox_tree(session) == expected_tree(selection)


def test_python_packing_without_runner_tools(
    session: SandboxSession, varied_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without GNU tar and the zstd CLI on the runner, tarfile + zstandard pack the same tree."""
    monkeypatch.setattr(tarstream, "runner_tools", lambda _codec: None)
    selection = select_files(varied_repo)
    upload_repository(
        session, selection, repo_dir=REPO, work_dir=WORK, chunk_bytes=64 * 1024, transfer="tar"
    )
    assert sandbox_tree(session) == expected_tree(selection)


def test_empty_repository(session: SandboxSession, tmp_path: Path) -> None:
    """A repository without files gives an empty tree and still a baseline commit."""
    root = make_repo(tmp_path / "empty", {})
    commit_all(root)
    selection = select_files(root)
    report = upload_repository(session, selection, repo_dir=REPO, work_dir=WORK)
    assert selection.files == ()
    assert sandbox_tree(session) == {}
    assert len(report.baseline) == 40
    assert baseline_tree(session, report) == ""


def test_temporary_files_are_removed(session: SandboxSession, varied_repo: Path) -> None:
    """Nothing of the upload's pieces is left in the sandbox afterwards."""
    upload_repository(session, select_files(varied_repo), repo_dir=REPO, work_dir=WORK)
    assert not session.exists(f"{WORK}/upload")
    assert session.exists(f"{REPO}/README.md")


# --- clean tracked files as git objects ------------------------------------------


def sandbox_git(session: SandboxSession, *args: str) -> str:
    command = " ".join(shlex.quote(a) for a in ("git", "-c", "core.quotepath=off", *args))
    return session.run(f"cd {REPO} && {command}", timeout=60, check=True).stdout


@pytest.mark.parametrize("stream_extract", [True, False])
def test_objects_and_tar_together_give_the_same_tree(
    session: SandboxSession, varied_repo: Path, *, stream_extract: bool
) -> None:
    """Clean files as objects, edited and untracked ones in the tar: one exact tree, clean."""
    (varied_repo / "src/app.py").write_bytes(b"print('edited')\n")
    (varied_repo / "notes.txt").write_bytes(b"untracked, not ignored\n")
    (varied_repo / "bin/run.sh").chmod(0o644)
    selection = select_files(varied_repo, SelectOptions(include_untracked=True))
    report = upload_repository(
        session, selection, repo_dir=REPO, work_dir=WORK, stream_extract=stream_extract
    )
    assert sandbox_tree(session) == expected_tree(selection)
    assert report.packs >= 1
    assert report.packed_files == len(selection.files) - 3
    assert sandbox_git(session, "status", "--porcelain", "--untracked-files=all") == ""
    assert sorted(baseline_tree(session, report).splitlines()) == sorted(
        f.path for f in selection.files
    )
    assert not session.exists(f"{REPO}/.git/info/attributes")
    # Every object is there and whole; the agent's own `git diff` reads the blobs.
    sandbox_git(session, "fsck", "--no-dangling", "--full")
    session.run(f"cd {REPO} && printf 'more\\n' >> README.md", timeout=60, check=True)
    assert "+more" in sandbox_git(session, "diff", "HEAD", "--", "README.md")


@pytest.mark.parametrize("transfer", ["zpacks", "auto"])
def test_zpacks_give_the_same_tree_and_a_whole_repository(
    session: SandboxSession, varied_repo: Path, transfer: str
) -> None:
    """Groups after the first as zpacks (stored objects through zstd): the same exact tree."""
    (varied_repo / "src/app.py").write_bytes(b"print('edited')\n")
    selection = select_files(varied_repo)
    report = upload_repository(
        session, selection, repo_dir=REPO, work_dir=WORK, group_bytes=10,
        transfer=transfer,  # type: ignore[arg-type]
    )  # fmt: skip
    assert sandbox_tree(session) == expected_tree(selection)
    # auto on the local sandbox: the link is fast, the packs stay as git stored them.
    assert report.transfer == {"zpacks": "packs+zpacks", "auto": "packs"}[transfer]
    assert report.packs >= 3
    assert sandbox_git(session, "status", "--porcelain", "--untracked-files=all") == ""
    sandbox_git(session, "fsck", "--no-dangling", "--full")
    listing = session.run(f"ls {REPO}/.git/objects/pack", timeout=60, check=True).stdout
    assert ".zst" not in listing


def test_an_excluded_files_blob_never_reaches_the_sandbox(
    session: SandboxSession, varied_repo: Path
) -> None:
    """A tracked .env is kept back: neither the file nor its blob is in the sandbox."""
    (varied_repo / ".env").write_bytes(b"TOKEN=never-upload-me\n")
    commit_all(varied_repo)
    env_blob = git(varied_repo, "rev-parse", "HEAD:.env").strip()
    upload_repository(session, select_files(varied_repo), repo_dir=REPO, work_dir=WORK)
    objects = sandbox_git(session, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)")
    assert env_blob not in objects.split()
    assert git(varied_repo, "rev-parse", "HEAD").strip() not in objects.split()
    assert not session.exists(f"{REPO}/.env")


def test_a_pack_failing_once_is_resent_alone(session: SandboxSession, varied_repo: Path) -> None:
    """An HTTP 500 on a pack: the session writes that pack again, alone."""
    set_faults(session, upload_errors=1, upload_error_glob=f"{WORK}/upload/pack-*.pack")
    with capture_logs() as logs:
        report = upload_repository(session, select_files(varied_repo), repo_dir=REPO, work_dir=WORK)
    retries = [e["what"] for e in logs if e["event"] == "sandbox.retry"]
    assert report.resends == 0
    assert len(retries) == 1
    assert retries[0].endswith(".pack")
    assert sandbox_tree(session) == expected_tree(select_files(varied_repo))


@pytest.mark.parametrize(("suffix", "transfer"), [(".pack", "auto"), (".pack.zst", "zpacks")])
def test_a_corrupted_pack_is_caught_in_the_sandbox_and_resent(
    session: SandboxSession,
    varied_repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    suffix: str,
    transfer: str,
) -> None:
    """Bytes that arrive wrong fail their sha256 there: sent again, the tree is whole."""
    real_send = pieces.send_file
    corrupted: list[str] = []

    def corrupting(
        session_: SandboxSession, remote_dir: str, file: pieces.PieceFile, *args: object
    ) -> int:
        if file.name.endswith(suffix) and not corrupted:
            corrupted.append(file.name)
            session_.write_file(f"{remote_dir}/{file.name}", b"PACK but not the right bytes")
            return 0
        return real_send(session_, remote_dir, file)

    monkeypatch.setattr(pieces, "send_file", corrupting)
    with capture_logs() as logs:
        report = upload_repository(
            session, select_files(varied_repo), repo_dir=REPO, work_dir=WORK,
            group_bytes=10, transfer=transfer,  # type: ignore[arg-type]
        )  # fmt: skip
    assert corrupted
    assert "upload.stream_extract_failed" in [e["event"] for e in logs]
    assert report.resends == 1
    assert sandbox_tree(session) == expected_tree(select_files(varied_repo))
    assert sandbox_git(session, "status", "--porcelain") == ""


def test_the_baseline_index_keeps_gits_racy_file_checks(
    session: SandboxSession, varied_repo: Path
) -> None:
    """The index time moved ahead during the transfer is real again at the end, and so is
    the stat cache's: a same-size edit right after the upload is still found."""
    report = upload_repository(session, select_files(varied_repo), repo_dir=REPO, work_dir=WORK)
    times = session.run(
        f"date +%s; stat -c %Y {REPO}/.git/index {upload.stat_cache_path(WORK)}",
        timeout=60, check=True,
    ).stdout.split()  # fmt: skip
    now, index_time, cache_time = (int(t) for t in times)
    assert index_time <= now
    assert cache_time == index_time
    # Same size, same mtime: only git's racy check or the ctime can tell.
    session.run(
        f"cd {REPO} && touch -r src/app.py /tmp/ref && "
        "printf 'print(\"HELLO\")\\n' | head -c $(stat -c %s src/app.py) > src/app.py.new && "
        "mv src/app.py.new src/app.py && touch -r /tmp/ref src/app.py",
        timeout=60, check=True,
    )  # fmt: skip
    script = detect_script(REPO, report.baseline, upload.stat_cache_path(WORK))
    session.run(f"bash -c {shlex.quote(script)} > {WORK}/changes.bin", timeout=60, check=True)
    changes = parse_detect_output(session.read_bytes(f"{WORK}/changes.bin"))
    assert [(c.path, c.status) for c in changes.changes] == [("src/app.py", "modified")]


def test_when_git_cannot_pack_everything_goes_in_the_tar(
    session: SandboxSession, varied_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pack-objects failure after a first pack was sent: the upload starts over, all tar."""
    real_write_packs = gitpack.write_packs

    def failing(split: gitpack.Split, out: Path, *_args: object) -> Iterator[gitpack.Pack]:
        if not split.blobs:  # the second try: no objects
            return
        yield next(real_write_packs(split, out, group_bytes=1))
        raise gitpack.PackError("git pack-objects failed (exit 128): fatal: bad object")

    monkeypatch.setattr(upload, "write_packs", failing)
    selection = select_files(varied_repo)
    with capture_logs() as logs:
        report = upload_repository(session, selection, repo_dir=REPO, work_dir=WORK)
    assert "upload.objects_failed" in [e["event"] for e in logs]
    assert report.packs == 0
    assert report.chunks >= 1
    assert sandbox_tree(session) == expected_tree(selection)
    assert sandbox_git(session, "status", "--porcelain") == ""


# --- the transfer for the link ------------------------------------------------------


@pytest.fixture
def text_repo(tmp_path: Path) -> Path:
    """Text like source code for the codecs: zstd -3 makes 0.68 of zlib's bytes.

    A 45 KB block of words repeats with 30 % of its words changed each time: zlib's
    32 KiB window misses the repeats, zstd's finds them. Four files of ~3 MB.
    """
    rng = random.Random(11)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choices(letters, k=rng.randint(2, 9))) for _ in range(3000)]
    block = [rng.choice(words) for _ in range(8000)]

    def variant() -> bytes:
        return " ".join(rng.choice(words) if rng.random() < 0.3 else w for w in block).encode()

    files = {f"src/part{i}.txt": b"\n".join(variant() for _ in range(60)) for i in range(4)}
    root = make_repo(tmp_path / "text", files)
    commit_all(root)
    return root


def test_auto_recompresses_where_the_link_is_slow(localbox_registry: Path, text_repo: Path) -> None:
    """Measured on the first pack at 20 Mbit/s: the rest goes as zpacks, in fewer bytes.

    (On a fast link the packs stay as git stored them: tests/unit/test_linkfit.py; on
    the local link, the zpacks test above. Small first pieces time the requests' round
    trips more than the link, so this machine's loopback cannot be the fast case here.)
    """
    host = LocalBoxHost(localbox_registry, os.environ, link_mbit=20.0)
    with local_session(host) as session:
        selection = select_files(text_repo)
        report = upload_repository(
            session, selection, repo_dir=REPO, work_dir=WORK, group_bytes=2**20
        )
        assert report.transfer == "packs+zpacks"
        assert report.link_mbit is not None
        assert report.link_mbit < 40
        assert report.sent_bytes < 0.33 * selection.total_bytes  # zlib alone: 0.41
        assert sandbox_tree(session) == expected_tree(selection)
        sandbox_git(session, "fsck", "--no-dangling", "--full")


# --- the split made ahead (beside the scan) -------------------------------------------


def test_the_split_made_ahead_is_the_one_used(
    session: SandboxSession, varied_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    selection = select_files(varied_repo)
    with PreparedSplit(selection) as prepared:
        assert prepared.split().packed_files > 0

        def no_second_split(*_args: object) -> gitpack.Split:
            raise AssertionError("the upload split again")

        monkeypatch.setattr(prepared_module, "split_selection", no_second_split)
        report = upload_repository(
            session, selection, repo_dir=REPO, work_dir=WORK, prepared=prepared
        )
    assert report.packs >= 1
    assert sandbox_tree(session) == expected_tree(selection)
    assert not prepared.spool_dir.exists()


def test_a_split_made_ahead_is_not_used_for_other_files(
    session: SandboxSession, varied_repo: Path
) -> None:
    """The scan excluded a file after the split was made: it is split again, without it."""
    selection = select_files(varied_repo)
    fewer = dataclasses.replace(
        selection, files=tuple(f for f in selection.files if f.path != "README.md")
    )
    with PreparedSplit(selection) as prepared:
        assert prepared.serves(selection)
        assert not prepared.serves(fewer)
        upload_repository(session, fewer, repo_dir=REPO, work_dir=WORK, prepared=prepared)
    assert sandbox_tree(session) == expected_tree(fewer)
    readme_blob = git(varied_repo, "rev-parse", "HEAD:README.md").strip()
    objects = sandbox_git(session, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)")
    assert readme_blob not in objects.split()
