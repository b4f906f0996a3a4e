"""The local sandbox server answers only the process that started it; root only when allowed."""

from __future__ import annotations

import base64
import json
import secrets
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2b import Sandbox, SandboxQuery
from e2b.exceptions import AuthenticationException, SandboxNotFoundException

from claude_e2b.sandbox.localbox import LocalBoxHandle, LocalBoxOptions, start_localbox
from claude_e2b.sandbox.localbox.launcher import LocalBoxHost
from claude_e2b.sandbox.session import SandboxSession, SandboxSpec, open_session
from tests.integration.conftest import connect

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the local sandbox needs Linux")

BASIC_ROOT = "Basic " + base64.b64encode(b"root:").decode()


def connect_envelope(message: dict[str, object]) -> bytes:
    """One Connect streaming request message (flags 0, big-endian length, JSON)."""
    data = json.dumps(message).encode()
    return struct.pack(">BI", 0, len(data)) + data


def start_body(command: str) -> bytes:
    return connect_envelope({"process": {"cmd": "/bin/sh", "args": ["-c", command]}})


def routes(sandbox_id: str, marker: Path) -> list[tuple[str, str, dict[str, str], bytes]]:
    """A request to every kind of route; the Start and upload would leave ``marker``."""
    stream = {"Content-Type": "application/connect+json"}
    plain = {"Content-Type": "application/json"}
    return [
        ("POST", "/process.Process/Start", stream, start_body(f"id -u > {marker}")),
        ("POST", "/process.Process/List", plain, b"{}"),
        ("POST", "/filesystem.Filesystem/Stat", plain, b'{"path": "/etc/passwd"}'),
        ("GET", "/files?path=/etc/passwd", {}, b""),
        ("POST", f"/files?path={marker}", {"Content-Type": "application/octet-stream"}, b"x"),
        ("POST", "/v2/sandboxes", plain, b'{"templateID": "base"}'),
        ("GET", "/v2/sandboxes", {}, b""),
        ("GET", f"/sandboxes/{sandbox_id}", {}, b""),
        ("POST", f"/sandboxes/{sandbox_id}/timeout", plain, b'{"timeout": 1}'),
        ("POST", f"/v2/sandboxes/{sandbox_id}/connect", plain, b'{"timeout": 1}'),
        ("DELETE", f"/sandboxes/{sandbox_id}", {}, b""),
        ("GET", "/localbox/info", {}, b""),
        ("POST", "/localbox/faults", plain, b'{"unhealthy": true}'),
        ("GET", "/no/such/route", {}, b""),
    ]


def send(handle: LocalBoxHandle, method: str, path: str, headers: dict[str, str], body: bytes):
    return httpx.request(method, f"{handle.url}{path}", headers=headers, content=body, timeout=10)


@pytest.fixture
def box(localbox_host: LocalBoxHost) -> Iterator[LocalBoxHandle]:
    """A server started as a session starts it: no faults, no root."""
    handle = start_localbox(LocalBoxOptions(lifetime_s=300), localbox_host)
    try:
        yield handle
    finally:
        handle.stop()


def end_at(handle: LocalBoxHandle) -> str:
    info = handle.call("GET", "/localbox/info")
    info.raise_for_status()
    end: str = info.json()["end_at"]
    return end


# --- from the runner's side ------------------------------------------------------------


@pytest.mark.parametrize(
    "credentials",
    ["none", "basic-root", "wrong", "swapped"],
)
def test_every_route_refuses_a_caller_without_its_secret(
    box: LocalBoxHandle, tmp_path: Path, credentials: str
) -> None:
    """No, wrong or the other route family's secret: 401 with a JSON error, and nothing runs."""
    headers_for = {
        "none": lambda _path: {},
        "basic-root": lambda _path: {"Authorization": BASIC_ROOT},
        "wrong": lambda _path: {
            "X-Access-Token": secrets.token_urlsafe(32),
            "X-API-Key": secrets.token_urlsafe(32),
            "Authorization": BASIC_ROOT,
        },
        "swapped": lambda path: (
            {"X-API-Key": box.api_key}
            if path.startswith(("/files", "/process", "/filesystem"))
            else {"X-Access-Token": box.access_token}
        ),
    }[credentials]
    marker = tmp_path / "pwned"
    before = end_at(box)
    for method, path, headers, body in routes(box.sandbox_id, marker):
        answer = send(box, method, path, {**headers, **headers_for(path)}, body)
        assert answer.status_code == 401, (method, path, answer.text)
        assert set(answer.json()) == {"code", "message"}, (method, path)
    time.sleep(0.5)  # a command that had started would have written by now
    assert not marker.exists()
    assert box.running
    assert end_at(box) == before
    assert not connect(box).files.exists(str(marker))


