"""What the GitHub stand-in knows: users, tokens, repositories, issues and pull requests.

Plain mutable records behind one lock (`Hub.lock`); the REST handlers and the test-facing
API both go through `Hub`. Permissions follow GitHub's two kinds of token:

- ``app`` tokens (a workflow's GITHUB_TOKEN, installation tokens) act as a bot and are
  limited by their permission set (``contents``, ``pull-requests``, ``issues``, ``metadata``:
  ``none``/``read``/``write``); denials are 403 "Resource not accessible by integration"
  with ``X-Accepted-GitHub-Permissions`` naming what would do (``contents=write``).
- ``user`` tokens act as the user, limited by the user's role on the repository
  (none < read < triage < write < maintain < admin).
"""

from __future__ import annotations

import base64
import itertools
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from tests.stand_ins.github.bare import BareRepo

ROLES = ("none", "read", "triage", "write", "maintain", "admin")
APP_LEVELS = ("none", "read", "write")
BOT_LOGIN = "github-actions[bot]"
BOT_ID = 41898282
DEFAULT_APP_PERMISSIONS = {
    "contents": "write",
    "pull-requests": "write",
    "issues": "write",
    "metadata": "read",
}
REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")
MAX_BODY_CHARS = 65536


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_id(kind: str, number: int) -> str:
    raw = base64.urlsafe_b64encode(f"{kind}:{number}".encode()).decode().rstrip("=")
    return f"{kind}_{raw}"


class ApiError(Exception):
    """An error answer in GitHub's shape: status, message and, for 422, the `errors` list."""

    def __init__(
        self,
        status: int,
        message: str,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message
        self.errors = errors
        self.headers = headers or {}


def validation_failed(**error: str) -> ApiError:
    """422 "Validation Failed" with one entry in `errors` (resource, field, code, message)."""
    return ApiError(422, "Validation Failed", [error])


@dataclass
class User:
    login: str
    id: int
    type: Literal["User", "Bot", "Organization"] = "User"
    name: str | None = None
    email: str | None = None
    default_role: str | None = None  # role on every repository without its own grant


@dataclass
class Token:
    value: str
    login: str
    kind: Literal["app", "user"] = "app"
    permissions: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_APP_PERMISSIONS))


@dataclass
class Reaction:
    id: int
    content: str
    user: str
    created_at: str = field(default_factory=now_iso)


@dataclass
class Comment:
    id: int
    issue_number: int
    body: str
    user: str
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    reactions: list[Reaction] = field(default_factory=list)


@dataclass
class Pull:
    """The pull-request side of an issue."""

    head_ref: str
    base_ref: str
    head_sha: str
    base_sha: str
    draft: bool = False
    maintainer_can_modify: bool = False
    requested_reviewers: list[str] = field(default_factory=list)
    merged: bool = False


@dataclass
class Issue:
    """An issue, or a pull request (then `pull` is set): they share numbers as on GitHub."""

    number: int
    id: int
    title: str
    body: str | None
    user: str
    state: Literal["open", "closed"] = "open"
    labels: list[str] = field(default_factory=list)
    reactions: list[Reaction] = field(default_factory=list)
    pull: Pull | None = None
    pull_id: int = 0
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    closed_at: str | None = None


@dataclass
class Label:
    id: int
    name: str
    color: str = "ededed"
    description: str | None = None


@dataclass
class Repo:
    owner: str
    name: str
    id: int
    bare: BareRepo
    default_branch: str = "main"
    private: bool = False
    actions_can_open_prs: bool = True  # the "Allow GitHub Actions to create ... PRs" setting
    drafts_supported: bool = True  # False: private repository on a plan without drafts
    roles: dict[str, str] = field(default_factory=dict)
    issues: dict[int, Issue] = field(default_factory=dict)
    comments: dict[int, Comment] = field(default_factory=dict)
    labels: dict[str, Label] = field(default_factory=dict)
    verification: dict[str, dict[str, object]] = field(default_factory=dict)
    created_at: str = field(default_factory=now_iso)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    def next_number(self) -> int:
        return max(self.issues, default=0) + 1


@dataclass(frozen=True)
class Need:
    """What a route needs: an app-token permission (any of `categories`) or a user role."""

    categories: tuple[str, ...]
    level: Literal["read", "write"]
    role: str


