"""GitHubApi: the one adapter over PyGithub (the only module that imports ``github``).

Only a run that publishes imports this module (PyGithub takes 0.7 s to load): what is
needed before a run or without the API (``GitHubTarget``, ``basic_credential``) lives in
``target.py`` and is re-exported here.

Every call has a timeout (PyGithub's ``timeout=``) and goes through one retry loop that
retries only what GitHub asks to retry and only where a repeat cannot do harm:

- 403/429 rate limits (``Retry-After``, the secondary-rate-limit message, or
  ``X-RateLimit-Remaining: 0``): GitHub did not process the request, so any call may wait
  and repeat, up to ``RetryPolicy.max_wait_s``.
- 5xx, timeouts and dropped connections: only idempotent calls repeat by themselves.
  ``POST /pulls`` and ``POST .../comments`` are not idempotent; their callers
  (``upsert_pull``, ``upsert_comment``) look the object up before posting again.
- 404/422 right after a pull request was created (GitHub's eventual consistency): the
  calls that follow a creation pass ``settling=True`` and get a few more tries.

Each call names its ``Endpoint``: the route as GitHub's docs write it and the permission
a workflow's token needs for it. The route goes into one audit line per call (``github.api``:
route, target, outcome, attempts, duration; never the token), and the permission into the
hint of a 403, so a refusal says which ``permissions:`` entry the workflow lacks.

PyGithub's exceptions never leave this module: they become the ``PublishError`` tree.

```
PublishError                  exit 1: the run's work is in the checkout; publishing failed
├── GitHubAuthError           401 bad token; 403 missing permission or repository setting
├── GitHubNotFoundError       404: repository, user, pull request or commit not there
├── GitHubValidationError     422: GitHub refused the request's content
│   └── PullExistsError       "A pull request already exists for owner:branch."
├── GitHubRateLimitError      rate limited for longer than we are willing to wait
├── GitHubUnavailableError    5xx, timeout or dropped connection (after the retries)
└── PushError                 git push failed (see commit.py)
```
"""

from __future__ import annotations

import base64
import random
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Self, TypeVar

from github import Auth, Github, GithubException

from claude_e2b import audit
from claude_e2b.errors import (
    GitHubAuthError,
    GitHubNotFoundError,
    GitHubRateLimitError,
    GitHubUnavailableError,
    GitHubValidationError,
    PublishError,
    PullExistsError,
)
from claude_e2b.github.target import GitHubTarget as GitHubTarget  # noqa: PLC0414 - re-export
from claude_e2b.github.target import basic_credential as basic_credential  # noqa: PLC0414
from claude_e2b.log import REDACTOR, get_logger

T = TypeVar("T")
Safety = Literal["idempotent", "once"]

BOT_LOGIN = "github-actions[bot]"
USER_AGENT = "claude-e2b-action"
DEFAULT_TIMEOUT_S = 30
# GitHub's advice against secondary rate limits: pause between calls, a second between writes.
PACE_READS_S = 0.25
PACE_WRITES_S = 1.0
TREE_CHUNK = 100  # tree entries per POST /git/trees, as peter-evans/create-pull-request does

log = get_logger(__name__)


# -- plain data in and out


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry; tests shrink the delays."""

    attempts: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 30.0
    max_wait_s: float = 300.0  # the longest Retry-After or rate-limit reset we wait for
    secondary_wait_s: float = 60.0  # GitHub: "wait at least one minute" when it names no time
    settle_attempts: int = 4  # tries of a call on a pull request that was just created

    def backoff(self, attempt: int) -> float:
        """Capped exponential backoff with jitter, so parallel jobs do not retry in step."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        return ceiling * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not cryptography


@dataclass
class _Attempts:
    """How many tries one call made (the audit line reports it)."""

    count: int = 0


@dataclass(frozen=True)
class PullRequestRef:
    """A pull request as publishing needs it."""

    number: int
    url: str
    draft: bool
    head_sha: str


