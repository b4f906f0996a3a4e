"""Bare repositories the stand-in serves: every object the API writes is a real git object.

The Git Data API (blobs, trees, commits, refs) goes through plumbing commands on the bare
repository, so what a later `git fetch` over smart HTTP sees is exactly what the API returned.
Git here never reads the user's or the system's configuration.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

GIT_TIMEOUT_S = 60
ZERO_SHA = "0" * 40
_ISOLATION = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
    "LC_ALL": "C",
}
_DROPPED = ("GIT_DIR", "GIT_INDEX_FILE", "GIT_WORK_TREE", "GIT_OBJECT_DIRECTORY", "GIT_NAMESPACE")


class GitError(RuntimeError):
    """A git command failed; the message carries its stderr."""


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for every git the stand-in runs: isolated from any configuration."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED and not k.startswith("GIT_")}
    env.update(_ISOLATION)
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class Identity:
    """A git author or committer line: name, email and a timezone-aware time."""

    name: str
    email: str
    when: datetime

    def line(self) -> str:
        offset = self.when.utcoffset() or timedelta(0)
        minutes = int(offset.total_seconds() // 60)
        sign = "-" if minutes < 0 else "+"
        tz = f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
        return f"{self.name} <{self.email}> {int(self.when.timestamp())} {tz}"

    @classmethod
    def parse(cls, line: str) -> Identity:
        """Read `Name <email> 1700000000 +0100` as git writes it."""
        name_email, _, stamp = line.rpartition("> ")
        name, _, email = name_email.partition(" <")
        seconds, _, tz = stamp.partition(" ")
        sign = -1 if tz.startswith("-") else 1
        offset = timedelta(hours=int(tz[1:3] or 0), minutes=int(tz[3:5] or 0)) * sign
        when = datetime.fromtimestamp(int(seconds), timezone(offset))
        return cls(name, email, when)


@dataclass(frozen=True)
class TreeEntry:
    """One line of `git ls-tree -l`."""

    mode: str
    type: str
    sha: str
    size: int | None
    path: str


@dataclass(frozen=True)
class CommitObject:
    """A parsed commit object."""

    sha: str
    tree: str
    parents: tuple[str, ...]
    author: Identity
    committer: Identity
    message: str
    signed: bool


# What github.com prints for a push to a protected branch (git adds "pre-receive hook declined").
_PROTECT_HOOK = """#!/bin/sh
status=0
while read -r old new ref; do
  if grep -qxF "$ref" "$GIT_DIR/protected-branches"; then
    echo "error: GH006: Protected branch update failed for $ref." >&2
    echo "error: Changes must be made through a pull request." >&2
    status=1
  fi
