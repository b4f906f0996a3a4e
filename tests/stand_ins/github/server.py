"""The HTTP side: one threaded server for the REST API, GraphQL, git smart HTTP and web pages.

Paths are laid out as on GitHub Enterprise Server: REST under `/api/v3`, GraphQL at
`/api/graphql`, repositories at `/<owner>/<repo>.git`, web pages at `/<owner>/<repo>/...`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import html
import json
import secrets
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

from tests.stand_ins.github import graphql, routes_git, routes_pulls, routes_repo, smart_http
from tests.stand_ins.github.bare import GitError
from tests.stand_ins.github.faults import Fault
from tests.stand_ins.github.rest import Call, Reply, find_route
from tests.stand_ins.github.state import READ_CONTENTS, WRITE_CONTENTS, ApiError, Token

if TYPE_CHECKING:
    from tests.stand_ins.github.stand_in import GitHubStandIn

_ROUTE_MODULES = (routes_git, routes_pulls, routes_repo)  # imported for their @route side effect
API_PREFIX = "/api/v3"
GRAPHQL_PATH = "/api/graphql"
ENTERPRISE_VERSION = "3.15.0"
DOCS = "https://docs.github.com/enterprise-server@3.15/rest"
RATE_LIMITS = {"app": 1000, "user": 5000}


@dataclass(frozen=True)
class Incoming:
    """One request as it arrived."""

    method: str
    path: str  # with the query
    query: str
    kind: str  # "rest", "graphql", "git" or "html"
    route: str  # what faults match: the API path, "/graphql", or the request path
    headers: dict[str, str]
    raw: bytes
    credential: str | None  # the token (or password) the request presented
    token: Token | None


@dataclass
class Outgoing:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    note: str | None = None  # e.g. git http-backend's stderr


@dataclass(frozen=True)
class RecordedRequest:
    """A request and what the stand-in did with it; `body_text` is the raw body as text.

    Git request bodies (pack data) are not kept: `body_text` is empty for them.
    """

    method: str
    path: str
    route: str
    kind: str
    headers: dict[str, str]
    body_text: str
    body: Any
    status: int | None  # None when the connection was dropped
    login: str | None
    fault: str | None
    note: str | None
    time: float

    def redacted_headers(self, secrets_: list[str]) -> dict[str, str]:
        """The headers with every one of ``secrets_`` (and its basic-auth form) masked."""
        return {key: _mask(value, secrets_) for key, value in self.headers.items()}


def _mask(value: str, secrets_: list[str]) -> str:
    for secret in secrets_:
        value = value.replace(_basic(secret), "***").replace(secret, "***")
    return value


def _basic(token: str) -> str:
    return base64.b64encode(f"x-access-token:{token}".encode()).decode()


def classify(path: str) -> tuple[str, str]:
    """(kind, route) of a request path."""
    if path == API_PREFIX or path.startswith(f"{API_PREFIX}/"):
        return "rest", path[len(API_PREFIX) :] or "/"
    if path == GRAPHQL_PATH:
        return "graphql", "/graphql"
    if smart_http.GIT_PATH_RE.fullmatch(path):
        return "git", path
    return "html", path


def credentials(authorization: str | None) -> list[str]:
    """What may be the token in an Authorization header: `token T`, `Bearer T`, or either
    half of Basic `user:password` (GitHub takes `x-access-token:T` and `T:x-oauth-basic`)."""
    if not authorization:
        return []
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() in {"token", "bearer"}:
        return [value.strip()]
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return [""]
        return [password, user]
    return [""]


class Router:
    """Turns an Incoming into an Outgoing: REST, GraphQL, git or a web page."""

    def __init__(self, stand_in: GitHubStandIn) -> None:
        self.stand_in = stand_in
        self.hub = stand_in.hub
        self._used: dict[str, int] = {}
        self._lock = threading.Lock()

    def serve(self, req: Incoming) -> Outgoing:
        if req.kind == "git":
            return self._git(req)
        if req.kind == "html":
            return self._html(req)
        if req.credential is not None and req.token is None:
            return self._json(req, Reply(401, _error_body(401, "Bad credentials")))
        try:
            body = json.loads(req.raw) if req.raw.strip() else None
        except ValueError:
            return self._json(req, Reply(400, _error_body(400, "Problems parsing JSON")))
        with self.hub.lock:
            reply = self._dispatch(req, body)
        return self._json(req, reply)

    def _dispatch(self, req: Incoming, body: Any) -> Reply:
        try:
            if req.kind == "graphql":
                return graphql.answer(self.hub, req.token, body, method=req.method)
            return self._rest(req, body)
        except ApiError as exc:
            payload = _error_body(exc.status, exc.message, exc.errors)
            return Reply(exc.status, payload, exc.headers)
        except GitError as exc:
            self.stand_in.log(f"git failed: {exc}")
            return Reply(500, _error_body(500, "Server Error"))
        except Exception as exc:  # a bug in the stand-in: say so loudly, answer like GitHub
            log_line(f"stand-in bug on {req.method} {req.path}:\n{traceback.format_exc()}")
            return Reply(500, _error_body(500, f"stand-in bug: {exc!r}"))

    def _rest(self, req: Incoming, body: Any) -> Reply:
        method = "GET" if req.method == "HEAD" else req.method
        handler, args = find_route(method, req.route)
        query = dict(parse_qsl(req.query, keep_blank_values=True))
        return handler(Call(self.hub, method, req.route, query, body, req.token, args))

    def _json(self, req: Incoming, reply: Reply) -> Outgoing:
        data = b"" if reply.status == 204 else json.dumps(reply.payload).encode()
        headers = [
            ("Content-Type", "application/json; charset=utf-8"),
            ("X-GitHub-Media-Type", "github.v3; format=json"),
            ("X-GitHub-Api-Version-Selected", "2022-11-28"),
            ("X-GitHub-Enterprise-Version", ENTERPRISE_VERSION),
            ("X-GitHub-Request-Id", secrets.token_hex(8).upper()),
            *self._rate_headers(req.token),
        ]
        headers += list(reply.headers.items())
        return Outgoing(reply.status, _merge(headers), data)

    def _rate_headers(self, token: Token | None) -> list[tuple[str, str]]:
        key = token.value if token is not None else ""
        limit = RATE_LIMITS.get(token.kind, 60) if token is not None else 60
        with self._lock:
            used = self._used[key] = self._used.get(key, 0) + 1
        return [
            ("X-RateLimit-Limit", str(limit)),
            ("X-RateLimit-Remaining", str(max(limit - used, 0))),
            ("X-RateLimit-Reset", str(int(time.time()) + 3600)),
            ("X-RateLimit-Used", str(used)),
            ("X-RateLimit-Resource", "core"),
        ]

    # -- git

    def _git(self, req: Incoming) -> Outgoing:
        match = smart_http.GIT_PATH_RE.fullmatch(req.path.partition("?")[0])
        assert match is not None
        owner, name, rest = (unquote(match.group(g)) for g in ("owner", "repo", "rest"))
        push = smart_http.is_push(rest, req.query)
        with self.hub.lock:
            repo = self.hub.repos.get(f"{owner}/{name}".lower())
            denied = self._git_denied(req, repo, push=push)
        if denied is not None:
            return denied
        assert repo is not None
        path_info = f"/{repo.owner}/{repo.name}.git{rest}"
        cgi = smart_http.run_backend(
            self.hub.repos_dir,
            path_info,
            method=req.method,
            query=req.query,
            headers=req.headers,
            body=req.raw,
            remote_user=req.token.login if req.token is not None else None,
        )
        return Outgoing(cgi.status, cgi.headers, cgi.body, cgi.stderr.strip() or None)

    def _git_denied(self, req: Incoming, repo: Any, *, push: bool) -> Outgoing | None:
        """The answer GitHub gives a git client that may not go on, or None."""
        if req.credential is not None and req.token is None:
            return _git_text(401, "Invalid username or token.", authenticate=True)
        if repo is None:
            return _git_text(404, "Repository not found.")
        if req.token is None and (push or repo.private):
            return _git_text(401, "Authentication required.", authenticate=True)
        try:
            self.hub.authorize(req.token, repo, WRITE_CONTENTS if push else READ_CONTENTS)
        except ApiError as exc:
            if exc.status == 404:
                return _git_text(404, "Repository not found.")
            login = req.token.login if req.token is not None else "anonymous"
            return _git_text(403, f"Permission to {repo.full_name}.git denied to {login}.")
        return None

    # -- web pages (html_url targets)

    def _html(self, req: Incoming) -> Outgoing:
        parts = req.path.partition("?")[0].strip("/").split("/")
        with self.hub.lock:
            known = len(parts) >= 2 and f"{parts[0]}/{parts[1]}".lower() in self.hub.repos
        if not known or req.method not in {"GET", "HEAD"}:
            return Outgoing(404, [("Content-Type", "text/plain")], b"Not Found\n")
        title = html.escape("/".join(parts))
        page = f"<!DOCTYPE html><title>{title}</title><p>GitHub stand-in</p>\n"
        return Outgoing(200, [("Content-Type", "text/html; charset=utf-8")], page.encode())


def _error_body(status: int, message: str, errors: list[dict[str, str]] | None = None) -> Any:
    body: dict[str, Any] = {"message": message, "documentation_url": DOCS, "status": str(status)}
    if errors is not None:
        body["errors"] = errors
    return body


def _git_text(status: int, message: str, *, authenticate: bool = False) -> Outgoing:
    headers = [("Content-Type", "text/plain; charset=utf-8")]
    if authenticate:
        headers.append(("WWW-Authenticate", 'Basic realm="GitHub"'))
    return Outgoing(status, headers, f"{message}\n".encode())


def _merge(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Later headers replace earlier ones of the same name (a fault's X-RateLimit-*)."""
    merged: dict[str, tuple[str, str]] = {}
    for name, value in headers:
        merged[name.lower()] = (name, value)
    return list(merged.values())


