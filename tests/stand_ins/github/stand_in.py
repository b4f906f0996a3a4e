"""GitHubStandIn: start, seed, break and inspect the local GitHub (see github_server.py)."""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from tests.stand_ins.github.bare import GIT_TIMEOUT_S, BareRepo, git_env
from tests.stand_ins.github.faults import Fault, FaultBook, compile_pattern
from tests.stand_ins.github.routes_pulls import new_issue
from tests.stand_ins.github.server import (
    Incoming,
    Outgoing,
    RecordedRequest,
    Router,
    log_line,
    make_server,
)
from tests.stand_ins.github.state import (
    BOT_LOGIN,
    ROLES,
    Comment,
    Hub,
    Issue,
    Reaction,
    Repo,
    Token,
)

UserType = Literal["User", "Bot", "Organization"]


class GitHubStandIn:
    """A GitHub (Enterprise Server layout) on 127.0.0.1: REST, GraphQL and git smart HTTP.

    ``with GitHubStandIn(tmp_path) as gh:`` gives ``gh.api_url`` (for GITHUB_API_URL and
    PyGithub's base_url), ``gh.server_url`` (GITHUB_SERVER_URL) and ``gh.token``: an app token
    for ``github-actions[bot]``, as a workflow's GITHUB_TOKEN.
    """

    def __init__(
        self,
        root: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        log: bool = False,
    ) -> None:
        self.hub = Hub(Path(root) / "github-stand-in")
        self.hub.repos_dir.mkdir(parents=True, exist_ok=True)
        self.faults = FaultBook()
        self.router = Router(self)
        self._host, self._port, self._log = host, port, log
        self._requests: list[RecordedRequest] = []
        self._record_lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.connections: set[socket.socket] = set()  # open client connections, cut at stop()
        self.hub.ensure_user(BOT_LOGIN, "Bot")
        self.token = self.add_token(token or f"ghs_{secrets.token_hex(18)}", BOT_LOGIN, kind="app")

    # -- lifecycle

    def start(self) -> Self:
        """Bind a free port and serve in a daemon thread; returns self."""
        self._server = make_server(self, self._host, self._port)
        self.hub.server_url = f"http://{self._host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for connection in list(self.connections):  # idle keep-alive clients hold threads
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def server_url(self) -> str:
        if not self.hub.server_url:
            raise RuntimeError("call start() (or use `with`) first")
        return self.hub.server_url

    @property
    def api_url(self) -> str:
        return f"{self.server_url}/api/v3"

    @property
    def graphql_url(self) -> str:
        return f"{self.server_url}/api/graphql"

    def clone_url(self, full_name: str) -> str:
        return f"{self.server_url}/{full_name}.git"

    def extraheader(self, token: str | None = None) -> str:
        """The `http.extraheader` value that authenticates git as actions/checkout does."""
        raw = f"x-access-token:{token or self.token}".encode()
        return f"AUTHORIZATION: basic {base64.b64encode(raw).decode()}"

    # -- seeding

    def add_user(
        self,
        login: str,
        *,
        permission: str | None = None,
        type: UserType = "User",  # noqa: A002  (GitHub's own field name)
        name: str | None = None,
        email: str | None = None,
    ) -> None:
        """A user; ``permission`` (a role: read, triage, write, maintain, admin, none) applies
        to every repository that has no grant of its own for them."""
        if permission is not None and permission not in ROLES:
            raise ValueError(f"permission must be one of {ROLES}, not {permission!r}")
        with self.hub.lock:
            user = self.hub.ensure_user(login, type)
            user.type, user.default_role = type, permission
            user.name, user.email = name, email

    def set_permission(self, full_name: str, login: str, permission: str) -> None:
        """Grant ``login`` a role on one repository (creating the user if needed)."""
        if permission not in ROLES:
            raise ValueError(f"permission must be one of {ROLES}, not {permission!r}")
        with self.hub.lock:
            self.hub.ensure_user(login)
            self._repo(full_name).roles[login] = permission

    def add_token(
        self,
        token: str,
        login: str,
        *,
        kind: Literal["app", "user"] = "user",
        permissions: dict[str, str] | None = None,
    ) -> str:
        """Map ``token`` to ``login``. App tokens carry ``permissions`` (GITHUB_TOKEN's
        `permissions:` block: contents, pull-requests, issues, metadata → none/read/write)."""
        with self.hub.lock:
            self.hub.ensure_user(login, "Bot" if login.endswith("[bot]") else "User")
            record = Token(token, login, kind)
            if permissions is not None:
                record.permissions = {"metadata": "read", **permissions}
            self.hub.tokens[token] = record
        return token

    def create_repo(
        self,
        full_name: str,
        *,
        source: Path | None = None,
        files: dict[str, bytes | str] | None = None,
        default_branch: str = "main",
        private: bool = False,
        owner_type: UserType = "User",
    ) -> str:
        """A repository: every branch and tag of the git repo at ``source`` (or one commit of
        the files of a plain directory ``source``, or of ``files``) on ``default_branch``, or
        empty. Returns its clone URL."""
        owner, _, name = full_name.partition("/")
        if not owner or not name or "/" in name:
            raise ValueError(f"expected owner/name, got {full_name!r}")
        with self.hub.lock:
            if full_name.lower() in self.hub.repos:
                raise ValueError(f"{full_name} exists already")
            self.hub.ensure_user(owner, owner_type)
            bare = BareRepo(self.hub.repos_dir / owner / f"{name}.git")
            bare.init(default_branch)
            if source is not None and _is_git_repo(Path(source)):
                bare.import_from(Path(source))
            elif source is not None:
                _commit_files(bare, default_branch, _copy_directory(Path(source)))
            elif files:
                _commit_files(bare, default_branch, _write_files(files))
            repo = Repo(owner, name, self.hub.new_id(), bare, default_branch, private)
            self.hub.repos[full_name.lower()] = repo
        return self.clone_url(full_name)

    def configure_repo(
        self,
        full_name: str,
        *,
        actions_can_open_prs: bool | None = None,
        drafts_supported: bool | None = None,
        private: bool | None = None,
        default_branch: str | None = None,
    ) -> None:
        """Change repository settings that decide what the API allows."""
        with self.hub.lock:
            repo = self._repo(full_name)
            if actions_can_open_prs is not None:
                repo.actions_can_open_prs = actions_can_open_prs
            if drafts_supported is not None:
                repo.drafts_supported = drafts_supported
            if private is not None:
                repo.private = private
            if default_branch is not None:
                repo.default_branch = default_branch
                repo.bare.set_head(default_branch)

    def protect_branch(self, full_name: str, branch: str) -> None:
        """Branch protection: git pushes to ``branch`` are refused with GitHub's GH006."""
        with self.hub.lock:
            self._repo(full_name).bare.protect(branch)

    def add_issue(self, full_name: str, title: str, body: str = "", *, user: str) -> int:
        """An open issue by ``user``; returns its number."""
        with self.hub.lock:
            self.hub.ensure_user(user)
            return new_issue(self.hub, self._repo(full_name), title, body, user).number

    def add_comment(self, full_name: str, number: int, body: str, *, user: str) -> int:
        """A comment by ``user`` on issue or PR ``number``; returns the comment id."""
        with self.hub.lock:
            self.hub.ensure_user(user)
            repo = self._repo(full_name)
            self.hub.issue(repo, number)
            comment = Comment(self.hub.new_id(), number, body, user)
            repo.comments[comment.id] = comment
            return comment.id

    # -- faults

    def add_fault(self, fault: Fault) -> Fault:
        """Queue a fault (see faults.py); returns it, so a test can check `fault.fired`."""
        return self.faults.add(fault)

    def clear_faults(self) -> None:
        self.faults.clear()

    # -- inspection

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._record_lock:
            return list(self._requests)

    def requests_to(self, method: str, pattern: str) -> list[RecordedRequest]:
        """Recorded requests whose method and route match (same patterns as faults)."""
        regex = compile_pattern(pattern)
        return [
            r
            for r in self.requests
            if method.upper() in {"*", r.method} and regex.fullmatch(r.route)
        ]

    def leaks(self, secret: str) -> list[RecordedRequest]:
        """Requests that carried ``secret`` in their path or body (headers are its place)."""
        return [r for r in self.requests if secret in r.body_text or secret in r.path]

    def pulls(self, full_name: str) -> list[Issue]:
        """Snapshots of every pull request, by number."""
        with self.hub.lock:
            repo = self._repo(full_name)
            tips = repo.bare.branches()
            found = [i for i in repo.issues.values() if i.pull is not None]
            for issue in found:
                self.hub.refresh_pull(repo, issue, tips)
            return copy.deepcopy(sorted(found, key=lambda i: i.number))

    def pull(self, full_name: str, number: int) -> Issue:
        with self.hub.lock:
            repo = self._repo(full_name)
            return copy.deepcopy(self.hub.pull(repo, number))

    def issue(self, full_name: str, number: int) -> Issue:
        with self.hub.lock:
            return copy.deepcopy(self.hub.issue(self._repo(full_name), number))

    def comments(self, full_name: str, number: int | None = None) -> list[Comment]:
        """Snapshots of the comments (on one issue or PR, or all), oldest first."""
        with self.hub.lock:
            found = self._repo(full_name).comments.values()
            chosen = [c for c in found if number is None or c.issue_number == number]
            return copy.deepcopy(sorted(chosen, key=lambda c: c.id))

    def reactions(
        self, full_name: str, *, comment_id: int | None = None, number: int | None = None
    ) -> list[Reaction]:
        """Reactions on one comment or one issue/PR."""
        with self.hub.lock:
            repo = self._repo(full_name)
            if comment_id is not None:
                return copy.deepcopy(self.hub.comment(repo, comment_id).reactions)
            if number is None:
                raise ValueError("give comment_id or number")
            return copy.deepcopy(self.hub.issue(repo, number).reactions)

    def labels(self, full_name: str, number: int) -> list[str]:
        return self.issue(full_name, number).labels

    def reviewers(self, full_name: str, number: int) -> list[str]:
        pull = self.pull(full_name, number).pull
        return [] if pull is None else pull.requested_reviewers

    def verification(self, full_name: str, sha: str) -> dict[str, object] | None:
        """What the API reports about a commit's signature (None: not made through the API)."""
        with self.hub.lock:
            return copy.deepcopy(self._repo(full_name).verification.get(sha))

    def git(self, full_name: str, *args: str) -> str:
        """Run git in the bare repository; its stdout, stripped."""
        with self.hub.lock:
            bare = self._repo(full_name).bare
        return bare.text(*args)

    def repo_path(self, full_name: str) -> Path:
        with self.hub.lock:
            return self._repo(full_name).bare.path

    # -- used by the handler

    def record(self, req: Incoming, out: Outgoing | None, fault: Fault | None) -> None:
        text = "" if req.kind == "git" else req.raw.decode("utf-8", errors="replace")
        body: Any = None
        if text.strip():
            try:
                body = json.loads(text)
            except ValueError:
                body = None
        record = RecordedRequest(
            method=req.method,
            path=req.path,
            route=req.route,
            kind=req.kind,
            headers=req.headers,
            body_text=text,
            body=body,
            status=None if out is None else out.status,
            login=None if req.token is None else req.token.login,
            fault=None if fault is None else fault.describe(),
            note=None if out is None else out.note,
            time=time.time(),
        )
        with self._record_lock:
            self._requests.append(record)
        status = "dropped" if out is None else out.status
        self.log(f"{req.method} {req.path} -> {status}" + (f" [{record.fault}]" if fault else ""))

    def log(self, message: str) -> None:
        if self._log:
            log_line(message)

    def _repo(self, full_name: str) -> Repo:
        repo = self.hub.repos.get(full_name.lower())
        if repo is None:
            raise KeyError(f"no repository {full_name!r} in the stand-in")
        return repo


