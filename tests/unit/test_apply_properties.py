"""Properties of applying changes: no path escapes, no spelling of a protected path slips by,
and random changesets round-trip through the runner guard."""

from __future__ import annotations

import hashlib
import io
import posixpath
import subprocess
import tarfile
import tempfile
from pathlib import Path

import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_e2b.sync.apply import ApplyPolicy, apply_changes, git_ignored
from claude_e2b.sync.apply_paths import fold_path, path_problem
from claude_e2b.sync.changes import (
    Change,
    Changeset,
    detect_script,
    pack_script,
    parse_detect_output,
)
from claude_e2b.sync.select import select_files
from tests.gitrepo import git

ROOT = "/checkout"
SEGMENTS = [".", "..", "", "a", "b c", ".git", ".GIT", "git~1", ".git.", "é", "x\ny", "\\", "~"]
segment_paths = st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=5).map("/".join)
any_path = st.one_of(segment_paths, segment_paths.map("/".__add__), st.text(max_size=40))


@given(any_path)
def test_accepted_paths_stay_inside_and_out_of_git(path: str) -> None:
    """Any path the validator accepts resolves strictly inside the checkout, never in .git."""
    if path_problem(path) is not None:
        return
    resolved = posixpath.normpath(posixpath.join(ROOT, path))
    assert resolved.startswith(ROOT + "/")
    parts = resolved[len(ROOT) + 1 :].split("/")
    assert all(part.lower().rstrip(". ") not in (".git", "git~1") for part in parts)


# Characters a file system may drop or fold: zero-width, joiners, BOM, soft hyphen, bidi marks.
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e", "\u202e"]


@st.composite
def spelled(draw: st.DrawFn, path: str) -> str:
    """``path`` with case flipped, invisible characters inserted, trailing dots and spaces."""
    parts = []
    for part in path.split("/"):
        chars = [c.swapcase() if draw(st.booleans()) else c for c in part]
        for _ in range(draw(st.integers(0, 2))):
            chars.insert(draw(st.integers(0, len(chars))), draw(st.sampled_from(INVISIBLE)))
        parts.append("".join(chars) + draw(st.sampled_from(["", ".", " ", ". .", "..."])))
    return "/".join(parts)


@settings(max_examples=80, deadline=None)
@given(spelled(".github/workflows/ci.yml"))
def test_every_spelling_of_a_protected_path_is_refused(path: str) -> None:
    """However a protected path is spelled, apply refuses it and writes nothing."""
    assert fold_path(path) == ".github/workflows/ci.yml"
    with tempfile.TemporaryDirectory() as tmp:
        checkout = Path(tmp) / "checkout"
        checkout.mkdir()
        archive = one_member_archive(Path(tmp) / "a.zst", path)
        change = Change(path, "added", None, "100644", None, False, 4, None)
        result = apply_changes(checkout, Changeset((change,)), archive, policy=ApplyPolicy())
        assert result.applied == ()
        assert "protected path" in result.skipped[0].reason
        assert list(checkout.iterdir()) == []


@given(spelled(".git/config"))
def test_every_spelling_of_dotgit_is_refused(path: str) -> None:
    """However .git is spelled, the path rules refuse it."""
    assert path_problem(path) is not None


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p): p.read_bytes() if p.is_file() and not p.is_symlink() else b""
        for p in root.rglob("*")
    }


def one_member_archive(path: Path, name: str) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = 4
        tar.addfile(info, io.BytesIO(b"data"))
    path.write_bytes(zstandard.ZstdCompressor().compress(buffer.getvalue()))
    return path


