"""Init process of a local sandbox's namespaces: build its world, then reap.

Started by the server as ``unshare … --pid --fork --kill-child [--net] python -I
-S nsinit.py SPEC.json``, so it is pid 1 of the sandbox's pid namespace: when it
dies the kernel kills everything in the sandbox. It runs as a plain script (only
the standard library, nothing imported after the pivot) and carries out what the
spec says (rootfs.py and netns.py write it):

1. the network namespace: loopback up, the spec's routes, a listening socket per
   relayed destination, sent to the server over an inherited socket;
2. the file system: a tmpfs as the new root, the spec's steps in it, pivot_root,
   and the host's old root detached, so nothing of it is left to uncover;
3. "ready" on stdout; then it reaps orphans until it is killed.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import platform
import re
import signal
import socket
import struct
import sys
from pathlib import Path
from typing import Any

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_RELATIME = 1 << 21
MNT_DETACH = 2
# statvfs f_flag bit -> the mount flag to keep: a remount in a user namespace must
# repeat the flags it inherited locked, or the kernel refuses it.
_KEEP_FLAGS = {1: MS_RDONLY, 2: MS_NOSUID, 4: MS_NODEV, 8: MS_NOEXEC, 1024: MS_NOATIME,
               2048: MS_NODIRATIME, 4096: MS_RELATIME}  # fmt: skip
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
_PR_SET_DUMPABLE = 4
_OLD_ROOT = ".oldroot"
_OCTAL = re.compile(r"\\([0-7]{3})")  # mountinfo writes a space in a path as \040

_libc = ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    rc = _libc.mount(
        source.encode(),
        target.encode(),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    )
    _check(rc, f"mount {source} on {target}")


# --- the file system -----------------------------------------------------------------


def _submounts(target: str) -> list[str]:
    """Mount points at or below ``target`` (a recursive bind brings the source's along)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines():
        point = _OCTAL.sub(lambda m: chr(int(m[1], 8)), line.split()[4])
        if point == target or point.startswith(target + "/"):
            found.append(point)
    return found


def _restrict(point: str, extra: int) -> None:
    kept = os.statvfs(point).f_flag
    flags = MS_REMOUNT | MS_BIND | MS_NOSUID | extra
    flags |= sum(flag for bit, flag in _KEEP_FLAGS.items() if kept & bit)
    _mount("none", point, None, flags, None)


def _make_target(target: str, *, is_dir: bool) -> None:
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        Path(target).mkdir(exist_ok=True)
    else:
        Path(target).touch()


def _bind(step: dict[str, Any], target: str) -> None:
    _make_target(target, is_dir=Path(step["src"]).is_dir())
    _mount(step["src"], target, None, MS_BIND | MS_REC, None)
    extra = (0 if step["rw"] else MS_RDONLY) | (0 if step["dev"] else MS_NODEV)
    for point in _submounts(target):
        _restrict(point, extra)


def _special(kind: str, target: str) -> None:
    """proc, sysfs (the host's, read-only, if a new one is not allowed) or a private devpts."""
    hardened = MS_NOSUID | MS_NODEV | MS_NOEXEC
    if kind == "proc":
        _mount("proc", target, "proc", hardened, None)
    elif kind == "sysfs":
        try:
            _mount("sysfs", target, "sysfs", hardened | MS_RDONLY, None)
        except OSError:
            _bind({"src": "/sys", "rw": False, "dev": False}, target)
    else:
        # Best effort: without it only pseudo-terminals are missing, and the server has none.
        try:
            _mount("devpts", target, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666")
        except OSError as exc:
            sys.stderr.write(f"nsinit: no private /dev/pts ({exc})\n")


def _run_step(step: dict[str, Any], newroot: str) -> None:
    target = f"{newroot}/{step['path']}"
    op = step["op"]
    if op == "dir":
        Path(target).mkdir(parents=True, exist_ok=True)
        Path(target).chmod(step["mode"])
    elif op == "symlink":
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).symlink_to(step["target"])
    elif op == "bind":
        _bind(step, target)
    else:
        _special(op, target)


def _pivot(newroot: str) -> None:
    """Make ``newroot`` the root and drop every trace of the host's."""
    number = _PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(f"pivot_root: unsupported architecture {platform.machine()}")
    Path(f"{newroot}/{_OLD_ROOT}").mkdir()
    _check(_libc.syscall(number, newroot.encode(), f"{newroot}/{_OLD_ROOT}".encode()), "pivot")
    os.chdir("/")
    _check(_libc.umount2(f"/{_OLD_ROOT}".encode(), MNT_DETACH), "umount old root")
    Path(f"/{_OLD_ROOT}").rmdir()
    _restrict("/", MS_RDONLY | MS_NODEV)


def build_root(newroot: str, steps: list[dict[str, Any]]) -> None:
    """A tmpfs at ``newroot``, the steps in it, then pivot into it."""
    _mount("tmpfs", newroot, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755")
    for step in steps:
        _run_step(step, newroot)
    _pivot(newroot)


# --- the network ---------------------------------------------------------------------

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 1
_RTM_NEWROUTE = 24
_NLM_F_REQUEST, _NLM_F_ACK, _NLM_F_EXCL, _NLM_F_CREATE = 1, 4, 0x200, 0x400
_NLMSG_ERROR = 2
_RTA_DST, _RTA_OIF = 1, 4
_RTPROT_STATIC = 4
# kind -> (table, scope, type): "local" makes an address the sandbox's own, so a relay
# can listen on it; "unreachable" keeps the user-mode stack from reaching a range.
_ROUTES = {"local": (255, 254, 2), "unreachable": (254, 0, 7)}
_IP_FREEBIND = 15


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def _attr(kind: int, data: bytes) -> bytes:
    padded = data + b"\0" * (-len(data) % 4)
    return struct.pack("HH", 4 + len(data), kind) + padded


def add_route(dst: str, kind: str) -> None:
    """Add a route ("local" or "unreachable") for the CIDR ``dst``, over rtnetlink."""
    address, _, length = dst.partition("/")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    table, scope, rtype = _ROUTES[kind]
    attrs = _attr(_RTA_DST, socket.inet_pton(family, address))
    if kind == "local":
        attrs += _attr(_RTA_OIF, struct.pack("i", socket.if_nametoindex("lo")))
    rtmsg = struct.pack("BBBBBBBBI", family, int(length), 0, 0, table, _RTPROT_STATIC, scope,
                        rtype, 0)  # fmt: skip
    flags = _NLM_F_REQUEST | _NLM_F_ACK | _NLM_F_CREATE | _NLM_F_EXCL
    body = rtmsg + attrs
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.send(struct.pack("IHHII", 16 + len(body), _RTM_NEWROUTE, flags, 1, 0) + body)
        answer = sock.recv(4096)
    kind_of, error = struct.unpack_from("H", answer, 4)[0], struct.unpack_from("i", answer, 16)[0]
    if kind_of != _NLMSG_ERROR or error != 0:
        raise OSError(-error, f"route {kind} {dst}: {os.strerror(-error)}")


def _listener(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_IP, _IP_FREEBIND, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((address, port))
    sock.listen(128)
    return sock


def setup_network(net: dict[str, Any]) -> None:
    """Loopback, routes, and the relays' listening sockets, sent to the server.

    Raises OSError if we are still in the server's network namespace: the routes
    are meant for the sandbox's, and would cut this machine off its own networks.
    """
    if Path("/proc/self/ns/net").stat().st_ino == net["outside"]:
        raise OSError("nsinit is in the server's network namespace: refusing to change it")
    _loopback_up()
    for route in net["routes"]:
        add_route(route["dst"], route["kind"])
    listeners = [_listener(address, port) for address, port in net["listen"]]
    if net["fd"] is not None:
        with socket.socket(fileno=net["fd"]) as channel:
            socket.send_fds(channel, [b"listeners"], [s.fileno() for s in listeners])
    for sock in listeners:
        sock.close()


# --- pid 1 ---------------------------------------------------------------------------


def _reap_all() -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def reap_forever() -> None:
    """Collect orphans re-parented to us, as soon as they exit, until the sandbox is killed."""
    # SIGCHLD stays blocked and is waited for, so a killed command is never left a zombie
    # that `ps` or `pgrep` inside the sandbox would still show.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    while True:
        _reap_all()
        signal.sigtimedwait({signal.SIGCHLD}, 1.0)


def main(argv: list[str]) -> int:
    """Entry point: ``nsinit.py SPEC.json``."""
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    if spec["net"] is not None:
        setup_network(spec["net"])
    build_root(spec["newroot"], spec["steps"])
    # Not dumpable: no process of the sandbox may open our /proc entries or trace us.
    _check(_libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl")
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    os.close(1)
    reap_forever()
    return 0  # pragma: no cover - reap_forever only ends by SIGKILL


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