def _is_git_repo(path: Path) -> bool:
    return (path / ".git").exists() or ((path / "HEAD").is_file() and (path / "objects").is_dir())


def _write_files(files: dict[str, bytes | str]) -> Callable[[Path], None]:
    def fill(work: Path) -> None:
        for rel, data in files.items():
            target = work / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data.encode() if isinstance(data, str) else data)

    return fill


def _copy_directory(source: Path) -> Callable[[Path], None]:
    def fill(work: Path) -> None:  # keeps executable bits and symlinks
        shutil.copytree(source, work, symlinks=True, dirs_exist_ok=True)

    return fill


def _commit_files(bare: BareRepo, branch: str, fill: Callable[[Path], None]) -> None:
    """One commit on ``branch`` of what ``fill`` writes (in a scratch repo, pushed locally)."""
    with tempfile.TemporaryDirectory(prefix="gh-seed-") as tmp:
        work = Path(tmp)
        fill(work)
        identity = ["-c", "user.name=stand-in", "-c", "user.email=stand-in@example.invalid"]
        for args in (
            ["init", "-q", "-b", branch],
            ["add", "-A", "-f"],
            [*identity, "commit", "-q", "-m", "Initial commit"],
            ["push", "-q", str(bare.path), f"{branch}:refs/heads/{branch}"],
        ):
            subprocess.run(
                ["git", "-C", str(work), *args],
                check=True,
                capture_output=True,
                env=git_env(),
                timeout=GIT_TIMEOUT_S,
            )
