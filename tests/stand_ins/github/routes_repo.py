"""REST routes about who and where: the API root, users, rate limit, repositories, branches."""

from __future__ import annotations

import time
from typing import Any

from tests.stand_ins.github import payloads
from tests.stand_ins.github.rest import Call, Reply, paginate, route
from tests.stand_ins.github.state import READ_CONTENTS, READ_META, ApiError

RATE_LIMIT = {"app": 1000, "user": 5000, None: 60}


@route("GET", "/")
def api_root(call: Call) -> Reply:
    api = call.hub.api_url
    return Reply(
        200,
        {
            "current_user_url": f"{api}/user",
            "repository_url": f"{api}/repos/{{owner}}/{{repo}}",
            "user_url": f"{api}/users/{{user}}",
            "rate_limit_url": f"{api}/rate_limit",
        },
    )


@route("GET", "/rate_limit")
def rate_limit(call: Call) -> Reply:
    limit = RATE_LIMIT[None if call.token is None else call.token.kind]
    rate = {"limit": limit, "remaining": limit, "reset": int(time.time()) + 3600, "used": 0}
    resources: dict[str, Any] = {name: dict(rate) for name in ("core", "search", "graphql")}
    return Reply(200, {"resources": resources, "rate": rate})


@route("GET", "/user")
def authenticated_user(call: Call) -> Reply:
    login = call.need_login()
    if call.token is not None and call.token.kind == "app":
        # Installation tokens (GITHUB_TOKEN) have no user behind them: real GitHub says 403.
        raise ApiError(403, "Resource not accessible by integration")
    return Reply(200, payloads.user_json(call.hub, login, full=True))


@route("GET", "/users/{login}")
def named_user(call: Call) -> Reply:
    login = call.args["login"]
    user = next((u for u in call.hub.users.values() if u.login.lower() == login.lower()), None)
    if user is None:
        raise ApiError(404, "Not Found")
    return Reply(200, payloads.user_json(call.hub, user.login, full=True))


@route("GET", "/repos/{owner}/{repo}")
def get_repo(call: Call) -> Reply:
    repo = call.repo(READ_META)
    viewer = call.login if call.token is not None and call.token.kind == "user" else None
    return Reply(200, payloads.repo_json(call.hub, repo, viewer))


@route("GET", "/repos/{owner}/{repo}/collaborators/{login}/permission")
def collaborator_permission(call: Call) -> Reply:
    repo = call.repo(READ_META)
    login = call.args["login"]
    if login not in call.hub.users:
        raise ApiError(404, "Not Found")
    return Reply(200, payloads.permission_json(call.hub, repo, login))


@route("GET", "/repos/{owner}/{repo}/collaborators/{login}")
def is_collaborator(call: Call) -> Reply:
    repo = call.repo(READ_META)
    if not call.hub.is_collaborator(repo, call.args["login"]):
        raise ApiError(404, "Not Found")
    return Reply(204)


@route("GET", "/repos/{owner}/{repo}/branches")
def list_branches(call: Call) -> Reply:
    repo = call.repo(READ_CONTENTS)
    tips = sorted(repo.bare.branches().items())
    return paginate(call, [payloads.short_branch_json(call.hub, repo, n, s) for n, s in tips])


@route("GET", "/repos/{owner}/{repo}/branches/{branch:path}")
def get_branch(call: Call) -> Reply:
    repo = call.repo(READ_CONTENTS)
    branch = call.args["branch"]
    sha = repo.bare.branches().get(branch)
    if sha is None:
        raise ApiError(404, "Branch not found")
    commit = repo.bare.read_commit(sha)
    return Reply(200, payloads.branch_json(call.hub, repo, branch, commit))


@route("GET", "/repos/{owner}/{repo}/commits/{ref:path}")
def get_commit(call: Call) -> Reply:
    repo = call.repo(READ_CONTENTS)
    ref = call.args["ref"]
    sha = repo.bare.resolve(ref)
    if sha is None:
        raise ApiError(422, f"No commit found for SHA: {ref}")
    return Reply(200, payloads.commit_json(call.hub, repo, repo.bare.read_commit(sha)))
