"""JSON bodies in the shape GitHub's REST API returns, with every URL on the stand-in's host.

Only the fields clients read (PyGithub's `_useAttributes`) plus the usual neighbours; URLs are
what PyGithub builds later calls from (`url`, `issue_url`, ...), so they must be right.
"""

from __future__ import annotations

import base64
import zlib
from datetime import UTC
from typing import Any
from urllib.parse import quote

from tests.stand_ins.github.bare import CommitObject, Identity, TreeEntry
from tests.stand_ins.github.state import (
    REACTIONS,
    Comment,
    Hub,
    Issue,
    Label,
    Reaction,
    Repo,
    User,
    node_id,
)

_PERMISSION_OF_ROLE = {
    "admin": "admin",
    "maintain": "write",
    "write": "write",
    "triage": "read",
    "read": "read",
    "none": "none",
}


def repo_api(hub: Hub, repo: Repo) -> str:
    return f"{hub.api_url}/repos/{repo.owner}/{repo.name}"


def repo_html(hub: Hub, repo: Repo) -> str:
    return f"{hub.server_url}/{repo.owner}/{repo.name}"


def user_json(hub: Hub, login: str, *, full: bool = False) -> dict[str, Any]:
    user = hub.users.get(login) or User(login, 0)
    api = f"{hub.api_url}/users/{quote(login)}"
    html = (
        f"{hub.server_url}/apps/{login.removesuffix('[bot]')}"
        if user.type == "Bot"
        else f"{hub.server_url}/{login}"
    )
    data: dict[str, Any] = {
        "login": login,
        "id": user.id,
        "node_id": node_id("U" if user.type != "Bot" else "BOT", user.id),
        "avatar_url": f"{hub.server_url}/avatars/u/{user.id}",
        "gravatar_id": "",
        "url": api,
        "html_url": html,
        "followers_url": f"{api}/followers",
        "following_url": f"{api}/following{{/other_user}}",
        "repos_url": f"{api}/repos",
        "organizations_url": f"{api}/orgs",
        "received_events_url": f"{api}/received_events",
        "type": user.type,
        "user_view_type": "public",
        "site_admin": False,
    }
    if full:
        data |= {"name": user.name, "email": user.email, "company": None, "blog": ""}
        data |= {"location": None, "bio": None, "public_repos": 0, "followers": 0}
        data |= {"following": 0, "created_at": "2020-01-01T00:00:00Z"}
        data |= {"updated_at": "2020-01-01T00:00:00Z"}
    return data


def repo_json(hub: Hub, repo: Repo, viewer: str | None = None) -> dict[str, Any]:
    api, html = repo_api(hub, repo), repo_html(hub, repo)
    data: dict[str, Any] = {
        "id": repo.id,
        "node_id": node_id("R", repo.id),
        "name": repo.name,
        "full_name": repo.full_name,
        "private": repo.private,
        "visibility": "private" if repo.private else "public",
        "owner": user_json(hub, repo.owner),
        "html_url": html,
        "description": None,
        "fork": False,
        "url": api,
        "pulls_url": f"{api}/pulls{{/number}}",
        "issues_url": f"{api}/issues{{/number}}",
        "git_refs_url": f"{api}/git/refs{{/sha}}",
        "clone_url": f"{html}.git",
        "git_url": f"{html}.git",
        "svn_url": html,
        "ssh_url": f"git@{hub.server_url.split('://', 1)[-1]}:{repo.full_name}.git",
        "created_at": repo.created_at,
        "updated_at": repo.created_at,
        "pushed_at": repo.created_at,
        "default_branch": repo.default_branch,
        "archived": False,
        "disabled": False,
        "has_issues": True,
        "open_issues_count": sum(1 for i in repo.issues.values() if i.state == "open"),
        "allow_merge_commit": True,
        "allow_squash_merge": True,
        "allow_rebase_merge": True,
        "delete_branch_on_merge": False,
    }
    if viewer is not None:
        role = hub.role(repo, viewer)
        rank = ("none", "read", "triage", "write", "maintain", "admin").index(role)
        data["permissions"] = {
            "admin": rank >= 5,
            "maintain": rank >= 4,
            "push": rank >= 3,
            "triage": rank >= 2,
            "pull": rank >= 1,
        }
    return data