@dataclass(frozen=True)
class RemoteCommit:
    """A commit of the Git Data API: its sha, tree and signature verdict."""

    sha: str
    tree: str
    verified: bool


@dataclass(frozen=True)
class TreeEntry:
    """One entry of ``POST /git/trees``: a path, its mode and blob sha (None deletes it)."""

    path: str
    mode: str
    sha: str | None


@dataclass(frozen=True)
class Endpoint:
    """A REST route as GitHub's docs write it, and the permission a workflow token needs."""

    route: str
    permission: str  # a `permissions:` entry of the workflow, "" when none is needed


_REPO = "/repos/{owner}/{repo}"
USER = Endpoint("GET /user", "")
COLLABORATOR_PERMISSION = Endpoint(
    f"GET {_REPO}/collaborators/{{username}}/permission", "metadata: read"
)
REACTION = Endpoint(f"POST {_REPO}/issues/comments/{{comment_id}}/reactions", "issues: write")
COMMENTS = Endpoint(f"GET {_REPO}/issues/{{issue_number}}/comments", "issues: read")
COMMENT_EDIT = Endpoint(f"PATCH {_REPO}/issues/comments/{{comment_id}}", "issues: write")
COMMENT_CREATE = Endpoint(f"POST {_REPO}/issues/{{issue_number}}/comments", "issues: write")
PULLS = Endpoint(f"GET {_REPO}/pulls", "pull-requests: read")
PULL_CREATE = Endpoint(f"POST {_REPO}/pulls", "pull-requests: write")
PULL_UPDATE = Endpoint(f"PATCH {_REPO}/pulls/{{pull_number}}", "pull-requests: write")
PULL_DRAFT = Endpoint(f"GET {_REPO}/pulls/{{pull_number}} + POST /graphql", "pull-requests: write")
LABELS = Endpoint(f"POST {_REPO}/issues/{{issue_number}}/labels", "pull-requests: write")
REVIEWERS = Endpoint(
    f"POST {_REPO}/pulls/{{pull_number}}/requested_reviewers", "pull-requests: write"
)
GIT_COMMIT = Endpoint(f"GET {_REPO}/git/commits/{{commit_sha}}", "contents: read")
GIT_BLOB = Endpoint(f"POST {_REPO}/git/blobs", "contents: write")
GIT_TREE = Endpoint(f"POST {_REPO}/git/trees", "contents: write")
GIT_COMMIT_CREATE = Endpoint(f"POST {_REPO}/git/commits", "contents: write")
GIT_REF_UPDATE = Endpoint(f"PATCH {_REPO}/git/refs/{{ref}}", "contents: write")
GIT_REF_CREATE = Endpoint(f"POST {_REPO}/git/refs", "contents: write")


# -- error mapping and retry decisions


def _headers(exc: GithubException) -> dict[str, str]:
    return {k.lower(): str(v) for k, v in (exc.headers or {}).items()}


def github_message(exc: GithubException) -> str:
    """GitHub's message with the details of a 422's ``errors`` list."""
    data = exc.data
    if not isinstance(data, Mapping):
        text = data.decode(errors="replace") if isinstance(data, bytes) else str(data or "")
        return text.strip()[:300] or (exc.message or "")
    details = [_error_text(e) for e in data.get("errors") or [] if e]
    return "; ".join([str(data.get("message") or ""), *details]).strip("; ")


def _error_text(error: Any) -> str:
    if not isinstance(error, Mapping):
        return str(error)
    if error.get("message"):
        return str(error["message"])
    return " ".join(str(error.get(k)) for k in ("resource", "field", "code") if error.get(k))


def _forbidden_hint(message: str, permission: str) -> str:
    if "not permitted to create or approve pull requests" in message:
        return (
            "enable Settings → Actions → General → 'Allow GitHub Actions to create and approve "
            "pull requests', or pass a personal access token as github-token"
        )
    if "push access" in message:
        return "the token's user needs write access to the repository: use another token"
    return (
        f"add `{permission}` to the workflow's `permissions:` (the job needs contents: write, "
        "pull-requests: write and issues: write), or pass a token that has it as github-token"
    )


