"""Tests for claude_e2b.sync.select, on real git repositories built in temp dirs."""

from __future__ import annotations

import os
import random
import stat
import subprocess
import time
from pathlib import Path

import pytest

from claude_e2b.errors import ConfigError, UserError
from claude_e2b.sync import screen as screen_module
from claude_e2b.sync import secrets
from claude_e2b.sync.screen import SecretsPolicy, screen
from claude_e2b.sync.secrets import SecretHit, SecretScanner
from claude_e2b.sync.select import (
    ALWAYS_EXCLUDED,
    TOTAL_CAP_SETTING,
    Excluded,
    SelectedFile,
    Selection,
    SelectOptions,
    excluded_reason,
    excluded_reasons,
    human_size,
    select_files,
)
from tests.unit.secret_corpus import POSITIVES, RUN_SECRET, reference_scan_tree, write_tree

ODD_NAMES = (
    "with space.txt",
    "ünïcödé ✓.txt",
    "new\nline.txt",
    'double"quote.txt',
    "single'quote.txt",
    "tab\tname.txt",
    "back\\slash.txt",
)


@pytest.fixture(autouse=True)
def _isolated_git(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Keep the developer's git configuration and global ignores out of every test."""
    home = tmp_path_factory.mktemp("home")
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_CEILING_DIRECTORIES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "test@example.com")


def git(repo: Path, *args: str) -> bytes:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def write(repo: Path, rel: str, data: str | bytes = "x") -> Path:
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return path


def new_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    return path


def commit_all(repo: Path, message: str = "commit") -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)


def git_list(repo: Path, *args: str) -> list[str]:
    out = git(repo, "-c", "core.quotepath=off", "ls-files", "-z", *args)
    return [os.fsdecode(raw) for raw in out.split(b"\0") if raw]


def expected_paths(repo: Path, *, untracked: bool) -> list[str]:
    """What git says goes up, computed with git's own flags: cached minus deleted and gitlinks."""
    gitlinks = {
        line.split("\t", 1)[1] for line in git_list(repo, "--stage") if line.startswith("160000 ")
    }
    deleted = set(git_list(repo, "--deleted"))
    paths = [p for p in git_list(repo, "--cached") if p not in deleted | gitlinks]
    if untracked:
        paths += [
            p for p in git_list(repo, "--others", "--exclude-standard") if not p.endswith("/")
        ]
    return sorted(set(paths), key=os.fsencode)


def paths_of(selection: Selection) -> list[str]:
    return [f.path for f in selection.files]


def reasons_of(selection: Selection) -> dict[str, str]:
    return {e.path: e.reason for e in selection.excluded}


@pytest.fixture
def rich_repo(tmp_path: Path) -> Path:
    """A repository exercising every way git decides what is tracked or ignored."""
    repo = new_repo(tmp_path / "repo")
    outside = write(tmp_path, "outside/target.txt", "outside")
    global_ignore = write(tmp_path, "global-ignore", "global-ignored.txt\n")
    git(repo, "config", "core.excludesFile", str(global_ignore))
    write(repo, ".gitignore", "*.log\n!keep.log\nbuild/\n")
    write(repo, "sub/.gitignore", "local.txt\n")
    write(repo, ".git/info/exclude", "info-excluded.txt\n")
    for rel in ("a.txt", "keep.log", "x.log", "build/out.bin", "sub/local.txt", "sub/other.txt"):
        write(repo, rel, rel)
    for rel in ("info-excluded.txt", "global-ignored.txt", "gone.txt", *ODD_NAMES):
        write(repo, rel, rel)
    (repo / "link-inside").symlink_to("a.txt")
    (repo / "sub" / "link-up").symlink_to("../a.txt")
    (repo / "link-outside").symlink_to(outside)
    (repo / "link-relative-out").symlink_to("../outside/target.txt")
    (repo / "dangling").symlink_to("does-not-exist")
    commit_all(repo)
    write(repo, "forced.log", "tracked although ignored")
    git(repo, "add", "-f", "forced.log")
    write(repo, "staged.txt", "staged, not committed")
    git(repo, "add", "staged.txt")
    (repo / "gone.txt").unlink()
    write(repo, "untracked.txt", "u")
    write(repo, "newdir/deep/u.txt", "u")
    write(repo, "newdir/deep/ignored.log", "u")
    return repo


