"""The apply step never touches what the pull request would not show: real runner checkouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from claude_e2b.sync.apply import ApplyPolicy, ApplyResult, apply_changes, git_ignored
from claude_e2b.sync.apply_ignore import IGNORED_REASON
from claude_e2b.sync.changes import Change, Changeset
from claude_e2b.sync.select import select_files
from tests.gitrepo import IDENTITY, git, make_repo
from tests.unit.test_apply import archive_of, change, reasons, regular, snapshot, write

RUNNER_FILES = {
    ".gitignore": b"build/\n*.log\n",
    "src/app.py": b"print('app')\n",
    "README.md": b"# readme\n",
    # What uv and virtualenv leave: a venv that ignores itself, and a python later steps run.
    ".venv/.gitignore": b"*\n",
    ".venv/bin/python": b"#!/bin/sh\necho the real python\n",
    ".env": b"TOKEN=runner-secret\n",
    "notes.txt": b"untracked notes\n",
    "build/out.js": b"built\n",
    "scratch/todo.md": b"untracked scratch\n",
}
TRACKED = (".gitignore", "src/app.py", "README.md")


@pytest.fixture
def runner(tmp_path: Path) -> Path:
    """A checkout like a runner's: a few tracked files, and its own untracked and ignored ones."""
    repo = make_repo(tmp_path / "runner", RUNNER_FILES)
    git(repo, "add", *TRACKED)
    git(repo, *IDENTITY, "commit", "-q", "-m", "base")
    return repo


def guarded(repo: Path, **extra: object) -> ApplyPolicy:
    """The policy the pipeline builds: what went up, and the runner's git for ignores."""
    uploaded = frozenset(f.path for f in select_files(repo).files)
    return ApplyPolicy(uploaded=uploaded, ignored=git_ignored(repo), **extra)  # type: ignore[arg-type]


def apply(
    repo: Path, changes: list[Change], archive: Path | None, policy: ApplyPolicy
) -> ApplyResult:
    return apply_changes(repo, Changeset(tuple(changes)), archive, policy=policy)


def test_the_upload_is_what_the_guard_compares_against(runner: Path) -> None:
    """The runner's venv, .env, untracked and ignored files never went up."""
    assert guarded(runner).uploaded == frozenset(TRACKED)


def test_hostile_changes_leave_the_runners_own_files_alone(runner: Path, tmp_path: Path) -> None:
    """Ignored, never-uploaded and unseen paths are refused and listed; the real edit is applied."""
    names = [".venv/bin/python", ".env", "build/new.js", "src/debug.log", "scratch/run.sh"]
    names += ["src/app.py", "src/new.py"]
    archive = archive_of(tmp_path / "a.zst", [regular(name, b"agent\n") for name in names])
    changes = [
        change(".venv/bin/python", mode="100755"),
        change(".env"),
        change(".venv/.gitignore", "deleted"),
        change("notes.txt", "deleted"),
        change("build/new.js"),
        change("src/debug.log"),
        change("scratch/run.sh"),
        change("src/app.py", "modified"),
        change("src/new.py"),
    ]
    before = snapshot(tmp_path, runner / ".git")
    result = apply(runner, changes, archive, guarded(runner))
    why = reasons(result)
    assert "exists on the runner but was never uploaded" in why[".venv/bin/python"]
    assert "exists on the runner but was never uploaded" in why[".env"]
    assert "deletes" in why[".venv/.gitignore"]
    assert "was never uploaded" in why["notes.txt"]
    assert "inside 'build/', which exists on the runner" in why["build/new.js"]
    assert why["src/debug.log"] == IGNORED_REASON
    assert "inside 'scratch/'" in why["scratch/run.sh"]
    assert [c.path for c in result.applied] == ["src/app.py", "src/new.py"]
    assert (runner / "src/app.py").read_bytes() == b"agent\n"
    after = snapshot(tmp_path, runner / ".git")
    changed = {k for k in after.keys() | before.keys() if after.get(k) != before.get(k)}
    assert changed == {str(runner / "src/app.py"), str(runner / "src/new.py")}


def test_ignored_path_stays_refused_when_the_gitignore_goes_with_it(
    runner: Path, tmp_path: Path
) -> None:
    """Deleting the tracked .gitignore is an ordinary change; it does not unlock ignored paths."""
    archive = archive_of(tmp_path / "a.zst", [regular("debug.log"), regular("src/ok.py")])
    changes = [change(".gitignore", "deleted"), change("debug.log"), change("src/ok.py")]
    result = apply(runner, changes, archive, guarded(runner))
    assert reasons(result) == {"debug.log": IGNORED_REASON}
    assert not (runner / ".gitignore").exists()
    assert not (runner / "debug.log").exists()
    assert (runner / "src/ok.py").exists()