def needed_permission(exc: GithubException, endpoint: Endpoint | None) -> str:
    """The permission a 403 asks for: the endpoint's, else GitHub's first accepted set.

    GitHub names the accepted sets in ``X-Accepted-GitHub-Permissions``
    (``issues=write; pull_requests=write``: either set will do).
    """
    accepted = [
        ", ".join(_permission_entry(item) for item in group.split(",") if item.strip())
        for group in _headers(exc).get("x-accepted-github-permissions", "").split(";")
    ]
    accepted = [group for group in accepted if group]
    ours = endpoint.permission if endpoint is not None else ""
    if ours and (not accepted or ours in accepted):
        return ours
    return accepted[0] if accepted else "contents: write, pull-requests: write, issues: write"


def _permission_entry(item: str) -> str:
    name, _, level = item.strip().partition("=")
    return f"{name.replace('_', '-')}: {level}"


_RERUN_HINT = (
    "GitHub had trouble (a server error or no answer): try again later, and see its status "
    "page if it lasts"
)
_BY_STATUS: dict[int, tuple[type[PublishError], str | None]] = {
    401: (GitHubAuthError, "the token is invalid or expired: check the github-token input"),
    404: (GitHubNotFoundError, "check the repository name and that the token can see it"),
    422: (GitHubValidationError, None),
}


def map_error(
    what: str, exc: GithubException, endpoint: Endpoint | None = None, attempts: int = 1
) -> PublishError:
    """The most specific PublishError for a GitHub error answer."""
    status, message = exc.status, github_message(exc)
    text = f"{what}: GitHub answered {status} {message}".rstrip()
    kind: type[PublishError] = PublishError
    hint: str | None = None
    if status == 422 and "pull request already exists" in message.lower():  # noqa: PLR2004
        kind = PullExistsError
    elif status in _BY_STATUS:
        kind, hint = _BY_STATUS[status]
    elif status == 403:  # noqa: PLR2004 - HTTP statuses read best as numbers
        permission = needed_permission(exc, endpoint)
        kind, hint = GitHubAuthError, _forbidden_hint(message, permission)
        if "not accessible" in message:
            text += f" (the token needs {permission})"
    elif status >= 500:  # noqa: PLR2004
        kind, hint = GitHubUnavailableError, _RERUN_HINT
    if attempts > 1:
        text += f" (after {attempts} attempts)"
    return kind(text, hint=hint, status=status)