# --- equality with git ---------------------------------------------------------------


def test_tracked_selection_equals_git(rich_repo: Path) -> None:
    """Without untracked files, the selection is git's tracked files still on disk."""
    selection = select_files(rich_repo)
    assert paths_of(selection) == expected_paths(rich_repo, untracked=False)
    assert "untracked.txt" not in paths_of(selection)


def test_untracked_selection_equals_git(rich_repo: Path) -> None:
    """With untracked files, non-ignored untracked files are added, exactly as git lists them."""
    selection = select_files(rich_repo, SelectOptions(include_untracked=True))
    assert paths_of(selection) == expected_paths(rich_repo, untracked=True)


def test_ignore_rules_behave_as_in_git(rich_repo: Path) -> None:
    """Nested .gitignore, negation, info/exclude and core.excludesFile all apply."""
    paths = set(paths_of(select_files(rich_repo, SelectOptions(include_untracked=True))))
    assert {
        "keep.log",
        "forced.log",
        "sub/other.txt",
        "untracked.txt",
        "newdir/deep/u.txt",
    } <= paths
    ignored = {"x.log", "build/out.bin", "sub/local.txt", "newdir/deep/ignored.log"}
    ignored |= {"info-excluded.txt", "global-ignored.txt"}
    assert not ignored & paths


def test_odd_names_survive(rich_repo: Path) -> None:
    """Spaces, unicode, newlines, quotes, tabs and backslashes come through unquoted."""
    paths = set(paths_of(select_files(rich_repo)))
    assert set(ODD_NAMES) <= paths


def test_deleted_tracked_file_is_not_sent(rich_repo: Path) -> None:
    """A tracked file deleted in the work tree is left out, and counted in a note."""
    selection = select_files(rich_repo)
    assert "gone.txt" not in paths_of(selection)
    assert "gone.txt" not in reasons_of(selection)
    assert any("1 tracked file(s) deleted" in note for note in selection.notes)


def test_staged_file_is_sent(rich_repo: Path) -> None:
    """A file added to the index but never committed is tracked, so it goes up."""
    assert "staged.txt" in paths_of(select_files(rich_repo))


# --- symlinks, file kinds ------------------------------------------------------------


def test_symlinks_are_sent_as_links(rich_repo: Path) -> None:
    """Symlinks are never followed: size is the target's length, mode is a link's."""
    files = {f.path: f for f in select_files(rich_repo).files}
    for name in ("link-inside", "sub/link-up", "link-outside", "link-relative-out", "dangling"):
        entry = files[name]
        target = str((rich_repo / name).readlink())
        assert entry.is_symlink
        assert stat.S_ISLNK(entry.mode)
        assert entry.size == len(os.fsencode(target))
    assert not files["a.txt"].is_symlink
    assert stat.S_ISREG(files["a.txt"].mode)
    assert files["a.txt"].size == len("a.txt")


def test_symlinks_leaving_the_repository_are_noted(rich_repo: Path) -> None:
    """Links whose target leaves the repository get a note; links inside it do not."""
    notes = "\n".join(select_files(rich_repo).notes)
    assert "symlink link-outside ->" in notes
    assert "symlink link-relative-out -> ../outside/target.txt" in notes
    assert "link-inside" not in notes
    assert "sub/link-up" not in notes
    assert "dangling" not in notes


def test_file_beyond_a_symlinked_directory_is_refused(tmp_path: Path) -> None:
    """A tracked file whose directory became a symlink is not read through the link."""
    repo = new_repo(tmp_path / "repo")
    write(repo, "d/f.txt", "inside")
    commit_all(repo)
    write(tmp_path, "elsewhere/f.txt", "secret outside")
    (repo / "d" / "f.txt").unlink()
    (repo / "d").rmdir()
    (repo / "d").symlink_to(tmp_path / "elsewhere")
    selection = select_files(repo)
    assert "d/f.txt" not in paths_of(selection)
    assert reasons_of(selection)["d/f.txt"] == "beyond a symbolic link"


