"""A local GitHub for tests: REST (as PyGithub calls it), a sliver of GraphQL, and real git.

One threaded HTTP server on 127.0.0.1, laid out as GitHub Enterprise Server is:
REST at ``/api/v3``, GraphQL at ``/api/graphql``, repositories at ``/<owner>/<repo>.git``
(served by ``git http-backend``, push enabled), web pages (html_url) at ``/<owner>/<repo>/...``.

    with GitHubStandIn(tmp_path) as gh:
        gh.create_repo("acme/widgets", source=local_git_repo)   # or files={...}
        gh.add_user("alice", permission="read")                  # role on every repository
        env |= {"GITHUB_API_URL": gh.api_url, "GITHUB_SERVER_URL": gh.server_url,
                "GITHUB_TOKEN": gh.token}                        # an app token: github-actions[bot]
        git -c http.extraheader="$(gh.extraheader())" push <gh.clone_url("acme/widgets")> HEAD:b
        g = Github(base_url=gh.api_url, auth=Auth.Token(gh.token),
                   seconds_between_requests=0, seconds_between_writes=0)
        gh.add_fault(Fault.status("POST", "/repos/*/*/pulls", 502, when="after"))
        ...
        gh.pulls("acme/widgets")[0].title, gh.comments("acme/widgets", 1)
        gh.git("acme/widgets", "log", "--oneline")     # the bare repository
        gh.leaks(gh.token) == []          # the token never travelled in a path or body

What behaves as on github.com / GHES (checked against PyGithub 2.10's source and GitHub docs):

- Tokens: ``app`` tokens (GITHUB_TOKEN) act as ``github-actions[bot]`` within their permission
  set; ``GET /user`` with one is 403 "Resource not accessible by integration", as on GitHub.
  An app token without the permission a route needs (``add_token(tok, BOT_LOGIN,
  permissions={"pull-requests": "read"})``) gets 403 "Resource not accessible by
  integration" with ``X-Accepted-GitHub-Permissions: pull_requests=write``, as on GitHub.
  ``user`` tokens (``add_token(tok, "alice")``) act with the user's role. Unknown token: 401
  "Bad credentials". No token: reads of public repositories only.
- git push needs a token with contents:write (Basic auth, token as password, e.g. via
  ``http.extraheader``); without one 401 + ``WWW-Authenticate``, without the right 403.
- Git Data API objects are real objects in the bare repository; a bot-token commit without
  author/committer/signature is committed by "GitHub <noreply@github.com>" and reported
  ``verification.verified = true`` (the object itself carries no gpgsig: no GitHub key here).
- Pull requests: duplicate → 422 "A pull request already exists for owner:branch.", empty →
  422 "No commits between …", body > 65536 chars → 422, head filter without ``owner:`` is
  ignored, head.sha follows the branch, deleting the head branch closes the PR, draft can be
  flipped only through GraphQL (``mark_ready_for_review`` / ``convert_to_draft``).
- ``protect_branch(repo, branch)``: pushes to it are refused by a pre-receive hook with
  GitHub's "GH006: Protected branch update failed" (the API's ref updates are not).
- Faults (``Fault.status``, ``.secondary_rate_limit`` with Retry-After, ``.primary_rate_limit``,
  ``.drop``), before or after the work is done; PyGithub's default GithubRetry retries 403
  rate limits and 5xx for GET/POST (not PATCH) and connection drops.

Script mode (for a run in another process; note ``-m``: a script path would put
tests/stand_ins on sys.path, where the ``github`` package shadows PyGithub's)::

    python -m tests.stand_ins.github_server --root DIR --repo acme/widgets=PATH [--port-file F]
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from tests.stand_ins.github.faults import SECONDARY_RATE_LIMIT_MESSAGE, Fault
from tests.stand_ins.github.server import RecordedRequest
from tests.stand_ins.github.stand_in import GitHubStandIn
from tests.stand_ins.github.state import BOT_LOGIN, Comment, Issue, Pull, Reaction

__all__ = [
    "BOT_LOGIN",
    "SECONDARY_RATE_LIMIT_MESSAGE",
    "Comment",
    "Fault",
    "GitHubStandIn",
    "Issue",
    "Pull",
    "Reaction",
    "RecordedRequest",
]


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; print the URLs and token, write the port to --port-file."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--root", required=True, type=Path, help="directory for the bare repos")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", type=Path, help="write the port here once listening")
    parser.add_argument("--token", help="the GITHUB_TOKEN to accept (default: random)")
    parser.add_argument(
        "--repo", action="append", default=[], help="owner/name[=PATH of a git repo to import]"
    )
    parser.add_argument(
        "--user", action="append", default=[], help="login:role, e.g. alice:read (all repos)"
    )
    parser.add_argument("--quiet", action="store_true", help="do not log requests to stderr")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with GitHubStandIn(args.root, port=args.port, token=args.token, log=not args.quiet) as gh:
        for spec in args.repo:
            name, _, source = spec.partition("=")
            gh.create_repo(name, source=Path(source) if source else None)
        for spec in args.user:
            login, _, role = spec.partition(":")
            gh.add_user(login, permission=role or None)
        if args.port_file:
            tmp = args.port_file.with_suffix(".tmp")
            tmp.write_text(f"{gh.server_url.rsplit(':', 1)[1]}\n", encoding="utf-8")
            tmp.replace(args.port_file)
        print(f"GITHUB_SERVER_URL={gh.server_url}", flush=True)
        print(f"GITHUB_API_URL={gh.api_url}", flush=True)
        print(f"GITHUB_TOKEN={gh.token}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