def permission_json(hub: Hub, repo: Repo, login: str) -> dict[str, Any]:
    role = hub.role(repo, login)
    return {
        "permission": _PERMISSION_OF_ROLE[role],
        "role_name": role,
        "user": user_json(hub, login) | {"permissions": _role_flags(role)},
    }


def _role_flags(role: str) -> dict[str, bool]:
    rank = ("none", "read", "triage", "write", "maintain", "admin").index(role)
    return {
        "admin": rank >= 5,
        "maintain": rank >= 4,
        "push": rank >= 3,
        "triage": rank >= 2,
        "pull": rank >= 1,
    }


# -- git data


def identity_json(identity: Identity) -> dict[str, Any]:
    date = identity.when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"name": identity.name, "email": identity.email, "date": date}


UNSIGNED = {
    "verified": False,
    "reason": "unsigned",
    "signature": None,
    "payload": None,
    "verified_at": None,
}


def git_commit_json(hub: Hub, repo: Repo, commit: CommitObject) -> dict[str, Any]:
    api, html = repo_api(hub, repo), repo_html(hub, repo)
    return {
        "sha": commit.sha,
        "node_id": node_id("C", int(commit.sha[:8], 16)),
        "url": f"{api}/git/commits/{commit.sha}",
        "html_url": f"{html}/commit/{commit.sha}",
        "author": identity_json(commit.author),
        "committer": identity_json(commit.committer),
        "tree": {"sha": commit.tree, "url": f"{api}/git/trees/{commit.tree}"},
        "message": commit.message,
        "parents": [
            {"sha": p, "url": f"{api}/git/commits/{p}", "html_url": f"{html}/commit/{p}"}
            for p in commit.parents
        ],
        "verification": repo.verification.get(commit.sha, UNSIGNED),
    }


def commit_json(hub: Hub, repo: Repo, commit: CommitObject) -> dict[str, Any]:
    """The /commits/{sha} shape (a Commit wrapping the GitCommit); no `files` or `stats`."""
    api, html = repo_api(hub, repo), repo_html(hub, repo)
    inner = git_commit_json(hub, repo, commit)
    inner.pop("sha")
    inner.pop("node_id")
    inner.pop("html_url")
    inner["comment_count"] = 0
    return {
        "sha": commit.sha,
        "node_id": node_id("C", int(commit.sha[:8], 16)),
        "commit": inner,
        "url": f"{api}/commits/{commit.sha}",
        "html_url": f"{html}/commit/{commit.sha}",
        "comments_url": f"{api}/commits/{commit.sha}/comments",
        "author": None,
        "committer": None,
        "parents": [
            {"sha": p, "url": f"{api}/commits/{p}", "html_url": f"{html}/commit/{p}"}
            for p in commit.parents
        ],
    }


def branch_json(hub: Hub, repo: Repo, name: str, commit: CommitObject) -> dict[str, Any]:
    api, html = repo_api(hub, repo), repo_html(hub, repo)
    return {
        "name": name,
        "commit": commit_json(hub, repo, commit),
        "_links": {"self": f"{api}/branches/{quote(name)}", "html": f"{html}/tree/{name}"},
        "protected": False,
        "protection": {"enabled": False, "required_status_checks": {"enforcement_level": "off"}},
        "protection_url": f"{api}/branches/{quote(name)}/protection",
    }


def short_branch_json(hub: Hub, repo: Repo, name: str, sha: str) -> dict[str, Any]:
    return {
        "name": name,
        "commit": {"sha": sha, "url": f"{repo_api(hub, repo)}/commits/{sha}"},
        "protected": False,
    }


def ref_json(hub: Hub, repo: Repo, ref: str, sha: str, kind: str) -> dict[str, Any]:
    api = repo_api(hub, repo)
    return {
        "ref": ref,
        "node_id": node_id("REF", zlib.crc32(ref.encode())),
        "url": f"{api}/git/{quote(ref)}",
        "object": {"sha": sha, "type": kind, "url": f"{api}/git/{kind}s/{sha}"},
    }


