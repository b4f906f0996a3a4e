"""The network of a local sandbox: a namespace of its own, and the ways out of it.

A sandbox gets its own network namespace, so the runner's loopback — the sandbox
server, and every other local service — is out of its reach. Two ways lead out:

- Allowed destinations (``--allow-out HOST[:PORT]``, repeated): for each, a
  socket listens inside the sandbox and a relay (netgate.py) joins what it accepts
  to that HOST:PORT, connected from the host. An address is served at that same
  address (``127.0.0.1:8080`` in the sandbox reaches the runner's 127.0.0.1:8080
  and no other port); a name gets a loopback address of its own in the sandbox's
  /etc/hosts and the host resolves it at connect time. Without a port: 80 and 443.
- The internet (unless ``--no-internet``): slirp4netns, a user-mode TCP/IP stack,
  with host loopback disabled, and unreachable routes in the sandbox to this
  machine's own addresses, its directly connected networks, and the private,
  link-local, shared and reserved ranges. DNS: slirp4netns's forwarder.

Where the sandbox cannot get a network of its own — plain mode (no namespaces), or
internet access asked for without slirp4netns installed — the server refuses to
start, unless ``--shared-network`` accepts sharing this machine's network.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import select
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .helpers import HELPER_ENV

DEFAULT_PORTS = (80, 443)
NAME_ADDRESSES = ipaddress.ip_network("127.100.0.0/16")
SLIRP_CIDR = ipaddress.IPv4Network("10.0.2.0/24")
SLIRP_DNS = "10.0.2.3"
# Never reachable through slirp4netns, besides this machine's own addresses and the
# networks it is directly connected to: private networks, cloud metadata
# (169.254.169.254), carrier-grade NAT (and Tailscale), multicast, reserved ranges.
BLOCKED = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
))  # fmt: skip
MAX_RELAYS = 200  # file descriptors sent in one message (the kernel's limit is 253)
_HOST_NAME = re.compile(r"(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.?)+")
_SLIRP_READY_S = 10.0
GATE_SCRIPT = Path(__file__).with_name("netgate.py")


class NetworkRefusedError(OSError):
    """The sandbox cannot get the network it was asked for (the message says what to do)."""


@dataclass(frozen=True, order=True)
class Destination:
    """One host (a name or an address) and port the sandbox may connect to."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _split(text: str) -> tuple[str, str | None]:
    """HOST[:PORT], with an IPv6 address alone or in brackets."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, rest.removeprefix(":") if rest else None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, port
    return text, None


def parse_destination(text: str) -> tuple[Destination, ...]:
    """``host``, ``host:port``, ``1.2.3.4[:port]``, ``::1``, ``[::1]:port``.

    Without a port: ports 80 and 443. Raises ValueError (ranges are not supported).
    """
    host, port = _split(text.strip())
    if "/" in host:
        raise ValueError(f"{text!r}: the local sandbox allows hosts and addresses, not ranges")
    if not (_is_address(host) or _HOST_NAME.fullmatch(host)):
        raise ValueError(f"{text!r} is not HOST[:PORT] (a host name or an IP address)")
    if port is None:
        return tuple(Destination(host.lower(), p) for p in DEFAULT_PORTS)
    if not port.isdigit() or not 0 < int(port) < 2**16:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    return (Destination(host.lower(), int(port)),)


@dataclass(frozen=True)
class NetworkPolicy:
    """What the sandbox may reach; see the module docstring."""

    allow_out: tuple[Destination, ...] = ()
    internet: bool = True
    shared_fallback: bool = False

    def argv(self) -> list[str]:
        """The server's command-line flags for this policy (what the launcher passes)."""
        flags = [arg for d in self.allow_out for arg in ("--allow-out", str(d))]
        flags += [] if self.internet else ["--no-internet"]
        return flags + (["--shared-network"] if self.shared_fallback else [])