def test_tracked_file_matching_an_ignore_pattern_may_change(runner: Path, tmp_path: Path) -> None:
    """A file git tracks is uploaded and not ignored, even when a pattern matches it."""
    write(runner, "keep.log", b"tracked log\n")
    git(runner, "add", "-f", "keep.log")
    archive = archive_of(tmp_path / "a.zst", [regular("keep.log", b"new\n")])
    for policy in (guarded(runner), ApplyPolicy(ignored=git_ignored(runner))):
        result = apply(runner, [change("keep.log", "modified")], archive, policy)
        assert result.skipped == ()
    assert (runner / "keep.log").read_bytes() == b"new\n"


def test_rename_from_a_never_uploaded_path_keeps_it(runner: Path, tmp_path: Path) -> None:
    """A rename whose old path never went up is refused; the runner's file stays."""
    archive = archive_of(tmp_path / "a.zst", [regular("config.txt", b"TOKEN=runner-secret\n")])
    renamed = change("config.txt", "renamed", old_path=".env")
    result = apply(runner, [renamed], archive, guarded(runner))
    assert "renames '.env', which was never uploaded" in reasons(result)["config.txt"]
    assert (runner / ".env").read_bytes() == RUNNER_FILES[".env"]
    assert not (runner / "config.txt").exists()


def test_modifying_a_path_that_never_went_up_is_refused(runner: Path, tmp_path: Path) -> None:
    """A change that claims to modify a path the sandbox never had is refused."""
    archive = archive_of(tmp_path / "a.zst", [regular("src/ghost.py")])
    result = apply(runner, [change("src/ghost.py", "modified")], archive, guarded(runner))
    assert "modified, but it was never uploaded" in reasons(result)["src/ghost.py"]
    assert not (runner / "src/ghost.py").exists()


def test_new_paths_in_uploaded_or_new_directories_are_applied(runner: Path, tmp_path: Path) -> None:
    """New files under uploaded directories, or in new directories, are how the agent adds files."""
    names = ["src/deep/er/new.py", "docs/guide.md", "top.txt"]
    archive = archive_of(tmp_path / "a.zst", [regular(name) for name in names])
    result = apply(runner, [change(name) for name in names], archive, guarded(runner))
    assert result.skipped == ()
    assert all((runner / name).exists() for name in names)


def test_directory_replaced_by_a_file_passes_the_guard(runner: Path, tmp_path: Path) -> None:
    """An uploaded directory may become a file: it exists on the runner, but was seen."""
    archive = archive_of(tmp_path / "a.zst", [regular("src", b"now a file")])
    changes = [change("src/app.py", "deleted"), change("src")]
    result = apply(runner, changes, archive, guarded(runner))
    assert result.skipped == ()
    assert (runner / "src").read_bytes() == b"now a file"


def test_names_that_fold_onto_the_runners_files_are_refused(runner: Path, tmp_path: Path) -> None:
    """README.MD, Src/x and .ENV are the existing files on other file systems: refused."""
    names = ["README.MD", "Src/x.py", ".ENV", "readme.md.txt"]
    archive = archive_of(tmp_path / "a.zst", [regular(name) for name in names])
    why = reasons(apply(runner, [change(name) for name in names], archive, guarded(runner)))
    assert "the same file as 'README.md' on the runner" in why["README.MD"]
    assert "the same file as 'src' on the runner" in why["Src/x.py"]
    assert "the same file as '.env' on the runner" in why[".ENV"]
    assert "readme.md.txt" not in why
    assert (runner / "README.md").read_bytes() == RUNNER_FILES["README.md"]


def test_case_only_rename_is_applied(runner: Path, tmp_path: Path) -> None:
    """Renaming README.md to Readme.md folds onto the old name, which the rename removes."""
    archive = archive_of(tmp_path / "a.zst", [regular("Readme.md", RUNNER_FILES["README.md"])])
    renamed = change("Readme.md", "renamed", old_path="README.md")
    result = apply(runner, [renamed], archive, guarded(runner))
    assert result.skipped == ()
    assert sorted(p.name for p in runner.iterdir() if p.name.lower() == "readme.md") == [
        "Readme.md"
    ]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("docs/a\u200b.md", "invisible character (U+200B ZERO WIDTH SPACE)"),
        ("docs/\u202egpj.exe", "invisible character (U+202E RIGHT-TO-LEFT OVERRIDE)"),
        ("docs/b.md.", "ends with a dot or a space"),
        ("docs /c.md", "ends with a dot or a space"),
        ("docs/.../d.md", "only dots, spaces or invisible characters"),
    ],
)
def test_names_a_reviewer_could_misread_are_refused(
    runner: Path, tmp_path: Path, name: str, reason: str
) -> None:
    """New names with invisible characters or trailing dots and spaces are refused."""
    archive = archive_of(tmp_path / "a.zst", [regular(name), regular("docs/ok.md")])
    result = apply(runner, [change(name), change("docs/ok.md")], archive, guarded(runner))
    assert reason in reasons(result)[name]
    assert [c.path for c in result.applied] == ["docs/ok.md"]


