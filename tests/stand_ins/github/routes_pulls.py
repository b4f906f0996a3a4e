"""Pull requests and the issue side of them: labels, comments, reactions, reviewers.

Validation mirrors GitHub's answers a publisher has to handle: 422 "A pull request already
exists for owner:branch." on a duplicate, "No commits between ..." for an empty branch, the
65,536-character body limit, reviewers who are not collaborators, and 403 "GitHub Actions is
not permitted to create or approve pull requests." when the repository setting is off.
`GET /pulls?head=branch` without the `owner:` prefix ignores the filter, as GitHub does.
"""

from __future__ import annotations

from typing import Any

from tests.stand_ins.github import payloads
from tests.stand_ins.github.rest import Call, Reply, paginate, route
from tests.stand_ins.github.state import (
    BOT_LOGIN,
    COMMENT,
    REACTIONS,
    READ_ISSUES,
    READ_PULLS,
    TRIAGE,
    WRITE_ISSUES,
    WRITE_PULLS,
    ApiError,
    Comment,
    Hub,
    Issue,
    Label,
    Pull,
    Reaction,
    Repo,
    now_iso,
    validation_failed,
)

ACTIONS_MAY_NOT = "GitHub Actions is not permitted to create or approve pull requests."
NOT_COLLABORATOR = (
    "Reviews may only be requested from collaborators. One or more of the users or teams you "
    "specified is not a collaborator of the {repo} repository."
)


# -- pull requests


@route("GET", "/repos/{owner}/{repo}/pulls")
def list_pulls(call: Call) -> Reply:
    repo = call.repo(READ_PULLS)
    state = call.query.get("state", "open")
    if state not in {"open", "closed", "all"}:
        raise validation_failed(resource="PullRequest", field="state", code="invalid")
    tips = repo.bare.branches()
    pulls = [i for i in repo.issues.values() if i.pull is not None]
    for issue in pulls:
        call.hub.refresh_pull(repo, issue, tips)
    pulls = [i for i in pulls if state in {"all", i.state}]
    pulls = [i for i in pulls if _head_matches(repo, i, call.query.get("head"))]
    if "base" in call.query:
        pulls = [i for i in pulls if i.pull is not None and i.pull.base_ref == call.query["base"]]
    sort = call.query.get("sort", "created")
    key = "updated_at" if sort == "updated" else "created_at"
    # GitHub's default direction: desc for `created`, asc for the other sorts.
    reverse = call.query.get("direction", "desc" if sort == "created" else "asc") == "desc"
    pulls.sort(key=lambda i: (getattr(i, key), i.number), reverse=reverse)
    return paginate(call, [payloads.pull_json(call.hub, repo, i, full=False) for i in pulls])


def _head_matches(repo: Repo, issue: Issue, head: str | None) -> bool:
    if not head or ":" not in head or issue.pull is None:
        return True  # GitHub ignores a head filter without the owner: prefix
    owner, _, ref = head.partition(":")
    return owner.lower() == repo.owner.lower() and issue.pull.head_ref == ref


@route("POST", "/repos/{owner}/{repo}/pulls")
def create_pull(call: Call) -> Reply:
    repo = call.repo(WRITE_PULLS)
    if call.login == BOT_LOGIN and not repo.actions_can_open_prs:
        raise ApiError(403, ACTIONS_MAY_NOT)
    title = call.text("title")
    if not title:
        raise validation_failed(resource="PullRequest", field="title", code="missing_field")
    body = call.body_text()
    head_ref, base_ref = _head_ref(call, repo), call.text("base", required=True) or ""
    tips = repo.bare.branches()
    if head_ref not in tips:
        raise validation_failed(resource="PullRequest", field="head", code="invalid")
    if base_ref not in tips:
        raise validation_failed(resource="PullRequest", field="base", code="invalid")
    _refuse_duplicate(call.hub, repo, head_ref, base_ref, tips)
    if repo.bare.commits_between(tips[base_ref], tips[head_ref]) == 0:
        message = f"No commits between {base_ref} and {head_ref}"
        raise validation_failed(resource="PullRequest", code="custom", message=message)
    draft = bool(call.field("draft", False))
    if draft and not repo.drafts_supported:
        raise ApiError(422, "Draft pull requests are not supported in this repository.")
    pull = Pull(head_ref, base_ref, tips[head_ref], tips[base_ref], draft=draft)
    pull.maintainer_can_modify = bool(call.field("maintainer_can_modify", False))
    issue = new_issue(call.hub, repo, title, body, call.need_login(), pull=pull)
    data = payloads.pull_json(call.hub, repo, issue)
    return Reply(201, data, {"Location": data["url"]})