def test_each_secret_opens_its_own_routes(box: LocalBoxHandle) -> None:
    """The access token opens envd's routes, the API key the control routes."""
    listed = send(
        box,
        "POST",
        "/process.Process/List",
        {"Content-Type": "application/json", "X-Access-Token": box.access_token},
        b"{}",
    )
    assert listed.status_code == 200, listed.text
    assert box.call("GET", f"/sandboxes/{box.sandbox_id}").json()["sandboxID"] == box.sandbox_id


def test_health_is_open_and_says_nothing(box: LocalBoxHandle) -> None:
    """/health answers anyone with 204 and an empty body."""
    answer = httpx.get(f"{box.url}/health", timeout=10)
    assert (answer.status_code, answer.content) == (204, b"")
    assert box.sandbox_id not in str(answer.headers)


def test_root_is_refused_without_allow_root(box: LocalBoxHandle, tmp_path: Path) -> None:
    """With the token, a call as root is still refused (403), for commands and files alike."""
    token = {"X-Access-Token": box.access_token}
    marker = tmp_path / "as-root"
    stream = {**token, "Content-Type": "application/connect+json"}
    lowercase_root = "basic " + base64.b64encode(b"root").decode()
    for authorization in (BASIC_ROOT, lowercase_root):
        started = send(
            box,
            "POST",
            "/process.Process/Start",
            {**stream, "Authorization": authorization},
            start_body(f"id -u > {marker}"),
        )
        assert started.status_code == 403
        assert started.json()["code"] == "permission_denied"
    for method, body in (("GET", b""), ("POST", b"x")):
        files = send(box, method, f"/files?path={marker}&username=root", token, body)
        assert files.status_code == 403, files.text
    twice = httpx.post(
        f"{box.url}/process.Process/Start",
        headers=[
            *token.items(),
            ("Content-Type", "application/connect+json"),
            ("Authorization", "Basic " + base64.b64encode(b"user:").decode()),
            ("Authorization", BASIC_ROOT),
        ],
        content=start_body(f"id -u > {marker}"),
        timeout=10,
    )
    assert twice.status_code == 400
    time.sleep(0.5)
    assert not marker.exists()
    assert connect(box).commands.run("id -u").stdout.strip() != "0"