READ_META = Need(("metadata",), "read", "read")
READ_CONTENTS = Need(("contents",), "read", "read")
WRITE_CONTENTS = Need(("contents",), "write", "write")
READ_PULLS = Need(("pull-requests",), "read", "read")
WRITE_PULLS = Need(("pull-requests",), "write", "write")
READ_ISSUES = Need(("issues", "pull-requests"), "read", "read")
COMMENT = Need(("issues", "pull-requests"), "write", "read")
TRIAGE = Need(("issues", "pull-requests"), "write", "triage")
WRITE_ISSUES = Need(("issues", "pull-requests"), "write", "write")


def accepted_header(need: Need) -> dict[str, str]:
    """GitHub's X-Accepted-GitHub-Permissions: each category alone will do (sets split by ;)."""
    sets = "; ".join(f"{c.replace('-', '_')}={need.level}" for c in need.categories)
    return {"X-Accepted-GitHub-Permissions": sets}


class Hub:
    """All state, one lock, and the server's own addresses."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.repos_dir = root / "repos"
        self.lock = threading.RLock()
        self.users: dict[str, User] = {}
        self.tokens: dict[str, Token] = {}
        self.repos: dict[str, Repo] = {}
        self._ids = itertools.count(1001)
        self.server_url = ""  # set once the server listens

    @property
    def api_url(self) -> str:
        return f"{self.server_url}/api/v3"

    def new_id(self) -> int:
        return next(self._ids)

    # -- users and tokens

    def ensure_user(
        self, login: str, kind: Literal["User", "Bot", "Organization"] = "User"
    ) -> User:
        if login not in self.users:
            uid = BOT_ID if login == BOT_LOGIN else self.new_id()
            self.users[login] = User(login, uid, kind)
        return self.users[login]

    def token_for(self, value: str | None) -> Token | None:
        return self.tokens.get(value or "")

    # -- repositories

    def repo(self, owner: str, name: str) -> Repo:
        repo = self.repos.get(f"{owner}/{name}".lower())
        if repo is None:
            raise ApiError(404, "Not Found")
        return repo

    def role(self, repo: Repo, login: str | None) -> str:
        """The user's role: owner admin, explicit grant, default role, else read if public."""
        if login is None:
            return "read" if not repo.private else "none"
        if login.lower() == repo.owner.lower():
            return "admin"
        user = self.users.get(login)
        granted = repo.roles.get(login) or (user.default_role if user else None)
        if granted:
            return granted
        return "read" if not repo.private else "none"

    def is_collaborator(self, repo: Repo, login: str) -> bool:
        user = self.users.get(login)
        explicit = repo.roles.get(login) or (user.default_role if user else None)
        return login.lower() == repo.owner.lower() or explicit not in {None, "none"}

    def authorize(self, token: Token | None, repo: Repo, need: Need) -> None:
        """Raise the error GitHub gives when ``token`` may not do what ``need`` describes."""
        if need.level == "read" and not repo.private:
            return
        if token is None:
            if need.level == "write":
                raise ApiError(401, "Requires authentication")
            raise ApiError(404, "Not Found")
        if token.kind == "app":
            levels = [APP_LEVELS.index(token.permissions.get(c, "none")) for c in need.categories]
            if max(levels) < APP_LEVELS.index(need.level):
                if repo.private and need.level == "read":
                    raise ApiError(404, "Not Found")
                raise ApiError(
                    403, "Resource not accessible by integration", headers=accepted_header(need)
                )
            return
        role = self.role(repo, token.login)
        if ROLES.index(role) < ROLES.index(need.role):
            if role == "none":
                raise ApiError(404, "Not Found")
            raise ApiError(403, "Must have push access to repository")

    # -- issues and pull requests

    def issue(self, repo: Repo, number: int) -> Issue:
        issue = repo.issues.get(number)
        if issue is None:
            raise ApiError(404, "Not Found")
        return issue

    def pull(self, repo: Repo, number: int) -> Issue:
        issue = self.issue(repo, number)
        if issue.pull is None:
            raise ApiError(404, "Not Found")
        self.refresh_pull(repo, issue)
        return issue

    def refresh_pull(self, repo: Repo, issue: Issue, tips: dict[str, str] | None = None) -> None:
        """Follow the branches: head.sha tracks the head branch; a deleted head closes the PR."""
        pull = issue.pull
        if pull is None or pull.merged:
            return
        tips = repo.bare.branches() if tips is None else tips
        if pull.head_ref in tips:
            pull.head_sha = tips[pull.head_ref]
        elif issue.state == "open":
            issue.state = "closed"
            issue.closed_at = issue.updated_at = now_iso()
        pull.base_sha = tips.get(pull.base_ref, pull.base_sha)

    def comment(self, repo: Repo, comment_id: int) -> Comment:
        comment = repo.comments.get(comment_id)
        if comment is None:
            raise ApiError(404, "Not Found")
        return comment
