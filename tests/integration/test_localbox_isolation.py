"""The local sandbox as a boundary: its own network, file system and command environment.

Checked from inside, with small scripts, as a hostile agent would probe: through the
e2b SDK on a running server (the default network: internet through slirp4netns, no
allowed destination), and on ``Isolation`` itself where a network policy is needed
(the server's --allow-out flags are wired by launcher.py).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2b import Sandbox
from e2b.exceptions import InvalidArgumentException

from claude_e2b.sandbox.localbox import LocalBoxHandle, LocalBoxOptions, start_localbox
from claude_e2b.sandbox.localbox.command_env import RefusedEnvError, check_env, env_script
from claude_e2b.sandbox.localbox.helpers import Helpers, resolve_helpers
from claude_e2b.sandbox.localbox.isolation import Isolation, detect_mode, identity_for
from claude_e2b.sandbox.localbox.launcher import LocalBoxHost
from claude_e2b.sandbox.localbox.netns import (
    Destination,
    NetworkPolicy,
    NetworkRefusedError,
    host_networks,
    parse_destination,
    parse_fib_trie,
    parse_route,
    plan_network,
)
from claude_e2b.sandbox.localbox.server import prepare_root, remove_root
from tests.integration.conftest import connect

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the local sandbox needs Linux")

PROBE = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as s:
        print("connected", s.recv(100).decode().strip())
except OSError as e:
    print("failed", e.errno)
"""


# --- helpers ---------------------------------------------------------------------


@contextlib.contextmanager
def tcp_service(host: str = "127.0.0.1") -> Iterator[tuple[int, str]]:
    """A TCP server on the runner that greets each connection with a token."""
    token = uuid.uuid4().hex
    server = socket.create_server((host, 0))
    server.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(f"hello {token}\n".encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], token
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


def probe_argv(host: str, port: int) -> list[str]:
    return ["python3", "-c", PROBE, host, str(port)]


def probe_cmd(host: str, port: int) -> str:
    return shlex.join(probe_argv(host, port))


def host_address() -> str:
    """One of the runner's own non-loopback IPv4 addresses."""
    own = [net.removesuffix("/32") for net in host_networks() if net.endswith("/32")]
    assert own, "the runner should have a non-loopback address"
    return own[0]


@contextlib.contextmanager
def isolated(
    tmp_path: Path, policy: NetworkPolicy, helpers: Helpers | None = None
) -> Iterator[Isolation]:
    """An ``Isolation`` started on a fresh root, stopped and removed afterwards."""
    mode = detect_mode()
    root = tmp_path / "sandbox-root"
    identity = identity_for(mode)
    iso = Isolation(mode, root, identity, network=policy, helpers=helpers or resolve_helpers())
    prepare_root(root, identity, iso.owner_uid("user"))
    try:
        iso.start()
        yield iso
    finally:
        iso.stop()
        remove_root(root)