@settings(max_examples=60, deadline=None)
@given(any_path)
def test_applying_any_path_writes_only_inside_the_checkout(path: str) -> None:
    """Whatever the path, a write either lands at checkout/path or is skipped; nothing else."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        checkout = base / "deep" / "checkout"
        checkout.mkdir(parents=True)
        archive = one_member_archive(base / "a.zst", path)
        before = snapshot(base)
        change = Change(path, "added", None, "100644", None, False, 4, None)
        result = apply_changes(checkout, Changeset((change,)), archive, policy=ApplyPolicy())
        after = snapshot(base)
        new = {k for k in after.keys() - before.keys() if not k.startswith(str(checkout) + "/")}
        assert new == set()
        assert {k: v for k, v in after.items() if k in before} == before
        if result.applied:
            assert (checkout / path).read_bytes() == b"data"
        else:  # a name tar cannot hold (NUL) also shows up as an unannounced member
            assert path in [s.path for s in result.skipped]


# --- random changesets through real git ----------------------------------------------

NAMES = ["a", "b", "c d", "é", "x\ny", "-f"]
Entry = tuple[bytes, bool, str | None]  # content, executable, symlink target


def prefix_free(paths: list[str]) -> list[str]:
    """Drop paths that are a directory of another path: one cannot be file and directory."""
    return [p for p in paths if not any(q.startswith(p + "/") for q in paths)]


entries = st.tuples(
    st.binary(max_size=300), st.booleans(), st.none() | st.sampled_from(["a", "b", "missing"])
)
states = st.dictionaries(
    st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map("/".join), entries, max_size=8
).map(lambda state: {p: state[p] for p in prefix_free(list(state))})


def realize(root: Path, state: dict[str, Entry]) -> None:
    for path, (data, executable, target) in state.items():
        full = root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        if target is not None:
            full.symlink_to(target)
            continue
        full.write_bytes(data)
        full.chmod(0o755 if executable else 0o644)


def listing(root: Path) -> dict[str, tuple[str, str]]:
    found = {}
    for entry in root.rglob("*"):
        rel = entry.relative_to(root).as_posix()
        if rel.split("/")[0] == ".git":
            continue
        if entry.is_symlink():
            found[rel] = ("link", str(entry.readlink()))
        elif entry.is_file():
            digest = hashlib.sha256(entry.read_bytes()).hexdigest()
            found[rel] = (oct(entry.stat().st_mode & 0o100), digest)
    return found


def replace_worktree(repo: Path, state: dict[str, Entry]) -> None:
    for entry in repo.iterdir():
        if entry.name != ".git":
            subprocess.run(["rm", "-rf", str(entry)], check=True)
    realize(repo, state)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(states, states)
def test_random_changesets_round_trip(before: dict[str, Entry], after: dict[str, Entry]) -> None:
    """Any baseline → any final tree: detect, pack and apply reproduce the final tree."""
    with tempfile.TemporaryDirectory() as tmp:
        sandbox, checkout = Path(tmp) / "sandbox", Path(tmp) / "checkout"
        sandbox.mkdir()
        realize(sandbox, before)
        git(sandbox, "init", "-q")
        git(sandbox, "add", "-A", "-f")
        git(
            sandbox,
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "b",
            "--allow-empty",
        )
        baseline = git(sandbox, "rev-parse", "HEAD")
        git(Path(tmp), "clone", "-q", str(sandbox), str(checkout))
        replace_worktree(sandbox, after)
        detected = subprocess.run(
            ["bash", "-c", detect_script(str(sandbox), baseline)], check=True, capture_output=True
        )
        changeset = parse_detect_output(detected.stdout)
        job = pack_script(str(sandbox), changeset, str(Path(tmp) / "c.tar.zst"))
        Path(job.list_path).write_bytes(job.list_content)
        subprocess.run(["bash", "-c", job.script], check=True, capture_output=True)
        archive = Path(tmp) / "c.tar.zst"
        uploaded = frozenset(f.path for f in select_files(checkout).files)
        guard = ApplyPolicy(uploaded=uploaded, ignored=git_ignored(checkout))
        result = apply_changes(checkout, changeset, archive, policy=guard)
        assert result.skipped == ()
        assert listing(checkout) == listing(sandbox)