done
exit $status
"""


class BareRepo:
    """One bare repository on disk, driven with git plumbing."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def run(
        self, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
    ) -> bytes:
        """Run git on this repository; its stdout. Raises GitError on failure."""
        try:
            done = subprocess.run(
                ["git", f"--git-dir={self.path}", *args],
                input=stdin,
                capture_output=True,
                env=git_env(env),
                timeout=GIT_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise GitError(f"git {args[0]} timed out after {GIT_TIMEOUT_S}s") from exc
        if done.returncode != 0:
            err = done.stderr.decode(errors="replace").strip()
            raise GitError(f"git {' '.join(args)}: {err}")
        return done.stdout

    def text(self, *args: str, stdin: bytes | None = None) -> str:
        return self.run(*args, stdin=stdin).decode().strip()

    # -- setup

    def init(self, default_branch: str) -> None:
        """Create the bare repository, ready for pushes over smart HTTP."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "init", "-q", "--bare", f"--initial-branch={default_branch}", str(self.path)],
            check=True,
            capture_output=True,
            env=git_env(),
            timeout=GIT_TIMEOUT_S,
        )
        for key, value in (
            ("http.receivepack", "true"),
            ("uploadpack.allowReachableSHA1InWant", "true"),
            ("uploadpack.allowFilter", "true"),
            ("receive.advertisePushOptions", "true"),
        ):
            self.run("config", key, value)

    def protect(self, branch: str) -> None:
        """Refuse pushes to ``branch`` as GitHub's branch protection does (a pre-receive hook
        printing GH006), whoever pushes. The Git Data API is not affected."""
        listed = self.path / "protected-branches"
        names = set(listed.read_text().split()) if listed.exists() else set()
        listed.write_text("".join(f"refs/heads/{n}\n" for n in sorted({*names, branch})))
        hook = self.path / "hooks" / "pre-receive"
        hook.parent.mkdir(exist_ok=True)
        hook.write_text(_PROTECT_HOOK)
        hook.chmod(0o755)

    def import_from(self, source: Path) -> None:
        """Copy every branch and tag of the repository at ``source`` (a local path push)."""
        subprocess.run(
            [
                "git",
                "-C",
                str(source),
                "push",
                "-q",
                str(self.path),
                "refs/heads/*:refs/heads/*",
                "refs/tags/*:refs/tags/*",
            ],
            check=True,
            capture_output=True,
            env=git_env(),
            timeout=GIT_TIMEOUT_S,
        )

    def set_head(self, branch: str) -> None:
        self.run("symbolic-ref", "HEAD", f"refs/heads/{branch}")

    # -- objects

    def object_type(self, sha: str) -> str | None:
        """`blob`, `tree`, `commit`, `tag`, or None when the object is not here."""
        if len(sha) != 40 or any(c not in "0123456789abcdef" for c in sha):
            return None
        out = self.run("cat-file", "--batch-check", stdin=f"{sha}\n".encode()).decode()
        parts = out.split()
        return None if len(parts) < 2 or parts[1] == "missing" else parts[1]

    def object_size(self, sha: str) -> int:
        return int(self.text("cat-file", "-s", sha))

    def read_blob(self, sha: str) -> bytes:
        return self.run("cat-file", "blob", sha)

    def write_blob(self, data: bytes) -> str:
        return self.text("hash-object", "-w", "-t", "blob", "--stdin", stdin=data)

    def build_tree(self, base_tree: str | None, changes: list[tuple[str, str, str | None]]) -> str:
        """Apply (path, mode, sha or None to delete) to ``base_tree``; the new tree's sha.

        Uses a throw-away index, so nested paths create or prune subtrees as git does; a
        file replaces a directory of the same name and the other way round. Entries of mode
        040000 put a whole tree at that path.
        """
        with tempfile.TemporaryDirectory(prefix="gh-index-") as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            self.run(
                *(["read-tree", base_tree] if base_tree else ["read-tree", "--empty"]), env=env
            )
            present = {p.decode() for p in self.run("ls-files", "-z", env=env).split(b"\0") if p}
            lines: list[str] = []
            for path, mode, sha in changes:
                lines += self._change_lines(present, path.strip("/"), mode, sha)
            if lines:
                self.run("update-index", "--index-info", stdin="".join(lines).encode(), env=env)
            return self.run("write-tree", env=env).decode().strip()

    def _change_lines(self, present: set[str], path: str, mode: str, sha: str | None) -> list[str]:
        """Index-info lines for one change; keeps ``present`` (the index's paths) current."""
        parents = {path.rsplit("/", i)[0] for i in range(1, path.count("/") + 1)}
        doomed = {p for p in present if p == path or p.startswith(f"{path}/") or p in parents}
        present -= doomed
        lines = [f"0 {ZERO_SHA}\t{p}\n" for p in sorted(doomed)]
        if sha is None:
            return lines
        if mode in {"040000", "40000"}:
            added = [(e.mode, e.sha, f"{path}/{e.path}") for e in self.ls_tree(sha, recursive=True)]
        else:
            added = [(mode, sha, path)]
        present.update(p for _, _, p in added)
        return lines + [f"{m} {s}\t{p}\n" for m, s, p in added]

    def ls_tree(
        self, tree: str, *, recursive: bool = False, trees: bool = False
    ) -> list[TreeEntry]:
        """Entries of ``tree`` (blobs only when recursive unless ``trees``)."""
        args = ["ls-tree", "-z", "-l"]
        if recursive:
            args += ["-r", "-t"] if trees else ["-r"]
        entries = []
        for record in self.run(*args, tree).split(b"\0"):
            if not record:
                continue
            meta, _, path = record.decode().partition("\t")
            mode, kind, sha, size = meta.split()
            entries.append(TreeEntry(mode, kind, sha, None if size == "-" else int(size), path))
        return entries

    def write_commit(
        self,
        tree: str,
        parents: list[str],
        *,
        author: Identity,
        committer: Identity,
        message: str,
        signature: str | None = None,
    ) -> str:
        """Write a commit object byte for byte (the message is kept exactly as given)."""
        header = [f"tree {tree}", *(f"parent {p}" for p in parents)]
        header += [f"author {author.line()}", f"committer {committer.line()}"]
        if signature:
            header.append("gpgsig " + signature.rstrip("\n").replace("\n", "\n "))
        raw = "\n".join(header) + "\n\n" + message
        return self.text("hash-object", "-w", "-t", "commit", "--stdin", stdin=raw.encode())

    def read_commit(self, sha: str) -> CommitObject:
        raw = self.run("cat-file", "commit", sha).decode(errors="replace")
        head, _, message = raw.partition("\n\n")
        fields: dict[str, list[str]] = {}
        for line in head.splitlines():
            if line.startswith(" "):
                continue  # continuation of a multi-line header (gpgsig)
            key, _, value = line.partition(" ")
            fields.setdefault(key, []).append(value)
        return CommitObject(
            sha=sha,
            tree=fields["tree"][0],
            parents=tuple(fields.get("parent", [])),
            author=Identity.parse(fields["author"][0]),
            committer=Identity.parse(fields["committer"][0]),
            message=message,
            signed="gpgsig" in fields,
        )

    # -- refs

    def refs(self, prefix: str = "refs/") -> dict[str, str]:
        """Every ref under ``prefix`` and the object it points at."""
        out = self.text("for-each-ref", "--format=%(refname) %(objectname)", prefix)
        return dict(line.split(" ", 1) for line in out.splitlines() if line)

    def branches(self) -> dict[str, str]:
        return {
            name.removeprefix("refs/heads/"): sha for name, sha in self.refs("refs/heads/").items()
        }

    def resolve(self, rev: str) -> str | None:
        """The commit ``rev`` (a sha, branch or tag) names, or None."""
        return self._peel(rev, "commit")

    def resolve_tree(self, rev: str) -> str | None:
        """The tree ``rev`` (a tree, commit, branch or tag) names, or None."""
        return self._peel(rev, "tree")

    def _peel(self, rev: str, kind: str) -> str | None:
        if not rev or rev.startswith("-"):
            return None
        try:
            return self.text("rev-parse", "--verify", "--quiet", f"{rev}^{{{kind}}}")
        except GitError:
            return None

    def update_ref(self, ref: str, sha: str, old: str | None = None) -> None:
        self.run("update-ref", ref, sha, *([old] if old is not None else []))

    def delete_ref(self, ref: str) -> None:
        self.run("update-ref", "-d", ref)

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        try:
            self.run("merge-base", "--is-ancestor", ancestor, descendant)
        except GitError:
            return False
        return True

    def commits_between(self, base: str, head: str) -> int:
        return int(self.text("rev-list", "--count", f"{base}..{head}"))

    def valid_ref_name(self, ref: str) -> bool:
        try:
            self.run("check-ref-format", ref)
        except GitError:
            return False
        return True


def parse_git_date(value: str | None) -> datetime:
    """An ISO 8601 date as the API accepts it (default: now, in UTC)."""
    if not value:
        return datetime.now(UTC).replace(microsecond=0)
    when = datetime.fromisoformat(value)
    return when if when.tzinfo else when.replace(tzinfo=UTC)