def test_tracked_file_replaced_by_directory_is_excluded(tmp_path: Path) -> None:
    """A tracked path that is now a directory is not a file to send."""
    repo = new_repo(tmp_path / "repo")
    write(repo, "thing", "file")
    commit_all(repo)
    (repo / "thing").unlink()
    write(repo, "thing/inner.txt", "now a directory")
    assert reasons_of(select_files(repo))["thing"] == "not a regular file or symlink"


# --- submodules, nested repositories, empty repositories -----------------------------


def test_submodule_is_reported_not_sent(tmp_path: Path) -> None:
    """A gitlink is listed in submodules; neither it nor its files are uploaded."""
    source = new_repo(tmp_path / "source")
    write(source, "lib.py", "x = 1\n")
    commit_all(source)
    repo = new_repo(tmp_path / "repo")
    write(repo, "main.py", "print()\n")
    git(
        repo,
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "add",
        "-q",
        str(source),
        "vendor/lib",
    )
    commit_all(repo)
    selection = select_files(repo, SelectOptions(include_untracked=True))
    assert selection.submodules == ("vendor/lib",)
    assert paths_of(selection) == [".gitmodules", "main.py"]
    assert paths_of(selection) == expected_paths(repo, untracked=True)


def test_untracked_nested_repository_is_noted(tmp_path: Path) -> None:
    """An untracked nested repository is neither entered nor sent, and gets a note."""
    repo = new_repo(tmp_path / "repo")
    write(repo, "a.txt")
    nested = new_repo(repo / "nested")
    write(nested, "inner.txt")
    selection = select_files(repo, SelectOptions(include_untracked=True))
    assert paths_of(selection) == ["a.txt"]
    assert any("nested/ is an untracked nested git repository" in n for n in selection.notes)


def test_empty_repository(tmp_path: Path) -> None:
    """A repository without commits or files selects nothing, without error."""
    repo = new_repo(tmp_path / "repo")
    selection = select_files(repo, SelectOptions(include_untracked=True))
    assert selection == Selection(repo.resolve(), (), (), (), ())
    assert selection.total_bytes == 0


def test_subdirectory_root_selects_under_it(tmp_path: Path) -> None:
    """Pointed at a subdirectory, only files under it are sent, relative to it."""
    repo = new_repo(tmp_path / "repo")
    write(repo, "top.txt")
    write(repo, "pkg/mod.py")
    commit_all(repo)
    selection = select_files(repo / "pkg")
    assert paths_of(selection) == ["mod.py"]
    assert "only files under it are sent" in selection.notes[0]


# --- always-excluded names -----------------------------------------------------------


def example_for(glob: str) -> str:
    """A concrete file name that the glob matches."""
    return glob.replace("**", "file").replace("*", "x")


COMMITTABLE = [(g, w) for g, w in ALWAYS_EXCLUDED if not g.startswith(".git")]


def test_every_always_excluded_rule_removes_tracked_files_at_any_depth(tmp_path: Path) -> None:
    """Each rule excludes its files, committed at the top and deep down, naming the rule."""
    repo = new_repo(tmp_path / "repo")
    expected: dict[str, str] = {}
    for index, (glob, why) in enumerate(COMMITTABLE):
        for prefix in ("", f"deep{index}/er/"):
            name = prefix + example_for(glob)
            write(repo, name, "secret")
            expected[name] = f"always excluded: {why} ({glob})"
    write(repo, "ordinary.txt")
    commit_all(repo)
    selection = select_files(repo)
    assert paths_of(selection) == ["ordinary.txt"]
    assert reasons_of(selection) == expected