def _destination_arg(text: str) -> tuple[Destination, ...]:
    try:
        return parse_destination(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The server's network flags."""
    group = parser.add_argument_group("network")
    group.add_argument(
        "--allow-out",
        action="append",
        default=[],
        type=_destination_arg,
        metavar="HOST[:PORT]",
        help="a destination the sandbox may reach, even on this machine's loopback "
        "(repeat; no port: 80 and 443)",
    )
    group.add_argument(
        "--no-internet",
        action="store_true",
        help="reach only the --allow-out destinations (default: the internet too, through "
        "slirp4netns, never this machine's own services)",
    )
    group.add_argument(
        "--shared-network",
        action="store_true",
        help="where the sandbox cannot get a network of its own (no slirp4netns, or no "
        "namespaces), share this machine's network instead of refusing to start: the "
        "sandbox then reaches every local service, this server included",
    )


def policy_from_args(args: argparse.Namespace) -> NetworkPolicy:
    """The policy the parsed flags of ``add_arguments`` describe."""
    allow = tuple(dict.fromkeys(d for group in args.allow_out for d in group))
    shared = bool(args.shared_network)
    return NetworkPolicy(allow, internet=not args.no_internet, shared_fallback=shared)


@dataclass(frozen=True)
class Relay:
    """A socket listening at ``listen``:``target.port`` in the sandbox, relayed to ``target``."""

    listen: str
    target: Destination


@dataclass(frozen=True)
class NetPlan:
    """How one sandbox's network is set up (``isolated`` False: the host's is shared)."""

    isolated: bool
    internet: bool
    relays: tuple[Relay, ...] = ()
    names: tuple[tuple[str, str], ...] = ()  # (address in the sandbox, host name)
    routes: tuple[tuple[str, str], ...] = ()  # (kind, CIDR): see nsinit.add_route
    warning: str | None = None

    def nsinit_spec(self, fd: int | None) -> dict[str, Any] | None:
        """The "net" part of nsinit's spec (None: no namespace of its own).

        "outside" names the server's network namespace, which nsinit must not be in.
        """
        if not self.isolated:
            return None
        listen = [[relay.listen, relay.target.port] for relay in self.relays]
        routes = [{"kind": kind, "dst": dst} for kind, dst in self.routes]
        outside = Path("/proc/self/ns/net").stat().st_ino
        return {"routes": routes, "listen": listen, "fd": fd, "outside": outside}

    def hosts_file(self, host_hosts: str, hostname: str) -> str:
        """The sandbox's /etc/hosts: the allowed names first (the first match wins)."""
        if not self.isolated:
            return host_hosts
        lines = [f"{address}\t{name}" for address, name in self.names]
        lines += ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        if hostname not in {name for _, name in self.names}:
            lines.append(f"127.0.1.1\t{hostname}")
        return "\n".join(lines) + "\n"

    def resolv_conf(self, host_resolv: str) -> str:
        """The sandbox's resolv.conf: slirp4netns's forwarder, none, or the host's."""
        if not self.isolated:
            return host_resolv
        if self.internet:
            return f"nameserver {SLIRP_DNS}\n"
        return "# No DNS: the allowed host names are in /etc/hosts.\n"


def _relays(allow: Iterable[Destination]) -> tuple[list[Relay], dict[str, str]]:
    """One relay per destination; each name gets an address of NAME_ADDRESSES."""
    names = sorted({d.host for d in allow if not _is_address(d.host) and d.host != "localhost"})
    address_of = {name: str(NAME_ADDRESSES[i + 1]) for i, name in enumerate(names)}
    address_of["localhost"] = "127.0.0.1"
    relays: dict[tuple[str, int], Relay] = {}
    for d in sorted(allow):
        listen = address_of.get(d.host, d.host)
        relays.setdefault((listen, d.port), Relay(listen, d))
    return list(relays.values()), {name: address_of[name] for name in names}


def _routes(
    relays: Sequence[Relay], internet: bool, host_nets: Sequence[str]
) -> list[tuple[str, str]]:
    """Local routes for relayed addresses; unreachable ones for what slirp4netns must not reach."""
    local = {ipaddress.ip_address(r.listen) for r in relays}
    routes = [("local", str(ipaddress.ip_network(a))) for a in sorted(local, key=str)
              if not a.is_loopback]  # fmt: skip
    if internet:
        blocked = [*BLOCKED, *(ipaddress.ip_network(n, strict=False) for n in host_nets)]
        # A range inside slirp4netns's own would hide its gateway and DNS; a larger one
        # does not (its route is the more specific).
        v4 = [n for n in blocked if isinstance(n, ipaddress.IPv4Network)]
        usable = [n for n in v4 if not n.subnet_of(SLIRP_CIDR)]
        routes += [("unreachable", str(n)) for n in dict.fromkeys(usable)]
    return routes


TUN_DEVICE = "/dev/net/tun"


def tun_usable(*, userns: bool) -> bool:
    """Whether slirp4netns can open the TUN device.

    As root always; in a user namespace only when the device is open to this user
    (Debian and Ubuntu make it 0666).
    """
    return not userns or os.access(TUN_DEVICE, os.R_OK | os.W_OK)


def _refusal(
    policy: NetworkPolicy, namespaces: bool, has_slirp: bool, *, tun_ok: bool = True
) -> str | None:
    if not namespaces:
        return ("the local sandbox cannot isolate anything here: no namespaces (run it as "
                "root, allow unprivileged user namespaces, or install util-linux), so its "
                "commands would run as you, with this machine's files and network")  # fmt: skip
    if policy.internet and not has_slirp:
        return ("the sandbox's internet access needs slirp4netns, which is not installed: "
                "install it (apt-get install slirp4netns), or pass --no-internet to allow "
                "only the --allow-out destinations")  # fmt: skip
    if policy.internet and not tun_ok:
        return (f"the sandbox's internet access needs slirp4netns to open {TUN_DEVICE}, "
                "which this user may not (Debian and Ubuntu make it 0666; here it is not): "
                f"`sudo chmod 0666 {TUN_DEVICE}`, run as root, or give the plan a `network:` "
                "list (--no-internet: only those destinations are reached)")  # fmt: skip
    return None


def plan_network(
    policy: NetworkPolicy,
    *,
    namespaces: bool,
    has_slirp: bool,
    host_nets: Sequence[str],
    tun_ok: bool = True,
) -> NetPlan:
    """The plan for ``policy`` on this machine. Raises NetworkRefusedError."""
    refusal = _refusal(policy, namespaces, has_slirp, tun_ok=tun_ok)
    if refusal is not None and not policy.shared_fallback:
        raise NetworkRefusedError(
            f"{refusal}; or pass --shared-network to share this machine's network (the "
            "sandbox then reaches every service on this machine, the sandbox server included)"
        )
    if refusal is not None:
        warning = (f"THE SANDBOX SHARES THIS MACHINE'S NETWORK (--shared-network): {refusal}. "
                   "It can reach every service on this machine and its network, the sandbox "
                   "server included, and --allow-out is not enforced.")  # fmt: skip
        return NetPlan(isolated=False, internet=True, warning=warning)
    relays, names = _relays(policy.allow_out)
    if len(relays) > MAX_RELAYS:
        raise NetworkRefusedError(f"too many --allow-out destinations (at most {MAX_RELAYS})")
    return NetPlan(
        isolated=True,
        internet=policy.internet,
        relays=tuple(relays),
        names=tuple((address, name) for name, address in names.items()),
        routes=tuple(_routes(relays, policy.internet, host_nets)),
    )


# --- the host's own networks -----------------------------------------------------------


def parse_fib_trie(text: str) -> list[str]:
    """The machine's own IPv4 addresses (as /32), from /proc/net/fib_trie."""
    found, last = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|--"):
            last = stripped[3:].strip()
        elif stripped.startswith("/32 host LOCAL") and last:
            found.append(f"{last}/32")
    return [n for n in dict.fromkeys(found) if not ipaddress.ip_network(n).is_loopback]


def parse_route(text: str) -> list[str]:
    """Networks directly connected to this machine (no gateway), from /proc/net/route."""
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8 or fields[0] == "lo" or fields[2] != "00000000":  # noqa: PLR2004
            continue
        dest, mask = (int.from_bytes(bytes.fromhex(f), "little") for f in (fields[1], fields[7]))
        if mask:
            found.append(str(ipaddress.ip_network((dest, mask.bit_count()), strict=False)))
    return found


def host_networks(proc: Path = Path("/proc/net")) -> list[str]:
    """The machine's addresses and connected networks (empty where /proc does not say)."""
    try:
        trie = (proc / "fib_trie").read_text(encoding="utf-8")
        route = (proc / "route").read_text(encoding="utf-8")
    except OSError:
        return []
    return [*parse_fib_trie(trie), *parse_route(route)]


# --- the processes: slirp4netns and the relay --------------------------------------------


@dataclass
class Slirp:
    """A running slirp4netns; it ends when ``exit_fd`` closes (also if the server dies)."""

    process: subprocess.Popen[bytes]
    exit_fd: int

    def stop(self) -> None:
        """End it and wait."""
        if self.exit_fd >= 0:
            os.close(self.exit_fd)
            self.exit_fd = -1
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


def slirp_argv(path: str, init_pid: int, ready_fd: int, exit_fd: int, *, userns: bool) -> list[str]:
    """slirp4netns for the namespace of ``init_pid``: no host loopback, sandboxed itself."""
    argv = [path, "--configure", "--mtu=65520", "--disable-host-loopback", "--enable-sandbox",
            "--enable-seccomp", f"--cidr={SLIRP_CIDR}", f"--ready-fd={ready_fd}",
            f"--exit-fd={exit_fd}"]  # fmt: skip
    if userns:
        argv.append(f"--userns-path=/proc/{init_pid}/ns/user")
    return [*argv, str(init_pid), "tap0"]


def start_slirp(path: str, init_pid: int, *, userns: bool) -> Slirp:
    """Attach slirp4netns to the sandbox's namespace. Raises OSError if it does not come up."""
    ready_r, ready_w = os.pipe()
    exit_r, exit_w = os.pipe()
    try:
        process = subprocess.Popen(
            slirp_argv(path, init_pid, ready_w, exit_r, userns=userns),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            pass_fds=(ready_w, exit_r),
            env=dict(HELPER_ENV),
            start_new_session=True,
        )
    finally:
        os.close(ready_w)
        os.close(exit_r)
    slirp = Slirp(process, exit_w)
    try:
        _wait_readable(ready_r, _SLIRP_READY_S, "slirp4netns")
    except OSError:
        slirp.stop()
        raise
    finally:
        os.close(ready_r)
    return slirp


def _wait_readable(fd: int, timeout: float, what: str) -> None:
    readable, _, _ = select.select([fd], [], [], timeout)
    if not readable or not os.read(fd, 16):
        raise OSError(f"{what} did not start (see the server's log)")


def start_gate(
    relays: Sequence[Relay], fds: Sequence[int], env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """Start the relay (netgate.py) on the listening sockets ``fds`` (in ``relays``' order)."""
    spec = {
        "parent": os.getpid(),
        "relays": [{"fd": fd, "host": r.target.host, "port": r.target.port}
                   for r, fd in zip(relays, fds, strict=True)],
    }  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-I", "-S", str(GATE_SCRIPT), json.dumps(spec)],
        stdin=subprocess.DEVNULL,
        pass_fds=tuple(fds),
        env=env,
        start_new_session=True,
    )