def tree_json(hub: Hub, repo: Repo, sha: str, entries: list[TreeEntry]) -> dict[str, Any]:
    api = repo_api(hub, repo)
    return {
        "sha": sha,
        "url": f"{api}/git/trees/{sha}",
        "tree": [
            {
                "path": e.path,
                "mode": e.mode,
                "type": e.type,
                "sha": e.sha,
                **({"size": e.size} if e.size is not None else {}),
                "url": f"{api}/git/{e.type}s/{e.sha}",
            }
            for e in entries
        ],
        "truncated": False,
    }


def blob_json(hub: Hub, repo: Repo, sha: str, data: bytes) -> dict[str, Any]:
    encoded = base64.b64encode(data).decode()
    wrapped = "\n".join(encoded[i : i + 60] for i in range(0, len(encoded), 60))
    return {
        "sha": sha,
        "node_id": node_id("B", int(sha[:8], 16)),
        "size": len(data),
        "url": f"{repo_api(hub, repo)}/git/blobs/{sha}",
        "content": wrapped + ("\n" if wrapped else ""),
        "encoding": "base64",
    }


# -- issues and pull requests


def label_json(hub: Hub, repo: Repo, label: Label) -> dict[str, Any]:
    return {
        "id": label.id,
        "node_id": node_id("LA", label.id),
        "url": f"{repo_api(hub, repo)}/labels/{quote(label.name)}",
        "name": label.name,
        "color": label.color,
        "default": False,
        "description": label.description,
    }


def reactions_summary(hub: Hub, url: str, reactions: list[Reaction]) -> dict[str, Any]:
    counts = {content: sum(r.content == content for r in reactions) for content in REACTIONS}
    return {"url": f"{url}/reactions", "total_count": len(reactions), **counts}


def reaction_json(hub: Hub, reaction: Reaction) -> dict[str, Any]:
    return {
        "id": reaction.id,
        "node_id": node_id("REA", reaction.id),
        "user": user_json(hub, reaction.user),
        "content": reaction.content,
        "created_at": reaction.created_at,
    }


def association(hub: Hub, repo: Repo, login: str) -> str:
    if login.lower() == repo.owner.lower():
        return "OWNER"
    return "COLLABORATOR" if hub.is_collaborator(repo, login) else "NONE"


def comment_json(hub: Hub, repo: Repo, comment: Comment) -> dict[str, Any]:
    api, html = repo_api(hub, repo), repo_html(hub, repo)
    url = f"{api}/issues/comments/{comment.id}"
    issue = repo.issues.get(comment.issue_number)
    page = "pull" if issue is not None and issue.pull is not None else "issues"
    return {
        "id": comment.id,
        "node_id": node_id("IC", comment.id),
        "url": url,
        "html_url": f"{html}/{page}/{comment.issue_number}#issuecomment-{comment.id}",
        "issue_url": f"{api}/issues/{comment.issue_number}",
        "body": comment.body,
        "user": user_json(hub, comment.user),
        "created_at": comment.created_at,
        "updated_at": comment.updated_at,
        "author_association": association(hub, repo, comment.user),
        "performed_via_github_app": None,
        "reactions": reactions_summary(hub, url, comment.reactions),
    }