@pytest.mark.parametrize(("glob", "why"), ALWAYS_EXCLUDED)
def test_excluded_reason_names_each_rule(glob: str, why: str) -> None:
    """excluded_reason gives the rule and its explanation, at the top, deep, in any case."""
    reason = f"always excluded: {why} ({glob})"
    name = example_for(glob)
    assert excluded_reason(name) == reason
    assert excluded_reason(f"a/b c/{name}") == reason
    assert excluded_reason(f"a/{name.upper()}") == reason


LOOKALIKES = (
    ".env.example",
    ".env.sample",
    ".env.template",
    "config/.env.example",
    "id_rsa.pub",
    "id_ed25519.pub",
    "deploy/id_ecdsa.pub",
    "keys.py",
    "monkey.txt",
    "key.txt",
    ".environment",
    "environment.py",
    "pem.md",
    "credentials.py",
    "docs/ssh/setup.md",
    "my.ssh/notes.txt",
    "gitignore.txt",
    ".github/workflows/ci.yml",
    ".gitignore",
    ".gitmodules",
)


def test_lookalikes_are_allowed(tmp_path: Path) -> None:
    """Safe names that resemble excluded ones (templates, public keys) are sent."""
    repo = new_repo(tmp_path / "repo")
    for name in LOOKALIKES:
        write(repo, name)
    commit_all(repo)
    selection = select_files(repo)
    assert selection.excluded == ()
    assert paths_of(selection) == sorted(LOOKALIKES, key=os.fsencode)
    assert all(excluded_reason(name) is None for name in LOOKALIKES)


def test_public_key_inside_ssh_directory_is_still_excluded() -> None:
    """The *.pub allowance does not reopen a directory that is excluded as a whole."""
    assert excluded_reason(".ssh/id_rsa.pub") == "always excluded: SSH directory (.ssh/**)"


# --- plan excludes -------------------------------------------------------------------


def test_plan_excludes_use_gitignore_semantics(tmp_path: Path) -> None:
    """Plan globs exclude by name at any depth, anchored with '/', directories with '/'."""
    repo = new_repo(tmp_path / "repo")
    for name in ("secrets/a.txt", "secrets/b/c.txt", "x/secrets/kept.txt", "top.txt", "a/top.txt"):
        write(repo, name)
    for name in ("data.csv", "deep/data.csv", "cache/x", "a/cache/y", "keep.md"):
        write(repo, name)
    commit_all(repo)
    excludes = ("secrets/**", "/top.txt", "*.csv", "cache/")
    selection = select_files(repo, SelectOptions(extra_excludes=excludes))
    assert paths_of(selection) == ["a/top.txt", "keep.md", "x/secrets/kept.txt"]
    assert reasons_of(selection) == {
        "secrets/a.txt": "plan exclude: secrets/**",
        "secrets/b/c.txt": "plan exclude: secrets/**",
        "top.txt": "plan exclude: /top.txt",
        "data.csv": "plan exclude: *.csv",
        "deep/data.csv": "plan exclude: *.csv",
        "cache/x": "plan exclude: cache/",
        "a/cache/y": "plan exclude: cache/",
    }


def test_always_excluded_wins_over_plan_exclude() -> None:
    """A file matching both is reported with the always-excluded rule."""
    assert excluded_reason("a/.env", ["*"]) == "always excluded: environment file (.env)"


def test_plan_exclude_matches_directory_by_name() -> None:
    """A plain name excludes a directory of that name and all below, at any depth."""
    assert (
        excluded_reason("a/node_modules/x/y.js", ["node_modules"]) == "plan exclude: node_modules"
    )
    assert excluded_reason("a/node_modules_x/y.js", ["node_modules"]) is None


@pytest.mark.parametrize("pattern", ["!keep.txt", "", "/"])
def test_bad_plan_patterns_are_refused(tmp_path: Path, pattern: str) -> None:
    """Negations and empty patterns raise ConfigError before anything is listed."""
    repo = new_repo(tmp_path / "repo")
    with pytest.raises(ConfigError):
        select_files(repo, SelectOptions(extra_excludes=(pattern,)))


# --- size caps -----------------------------------------------------------------------