def fault_outgoing(router: Router, req: Incoming, fault: Fault) -> Outgoing | None:
    """What a fault answers; None means drop the connection."""
    if fault.drop_connection or fault.status_code is None:
        return None
    if req.kind in {"rest", "graphql"}:
        return router._json(req, Reply(fault.status_code, fault.body, dict(fault.headers)))
    text = json.dumps(fault.body).encode() if fault.body is not None else b""
    headers = [("Content-Type", "application/json"), *fault.headers.items()]
    return Outgoing(fault.status_code, headers, text)


class Handler(BaseHTTPRequestHandler):
    """Reads a request, lets the stand-in answer it (or a fault), records it."""

    protocol_version = "HTTP/1.1"
    server_version = "GitHub.com"
    sys_version = ""
    timeout = 120  # idle keep-alive connections go away on their own

    @property
    def stand_in(self) -> GitHubStandIn:
        return self.server.stand_in  # type: ignore[attr-defined, no-any-return]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # requests are recorded instead

    def setup(self) -> None:
        super().setup()
        self.stand_in.connections.add(self.connection)

    def finish(self) -> None:
        self.stand_in.connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def _handle(self) -> None:
        req = self._incoming()
        stand_in = self.stand_in
        fault = stand_in.faults.take(req.method, req.route, "before")
        out: Outgoing | None = None
        if fault is None:
            out = stand_in.router.serve(req)
            fault = stand_in.faults.take(req.method, req.route, "after")
        if fault is not None:
            out = fault_outgoing(stand_in.router, req, fault)
        stand_in.record(req, out, fault)  # first: a client that has the answer sees the record
        if out is None:
            self._drop()
        else:
            self._send(out, head_only=req.method == "HEAD")

    def _incoming(self) -> Incoming:
        raw = self._read_body()
        path, _, query = self.path.partition("?")
        kind, route = classify(path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        candidates = credentials(headers.get("authorization"))
        known = [t for t in map(self.stand_in.hub.token_for, candidates) if t is not None]
        presented = (known[0].value if known else candidates[0]) if candidates else None
        token = known[0] if known else None
        return Incoming(self.command, self.path, query, kind, route, headers, raw, presented, token)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in {b"\r\n", b"\n", b""}:
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, out: Outgoing, *, head_only: bool) -> None:
        try:
            self.send_response(out.status)
            for name, value in out.headers:
                if name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(out.body)))
            self.end_headers()
            if not head_only:
                self.wfile.write(out.body)
        except OSError:
            self.close_connection = True

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def make_server(stand_in: GitHubStandIn, host: str, port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.stand_in = stand_in  # type: ignore[attr-defined]
    return server


def log_line(message: str) -> None:
    print(f"[github-stand-in] {message}", file=sys.stderr, flush=True)
