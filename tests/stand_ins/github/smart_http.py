"""Git's smart HTTP protocol, served by the real `git http-backend` as a CGI program.

Clone, fetch and push go through git's own server side, so the client sees exactly what a git
host answers (protocol v0/v2, gzip request bodies, receive-pack reports). The bare repositories
have `http.receivepack` on; who may push is decided before the CGI runs (see server.py).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.stand_ins.github.bare import git_env

BACKEND_TIMEOUT_S = 120
GIT_PATH_RE = re.compile(
    r"/(?P<owner>[^/]+)/(?P<repo>[^/]+?)(?:\.git)?"
    r"(?P<rest>/(?:info/refs|git-upload-pack|git-receive-pack|HEAD|objects/.+))"
)


@dataclass(frozen=True)
class CgiReply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    stderr: str


def is_push(rest: str, query: str) -> bool:
    """True for the receive-pack side: its advertisement or the push itself."""
    return rest == "/git-receive-pack" or "service=git-receive-pack" in query


def run_backend(
    project_root: Path,
    path_info: str,
    *,
    method: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    remote_user: str | None,
) -> CgiReply:
    """Run `git http-backend` for one request and parse its CGI answer."""
    env = git_env(
        {
            "GIT_PROJECT_ROOT": str(project_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path_info,
            "QUERY_STRING": query,
            "REQUEST_METHOD": method,
            "CONTENT_TYPE": headers.get("content-type", ""),
            "REMOTE_ADDR": "127.0.0.1",
            "HOME": str(project_root),
        }
    )
    if body:
        env["CONTENT_LENGTH"] = str(len(body))
    if remote_user:
        env["REMOTE_USER"] = remote_user
    for header, variable in (
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
        ("git-protocol", "HTTP_GIT_PROTOCOL"),
    ):
        if header in headers:
            env[variable] = headers[header]
    try:
        done = subprocess.run(
            ["git", "http-backend"],
            input=body,
            capture_output=True,
            env=env,
            timeout=BACKEND_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        note = f"git http-backend timed out after {BACKEND_TIMEOUT_S}s"
        return CgiReply(504, [("Content-Type", "text/plain")], f"{note}\n".encode(), note)
    return parse_cgi(done.stdout, done.stderr.decode(errors="replace"))


def parse_cgi(output: bytes, stderr: str) -> CgiReply:
    """Split a CGI answer into status, headers and body (`Status:` defaults to 200)."""
    cut = min((i for i in (output.find(b"\r\n\r\n"), output.find(b"\n\n")) if i >= 0), default=-1)
    if cut < 0:
        return CgiReply(500, [("Content-Type", "text/plain")], b"git http-backend failed\n", stderr)
    separator = 4 if output[cut : cut + 4] == b"\r\n\r\n" else 2
    head, body = output[:cut].decode("latin-1"), output[cut + separator :]
    status, headers = 200, []
    for line in head.splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.strip().split()[0])
        elif name:
            headers.append((name.strip(), value.strip()))
    return CgiReply(status, headers, body, stderr)