def test_file_over_the_per_file_cap_is_excluded(tmp_path: Path) -> None:
    """A file bigger than max_file_bytes is reported with both sizes; others still go."""
    repo = new_repo(tmp_path / "repo")
    write(repo, "big.bin", b"\0" * 3000)
    write(repo, "small.bin", b"\0" * 1000)
    commit_all(repo)
    selection = select_files(repo, SelectOptions(max_file_bytes=1000))
    assert paths_of(selection) == ["small.bin"]
    assert selection.excluded == (Excluded("big.bin", "over the per-file cap: 2.9 KB > 1000 B"),)
    assert selection.total_bytes == 1000


def test_total_over_the_cap_names_the_largest_files(tmp_path: Path) -> None:
    """Over the total cap, the error lists the ten largest files and the setting to raise."""
    repo = new_repo(tmp_path / "repo")
    for index in range(12):
        write(repo, f"f{index:02}.bin", b"\0" * (1024 * (index + 1)))
    commit_all(repo)
    with pytest.raises(UserError) as caught:
        select_files(repo, SelectOptions(max_total_bytes=50 * 1024))
    text = str(caught.value)
    assert "78.0 KB, over the 50.0 KB cap" in text
    for index in range(2, 12):
        assert f"{index + 1}.0 KB  f{index:02}.bin" in text
    assert "f00.bin" not in text
    assert "f01.bin" not in text
    assert TOTAL_CAP_SETTING in text
    assert "exclude" in text


def test_total_at_the_cap_is_accepted(tmp_path: Path) -> None:
    """A selection exactly at the cap is fine."""
    repo = new_repo(tmp_path / "repo")
    write(repo, "a.bin", b"\0" * 100)
    commit_all(repo)
    assert select_files(repo, SelectOptions(max_total_bytes=100)).total_bytes == 100


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KB"),
        (120 * 2**20, "120.0 MB"),
        (2 * 2**30, "2.0 GB"),
    ],
)
def test_human_size(size: int, text: str) -> None:
    """Sizes read in 1024-based units."""
    assert human_size(size) == text


# --- errors, order, speed ------------------------------------------------------------


def test_not_a_repository_is_refused(tmp_path: Path) -> None:
    """A plain directory raises UserError that suggests a checkout or git init."""
    write(tmp_path, "plain/file.txt")
    with pytest.raises(UserError) as caught:
        select_files(tmp_path / "plain")
    assert "not a git work tree" in str(caught.value)
    assert "git init" in str(caught.value)


def test_missing_directory_is_refused(tmp_path: Path) -> None:
    """A path that does not exist raises UserError."""
    with pytest.raises(UserError, match="not a directory"):
        select_files(tmp_path / "nope")


def test_files_are_in_git_byte_order(tmp_path: Path) -> None:
    """Paths come sorted by their bytes, as git sorts them, whatever the listing order."""
    repo = new_repo(tmp_path / "repo")
    names = ["b.txt", "B.txt", "a/z.txt", "a.txt", "a-b.txt", "é.txt", "z.txt", "_.txt", "Z/a.txt"]
    for name in names:
        write(repo, name)
    git(repo, "add", "b.txt", "a.txt")
    selection = select_files(repo, SelectOptions(include_untracked=True))
    assert paths_of(selection) == sorted(names, key=os.fsencode)
    git(repo, "add", "-A")  # the index is kept in git's own order
    assert paths_of(selection) == git_list(repo, "--cached")


def test_selection_of_25k_files_is_fast(tmp_path: Path) -> None:
    """25k tracked files select in well under the generous bound (figure printed)."""
    repo = new_repo(tmp_path / "repo")
    for d in range(250):
        folder = repo / f"dir{d:03}"
        folder.mkdir()
        for f in range(100):
            (folder / f"file{f:03}.txt").write_bytes(b"x")
    commit_all(repo)
    started = time.perf_counter()
    selection = select_files(repo, SelectOptions(include_untracked=True))
    elapsed = time.perf_counter() - started
    print(f"selected {len(selection.files)} files in {elapsed:.3f} s")
    assert len(selection.files) == 25_000
    assert elapsed < 10


