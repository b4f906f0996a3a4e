"""The sliver of GraphQL a publisher needs: flipping a pull request's draft state.

REST cannot change `draft` after creation (PATCH ignores it); GitHub does it with the
`markPullRequestReadyForReview` and `convertPullRequestToDraft` mutations, which is what
PyGithub's `PullRequest.mark_ready_for_review()` / `convert_to_draft()` send to
`<api root>/graphql` (`/api/graphql` on Enterprise Server). Anything else gets a GraphQL error.
GraphQL answers errors with HTTP 200 and an `errors` list, as GitHub does.
"""

from __future__ import annotations

import re
from typing import Any

from tests.stand_ins.github.rest import Reply
from tests.stand_ins.github.state import WRITE_PULLS, ApiError, Hub, Issue, Repo, Token, node_id

MUTATIONS = {"markPullRequestReadyForReview": False, "convertPullRequestToDraft": True}
_MUTATION_RE = re.compile(r"\b(" + "|".join(MUTATIONS) + r")\s*\(")


def answer(hub: Hub, token: Token | None, body: Any, *, method: str = "POST") -> Reply:
    """The reply to one request to /graphql (GitHub takes only POST there)."""
    if method != "POST":
        raise ApiError(404, "Not Found")
    if token is None:
        raise ApiError(401, "This endpoint requires you to be authenticated.")
    query = body.get("query") if isinstance(body, dict) else None
    match = _MUTATION_RE.search(query) if isinstance(query, str) else None
    if match is None:
        known = " and ".join(MUTATIONS)
        return _error("UNSUPPORTED", f"the GitHub stand-in's GraphQL knows only {known}")
    name = match.group(1)
    variables = body.get("variables") or {}
    mutation_input = variables.get("input") or {}
    target = _find_pull(hub, mutation_input.get("pullRequestId"))
    if target is None:
        pr_id = mutation_input.get("pullRequestId")
        return _error("NOT_FOUND", f"Could not resolve to a node with the global id of '{pr_id}'")
    repo, issue = target
    try:
        hub.authorize(token, repo, WRITE_PULLS)
    except ApiError as exc:
        return _error("FORBIDDEN", exc.message)
    assert issue.pull is not None
    issue.pull.draft = MUTATIONS[name]
    result = {
        "clientMutationId": mutation_input.get("clientMutationId"),
        "pullRequest": {"isDraft": issue.pull.draft, "number": issue.number},
    }
    return Reply(200, {"data": {name: result}})


def _find_pull(hub: Hub, wanted: Any) -> tuple[Repo, Issue] | None:
    for repo in hub.repos.values():
        for issue in repo.issues.values():
            if issue.pull is not None and node_id("PR", issue.pull_id) == wanted:
                return repo, issue
    return None


def _error(kind: str, message: str) -> Reply:
    return Reply(200, {"data": None, "errors": [{"type": kind, "message": message}]})