def test_an_uploaded_file_keeps_its_odd_name(runner: Path, tmp_path: Path) -> None:
    """A tracked file whose name holds a zero-width space may still be edited."""
    write(runner, "odd\u200bname.txt", b"old\n")
    git(runner, "add", "odd\u200bname.txt")
    archive = archive_of(tmp_path / "a.zst", [regular("odd\u200bname.txt", b"new\n")])
    result = apply(runner, [change("odd\u200bname.txt", "modified")], archive, guarded(runner))
    assert result.skipped == ()


def test_two_writes_to_one_file_under_two_spellings(runner: Path, tmp_path: Path) -> None:
    """A changeset that writes x.txt and X.TXT keeps the first and refuses the second."""
    archive = archive_of(tmp_path / "a.zst", [regular("x.txt", b"1"), regular("X.TXT", b"2")])
    result = apply(runner, [change("x.txt"), change("X.TXT")], archive, guarded(runner))
    assert "the same file as 'x.txt', also written here" in reasons(result)["X.TXT"]
    assert (runner / "x.txt").read_bytes() == b"1"


def test_git_ignored_sorts_out_the_paths_git_will_not_judge(runner: Path, tmp_path: Path) -> None:
    """Paths beyond a symlink fail git's batch; they are judged apart, the others as usual."""
    (runner / "lnk").symlink_to(tmp_path)
    paths = ["lnk/x", "lnk/y.log", "a.log", "src/ok.py", "build", "keep\nline.log"]
    found = git_ignored(runner)(paths)
    assert found == dict.fromkeys(["lnk/y.log", "a.log", "build", "keep\nline.log"], IGNORED_REASON)
    assert git_ignored(runner)([]) == {}


def test_inside_a_submodule_is_refused(runner: Path, tmp_path: Path) -> None:
    """A write into a submodule's directory never went up and is refused."""
    inner = make_repo(tmp_path / "inner", {"lib.py": b"x\n"})
    git(inner, "add", "-A")
    git(inner, *IDENTITY, "commit", "-q", "-m", "inner")
    git(runner, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(inner), "sub")
    archive = archive_of(tmp_path / "a.zst", [regular("sub/lib.py"), regular("sub/new.py")])
    changes = [change("sub/lib.py", "modified"), change("sub/new.py")]
    why = reasons(apply(runner, changes, archive, guarded(runner)))
    assert "exists on the runner but was never uploaded" in why["sub/lib.py"]
    assert "inside 'sub/'" in why["sub/new.py"]
    found = git_ignored(runner)(["sub/new.py"])
    assert "cannot say" in found["sub/new.py"]


def test_symlink_replaced_by_a_directory_is_judged_by_the_runners_rules(
    runner: Path, tmp_path: Path
) -> None:
    """Below a link the changeset replaces, git is asked in a scratch tree of ignore files."""
    (runner / "link").symlink_to("src")
    git(runner, "add", "link")
    archive = archive_of(tmp_path / "a.zst", [regular("link/x.log"), regular("link/ok.py")])
    changes = [change("link", "deleted"), change("link/x.log"), change("link/ok.py")]
    result = apply(runner, changes, archive, guarded(runner))
    assert reasons(result) == {"link/x.log": IGNORED_REASON}
    assert (runner / "link").is_dir()
    assert (runner / "link/ok.py").exists()
    assert (runner / "src/app.py").exists()


def test_scratch_check_works_from_a_subdirectory(runner: Path, tmp_path: Path) -> None:
    """A checkout below the repository's top asks git with the right prefix and ignore files."""
    write(runner, "src/.gitignore", b"*.tmp\n")
    (runner / "src" / "lnk").symlink_to(tmp_path)
    found = git_ignored(runner / "src")(["lnk/a.tmp", "lnk/b.log", "lnk/c.py"])
    assert found == {"lnk/a.tmp": IGNORED_REASON, "lnk/b.log": IGNORED_REASON}