def _head_ref(call: Call, repo: Repo) -> str:
    head = call.text("head", required=True) or ""
    owner, sep, ref = head.rpartition(":")
    if sep and owner.lower() != repo.owner.lower():
        raise validation_failed(resource="PullRequest", field="head", code="invalid")
    return ref


def _refuse_duplicate(hub: Hub, repo: Repo, head: str, base: str, tips: dict[str, str]) -> None:
    for other in repo.issues.values():
        hub.refresh_pull(repo, other, tips)
        pull = other.pull
        if pull and other.state == "open" and pull.head_ref == head and pull.base_ref == base:
            message = f"A pull request already exists for {repo.owner}:{head}."
            raise validation_failed(resource="PullRequest", code="custom", message=message)


def new_issue(
    hub: Hub, repo: Repo, title: str, body: str | None, login: str, *, pull: Pull | None = None
) -> Issue:
    """File a new issue (or pull request) under the next number."""
    issue = Issue(repo.next_number(), hub.new_id(), title, body, login, pull=pull)
    if pull is not None:
        issue.pull_id = hub.new_id()
    repo.issues[issue.number] = issue
    return issue


@route("GET", "/repos/{owner}/{repo}/pulls/{number:int}")
def get_pull(call: Call) -> Reply:
    repo = call.repo(READ_PULLS)
    return Reply(200, payloads.pull_json(call.hub, repo, call.hub.pull(repo, call.number())))


@route("PATCH", "/repos/{owner}/{repo}/pulls/{number:int}")
def update_pull(call: Call) -> Reply:
    repo = call.repo(WRITE_PULLS)
    issue = call.hub.pull(repo, call.number())
    pull = issue.pull
    assert pull is not None
    title, body = call.text("title"), call.body_text()
    base = call.text("base")
    tips = repo.bare.branches()
    if base is not None:
        if base not in tips:
            raise validation_failed(resource="PullRequest", field="base", code="invalid")
        pull.base_ref, pull.base_sha = base, tips[base]
    if title is not None:
        issue.title = title
    given = call.body if isinstance(call.body, dict) else {}
    if "body" in given:
        issue.body = body
    if "maintainer_can_modify" in given:
        pull.maintainer_can_modify = bool(call.field("maintainer_can_modify"))
    _set_state(call, repo, issue, tips)
    issue.updated_at = now_iso()
    return Reply(200, payloads.pull_json(call.hub, repo, issue))


def _set_state(call: Call, repo: Repo, issue: Issue, tips: dict[str, str]) -> None:
    state = call.text("state")
    if state is None or state == issue.state:
        return
    if state not in {"open", "closed"}:
        raise validation_failed(resource="PullRequest", field="state", code="invalid")
    if state == "open" and issue.pull is not None:
        if issue.pull.head_ref not in tips:
            raise ApiError(422, "state cannot be changed. The head branch was deleted.")
        _refuse_duplicate(call.hub, repo, issue.pull.head_ref, issue.pull.base_ref, tips)
    issue.state = "open" if state == "open" else "closed"
    issue.closed_at = None if state == "open" else now_iso()


