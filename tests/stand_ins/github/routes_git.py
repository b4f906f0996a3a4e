"""The Git Data API (blobs, trees, commits, refs), writing real objects into the bare repository.

Commit signing follows GitHub's rule for bots: a commit created with an app token (GITHUB_TOKEN)
and *no* author, committer or signature is attributed to the bot, committed by
"GitHub <noreply@github.com>" and reported as verified; anything else is unsigned. The stand-in
records the verification (it cannot sign with GitHub's key, so the object has no gpgsig header).
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

from tests.stand_ins.github import payloads
from tests.stand_ins.github.bare import GitError, Identity, parse_git_date
from tests.stand_ins.github.rest import Call, Reply, paginate, route
from tests.stand_ins.github.state import (
    READ_CONTENTS,
    WRITE_CONTENTS,
    ApiError,
    Hub,
    Repo,
    Token,
    validation_failed,
)

TREE_MODES = {
    "100644": "blob",
    "100755": "blob",
    "120000": "blob",
    "040000": "tree",
    "160000": "commit",
}
WEB_FLOW = ("GitHub", "noreply@github.com")
_BAD_OBJECT = "GitRPC::BadObjectState"
_FAKE_SIGNATURE = "-----BEGIN PGP SIGNATURE-----\n\n(stand-in)\n-----END PGP SIGNATURE-----\n"


def _typed(repo: Repo, sha: Any, kind: str) -> str:
    """``sha`` if it names an object of type ``kind`` here; 422 otherwise."""
    if not isinstance(sha, str) or repo.bare.object_type(sha) != kind:
        raise ApiError(
            422, _BAD_OBJECT if kind != "blob" else f"tree.sha {sha} is not a valid blob"
        )
    return sha


# -- blobs


@route("POST", "/repos/{owner}/{repo}/git/blobs")
def create_blob(call: Call) -> Reply:
    repo = call.repo(WRITE_CONTENTS)
    content = call.field("content")
    encoding = call.field("encoding", "utf-8")
    if not isinstance(content, str):
        raise validation_failed(resource="Blob", field="content", code="missing_field")
    if encoding in {"utf-8", "utf8"}:
        data = content.encode()
    elif encoding == "base64":
        try:
            data = base64.b64decode(content, validate=False)
        except binascii.Error as exc:
            raise ApiError(422, "Invalid Base64 content") from exc
    else:
        raise ApiError(422, f"encoding must be 'utf-8' or 'base64', not {encoding!r}")
    sha = repo.bare.write_blob(data)
    url = f"{payloads.repo_api(call.hub, repo)}/git/blobs/{sha}"
    return Reply(201, {"sha": sha, "url": url}, {"Location": url})


@route("GET", "/repos/{owner}/{repo}/git/blobs/{sha}")
def get_blob(call: Call) -> Reply:
    repo = call.repo(READ_CONTENTS)
    sha = call.args["sha"]
    if repo.bare.object_type(sha) != "blob":
        raise ApiError(404, "Not Found")
    return Reply(200, payloads.blob_json(call.hub, repo, sha, repo.bare.read_blob(sha)))


# -- trees


@route("POST", "/repos/{owner}/{repo}/git/trees")
def create_tree(call: Call) -> Reply:
    repo = call.repo(WRITE_CONTENTS)
    entries = call.field("tree")
    if not isinstance(entries, list):
        raise validation_failed(resource="Tree", field="tree", code="missing_field")
    base = call.field("base_tree")
    base_tree = _typed(repo, base, "tree") if base is not None else None
    changes = [_tree_change(repo, entry) for entry in entries]
    sha = repo.bare.build_tree(base_tree, changes)
    url = f"{payloads.repo_api(call.hub, repo)}/git/trees/{sha}"
    body = payloads.tree_json(call.hub, repo, sha, repo.bare.ls_tree(sha))
    return Reply(201, body, {"Location": url})


def _tree_change(repo: Repo, entry: Any) -> tuple[str, str, str | None]:
    """(path, mode, sha or None) for one `tree` entry; 422 for what GitHub rejects."""
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not entry["path"]:
        raise validation_failed(resource="Tree", field="path", code="missing_field")
    mode = str(entry.get("mode", ""))
    if mode not in TREE_MODES:
        raise ApiError(422, f"tree.mode {mode!r} is not a valid mode")
    kind = entry.get("type", TREE_MODES[mode])
    if kind != TREE_MODES[mode]:
        raise ApiError(422, f"tree.type {kind!r} does not match mode {mode}")
    if "content" in entry and entry["content"] is not None:
        if "sha" in entry and entry["sha"] is not None:
            raise ApiError(422, "Only one of 'sha' and 'content' may be given")
        return entry["path"], mode, repo.bare.write_blob(str(entry["content"]).encode())
    if "sha" not in entry:
        raise validation_failed(resource="Tree", field="sha", code="missing_field")
    if entry["sha"] is None:
        return entry["path"], mode, None
    if kind == "commit":  # a submodule's commit need not be in this repository
        return entry["path"], mode, str(entry["sha"])
    return entry["path"], mode, _typed(repo, entry["sha"], kind)


@route("GET", "/repos/{owner}/{repo}/git/trees/{sha:path}")
def get_tree(call: Call) -> Reply:
    repo = call.repo(READ_CONTENTS)
    sha = repo.bare.resolve_tree(call.args["sha"])
    if sha is None:
        raise ApiError(404, "Not Found")
    recursive = call.query.get("recursive") not in {None, "", "0", "false"}
    entries = repo.bare.ls_tree(sha, recursive=recursive, trees=True)
    return Reply(200, payloads.tree_json(call.hub, repo, sha, entries))


# -- commits


@route("POST", "/repos/{owner}/{repo}/git/commits")
def create_commit(call: Call) -> Reply:
    repo = call.repo(WRITE_CONTENTS)
    message = call.text("message", required=True) or ""
    tree = _typed(repo, call.field("tree"), "tree")
    parents = call.field("parents", [])
    if not isinstance(parents, list):
        raise validation_failed(resource="Commit", field="parents", code="invalid")
    parents = [_typed(repo, p, "commit") for p in parents]
    author_in, committer_in = call.field("author"), call.field("committer")
    signature = call.field("signature")
    signs = author_in is None and committer_in is None and signature is None
    signs = signs and call.token is not None and call.token.kind == "app"
    default = _identity_of(call.hub, call.token)
    author = _identity(author_in or committer_in, default)
    committer = Identity(*WEB_FLOW, author.when) if signs else _identity(committer_in, author)
    sha = repo.bare.write_commit(
        tree,
        parents,
        author=author,
        committer=committer,
        message=message,
        signature=None if signature is None else str(signature),
    )
    repo.verification[sha] = _verification(repo, sha, signed_by_github=signs, signature=signature)
    body = payloads.git_commit_json(call.hub, repo, repo.bare.read_commit(sha))
    return Reply(201, body, {"Location": body["url"]})


def _identity_of(hub: Hub, token: Token | None) -> Identity:
    """Who the API says made a commit when the request names nobody: the token's account."""
    login = token.login if token is not None else "ghost"
    user = hub.users.get(login)
    uid = user.id if user is not None else 0
    name = (user.name if user is not None else None) or login
    email = (user.email if user is not None else None) or f"{uid}+{login}@users.noreply.github.com"
    return Identity(name, email, datetime.now(UTC).replace(microsecond=0))