def run_in(
    iso: Isolation, argv: list[str], envs: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as "user" in the sandbox of ``iso``, the way the server does."""
    launch = iso.launch(argv, "user", "/home/user", envs or {})
    try:
        return subprocess.run(
            launch.argv,
            env=launch.env,
            cwd=launch.cwd,
            capture_output=True,
            text=True,
            timeout=60,
            start_new_session=True,
            check=False,
        )
    finally:
        launch.cleanup()


@pytest.fixture
def sandbox(localbox: LocalBoxHandle) -> Sandbox:
    return connect(localbox)


def sh(sandbox: Sandbox, cmd: str, **kwargs: object) -> str:
    """Stdout of a command in the sandbox (exit code ignored: the probes report)."""
    try:
        return sandbox.commands.run(cmd, timeout=60, **kwargs).stdout  # type: ignore[arg-type]
    except Exception as exc:  # CommandExitException carries the output too
        return str(getattr(exc, "stdout", exc))


# --- network: through the server, default policy ------------------------------------


def test_runner_loopback_is_out_of_reach(sandbox: Sandbox, localbox: LocalBoxHandle) -> None:
    """Neither a service on the runner's 127.0.0.1 nor the sandbox server's port is reachable."""
    server_port = int(localbox.url.rsplit(":", 1)[1])
    with tcp_service() as (port, token):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as control:
            assert token in control.recv(100).decode()
        service = sh(sandbox, probe_cmd("127.0.0.1", port))
    server = sh(sandbox, probe_cmd("127.0.0.1", server_port))
    assert token not in service
    assert service.startswith("failed")
    assert server.startswith("failed")


def test_runner_addresses_are_out_of_reach(sandbox: Sandbox) -> None:
    """A service on all of the runner's addresses is not reachable at its own address either."""
    address = host_address()
    with tcp_service("0.0.0.0") as (port, token):
        with socket.create_connection((address, port), timeout=5) as control:
            assert token in control.recv(100).decode()
        out = sh(sandbox, probe_cmd(address, port))
    assert out.startswith("failed"), out


def test_internet_dns_goes_to_slirp(sandbox: Sandbox) -> None:
    """With internet access the sandbox has a device of its own and slirp4netns's DNS."""
    assert sh(sandbox, "cat /etc/resolv.conf").strip() == "nameserver 10.0.2.3"
    assert "tap0" in sh(sandbox, "cat /proc/net/dev")


# --- network: allow lists, on Isolation ------------------------------------------------


def test_allowed_destination_is_reached_and_nothing_else(tmp_path: Path) -> None:
    """Only the allowed HOST:PORT (here on the runner's loopback) answers; the rest does not."""
    with tcp_service() as (allowed, token), tcp_service() as (other, other_token):
        policy = NetworkPolicy((Destination("127.0.0.1", allowed),), internet=False)
        with isolated(tmp_path, policy) as iso:
            reached = run_in(iso, probe_argv("127.0.0.1", allowed)).stdout
            refused = run_in(iso, probe_argv("127.0.0.1", other)).stdout
            outside = run_in(iso, probe_argv("192.0.2.1", 80)).stdout
    assert reached.strip() == f"connected hello {token}"
    assert other_token not in refused
    assert refused.startswith("failed")
    assert outside.strip() == "failed 101"  # ENETUNREACH: no way out but the relay


def test_allowed_name_is_relayed_to_what_the_host_resolves(tmp_path: Path) -> None:
    """An allowed name resolves without DNS, to a relay to what the runner resolves it to."""
    name = socket.gethostname()
    with tcp_service(socket.gethostbyname(name)) as (port, token):
        policy = NetworkPolicy((Destination(name, port),), internet=False)
        with isolated(tmp_path, policy) as iso:
            hosts = run_in(iso, ["getent", "hosts", name]).stdout
            reached = run_in(iso, probe_argv(name, port)).stdout
            unknown = run_in(iso, ["getent", "hosts", "example.com"])
    assert hosts.split()[0] == "127.100.0.1"
    assert reached.strip() == f"connected hello {token}"
    assert unknown.returncode != 0


def test_localhost_is_the_runners_loopback_when_allowed(tmp_path: Path) -> None:
    """ "localhost:PORT" allowed: the sandbox's localhost:PORT reaches the runner's, only there."""
    with tcp_service() as (port, token):
        policy = NetworkPolicy((Destination("localhost", port),), internet=False)
        with isolated(tmp_path, policy) as iso:
            out = run_in(iso, probe_argv("localhost", port)).stdout
    assert out.strip() == f"connected hello {token}"


def test_internet_needs_slirp4netns_or_consent(tmp_path: Path) -> None:
    """Without slirp4netns the sandbox refuses to start, unless told to share the network."""
    found = dict(resolve_helpers().paths)
    found.pop("slirp4netns", None)
    helpers = Helpers(found)
    refused = pytest.raises(NetworkRefusedError, match=r"slirp4netns.*--shared-network")
    with refused, isolated(tmp_path, NetworkPolicy(), helpers):
        pass
    with tcp_service() as (port, token):
        shared = NetworkPolicy(shared_fallback=True)
        with isolated(tmp_path, shared, helpers) as iso:
            out = run_in(iso, probe_argv("127.0.0.1", port)).stdout
    assert iso.net is not None
    assert iso.net.warning is not None
    assert "SHARES THIS MACHINE'S NETWORK" in iso.net.warning
    assert out.strip() == f"connected hello {token}"  # what sharing means


def test_plain_mode_refuses_without_consent(tmp_path: Path) -> None:
    """Plain mode (no namespaces) cannot isolate: it refuses unless the network may be shared."""
    with pytest.raises(NetworkRefusedError, match="cannot isolate anything"):
        plan_network(NetworkPolicy(), namespaces=False, has_slirp=True, host_nets=[])
    shared = plan_network(
        NetworkPolicy(shared_fallback=True), namespaces=False, has_slirp=True, host_nets=[]
    )
    assert not shared.isolated
    root = tmp_path / "plain-root"
    identity = identity_for("plain")
    iso = Isolation("plain", root, identity)
    prepare_root(root, identity, None)
    with pytest.raises(NetworkRefusedError):
        iso.start()


# --- file system ---------------------------------------------------------------------


def test_only_the_minimal_file_system_is_visible(
    localbox_host: LocalBoxHost, tmp_path: Path
) -> None:
    """No other checkout, /opt entry, /srv, /mnt, /media, host home or host /var shows."""
    checkout = tmp_path / "other-checkout" / ".git"
    checkout.mkdir(parents=True)
    (checkout / "config").write_text("[http]\n\textraheader = AUTHORIZATION: token-canary\n")
    hidden = [str(checkout), "/srv", "/mnt", "/media", "/var/lib/dpkg", "/var/cache/apt",
              "/etc/shadow", "/root/.cache", "/opt/localbox-canary"]  # fmt: skip
    with contextlib.ExitStack() as stack:
        if Path("/opt").is_dir() and os.access("/opt", os.W_OK):  # root; else /opt as it is
            Path("/opt/localbox-canary").mkdir(exist_ok=True)
            stack.callback(Path("/opt/localbox-canary").rmdir)
        handle = start_localbox(LocalBoxOptions(lifetime_s=120), localbox_host)
        stack.callback(handle.stop)
        sandbox = connect(handle)
        top = set(sh(sandbox, "ls -A /").split())
        listed = {d: sh(sandbox, f"ls -A {d}").split() for d in ("/opt", "/var", "/home")}
        seen = sh(sandbox, " ; ".join(f"test -e {shlex.quote(p)} && echo {p}" for p in hidden))
    assert top <= {"bin", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32", "opt",
                   "proc", "root", "run", "sbin", "sys", "tmp", "usr", "var"}  # fmt: skip
    assert listed == {"/opt": ["localbox"], "/var": ["cache", "lib", "lock", "log", "run", "tmp"],
                      "/home": ["user"]}  # fmt: skip
    assert seen.split() == []


def test_umount_fails_for_user(sandbox: Sandbox) -> None:
    """The sandbox user cannot unmount its /home (or anything) to look underneath."""
    out = sh(sandbox, "umount /home/user; echo $?; umount -l /home/user; echo $?; ls -A /home")
    first, second, home = out.split()
    assert (first != "0", second != "0", home) == (True, True, "user")


def test_umount_as_root_reveals_nothing(localbox_host: LocalBoxHost) -> None:
    """Even sandbox root finds only the new root's empty directories under its mounts."""
    handle = start_localbox(LocalBoxOptions(lifetime_s=120, allow_root=True), localbox_host)
    try:
        sandbox = connect(handle)
        out = sh(sandbox, "umount -l /home/user && umount -l /tmp && ls -A /home/user /tmp && "
                 "umount -l /usr && (test -e /usr/bin || echo no-usr); "
                 "test -e /.oldroot || echo no-old-root", user="root")  # fmt: skip
    finally:
        handle.stop()
    assert out.split() == ["/home/user:", "/tmp:", "no-usr", "no-old-root"]


def test_writes_to_shared_tmp_dirs_stay_in_the_sandbox(localbox: LocalBoxHandle) -> None:
    """/var/tmp and /dev/shm are the sandbox's own: nothing lands in the host's, nothing stays."""
    mark = f"localbox-mark-{uuid.uuid4().hex}"
    sandbox = connect(localbox)
    sh(sandbox, f"echo x > /var/tmp/{mark}; echo x > /dev/shm/{mark}; echo x > /tmp/{mark}")
    inside = [localbox.root / sub / mark for sub in ("var/tmp", "dev/shm", "tmp")]
    assert all(path.exists() for path in inside)
    assert not Path(f"/var/tmp/{mark}").exists()
    assert not Path(f"/dev/shm/{mark}").exists()
    localbox.stop()
    assert not localbox.root.exists()
    assert not list(Path("/dev/shm").glob(f"**/{mark}"))
    assert not list(Path("/var/tmp").glob(f"**/{mark}"))


def test_claude_code_is_reachable_in_the_minimal_root(sandbox: Sandbox) -> None:
    """The tool the server offers still runs from /opt/localbox/bin."""
    assert "Claude Code" in sh(sandbox, "claude --version")


# --- command environment -----------------------------------------------------------


def plant_fakes(place: Path, marks: Path) -> None:
    """Fake helpers in ``place`` that append their name to ``marks`` wherever they run."""
    place.mkdir(parents=True)
    for name in ("setpriv", "nsenter", "unshare", "sh", "env", "bash", "cat"):
        fake = place / name
        fake.write_text(f"#!/bin/sh\necho {name} >> {marks}\nexit 0\n")
        fake.chmod(0o755)


def test_path_in_envs_does_not_choose_the_helpers(
    sandbox: Sandbox, localbox: LocalBoxHandle
) -> None:
    """PATH=/tmp/evil in a command's envs runs no fake setpriv/nsenter, outside or inside."""
    evil = f"/tmp/localbox-evil-{uuid.uuid4().hex}"  # the attack's path
    outside, inside = Path(evil), localbox.root / evil.lstrip("/")
    plant_fakes(outside, outside / "ran")
    plant_fakes(inside, Path(evil) / "ran")  # the same path, as the sandbox sees it
    try:
        out = sh(sandbox, "echo ran-in-sandbox; echo $$", envs={"PATH": evil})
        ran = [p for p in (outside / "ran", inside / "ran") if p.exists()]
    finally:
        for name in [*(p.name for p in outside.iterdir())]:
            (outside / name).unlink()
        outside.rmdir()
    assert ran == []
    assert out.split()[0] == "ran-in-sandbox"
    assert int(out.split()[1]) < 100  # a pid of the sandbox's own pid namespace


def test_path_in_envs_finds_the_command_itself(tmp_path: Path) -> None:
    """A command looked up by name uses the PATH of its envs, and only the command does."""
    with isolated(tmp_path, NetworkPolicy(internet=False)) as iso:
        make = "mkdir -p bin; printf '#!/bin/sh\\necho mine\\n' > bin/hello; chmod +x bin/hello"
        run_in(iso, ["sh", "-c", make])
        found = run_in(iso, ["hello"], {"PATH": "/home/user/bin:/usr/bin:/bin"})
        missing = run_in(iso, ["hello"])
    assert found.stdout == "mine\n"
    assert missing.returncode == 127


@pytest.mark.parametrize("name", ["LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "GCONV_PATH",
                                  "GLIBC_TUNABLES", "LOCPATH"])  # fmt: skip
def test_loader_variables_are_refused(
    sandbox: Sandbox, localbox: LocalBoxHandle, name: str
) -> None:
    """A loader variable in envs is refused with INVALID_ARGUMENT and nothing runs."""
    mark = localbox.root / "tmp" / "ran"
    with pytest.raises(InvalidArgumentException, match=name):
        sandbox.commands.run("touch /tmp/ran", envs={name: "/tmp/x.so"}, timeout=30)
    assert not mark.exists()


def test_envs_reach_the_command_byte_for_byte(sandbox: Sandbox) -> None:
    """Quotes, newlines, $ and backslashes in values arrive unchanged; no file is left behind."""
    value = 'it\'s "quoted"\n$HOME `id` \\n ü'
    out = sh(sandbox, "python3 -c 'import os; print(repr(os.environ[\"TRICKY\"]))'",
             envs={"TRICKY": value})  # fmt: skip
    assert out.strip() == repr(value)


def test_check_env_and_script() -> None:
    """Refused names, non-identifier names and NULs raise; the script quotes every value."""
    check_env({"TMPDIR": "/tmp", "LANG": "C", "_x1": "ok"})
    for bad in ({"LD_BIND_NOW": "1"}, {"A-B": "1"}, {"1A": "1"}, {"A": "x\0y"}):
        with pytest.raises(RefusedEnvError):
            check_env(bad)
    script = env_script({"B": "it's", "A": "1"})
    assert script == "export A='1'\nexport B='it'\\''s'\n"


# --- pure parts ----------------------------------------------------------------------


def test_parse_destination() -> None:
    """HOST, HOST:PORT and IP forms parse; no port means 80 and 443; ranges are refused."""
    assert parse_destination("Example.com") == (
        Destination("example.com", 80),
        Destination("example.com", 443),
    )
    assert parse_destination("127.0.0.1:8080") == (Destination("127.0.0.1", 8080),)
    assert parse_destination("[::1]:9") == (Destination("::1", 9),)
    assert parse_destination("::1")[0] == Destination("::1", 80)
    for bad in ("10.0.0.0/8", "host:0", "host:x", "bad host", "host:70000"):
        with pytest.raises(ValueError):
            parse_destination(bad)
    assert str(Destination("::1", 9)) == "[::1]:9"
    policy = NetworkPolicy((Destination("a.b", 1),), internet=False, shared_fallback=True)
    assert policy.argv() == ["--allow-out", "a.b:1", "--no-internet", "--shared-network"]


def test_plan_routes_block_the_runner_and_relay_allowed_addresses() -> None:
    """Internet plans block private ranges and the runner's networks; relays get local routes."""
    allow = (*parse_destination("192.0.2.9:22"), *parse_destination("pypi.org"))
    plan = plan_network(
        NetworkPolicy(allow), namespaces=True, has_slirp=True, host_nets=["192.0.2.2/32"]
    )
    routes = {dst: kind for kind, dst in plan.routes}
    assert routes["192.0.2.9/32"] == "local"
    assert routes["192.0.2.2/32"] == "unreachable"
    assert routes["10.0.0.0/8"] == "unreachable"
    assert routes["169.254.0.0/16"] == "unreachable"
    assert "10.0.2.0/24" not in routes  # slirp4netns's own network stays usable
    assert plan.names == (("127.100.0.1", "pypi.org"),)
    assert {(r.listen, r.target.port) for r in plan.relays} == {
        ("192.0.2.9", 22), ("127.100.0.1", 80), ("127.100.0.1", 443)}  # fmt: skip
    assert plan.hosts_file("", "pypi.org").splitlines()[0] == "127.100.0.1\tpypi.org"


def test_host_network_parsers() -> None:
    """/proc/net/fib_trie gives the runner's addresses, /proc/net/route its connected networks."""
    trie = ("Local:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 192.0.2.2\n        /32 host LOCAL\n"
            "     |-- 127.0.0.1\n        /32 host LOCAL\n     |-- 192.0.2.255\n"
            "        /32 link BROADCAST\n")  # fmt: skip
    route = ("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"
             "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\n"
             "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n")  # fmt: skip
    assert parse_fib_trie(trie) == ["192.0.2.2/32"]
    assert parse_route(route) == ["192.0.2.0/24"]
