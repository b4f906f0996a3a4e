"""Which paths git ignores on the runner: a pull request never shows them.

:func:`git_ignored` asks the runner's own git (``check-ignore``), so nested
``.gitignore`` files, negations, ``.git/info/exclude`` and ``core.excludesFile``
count exactly as they do for the commit. It answers for the checkout as it is
before the apply: a changeset that deletes a ``.gitignore`` does not unlock the
paths that file ignores.

Git refuses to judge a path below a symlink. The apply refuses writes through a
symlink that stays, so such a path reaches git only when the same changeset
replaces the symlink with a directory; git is then asked again in a scratch work
tree that holds only the runner's ignore files above the symlink.

Raises:
    SyncError: git hangs.

"""

from __future__ import annotations

import functools
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from claude_e2b.sync.apply_paths import ancestors
from claude_e2b.sync.git import git_output, run_git

# Given repository-relative paths, returns those git ignores, each with the reason.
IgnoreCheck = Callable[[Sequence[str]], Mapping[str, str]]

IGNORED_REASON = "git ignores this path on the runner, so the pull request would not show it"
_GIT_NO_MATCH = 1  # `git check-ignore` exits 1 when no path is ignored
_IGNORE_FILE = ".gitignore"


def git_ignored(repo_dir: Path) -> IgnoreCheck:
    """Return an :data:`IgnoreCheck` that asks git in ``repo_dir`` (one call per batch).

    Tracked files are never reported (git applies ignore rules to untracked files
    only), so a change to a tracked file that matches a pattern is not refused.
    """
    return functools.partial(_check_ignore, repo_dir)


def _check_ignore(repo_dir: Path, paths: Sequence[str]) -> dict[str, str]:
    if not paths:
        return {}
    code, listed, _ = _ask_git(repo_dir, paths)
    if code in (0, _GIT_NO_MATCH):
        return _ignored(paths, listed)
    # One path git will not judge fails the whole batch: sort them out one by one.
    found: dict[str, str] = {}
    refused: list[str] = []
    for path in paths:
        code, _, _ = _ask_git(repo_dir, [path])
        if code == 0:
            found[path] = IGNORED_REASON
        elif code != _GIT_NO_MATCH:
            refused.append(path)
    return found | _check_in_scratch(repo_dir, refused)


def _ignored(paths: Sequence[str], listed: Sequence[str]) -> dict[str, str]:
    asked = set(paths)
    return {path: IGNORED_REASON for path in listed if path in asked}


def _ask_git(repo_dir: Path, paths: Sequence[str], *options: str) -> tuple[int, list[str], str]:
    """Run ``git check-ignore`` on ``paths``: its exit code, the paths it printed, its last word."""
    stdin = b"".join(os.fsencode(path) + b"\0" for path in paths)
    done = run_git(repo_dir, *options, "check-ignore", "-z", "--stdin", stdin=stdin)
    listed = [os.fsdecode(raw) for raw in done.stdout.split(b"\0") if raw]
    said = os.fsdecode(done.stderr).strip().splitlines()
    return done.returncode, listed, said[-1] if said else f"exit {done.returncode}"


def _check_in_scratch(repo_dir: Path, paths: Sequence[str]) -> dict[str, str]:
    """Ask git about ``paths`` in a work tree holding only the runner's ignore files."""
    if not paths:
        return {}
    top = Path(_rev_parse(repo_dir, "--show-toplevel"))
    git_dir = _rev_parse(repo_dir, "--absolute-git-dir")
    prefix = _rev_parse(repo_dir, "--show-prefix")  # repo_dir below the top, with "/"
    full = [prefix + path for path in paths]
    with tempfile.TemporaryDirectory(prefix="claude-e2b-ignore-") as scratch:
        for path in full:
            _copy_ignore_files(top, Path(scratch), path)
        options = (f"--git-dir={git_dir}", f"--work-tree={scratch}")
        code, listed, said = _ask_git(Path(scratch), full, *options)
    if code not in (0, _GIT_NO_MATCH):
        why = f"git on the runner cannot say whether it ignores this path ({said})"
        return dict.fromkeys(paths, why)
    hits = set(listed)
    return {path: IGNORED_REASON for path in paths if prefix + path in hits}


def _rev_parse(repo_dir: Path, option: str) -> str:
    return os.fsdecode(git_output(repo_dir, "rev-parse", option).rstrip(b"\n"))


def _copy_ignore_files(top: Path, scratch: Path, path: str) -> None:
    """Copy the .gitignore of every real directory above ``path``, up to the first symlink."""
    for directory in ["", *ancestors(path)]:
        source = top / directory
        try:
            if not stat.S_ISDIR(os.lstat(source).st_mode):
                return  # a symlink or a file: what lies beyond it is not the runner's
        except OSError:
            return  # not there: no ignore file below
        ignore = source / _IGNORE_FILE
        if ignore.is_file() and not ignore.is_symlink():
            (scratch / directory).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ignore, scratch / directory / _IGNORE_FILE)