def _identity(given: Any, fallback: Identity) -> Identity:
    if given is None:
        return fallback
    if not isinstance(given, dict) or not given.get("name") or not given.get("email"):
        raise validation_failed(resource="Commit", field="author", code="invalid")
    try:
        when = parse_git_date(given.get("date")) if given.get("date") else fallback.when
    except ValueError as exc:
        raise validation_failed(resource="Commit", field="date", code="invalid") from exc
    return Identity(str(given["name"]), str(given["email"]), when)


def _verification(
    repo: Repo, sha: str, *, signed_by_github: bool, signature: Any
) -> dict[str, object]:
    if signed_by_github:
        return {
            "verified": True,
            "reason": "valid",
            "signature": _FAKE_SIGNATURE,
            "payload": repo.bare.run("cat-file", "commit", sha).decode(errors="replace"),
            "verified_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    if signature is not None:  # a key GitHub does not know: the stand-in knows none
        return {**payloads.UNSIGNED, "reason": "unknown_key", "signature": str(signature)}
    return dict(payloads.UNSIGNED)


@route("GET", "/repos/{owner}/{repo}/git/commits/{sha}")
def get_git_commit(call: Call) -> Reply:
    repo = call.repo(READ_CONTENTS)
    sha = call.args["sha"]
    if repo.bare.object_type(sha) != "commit":
        raise ApiError(404, "Not Found")
    return Reply(200, payloads.git_commit_json(call.hub, repo, repo.bare.read_commit(sha)))


# -- refs


def _ref_json(call: Call, repo: Repo, ref: str, sha: str) -> dict[str, Any]:
    return payloads.ref_json(call.hub, repo, ref, sha, repo.bare.object_type(sha) or "commit")


@route("GET", "/repos/{owner}/{repo}/git/ref/{ref:path}")
def get_ref(call: Call) -> Reply:
    repo = call.repo(READ_CONTENTS)
    ref = f"refs/{call.args['ref']}"
    sha = repo.bare.refs(ref).get(ref)
    if sha is None:
        raise ApiError(404, "Not Found")
    return Reply(200, _ref_json(call, repo, ref, sha))


@route("GET", "/repos/{owner}/{repo}/git/refs")
def list_refs(call: Call) -> Reply:
    repo = call.repo(READ_CONTENTS)
    refs = sorted(repo.bare.refs().items())
    return paginate(call, [_ref_json(call, repo, r, s) for r, s in refs])


@route("GET", "/repos/{owner}/{repo}/git/refs/{ref:path}")
def get_refs_legacy(call: Call) -> Reply:
    """The old form: an exact ref gives one object, a prefix gives the list of matches."""
    repo = call.repo(READ_CONTENTS)
    ref = f"refs/{call.args['ref']}"
    refs = repo.bare.refs()
    if ref in refs:
        return Reply(200, _ref_json(call, repo, ref, refs[ref]))
    matches = sorted((r, s) for r, s in refs.items() if r.startswith(ref))
    if not matches:
        raise ApiError(404, "Not Found")
    return Reply(200, [_ref_json(call, repo, r, s) for r, s in matches])


@route("GET", "/repos/{owner}/{repo}/git/matching-refs/{ref:path}")
def matching_refs(call: Call) -> Reply:
    repo = call.repo(READ_CONTENTS)
    prefix = f"refs/{call.args['ref']}"
    matches = sorted((r, s) for r, s in repo.bare.refs().items() if r.startswith(prefix))
    return paginate(call, [_ref_json(call, repo, r, s) for r, s in matches])


@route("POST", "/repos/{owner}/{repo}/git/refs")
def create_ref(call: Call) -> Reply:
    repo = call.repo(WRITE_CONTENTS)
    ref = call.text("ref", required=True) or ""
    sha = call.text("sha", required=True) or ""
    if not ref.startswith("refs/") or ref.count("/") < 2 or not repo.bare.valid_ref_name(ref):
        raise ApiError(422, "Reference name invalid")
    if repo.bare.object_type(sha) is None:
        raise ApiError(422, "Object does not exist")
    if ref in repo.bare.refs(ref):
        raise ApiError(422, "Reference already exists")
    repo.bare.update_ref(ref, sha)
    body = _ref_json(call, repo, ref, sha)
    return Reply(201, body, {"Location": body["url"]})


@route("PATCH", "/repos/{owner}/{repo}/git/refs/{ref:path}")
def update_ref(call: Call) -> Reply:
    repo = call.repo(WRITE_CONTENTS)
    ref = f"refs/{call.args['ref']}"
    sha = call.text("sha", required=True) or ""
    force = bool(call.field("force", False))
    old = repo.bare.refs(ref).get(ref)
    if old is None:
        raise ApiError(422, "Reference does not exist")
    if repo.bare.object_type(sha) is None:
        raise ApiError(422, "Object does not exist")
    if not force and not repo.bare.is_ancestor(old, sha):
        raise ApiError(422, "Update is not a fast forward")
    try:
        repo.bare.update_ref(ref, sha, old)
    except GitError as exc:  # moved under us by a concurrent push
        raise ApiError(422, "Reference cannot be updated") from exc
    return Reply(200, _ref_json(call, repo, ref, sha))


@route("DELETE", "/repos/{owner}/{repo}/git/refs/{ref:path}")
def delete_ref(call: Call) -> Reply:
    repo = call.repo(WRITE_CONTENTS)
    ref = f"refs/{call.args['ref']}"
    if ref not in repo.bare.refs(ref):
        raise ApiError(422, "Reference does not exist")
    repo.bare.delete_ref(ref)
    return Reply(204)
