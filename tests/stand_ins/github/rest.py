"""The REST side's plumbing: routes, one call's context, replies, pagination.

Handlers live in `routes_*.py`; each is registered with `@route("GET", "/repos/{owner}/...")`
where `{name}` matches one path segment, `{name:int}` digits and `{name:path}` the rest of the
path (branch and ref names contain slashes). Captured values are percent-decoded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode

from tests.stand_ins.github.state import MAX_BODY_CHARS, ApiError, Hub, Need, Repo, Token

DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100


@dataclass
class Reply:
    status: int
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Call:
    """One REST request as a handler sees it."""

    hub: Hub
    method: str
    route: str
    query: dict[str, str]
    body: Any
    token: Token | None
    args: dict[str, str] = field(default_factory=dict)

    @property
    def login(self) -> str | None:
        return None if self.token is None else self.token.login

    def repo(self, need: Need) -> Repo:
        """The repository of the route, once the caller may do what ``need`` says."""
        repo = self.hub.repo(self.args["owner"], self.args["repo"])
        self.hub.authorize(self.token, repo, need)
        return repo

    def need_login(self) -> str:
        if self.token is None:
            raise ApiError(401, "Requires authentication")
        return self.token.login

    def number(self, name: str = "number") -> int:
        return int(self.args[name])

    def text(self, name: str, *, required: bool = False, limit: int | None = None) -> str | None:
        """A string field of the JSON body; 422 when required and missing or not a string."""
        body = self.body if isinstance(self.body, dict) else {}
        value = body.get(name)
        if value is None:
            if required:
                raise ApiError(422, "Validation Failed", [_missing(name)])
            return None
        if not isinstance(value, str):
            raise ApiError(
                422, f"Invalid request.\n\nFor 'properties/{name}', {value!r} is not a string."
            )
        if limit is not None and len(value) > limit:
            raise ApiError(
                422,
                "Validation Failed",
                [
                    {
                        "resource": "Issue",
                        "code": "custom",
                        "field": name,
                        "message": f"{name} is too long (maximum is {limit} characters)",
                    }
                ],
            )
        return value

    def body_text(self, name: str = "body", *, required: bool = False) -> str | None:
        return self.text(name, required=required, limit=MAX_BODY_CHARS)

    def field(self, name: str, default: Any = None) -> Any:
        body = self.body if isinstance(self.body, dict) else {}
        return body.get(name, default)


def _missing(name: str) -> dict[str, str]:
    return {"resource": "Issue", "field": name, "code": "missing_field"}


Handler = Callable[[Call], Reply]


@dataclass(frozen=True)
class Route:
    method: str
    regex: re.Pattern[str]
    handler: Handler


ROUTES: list[Route] = []
_CONVERTERS = {"": "[^/]+", "int": "[0-9]+", "path": ".+"}


def route(method: str, template: str) -> Callable[[Handler], Handler]:
    """Register a handler for ``method`` on a path template."""

    def to_group(match: re.Match[str]) -> str:
        name, _, kind = match.group(1).partition(":")
        return f"(?P<{name}>{_CONVERTERS[kind]})"

    regex = re.compile(re.sub(r"\{([a-z_]+(?::[a-z]+)?)\}", to_group, template))

    def register(handler: Handler) -> Handler:
        ROUTES.append(Route(method, regex, handler))
        return handler

    return register


def find_route(method: str, path: str) -> tuple[Handler, dict[str, str]]:
    """The handler and decoded path arguments for a request; 404 as GitHub when none."""
    for candidate in ROUTES:
        if candidate.method != method:
            continue
        match = candidate.regex.fullmatch(path)
        if match:
            return candidate.handler, {k: unquote(v) for k, v in match.groupdict().items()}
    raise ApiError(404, "Not Found")


def paginate(call: Call, items: list[Any]) -> Reply:
    """One page of ``items`` with GitHub's `Link` header (next, last, first, prev)."""
    per_page = _int_param(call.query, "per_page", DEFAULT_PER_PAGE)
    per_page = min(max(per_page, 1), MAX_PER_PAGE)
    page = max(_int_param(call.query, "page", 1), 1)
    last = max(1, math.ceil(len(items) / per_page))
    chunk = items[(page - 1) * per_page : page * per_page]

    def link(number: int, rel: str) -> str:
        query = urlencode({**call.query, "page": str(number)})
        return f'<{call.hub.api_url}{call.route}?{query}>; rel="{rel}"'

    links = []
    if page > 1:
        links.append(link(min(page - 1, last), "prev"))
    if page < last:
        links += [link(page + 1, "next"), link(last, "last")]
    if page > 1:
        links.append(link(1, "first"))
    return Reply(200, chunk, {"Link": ", ".join(links)} if links else {})


def _int_param(query: dict[str, str], name: str, default: int) -> int:
    try:
        return int(query.get(name, default))
    except ValueError:
        return default