def test_names_that_are_not_utf8_round_trip(tmp_path: Path) -> None:
    """A name with invalid UTF-8 bytes is selected and maps back to the same file."""
    repo = new_repo(tmp_path / "repo")
    (repo / os.fsdecode(b"caf\xe9.txt")).write_bytes(b"latin-1 name")
    write(repo, "plain.txt")
    commit_all(repo)
    selection = select_files(repo)
    assert [os.fsencode(p) for p in paths_of(selection)] == [b"caf\xe9.txt", b"plain.txt"]
    assert selection.files[0].size == len(b"latin-1 name")


# --- one pass for many paths, one stat per file: the same results as before ----------

PLAN_SETS = (
    (),
    ("secrets/**", "/top.txt", "*.csv", "cache/", "node_modules", "docs/**/gen", "a?c.txt"),
    ("[bc]uild/", "data\\*.txt", "/src/*.min.js", "**/fixtures/**", "x/"),
    ("*",),
    ("?", "[ab]*/"),
)
PLAN_NAMES = (
    "secrets/a.txt",
    "top.txt",
    "data.csv",
    "cache/x",
    "node_modules/y.js",
    "docs/a/gen/x",
    "abc.txt",
    "build/o",
    "cuild/o",
    "data*.txt",
    "dataX.txt",
    "src/app.min.js",
    "t/fixtures/f",
    "x/y",
)


def _path_corpus(rng: random.Random) -> list[str]:
    """Every rule's names and plan names, at depths and in cases; look-alikes, odd names."""
    names = [example_for(glob) for glob, _ in ALWAYS_EXCLUDED]
    names += [*LOOKALIKES, *ODD_NAMES, *PLAN_NAMES, "ordinary.py", "src/app/main.ts"]
    cases = (str, str.upper, str.title, str.swapcase)
    paths = [p + c(n) for n in names for p in ("", "a/", "deep/er/", ".ssh/") for c in cases]
    # re's IGNORECASE folds the long s to s and the Kelvin sign to k, not only ASCII.
    paths += [".\u017fsh/config", "\u212aubeconfig", "id_r\u017fa", "x/.ENV", "\u0130d_rsa"]
    words = ("src", "env", "key", "pem", ".git", "id", "rsa", "json", "lib", "ssh", "tf")
    paths += ["/".join(rng.choices(words, k=rng.randint(1, 4))) + ".txt" for _ in range(500)]
    return paths


@pytest.mark.parametrize("extra", PLAN_SETS, ids=lambda e: ",".join(e) or "none")
def test_excluded_reasons_equal_excluded_reason_path_by_path(extra: tuple[str, ...]) -> None:
    """The one-pass answers for many paths are excluded_reason's, path by path."""
    paths = _path_corpus(random.Random(31))
    expected = [excluded_reason(p, extra) for p in paths]
    assert sum(reason is not None for reason in expected) > 300
    assert sum(reason is None for reason in expected) > 100 or "*" in extra
    assert excluded_reasons(paths, extra) == expected


def test_excluded_reasons_refuse_bad_patterns() -> None:
    """A negated pattern is a ConfigError for many paths as for one."""
    with pytest.raises(ConfigError):
        excluded_reasons(["a.txt"], ["!a.txt"])


def _reference_selection(
    root: Path, options: SelectOptions
) -> tuple[tuple[SelectedFile, ...], tuple[Excluded, ...], int]:
    """Files, exclusions and missing files as select_files found them before (7e18cd2).

    Paths as str sorted by their bytes; per path: excluded_reason, then an lstat,
    then the kind, the parents and the size.
    """
    gitlinks = {p.split("\t", 1)[1] for p in git_list(root, "--stage") if p.startswith("160000 ")}
    paths = {p.split("\t", 1)[1] for p in git_list(root, "--stage")} - gitlinks
    if options.include_untracked:
        paths |= {p for p in git_list(root, "--others", "--exclude-standard") if p[-1] != "/"}
    files, excluded, missing = [], [], 0
    for path in sorted(paths, key=os.fsencode):
        reason = excluded_reason(path, options.extra_excludes)
        try:
            st = None if reason else os.lstat(root / path)
        except (FileNotFoundError, NotADirectoryError):
            missing += 1
            continue
        reason = reason or _reference_reason(root, path, st, options.max_file_bytes)
        if reason:
            excluded.append(Excluded(path, reason))
        else:
            assert st is not None
            files.append(SelectedFile(path, st.st_size, stat.S_ISLNK(st.st_mode), st.st_mode))
    return tuple(files), tuple(excluded), missing