def _seconds(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def rate_limit_wait(exc: GithubException, policy: RetryPolicy) -> float | None:
    """How long GitHub wants us to wait before repeating, or None when it is no rate limit."""
    if exc.status not in {403, 429}:
        return None
    headers = _headers(exc)
    retry_after = _seconds(headers.get("retry-after"))
    if retry_after is not None:
        return retry_after
    if headers.get("x-ratelimit-remaining") == "0":
        reset = _seconds(headers.get("x-ratelimit-reset")) or 0.0
        return max(reset - time.time() + 1.0, 1.0)  # +1: the reset second is not exact
    message = github_message(exc).lower()
    if exc.status == 429 or "rate limit" in message or "try again" in message:  # noqa: PLR2004
        return policy.secondary_wait_s
    return None


class GitHubApi:
    """What the action needs from GitHub, for one repository."""

    def __init__(
        self,
        client: Github,
        repository: str,
        *,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._gh = client
        self._repo = client.get_repo(repository)  # lazy: no request until it is used
        self.repository = repository
        self.owner = repository.partition("/")[0]
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._login: str | None = None

    @classmethod
    def open(
        cls,
        target: GitHubTarget,
        *,
        timeout_s: int = DEFAULT_TIMEOUT_S,
        pace: bool = True,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> GitHubApi:
        """A client for ``target``; the token (and its git form) join the log redactor."""
        REDACTOR.add(target.token)
        REDACTOR.add(basic_credential(target.token))
        client = Github(
            base_url=target.api_url.rstrip("/"),
            auth=Auth.Token(target.token),
            timeout=timeout_s,
            user_agent=USER_AGENT,
            per_page=100,
            retry=None,  # ours below: PyGithub's own would repeat POSTs into duplicates
            lazy=True,
            seconds_between_requests=PACE_READS_S if pace else None,
            seconds_between_writes=PACE_WRITES_S if pace else None,
        )
        return cls(client, target.repository, policy=policy, sleep=sleep)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._gh.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the retry loop

    def call(
        self,
        what: str,
        fn: Callable[[], T],
        *,
        endpoint: Endpoint,
        target: str | None = None,
        safety: Safety = "idempotent",
        settling: bool = False,
    ) -> T:
        """Run one API call with the retry rules of the module docstring; map its errors.

        Writes one audit line for the call (all its attempts): ``endpoint``'s route, the
        target (the repository, or ``owner/name#N``), the outcome and the attempts.
        """
        attempts = _Attempts()
        began = time.monotonic()
        outcome, status = "ok", None
        try:
            return self._attempt(what, fn, endpoint, attempts, safety=safety, settling=settling)
        except PublishError as exc:
            outcome, status = type(exc).__name__, exc.status
            raise
        except BaseException as exc:
            outcome = type(exc).__name__
            raise
        finally:
            extra = {} if status is None else {"status": status}
            audit.record("github.api", target=target or self.repository, outcome=outcome,
                         duration_s=time.monotonic() - began, route=endpoint.route, what=what,
                         attempts=attempts.count, **extra)  # fmt: skip

    def _attempt(
        self,
        what: str,
        fn: Callable[[], T],
        endpoint: Endpoint,
        attempts: _Attempts,
        *,
        safety: Safety,
        settling: bool,
    ) -> T:
        """The retry loop itself; ``attempts.count`` says how many tries were made."""
        while True:
            attempts.count += 1
            attempt = attempts.count
            try:
                return fn()
            except GithubException as exc:
                wait = self._wait_or_raise(
                    what, exc, attempt, endpoint, safety=safety, settling=settling
                )
                reason = f"{exc.status} {github_message(exc)}"
            except OSError as exc:  # requests' ConnectionError and Timeout are OSErrors
                wait = self._transport_wait(what, exc, attempt, safety=safety)
                reason = type(exc).__name__
            log.warning("github.retry", what=what, attempt=attempt, wait_s=round(wait, 2),
                        reason=reason)  # fmt: skip
            self._sleep(wait)

    def _wait_or_raise(
        self,
        what: str,
        exc: GithubException,
        attempt: int,
        endpoint: Endpoint,
        *,
        safety: Safety,
        settling: bool,
    ) -> float:
        policy = self.policy
        limited = rate_limit_wait(exc, policy)
        if limited is not None and limited <= policy.max_wait_s and attempt < policy.attempts:
            return limited
        if limited is not None:
            raise GitHubRateLimitError(
                f"{what}: rate limited, GitHub asks to wait {limited:.0f} s "
                f"(attempt {attempt}: {github_message(exc)})",
                hint="re-run the job later, or use a token with its own rate limit",
                status=exc.status,
            ) from exc
        if exc.status >= 500 and safety == "idempotent" and attempt < policy.attempts:  # noqa: PLR2004
            return _seconds(_headers(exc).get("retry-after")) or policy.backoff(attempt)
        if settling and exc.status in {404, 422} and attempt < policy.settle_attempts:
            return policy.backoff(attempt)
        raise map_error(what, exc, endpoint, attempts=attempt) from exc

    def _transport_wait(self, what: str, exc: OSError, attempt: int, *, safety: Safety) -> float:
        if safety == "idempotent" and attempt < self.policy.attempts:
            return self.policy.backoff(attempt)
        tries = f" (after {attempt} attempts)" if attempt > 1 else ""
        text = f"{what}: no answer from GitHub ({type(exc).__name__}: {exc}){tries}"
        raise GitHubUnavailableError(REDACTOR.redact(text), hint=_RERUN_HINT) from exc

    # -- who and what

    def whoami(self) -> str:
        """The login the token acts as; a workflow's GITHUB_TOKEN cannot ask and is the bot."""
        if self._login is None:
            try:
                self._login = self.call(
                    "read the token's user", lambda: self._gh.get_user().login, endpoint=USER
                )
            except GitHubAuthError as exc:
                if exc.status != 403:  # noqa: PLR2004 - 403 "Resource not accessible by integration"
                    raise
                self._login = BOT_LOGIN
        return self._login

    def permission_of(self, login: str) -> str:
        """The user's role on the repository (role_name, else permission); "none" if unknown."""
        url = f"{self._repo.url}/collaborators/{urllib.parse.quote(login, safe='')}/permission"
        try:
            _, data = self.call(
                f"read {login}'s permission",
                lambda: self._gh.requester.requestJsonAndCheck("GET", url),
                endpoint=COLLABORATOR_PERMISSION,
            )
        except GitHubNotFoundError:
            return "none"
        return str(data.get("role_name") or data.get("permission") or "none")

    def add_reaction(self, comment_id: int, content: str = "eyes") -> None:
        """React to an issue comment (GitHub keeps one reaction per user and content)."""
        url = f"{self._repo.url}/issues/comments/{comment_id}/reactions"
        self.call(
            f"react to comment {comment_id}",
            lambda: self._gh.requester.requestJsonAndCheck("POST", url, input={"content": content}),
            endpoint=REACTION,
        )

    # -- comments

    def upsert_comment(self, issue_number: int, marker: str, body: str) -> str:
        """Edit our comment holding ``marker`` on the issue, else create it; its URL.

        ``marker`` (e.g. an HTML comment) is appended to ``body`` when missing, so the next
        run finds the comment again. A failed creation is looked up before it is repeated.
        """
        text = body if marker in body else f"{body}\n\n{marker}"
        for attempt in range(1, self.policy.attempts + 1):
            found = self._find_comment(issue_number, marker)
            if found is not None:
                self.call(
                    f"edit comment {found.id}",
                    partial(found.edit, text),
                    endpoint=COMMENT_EDIT,
                    target=f"{self.repository}#{issue_number}",
                )
                return str(found.html_url)
            try:
                return self.reply(issue_number, text)
            except GitHubUnavailableError:
                if attempt == self.policy.attempts:
                    raise
                self._sleep(self.policy.backoff(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def _find_comment(self, issue_number: int, marker: str) -> Any:
        me = self.whoami().lower()

        def scan() -> Any:
            for comment in self._repo.get_issue(issue_number).get_comments():
                if comment.user.login.lower() == me and marker in (comment.body or ""):
                    return comment
            return None

        return self.call(
            f"read the comments of #{issue_number}",
            scan,
            endpoint=COMMENTS,
            target=f"{self.repository}#{issue_number}",
        )

    def reply(self, issue_number: int, body: str) -> str:
        """Post a new comment on an issue or pull request; its URL (never repeated on 5xx)."""
        comment = self.call(
            f"comment on #{issue_number}",
            lambda: self._repo.get_issue(issue_number).create_comment(body),
            endpoint=COMMENT_CREATE,
            target=f"{self.repository}#{issue_number}",
            safety="once",
        )
        return str(comment.html_url)

    # -- pull requests

    def find_open_pull(self, branch: str, base: str) -> PullRequestRef | None:
        """The open pull request from ``branch`` into ``base`` in this repository, if any."""
        head = f"{self.owner}:{branch}"

        def first() -> PullRequestRef | None:
            for pull in self._repo.get_pulls(state="open", head=head, base=base):
                return _pull_ref(pull)
            return None

        return self.call(f"look up the pull request for {branch}", first, endpoint=PULLS)

    def create_pull(
        self, *, branch: str, base: str, title: str, body: str, draft: bool
    ) -> PullRequestRef:
        """POST one pull request; a repository without drafts gets a ready one instead.

        Raises PullExistsError for a duplicate and GitHubUnavailableError when the answer
        was lost: the pull request may exist then, so look it up before posting again.
        """
        try:
            return self._post_pull(branch=branch, base=base, title=title, body=body, draft=draft)
        except GitHubValidationError as exc:
            if not draft or "draft pull requests are not supported" not in str(exc).lower():
                raise
        log.warning("github.drafts_unsupported", repository=self.repository)
        return self._post_pull(branch=branch, base=base, title=title, body=body, draft=False)

    def _post_pull(
        self, *, branch: str, base: str, title: str, body: str, draft: bool
    ) -> PullRequestRef:
        return self.call(
            f"create the pull request for {branch}",
            lambda: _pull_ref(
                self._repo.create_pull(base=base, head=branch, title=title, body=body, draft=draft)
            ),
            endpoint=PULL_CREATE,
            safety="once",
        )

    def update_pull(self, number: int, *, title: str, body: str) -> PullRequestRef:
        """Set the title and body (a PATCH of the whole state: safe to repeat)."""

        def edit() -> PullRequestRef:
            pull = self._repo.get_pull(number)
            pull.edit(title=title, body=body)
            return _pull_ref(pull)

        return self.call(
            f"update pull request #{number}",
            edit,
            endpoint=PULL_UPDATE,
            target=f"{self.repository}#{number}",
        )

    def upsert_pull(
        self, *, branch: str, base: str, title: str, body: str, draft: bool
    ) -> tuple[PullRequestRef, bool]:
        """Update the open pull request of ``branch``, else create it: (pull, created).

        Never makes a second pull request: a creation whose answer was lost (5xx, timeout,
        dropped connection) is followed by a lookup before anything is posted again.
        """
        posted = False
        for attempt in range(1, self.policy.attempts + 1):
            found = self.find_open_pull(branch, base)
            if found is not None:
                return self.update_pull(found.number, title=title, body=body), posted
            try:
                fields = {"branch": branch, "base": base, "title": title, "body": body}
                return self.create_pull(**fields, draft=draft), True
            except PullExistsError:
                log.info("github.pull_exists", branch=branch, attempt=attempt)
            except GitHubUnavailableError as exc:
                posted = True  # the answer was lost, not necessarily the pull request
                log.warning("github.create_pull_lost", branch=branch, error=str(exc))
            self._sleep(self.policy.backoff(attempt))
        raise GitHubUnavailableError(
            f"could not create or find the pull request for {branch} after "
            f"{self.policy.attempts} attempts",
            hint=_RERUN_HINT,
        )

    def set_draft(self, number: int, draft: bool, *, settling: bool = False) -> None:
        """Turn a pull request into a draft or mark it ready (GraphQL: REST cannot)."""

        def flip() -> None:
            pull = self._repo.get_pull(number)
            if pull.draft == draft:
                return
            if draft:
                pull.convert_to_draft()
            else:
                pull.mark_ready_for_review()

        self.call(
            f"set draft={draft} on #{number}",
            flip,
            endpoint=PULL_DRAFT,
            target=f"{self.repository}#{number}",
            settling=settling,
        )

    def add_labels(self, number: int, labels: Sequence[str], *, settling: bool = False) -> None:
        """Add labels (GitHub creates missing ones; adding twice changes nothing)."""
        self.call(
            f"label #{number}",
            lambda: self._repo.get_issue(number).add_to_labels(*labels),
            endpoint=LABELS,
            target=f"{self.repository}#{number}",
            settling=settling,
        )

    def request_reviewers(
        self, number: int, reviewers: Sequence[str], *, settling: bool = False
    ) -> None:
        """Request reviews (asking again for the same people changes nothing)."""
        self.call(
            f"request reviewers on #{number}",
            lambda: self._repo.get_pull(number).create_review_request(reviewers=list(reviewers)),
            endpoint=REVIEWERS,
            target=f"{self.repository}#{number}",
            settling=settling,
        )

    # -- the Git Data API (content-addressed objects: a repeated POST makes no harm)

    def _json(self, endpoint: Endpoint, url: str, what: str, payload: Any = None) -> Any:
        requester = self._gh.requester
        verb = endpoint.route.partition(" ")[0]
        _, data = self.call(
            what,
            lambda: requester.requestJsonAndCheck(verb, f"{self._repo.url}{url}", input=payload),
            endpoint=endpoint,
        )
        return data

    def remote_commit(self, sha: str) -> RemoteCommit | None:
        """The commit ``sha`` on GitHub, or None when GitHub does not have it."""
        try:
            data = self._json(GIT_COMMIT, f"/git/commits/{sha}", f"read commit {sha[:12]}")
        except GitHubNotFoundError:
            return None
        return _remote_commit(data)

    def create_blob(self, data: bytes) -> str:
        """Store file content (base64: binary-safe); its blob sha."""
        payload = {"content": base64.b64encode(data).decode(), "encoding": "base64"}
        return str(self._json(GIT_BLOB, "/git/blobs", "create a blob", payload)["sha"])

    def create_tree(self, base_tree: str, entries: Iterable[TreeEntry]) -> str:
        """Apply ``entries`` to ``base_tree`` (in chunks of 100, each on the last); the tree."""
        tree, items = base_tree, [_tree_item(e) for e in entries]
        for start in range(0, len(items), TREE_CHUNK):
            payload = {"base_tree": tree, "tree": items[start : start + TREE_CHUNK]}
            tree = str(self._json(GIT_TREE, "/git/trees", "create a tree", payload)["sha"])
        return tree

    def create_commit(self, message: str, tree: str, parents: Sequence[str]) -> RemoteCommit:
        """A commit by the token's identity, no author given, so that GitHub signs it."""
        payload = {"message": message, "tree": tree, "parents": list(parents)}
        return _remote_commit(
            self._json(GIT_COMMIT_CREATE, "/git/commits", "create a commit", payload)
        )

    def set_branch(self, branch: str, sha: str) -> None:
        """Point ``refs/heads/<branch>`` at ``sha``, creating it or forcing it over."""
        ref = f"/git/refs/heads/{urllib.parse.quote(branch, safe='/')}"
        what = f"move branch {branch}"
        for _ in range(2):  # created or deleted by someone else between the two calls
            try:
                self._json(GIT_REF_UPDATE, ref, what, {"sha": sha, "force": True})
            except GitHubValidationError as exc:
                if "does not exist" not in str(exc).lower():
                    raise
            else:
                return
            try:
                self._json(
                    GIT_REF_CREATE, "/git/refs", what, {"ref": f"refs/heads/{branch}", "sha": sha}
                )
            except GitHubValidationError as exc:
                if "already exists" not in str(exc).lower():
                    raise
            else:
                return
        raise GitHubValidationError(f"{what}: the reference kept changing under us")


def _pull_ref(pull: Any) -> PullRequestRef:
    return PullRequestRef(int(pull.number), str(pull.html_url), bool(pull.draft), pull.head.sha)


def _remote_commit(data: Mapping[str, Any]) -> RemoteCommit:
    verification = data.get("verification") or {}
    return RemoteCommit(
        str(data["sha"]), str(data["tree"]["sha"]), bool(verification.get("verified"))
    )


def _tree_item(entry: TreeEntry) -> dict[str, Any]:
    kind = "commit" if entry.mode == "160000" else "blob"
    return {"path": entry.path, "mode": entry.mode, "type": kind, "sha": entry.sha}