def test_faults_exist_only_for_tests(box: LocalBoxHandle) -> None:
    """Without test_faults, /localbox/faults is 404 even with the key; faults alone are refused."""
    assert box.call("POST", "/localbox/faults", {"unhealthy": True}).status_code == 404
    assert box.call("GET", "/localbox/faults").status_code == 404
    with pytest.raises(ValueError, match="test_faults"):
        LocalBoxOptions(faults={"delay_s": 1})
    refused = subprocess.run(
        [sys.executable, "-m", "claude_e2b.sandbox.localbox", "--faults", '{"delay_s": 1}'],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert refused.returncode == 2
    assert "--faults needs --test-faults" in refused.stderr


def descendants(pid: int) -> list[int]:
    children = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return children + [d for child in children for d in descendants(child)]


def test_secrets_stay_off_argv_environment_registry_and_repr(
    box: LocalBoxHandle, localbox_registry: Path
) -> None:
    """Neither secret is on a command line, in an environment or a repr; the registry's
    owner-only entry holds the API key (for the user's other commands), never the token."""
    keys = (box.api_key.encode(), box.access_token.encode())
    assert all(len(key) >= 40 for key in keys)
    for pid in (box.pid, *descendants(box.pid)):
        for part in ("cmdline", "environ"):
            found = Path(f"/proc/{pid}/{part}").read_bytes()
            assert not any(key in found for key in keys), (pid, part)
    entries = list(localbox_registry.iterdir())
    assert len(entries) == 1
    assert json.loads(entries[0].read_bytes())["api_key"] == box.api_key
    assert box.access_token.encode() not in entries[0].read_bytes()
    assert localbox_registry.stat().st_mode & 0o777 == 0o700
    assert entries[0].stat().st_mode & 0o777 == 0o600
    assert not any(key.decode() in repr(box) for key in keys)


# --- the SDK in its normal mode ----------------------------------------------------------


def test_sdk_create_info_list_timeout_and_kill(box: LocalBoxHandle) -> None:
    """E2B's control calls reach the local server: create, get_info, list, set_timeout, kill."""
    sandbox = Sandbox.create(timeout=120, metadata={"case": "sdk"}, **box.sdk_options())
    assert sandbox.sandbox_id == box.sandbox_id
    info = sandbox.get_info()
    assert info.metadata == {"case": "sdk"}
    assert info.end_at.timestamp() == pytest.approx(time.time() + 120, abs=5)
    found = Sandbox.list(query=SandboxQuery(metadata={"case": "sdk"}), **box.sdk_options())
    assert [s.sandbox_id for s in found.next_items()] == [box.sandbox_id]
    other = Sandbox.list(query=SandboxQuery(metadata={"case": "other"}), **box.sdk_options())
    assert other.next_items() == []
    sandbox.set_timeout(600)
    assert sandbox.get_info().end_at.timestamp() == pytest.approx(time.time() + 600, abs=5)
    assert sandbox.kill() is True
    deadline = time.monotonic() + 15
    while box.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not box.running
    assert not box.root.exists()


def test_sdk_connect_from_another_client(box: LocalBoxHandle) -> None:
    """Sandbox.connect by id gets a working sandbox; its timeout only ever lengthens the life."""
    Sandbox.create(timeout=120, **box.sdk_options())
    again = Sandbox.connect(box.sandbox_id, timeout=30, **box.sdk_options())
    assert again.commands.run("echo attached").stdout == "attached\n"
    assert again.get_info().end_at.timestamp() == pytest.approx(time.time() + 120, abs=5)
    Sandbox.connect(box.sandbox_id, timeout=900, **box.sdk_options())
    assert again.get_info().end_at.timestamp() == pytest.approx(time.time() + 900, abs=5)
    with pytest.raises(SandboxNotFoundException):
        Sandbox.connect("local-000000000000", **box.sdk_options())


def test_sdk_with_a_wrong_api_key_cannot_create(box: LocalBoxHandle) -> None:
    """The SDK with another API key is refused as E2B refuses it."""
    options = {**box.sdk_options(), "api_key": secrets.token_urlsafe(32)}
    with pytest.raises(AuthenticationException):
        Sandbox.create(**options)


# --- from inside the sandbox -------------------------------------------------------------

HOSTILE = textwrap.dedent("""
    import http.client, json, struct, sys
    port, sandbox_id, mark, host_marker = int(sys.argv[1]), *sys.argv[2:5]

    def listening():
        found = set()
        for name in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                rows = open(name).read().splitlines()[1:]
            except OSError:
                continue
            found |= {int(r.split()[1].rsplit(":", 1)[1], 16) for r in rows if r.split()[3] == "0A"}
        return found

    cmd = f"id -u > /tmp/pwned-{mark}; id -u > {host_marker}"
    start = json.dumps({"process": {"cmd": "/bin/sh", "args": ["-c", cmd]}}).encode()
    start = struct.pack(">BI", 0, len(start)) + start
    stream = {"Content-Type": "application/connect+json"}
    root = "Basic cm9vdDo="
    attempts = [
        ("POST", "/process.Process/Start", stream, start),
        ("POST", "/process.Process/Start", {**stream, "Authorization": root}, start),
        ("POST", "/process.Process/Start",
         {**stream, "Authorization": root, "X-Access-Token": "guess"}, start),
        ("GET", "/files?path=/etc/shadow&username=root", {}, b""),
        ("POST", f"/files?path=/tmp/pwned-{mark}&username=root", {}, b"x"),
        ("POST", "/v2/sandboxes", {"X-API-Key": "guess"}, b'{"templateID": "x"}'),
        ("GET", f"/sandboxes/{sandbox_id}", {}, b""),
        ("POST", f"/sandboxes/{sandbox_id}/timeout", {}, b'{"timeout": 1}'),
        ("DELETE", f"/sandboxes/{sandbox_id}", {}, b""),
        ("GET", "/localbox/info", {}, b""),
        ("POST", "/localbox/faults", {}, b'{"unhealthy": true}'),
    ]
    results = []
    for method, path, headers, body in attempts:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request(method, path, body=body or None, headers=headers)
            answer = connection.getresponse()
            answer.read()
            outcome = answer.status
        except OSError as exc:
            outcome = type(exc).__name__
        finally:
            connection.close()
        results.append([method, path.split("?")[0], outcome])
    print(json.dumps({"port_visible": port in listening(), "results": results}))
""")


def test_a_command_in_the_sandbox_cannot_drive_the_server(
    localbox_host: LocalBoxHost, tmp_path: Path
) -> None:
    """From inside: no route of the server answers a command there, and nothing runs as root."""
    spec = SandboxSpec(backend="local", lifetime_s=300)
    with open_session(spec, localbox_host) as session:
        handle = session.localbox
        assert handle is not None
        before = end_at(handle)
        mark = secrets.token_hex(8)
        host_marker = tmp_path / "pwned"
        report = run_hostile(session, handle, mark, host_marker)
        outcomes = [outcome for _method, _path, outcome in report["results"]]
        print(f"\nfrom inside: port visible={report['port_visible']}, outcomes={outcomes}")
        assert len(outcomes) == 11
        # 401, or no way through at all (the sandbox has its own network).
        assert all(o == 401 or isinstance(o, str) for o in outcomes), report
        time.sleep(0.5)
        assert not session.exists(f"/tmp/pwned-{mark}")
        assert not host_marker.exists()
        assert session.is_alive()
        assert end_at(handle) == before


def run_hostile(
    session: SandboxSession, handle: LocalBoxHandle, mark: str, host_marker: Path
) -> dict[str, object]:
    session.write_file("/tmp/hostile.py", HOSTILE.encode())
    port = handle.url.rsplit(":", 1)[1]
    args = f"{port} {handle.sandbox_id} {mark} {host_marker}"
    out = session.run(f"python3 /tmp/hostile.py {args}", timeout=120, check=True)
    report: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return report