@route("POST", "/repos/{owner}/{repo}/pulls/{number:int}/requested_reviewers")
def request_reviewers(call: Call) -> Reply:
    repo = call.repo(WRITE_PULLS)
    issue = call.hub.pull(repo, call.number())
    pull = issue.pull
    assert pull is not None
    reviewers = _logins(call.field("reviewers", []))
    if _logins(call.field("team_reviewers", [])):
        raise ApiError(422, NOT_COLLABORATOR.format(repo=repo.full_name))
    for login in reviewers:
        if login.lower() == issue.user.lower():
            raise ApiError(422, "Review cannot be requested from pull request author.")
        if login not in call.hub.users or not call.hub.is_collaborator(repo, login):
            raise ApiError(422, NOT_COLLABORATOR.format(repo=repo.full_name))
    known = {r.lower() for r in pull.requested_reviewers}
    pull.requested_reviewers += [r for r in reviewers if r.lower() not in known]
    return Reply(201, payloads.pull_json(call.hub, repo, issue))


def _logins(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(422, "Invalid request.\n\nreviewers must be a list of logins.")
    return list(value)


@route("GET", "/repos/{owner}/{repo}/pulls/{number:int}/requested_reviewers")
def list_reviewers(call: Call) -> Reply:
    repo = call.repo(READ_PULLS)
    pull = call.hub.pull(repo, call.number()).pull
    assert pull is not None
    users = [payloads.user_json(call.hub, login) for login in pull.requested_reviewers]
    return Reply(200, {"users": users, "teams": []})


@route("DELETE", "/repos/{owner}/{repo}/pulls/{number:int}/requested_reviewers")
def remove_reviewers(call: Call) -> Reply:
    repo = call.repo(WRITE_PULLS)
    issue = call.hub.pull(repo, call.number())
    pull = issue.pull
    assert pull is not None
    gone = {r.lower() for r in _logins(call.field("reviewers", []))}
    pull.requested_reviewers = [r for r in pull.requested_reviewers if r.lower() not in gone]
    return Reply(200, payloads.pull_json(call.hub, repo, issue))


# -- issues


@route("POST", "/repos/{owner}/{repo}/issues")
def create_issue(call: Call) -> Reply:
    repo = call.repo(COMMENT)
    title = call.text("title", required=True) or ""
    issue = new_issue(call.hub, repo, title, call.body_text(), call.need_login())
    data = payloads.issue_json(call.hub, repo, issue)
    return Reply(201, data, {"Location": data["url"]})


@route("GET", "/repos/{owner}/{repo}/issues/{number:int}")
def get_issue(call: Call) -> Reply:
    repo = call.repo(READ_ISSUES)
    issue = call.hub.issue(repo, call.number())
    call.hub.refresh_pull(repo, issue)
    return Reply(200, payloads.issue_json(call.hub, repo, issue))


@route("PATCH", "/repos/{owner}/{repo}/issues/{number:int}")
def update_issue(call: Call) -> Reply:
    repo = call.repo(TRIAGE)
    issue = call.hub.issue(repo, call.number())
    title = call.text("title")
    if title is not None:
        issue.title = title
    if isinstance(call.body, dict) and "body" in call.body:
        issue.body = call.body_text()
    if isinstance(call.field("labels"), list):
        issue.labels = []
        _add_labels(call.hub, repo, issue, call.field("labels"))
    _set_state(call, repo, issue, repo.bare.branches())
    issue.updated_at = now_iso()
    return Reply(200, payloads.issue_json(call.hub, repo, issue))


# -- labels


def _label_names(call: Call) -> list[str]:
    raw = call.body.get("labels") if isinstance(call.body, dict) else call.body
    if not isinstance(raw, list) or not raw:
        raise ApiError(422, 'Invalid request.\n\nNo subschema in "anyOf" matched.')
    names = [item.get("name") if isinstance(item, dict) else item for item in raw]
    if not all(isinstance(n, str) and n for n in names):
        raise validation_failed(resource="Label", field="name", code="invalid")
    return [str(n) for n in names]


def _add_labels(hub: Hub, repo: Repo, issue: Issue, names: list[str]) -> None:
    """Attach labels, creating the missing ones in the repository as GitHub does."""
    for name in names:
        known = next((k for k in repo.labels if k.lower() == name.lower()), None)
        if known is None:
            repo.labels[name] = Label(hub.new_id(), name)
            known = name
        if known not in issue.labels:
            issue.labels.append(known)


def _labels_reply(call: Call, repo: Repo, issue: Issue) -> Reply:
    issue.updated_at = now_iso()
    return Reply(200, [payloads.label_json(call.hub, repo, repo.labels[n]) for n in issue.labels])


@route("GET", "/repos/{owner}/{repo}/issues/{number:int}/labels")
def list_issue_labels(call: Call) -> Reply:
    repo = call.repo(READ_ISSUES)
    issue = call.hub.issue(repo, call.number())
    return paginate(
        call, [payloads.label_json(call.hub, repo, repo.labels[n]) for n in issue.labels]
    )


@route("POST", "/repos/{owner}/{repo}/issues/{number:int}/labels")
def add_labels(call: Call) -> Reply:
    repo = call.repo(TRIAGE)
    issue = call.hub.issue(repo, call.number())
    _add_labels(call.hub, repo, issue, _label_names(call))
    return _labels_reply(call, repo, issue)


@route("PUT", "/repos/{owner}/{repo}/issues/{number:int}/labels")
def set_labels(call: Call) -> Reply:
    repo = call.repo(TRIAGE)
    issue = call.hub.issue(repo, call.number())
    issue.labels = []
    _add_labels(call.hub, repo, issue, _label_names(call))
    return _labels_reply(call, repo, issue)


@route("DELETE", "/repos/{owner}/{repo}/issues/{number:int}/labels/{name}")
def remove_label(call: Call) -> Reply:
    repo = call.repo(TRIAGE)
    issue = call.hub.issue(repo, call.number())
    match = next((n for n in issue.labels if n.lower() == call.args["name"].lower()), None)
    if match is None:
        raise ApiError(404, "Label does not exist")
    issue.labels.remove(match)
    return _labels_reply(call, repo, issue)


@route("DELETE", "/repos/{owner}/{repo}/issues/{number:int}/labels")
def clear_labels(call: Call) -> Reply:
    repo = call.repo(TRIAGE)
    call.hub.issue(repo, call.number()).labels = []
    return Reply(204)


@route("GET", "/repos/{owner}/{repo}/labels")
def list_labels(call: Call) -> Reply:
    repo = call.repo(READ_ISSUES)
    return paginate(call, [payloads.label_json(call.hub, repo, lb) for lb in repo.labels.values()])


@route("POST", "/repos/{owner}/{repo}/labels")
def create_label(call: Call) -> Reply:
    repo = call.repo(TRIAGE)
    name = call.text("name", required=True) or ""
    if any(k.lower() == name.lower() for k in repo.labels):
        raise validation_failed(resource="Label", field="name", code="already_exists")
    label = Label(call.hub.new_id(), name, call.text("color") or "ededed", call.text("description"))
    repo.labels[name] = label
    return Reply(201, payloads.label_json(call.hub, repo, label))


# -- comments


@route("GET", "/repos/{owner}/{repo}/issues/{number:int}/comments")
def list_comments(call: Call) -> Reply:
    repo = call.repo(READ_ISSUES)
    number = call.hub.issue(repo, call.number()).number
    comments = sorted((c for c in repo.comments.values() if c.issue_number == number), key=_id)
    return paginate(call, [payloads.comment_json(call.hub, repo, c) for c in comments])


def _id(comment: Comment) -> int:
    return comment.id


@route("POST", "/repos/{owner}/{repo}/issues/{number:int}/comments")
def create_comment(call: Call) -> Reply:
    repo = call.repo(COMMENT)
    issue = call.hub.issue(repo, call.number())
    body = call.body_text(required=True) or ""
    comment = Comment(call.hub.new_id(), issue.number, body, call.need_login())
    repo.comments[comment.id] = comment
    data = payloads.comment_json(call.hub, repo, comment)
    return Reply(201, data, {"Location": data["url"]})


@route("GET", "/repos/{owner}/{repo}/issues/comments/{comment_id:int}")
def get_comment(call: Call) -> Reply:
    repo = call.repo(READ_ISSUES)
    comment = call.hub.comment(repo, call.number("comment_id"))
    return Reply(200, payloads.comment_json(call.hub, repo, comment))


@route("PATCH", "/repos/{owner}/{repo}/issues/comments/{comment_id:int}")
def update_comment(call: Call) -> Reply:
    repo = call.repo(COMMENT)
    comment = _own_comment(call, repo)
    comment.body = call.body_text(required=True) or ""
    comment.updated_at = now_iso()
    return Reply(200, payloads.comment_json(call.hub, repo, comment))


@route("DELETE", "/repos/{owner}/{repo}/issues/comments/{comment_id:int}")
def delete_comment(call: Call) -> Reply:
    repo = call.repo(COMMENT)
    del repo.comments[_own_comment(call, repo).id]
    return Reply(204)


def _own_comment(call: Call, repo: Repo) -> Comment:
    """A comment the caller may change: its own, or any with write access."""
    comment = call.hub.comment(repo, call.number("comment_id"))
    token = call.token
    if token is not None and token.kind == "user" and token.login != comment.user:
        call.hub.authorize(token, repo, WRITE_ISSUES)
    return comment


# -- reactions


def _react(call: Call, reactions: list[Reaction]) -> Reply:
    content = call.field("content")
    if content not in REACTIONS:
        raise validation_failed(resource="Reaction", field="content", code="invalid")
    login = call.need_login()
    for reaction in reactions:
        if reaction.user == login and reaction.content == content:
            return Reply(200, payloads.reaction_json(call.hub, reaction))
    reaction = Reaction(call.hub.new_id(), str(content), login)
    reactions.append(reaction)
    return Reply(201, payloads.reaction_json(call.hub, reaction))


def _list_reactions(call: Call, reactions: list[Reaction]) -> Reply:
    wanted = call.query.get("content")
    chosen = [r for r in reactions if wanted is None or r.content == wanted]
    return paginate(call, [payloads.reaction_json(call.hub, r) for r in chosen])


def _unreact(call: Call, reactions: list[Reaction]) -> Reply:
    reaction_id = call.number("reaction_id")
    match = next((r for r in reactions if r.id == reaction_id), None)
    if match is None:
        raise ApiError(404, "Not Found")
    reactions.remove(match)
    return Reply(204)


@route("POST", "/repos/{owner}/{repo}/issues/comments/{comment_id:int}/reactions")
def react_to_comment(call: Call) -> Reply:
    repo = call.repo(COMMENT)
    return _react(call, call.hub.comment(repo, call.number("comment_id")).reactions)


@route("GET", "/repos/{owner}/{repo}/issues/comments/{comment_id:int}/reactions")
def comment_reactions(call: Call) -> Reply:
    repo = call.repo(READ_ISSUES)
    return _list_reactions(call, call.hub.comment(repo, call.number("comment_id")).reactions)


@route(
    "DELETE", "/repos/{owner}/{repo}/issues/comments/{comment_id:int}/reactions/{reaction_id:int}"
)
def unreact_comment(call: Call) -> Reply:
    repo = call.repo(COMMENT)
    return _unreact(call, call.hub.comment(repo, call.number("comment_id")).reactions)


@route("POST", "/repos/{owner}/{repo}/issues/{number:int}/reactions")
def react_to_issue(call: Call) -> Reply:
    repo = call.repo(COMMENT)
    return _react(call, call.hub.issue(repo, call.number()).reactions)


@route("GET", "/repos/{owner}/{repo}/issues/{number:int}/reactions")
def issue_reactions(call: Call) -> Reply:
    repo = call.repo(READ_ISSUES)
    return _list_reactions(call, call.hub.issue(repo, call.number()).reactions)


@route("DELETE", "/repos/{owner}/{repo}/issues/{number:int}/reactions/{reaction_id:int}")
def unreact_issue(call: Call) -> Reply:
    repo = call.repo(COMMENT)
    return _unreact(call, call.hub.issue(repo, call.number()).reactions)