def _reference_reason(root: Path, path: str, st: os.stat_result | None, cap: int) -> str | None:
    assert st is not None
    parents = [path.rsplit("/", n)[0] for n in range(1, path.count("/") + 1)]
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        return "not a regular file or symlink"
    if not all(stat.S_ISDIR(os.lstat(root / p).st_mode) for p in parents):
        return "beyond a symbolic link"
    if st.st_size > cap:
        return f"over the per-file cap: {human_size(st.st_size)} > {human_size(cap)}"
    return None


@pytest.fixture
def planted_repo(tmp_path: Path) -> Path:
    """A repository of many kinds of files with secrets planted, and every odd case."""
    repo = new_repo(tmp_path / "repo")
    rng = random.Random(37)
    write_tree(repo, rng, files=300)
    token = POSITIVES["github-token"][0](rng).value
    for name in (".env", "deploy/id_rsa", "certs/site.pem", "gen/secrets/x.txt", *ODD_NAMES):
        write(repo, name, f"a\nTOKEN={token}\n")
    write(repo, "big.txt", "".join(f"line {i}\n" for i in range(30_000)) + f"t={token}\n")
    write(repo, "huge.txt", "x" * 600_000 + f"\nt={token}\n")
    (repo / os.fsdecode(b"caf\xe9.env.example")).write_text(f"k={RUN_SECRET}\n")
    write(repo, "real/inner.txt", f"t={token}\n")
    write(repo, "was_file.txt", "soon a fifo")
    (repo / "link-in").symlink_to("big.txt")
    (repo / "link-out").symlink_to(tmp_path / "outside.txt")
    commit_all(repo)
    (repo / "was_file.txt").unlink()
    os.mkfifo(repo / "was_file.txt")
    (repo / "real").rename(repo / "moved")
    (repo / "real").symlink_to("moved")
    (repo / "d0/sub0").rename(tmp_path / "gone")
    write(repo, "untracked/new.yaml", f"token: {token}\n")
    return repo


@pytest.mark.parametrize("policy", ["exclude", "fail", "warn"])
def test_select_and_screen_equal_the_reference_on_a_planted_repository(
    planted_repo: Path, policy: SecretsPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Selection and Screening, every field, are what the code before the rewrite made."""
    monkeypatch.setattr(secrets, "_WINDOW", 64 * 1024)  # big.txt is read in windows
    options = SelectOptions(
        include_untracked=True, extra_excludes=("gen/secrets/",), max_file_bytes=500_000
    )
    selection = select_files(planted_repo, options)
    files, excluded, missing = _reference_selection(planted_repo.resolve(), options)
    assert (selection.files, selection.excluded) == (files, excluded)
    assert f"{missing} tracked file(s) deleted in the work tree are not sent" in selection.notes
    assert missing > 10
    assert {"was_file.txt", "real/inner.txt", ".env", "huge.txt"} <= {e.path for e in excluded}
    scanner = SecretScanner([RUN_SECRET])
    screening = screen(selection, scanner, policy)

    def reference_tree(scanner: SecretScanner, root: Path, rels: list[str]) -> list[SecretHit]:
        return reference_scan_tree(scanner, root, list(rels), max_bytes=64 * 1024)

    monkeypatch.setattr(screen_module, "scan_tree", reference_tree)
    expected = screen(selection, scanner, policy)
    assert len(expected.hits) > 100
    assert screening == expected