def issue_json(hub: Hub, repo: Repo, issue: Issue) -> dict[str, Any]:
    api, html = repo_api(hub, repo), repo_html(hub, repo)
    url = f"{api}/issues/{issue.number}"
    page = "pull" if issue.pull is not None else "issues"
    data: dict[str, Any] = {
        "url": url,
        "repository_url": api,
        "labels_url": f"{url}/labels{{/name}}",
        "comments_url": f"{url}/comments",
        "events_url": f"{url}/events",
        "html_url": f"{html}/{page}/{issue.number}",
        "id": issue.id,
        "node_id": node_id("I", issue.id),
        "number": issue.number,
        "title": issue.title,
        "user": user_json(hub, issue.user),
        "labels": [label_json(hub, repo, repo.labels[name]) for name in issue.labels],
        "state": issue.state,
        "state_reason": None if issue.state == "open" else "completed",
        "locked": False,
        "assignee": None,
        "assignees": [],
        "milestone": None,
        "comments": sum(c.issue_number == issue.number for c in repo.comments.values()),
        "created_at": issue.created_at,
        "updated_at": issue.updated_at,
        "closed_at": issue.closed_at,
        "author_association": association(hub, repo, issue.user),
        "active_lock_reason": None,
        "body": issue.body,
        "reactions": reactions_summary(hub, url, issue.reactions),
    }
    if issue.pull is not None:
        data["draft"] = issue.pull.draft
        data["pull_request"] = {
            "url": f"{api}/pulls/{issue.number}",
            "html_url": f"{html}/pull/{issue.number}",
            "diff_url": f"{html}/pull/{issue.number}.diff",
            "patch_url": f"{html}/pull/{issue.number}.patch",
            "merged_at": None,
        }
    return data


def _part(hub: Hub, repo: Repo, ref: str, sha: str) -> dict[str, Any]:
    return {
        "label": f"{repo.owner}:{ref}",
        "ref": ref,
        "sha": sha,
        "user": user_json(hub, repo.owner),
        "repo": repo_json(hub, repo),
    }


def pull_json(hub: Hub, repo: Repo, issue: Issue, *, full: bool = True) -> dict[str, Any]:
    pull = issue.pull
    assert pull is not None
    api, html = repo_api(hub, repo), repo_html(hub, repo)
    url, issue_url = f"{api}/pulls/{issue.number}", f"{api}/issues/{issue.number}"
    data: dict[str, Any] = {
        "url": url,
        "id": issue.pull_id,
        "node_id": node_id("PR", issue.pull_id),
        "html_url": f"{html}/pull/{issue.number}",
        "diff_url": f"{html}/pull/{issue.number}.diff",
        "patch_url": f"{html}/pull/{issue.number}.patch",
        "issue_url": issue_url,
        "commits_url": f"{url}/commits",
        "review_comments_url": f"{url}/comments",
        "review_comment_url": f"{api}/pulls/comments{{/number}}",
        "comments_url": f"{issue_url}/comments",
        "statuses_url": f"{api}/statuses/{pull.head_sha}",
        "number": issue.number,
        "state": issue.state,
        "locked": False,
        "title": issue.title,
        "user": user_json(hub, issue.user),
        "body": issue.body,
        "labels": [label_json(hub, repo, repo.labels[name]) for name in issue.labels],
        "milestone": None,
        "active_lock_reason": None,
        "created_at": issue.created_at,
        "updated_at": issue.updated_at,
        "closed_at": issue.closed_at,
        "merged_at": None,
        "merge_commit_sha": None,
        "assignee": None,
        "assignees": [],
        "requested_reviewers": [user_json(hub, login) for login in pull.requested_reviewers],
        "requested_teams": [],
        "head": _part(hub, repo, pull.head_ref, pull.head_sha),
        "base": _part(hub, repo, pull.base_ref, pull.base_sha),
        "_links": {
            "self": {"href": url},
            "html": {"href": f"{html}/pull/{issue.number}"},
            "issue": {"href": issue_url},
            "comments": {"href": f"{issue_url}/comments"},
            "review_comments": {"href": f"{url}/comments"},
            "commits": {"href": f"{url}/commits"},
            "statuses": {"href": f"{api}/statuses/{pull.head_sha}"},
        },
        "author_association": association(hub, repo, issue.user),
        "auto_merge": None,
        "draft": pull.draft,
    }
    if full:
        data |= {
            "merged": pull.merged,
            "mergeable": None,
            "rebaseable": None,
            "mergeable_state": "unknown",
            "merged_by": None,
            "comments": sum(c.issue_number == issue.number for c in repo.comments.values()),
            "review_comments": 0,
            "maintainer_can_modify": pull.maintainer_can_modify,
            "commits": repo.bare.commits_between(pull.base_sha, pull.head_sha),
        }
    return data
