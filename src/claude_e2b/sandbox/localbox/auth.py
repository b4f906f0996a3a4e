"""Who may call a local sandbox server: its two secrets, and the root user.

At start the server makes two random secrets and hands them to the process that
started it, through the launcher's ready pipe — never on its command line or in
its environment; the API key is also in its registry entry (0600, in the user's
0700 state directory, out of every sandbox's view) for the user's other commands:

- the API key, sent as ``X-API-Key`` (as to E2B's API): the control routes;
- envd's access token, sent as ``X-Access-Token`` (as to envd in an E2B sandbox):
  envd's routes. E2B's create call returns it (``envdAccessToken``), and so does ours.

Both are compared in constant time; a request without the right one is refused
with 401 before any service sees it. A command in the sandbox never holds either,
so whatever it can reach over the network, it cannot drive the server.

Root: envd names the user of a call in ``Authorization: Basic <user:>`` (Connect
routes) or ``?username=`` (``/files``). Unless the server was started with
``--allow-root-user``, a call for root is refused (403) here, centrally. Root in a
local sandbox is root on the host (same /usr, same kernel), and nothing in this
project needs it locally; on E2B, root in a sandbox is the sandbox's own.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from .files_http import Receive, Scope

API_KEY_HEADER = b"x-api-key"
ACCESS_TOKEN_HEADER = b"x-access-token"
_CONNECT_PREFIXES = ("/process.Process/", "/filesystem.Filesystem/")


class Refusal(Exception):  # noqa: N818 - an answer, not a failure of ours
    """A request refused before routing, with the JSON answer to give."""

    def __init__(self, status: int, body: dict[str, object]) -> None:
        super().__init__(body.get("message", ""))
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Credentials:
    """The server's two secrets; kept out of every repr."""

    api_key: str = field(repr=False)
    access_token: str = field(repr=False)

    @classmethod
    def new(cls) -> Credentials:
        """Fresh random secrets (256 bits each)."""
        return cls(secrets.token_urlsafe(32), secrets.token_urlsafe(32))


def header_values(scope: Scope, name: bytes) -> list[bytes]:
    """Every value the request carries for header ``name`` (lower case)."""
    return [value for key, value in scope.get("headers", []) if key.lower() == name]


def carries(scope: Scope, name: bytes, secret: str) -> bool:
    """Whether the request carries header ``name`` exactly once, equal to ``secret``."""
    values = header_values(scope, name)
    return len(values) == 1 and hmac.compare_digest(values[0], secret.encode())


def basic_user(raw: bytes) -> str | None:
    """The user named by an ``Authorization: Basic`` value, parsed as envd's services do."""
    value = raw.decode("latin-1")
    if not value.lower().startswith("basic "):
        return None
    try:
        return base64.b64decode(value[6:]).decode().split(":", 1)[0]
    except ValueError:
        return None  # malformed: the service itself refuses it


def asks_for_root(scope: Scope) -> bool:
    """Whether an envd call asks to act as root. Raises Refusal for an ambiguous request."""
    if scope["path"] == "/files":
        # latin-1 never fails; bytes that are not UTF-8 cannot spell "root" in either.
        raw = scope.get("query_string", b"").decode("latin-1")
        return "root" in parse_qs(raw, keep_blank_values=True).get("username", [])
    values = header_values(scope, b"authorization")
    if len(values) > 1:
        # A service reads one of them; which one is not ours to guess.
        raise Refusal(400, error_body(scope, 400, "more than one Authorization header"))
    return bool(values) and basic_user(values[0]) == "root"


_CONNECT_CODES = {400: "invalid_argument", 401: "unauthenticated", 403: "permission_denied"}


def error_body(scope: Scope, status: int, message: str) -> dict[str, object]:
    """An error in the shape the route's clients read.

    Connect clients map a string ``code``; envd's /files and E2B's API give the status.
    """
    if scope["path"].startswith(_CONNECT_PREFIXES):
        return {"code": _CONNECT_CODES[status], "message": message}
    return {"code": status, "message": message}


async def drain(receive: Receive) -> None:
    """Read the rest of a request body, so the client reads our answer, not a broken pipe."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


@dataclass(frozen=True)
class Guard:
    """The checks every request passes before routing."""

    credentials: Credentials
    allow_root: bool = False

    def control(self, scope: Scope) -> None:
        """Control routes need the API key. Raises Refusal(401)."""
        if not carries(scope, API_KEY_HEADER, self.credentials.api_key):
            raise Refusal(401, error_body(scope, 401, "missing or wrong X-API-Key"))

    async def envd(self, scope: Scope, receive: Receive) -> None:
        """Envd routes need the access token, and root only when allowed. Raises Refusal."""
        if not carries(scope, ACCESS_TOKEN_HEADER, self.credentials.access_token):
            raise Refusal(401, error_body(scope, 401, "missing or wrong X-Access-Token"))
        if not self.allow_root and asks_for_root(scope):
            # An authenticated caller: let its upload finish so it reads why.
            await drain(receive)
            message = (
                "root is not available in this local sandbox "
                "(start it with --allow-root-user to allow it)"
            )
            raise Refusal(403, error_body(scope, 403, message))
