"""How commands of a local sandbox are isolated, in each of the three modes.

- ``root`` (the server runs as root): one mount + pid + network namespace per
  sandbox, held by ``nsinit`` as its pid 1, which pivots into a minimal root of
  its own (rootfs.py): the host's system directories read-only, ROOT/home/user at
  /home/user, ROOT's /tmp, /var/tmp, /dev/shm, /run and /root, a generated
  passwd/group/profile/hosts/resolv.conf, the tools at /opt/localbox/bin, and
  nothing else of the host. Commands for "user" run as a real unprivileged uid
  (setpriv, no new privileges), so Claude Code accepts --dangerously-skip-permissions.
- ``userns`` (not root, user namespaces allowed): the same inside a user namespace
  where the server's uid is root; commands for "user" enter a nested user namespace
  that maps it to uid 1000. Every file stays owned by the server's uid on the host.
- ``plain`` (neither): commands run as the server's user with cwd and HOME mapped
  into ROOT; nothing is isolated, so the server refuses it unless told to share
  this machine's network (netns.py: --shared-network).

The network (netns.py): the sandbox's own namespace; allowed destinations through
a relay, the internet through slirp4netns. Commands enter the namespaces with
``nsenter``; killing nsinit (via ``unshare --kill-child``) kills everything in the
sandbox, grandchildren included. Every helper is run by the absolute path found
when the server started (helpers.py), with HELPER_ENV; a command's own
environment reaches the command alone (command_env.py).
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from . import rootfs
from .command_env import (
    ENV_DIR,
    HOST_ENV_DIR,
    SHIM,
    SHIM_NAME,
    check_env,
    prepare_env_dir,
    write_env_file,
)
from .helpers import HELPER_ENV, Helpers, resolve_helpers
from .netns import (
    NetPlan,
    NetworkPolicy,
    Slirp,
    host_networks,
    plan_network,
    start_gate,
    start_slirp,
    tun_usable,
)
from .paths import absolute, home_of

Mode = Literal["root", "userns", "plain"]
TOOLS_DIR = f"/{rootfs.TOOLS_DIR}"
DEFAULT_PATH = f"{TOOLS_DIR}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
USERNS_UID = 1000
NSINIT_SCRIPT = Path(__file__).with_name("nsinit.py")
_COLONS = 6  # a passwd line has seven fields
_log = logging.getLogger("claude_e2b.localbox")


def detect_mode(helpers: Helpers | None = None) -> Mode:
    """The strongest mode this machine allows the current process."""
    helpers = helpers or resolve_helpers()
    if not helpers.has("unshare", "nsenter", "setpriv", "sh"):
        return "plain"
    if os.geteuid() == 0:
        return "root"
    probe = subprocess.run(
        [helpers.path("unshare"), "--user", "--map-root-user", "--mount", "--pid", "--net",
         "--fork", "--", helpers.path("sh"), "-c", "exit 0"],
        capture_output=True,
        check=False,
        timeout=10,
        env=dict(HELPER_ENV),
    )  # fmt: skip
    return "userns" if probe.returncode == 0 else "plain"


def free_uid(passwd: str, start: int = 1000) -> int:
    """The first uid from ``start`` that no entry of a passwd file uses."""
    used = {int(line.split(":")[2]) for line in passwd.splitlines() if line.count(":") == _COLONS}
    uid = start
    while uid in used:
        uid += 1
    return uid


def _replace_entry(text: str, name: str, ident: int, entry: str) -> str:
    """Drop any line for ``name`` or id ``ident``, then add ``entry``."""
    kept = [
        line
        for line in text.splitlines()
        if line.split(":")[0] != name and line.split(":")[2:3] != [str(ident)]
    ]
    return "\n".join([*kept, entry]) + "\n"


@dataclass(frozen=True)
class Identity:
    """Who "user" is inside the sandbox."""

    uid: int
    gid: int


def write_etc(etc: Path, ident: Identity) -> None:
    """Write the passwd, group and profile the sandbox sees (never the host's)."""
    etc.mkdir(parents=True, exist_ok=True)
    passwd = Path("/etc/passwd").read_text(encoding="utf-8")
    group = Path("/etc/group").read_text(encoding="utf-8")
    user_line = f"user:x:{ident.uid}:{ident.gid}:user:/home/user:/bin/bash"
    (etc / "passwd").write_text(_replace_entry(passwd, "user", ident.uid, user_line), "utf-8")
    (etc / "group").write_text(_replace_entry(group, "user", ident.gid, f"user:x:{ident.gid}:"))
    profile = Path("/etc/profile")
    base = profile.read_text(encoding="utf-8") if profile.exists() else ""
    # /etc/profile resets PATH for login shells (bash -l), which would hide the tools.
    (etc / "profile").write_text(f'{base}\nPATH="{TOOLS_DIR}:$PATH"\nexport PATH\n', "utf-8")


def write_net_etc(etc: Path, plan: NetPlan) -> None:
    """Write the hosts and resolv.conf of the sandbox's network (netns.NetPlan)."""
    hosts = _read_or_empty(Path("/etc/hosts"))
    (etc / "hosts").write_text(plan.hosts_file(hosts, os.uname().nodename), "utf-8")
    (etc / "resolv.conf").write_text(plan.resolv_conf(_read_or_empty(Path("/etc/resolv.conf"))))


def _read_or_empty(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def python_env() -> dict[str, str]:
    """The environment of our own Python helpers (nsinit, netgate).

    HELPER_ENV, plus the dynamic linker's path if the server's interpreter was given
    one (launcher.SERVER_ENV lets it through for that).
    """
    env = dict(HELPER_ENV)
    if os.environ.get("LD_LIBRARY_PATH"):
        env["LD_LIBRARY_PATH"] = os.environ["LD_LIBRARY_PATH"]
    return env


@dataclass(frozen=True)
class Launch:
    """How to start one command: argv and environment for Popen, and what to remove after."""

    argv: list[str]
    env: dict[str, str]
    cwd: str | None
    env_file: Path

    def cleanup(self) -> None:
        """Remove the command's environment file (once it has ended)."""
        self.env_file.unlink(missing_ok=True)


@dataclass
class Isolation:
    """The namespaces of one sandbox and how to start a command in them."""

    mode: Mode
    root: Path
    identity: Identity
    tools: Mapping[str, Path] = field(default_factory=dict)
    network: NetworkPolicy = field(default_factory=NetworkPolicy)
    helpers: Helpers = field(default_factory=resolve_helpers)
    holder: subprocess.Popen[bytes] | None = None
    init_pid: int = 0
    net: NetPlan | None = None
    slirp: Slirp | None = None
    gate: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Create the namespaces (not in plain mode).

        Raises netns.NetworkRefusedError when the sandbox cannot get the network it
        was asked for, OSError when the namespaces fail to start.
        """
        self.net = plan_network(
            self.network,
            namespaces=self.mode != "plain",
            has_slirp=self.helpers.has("slirp4netns"),
            host_nets=host_networks(),
            tun_ok=tun_usable(userns=self.mode == "userns"),
        )
        if self.net.warning:
            _log.warning("%s", self.net.warning)
        prepare_env_dir(self.root / HOST_ENV_DIR)
        if self.mode == "plain":
            return
        spec = self._prepare_root(self.net)
        channel, theirs = socket.socketpair() if self.net.relays else (None, None)
        try:
            spec["net"] = self.net.nsinit_spec(theirs.fileno() if theirs else None)
            self._start_holder(spec, theirs)
            fds = _receive_fds(channel, len(self.net.relays)) if channel else []
        finally:
            for sock in (channel, theirs):
                if sock is not None:
                    sock.close()
        self._start_network(self.net, fds)

    def _prepare_root(self, net: NetPlan) -> dict[str, Any]:
        """Write the generated /etc and ROOT's directories; nsinit's spec, without "net"."""
        etc = self.root / ".localbox" / "etc"
        write_etc(etc, self.identity)
        write_net_etc(etc, net)
        rootfs.prepare_private_dirs(self.root)
        newroot = self.root / ".localbox" / "rootfs"
        newroot.mkdir(exist_ok=True)
        steps = rootfs.plan(self.root, etc, self.tools, self.root / HOST_ENV_DIR)
        return {"newroot": str(newroot), "steps": steps}

    def _start_holder(self, spec: dict[str, Any], theirs: socket.socket | None) -> None:
        spec_path = self.root / ".localbox" / "nsinit.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        self.holder = subprocess.Popen(
            [*self._holder_prefix(), sys.executable, "-I", "-S", str(NSINIT_SCRIPT),
             str(spec_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            pass_fds=(theirs.fileno(),) if theirs else (),
            env=python_env(),
            start_new_session=True,
        )  # fmt: skip
        self.init_pid = _wait_ready(self.holder)

    def _start_network(self, net: NetPlan, fds: list[int]) -> None:
        try:
            if net.isolated and net.internet:
                slirp = self.helpers.path("slirp4netns")
                self.slirp = start_slirp(slirp, self.init_pid, userns=self.mode == "userns")
            if fds:
                self.gate = start_gate(net.relays, fds, python_env())
        finally:
            for fd in fds:
                os.close(fd)

    def _own_net(self) -> list[str]:
        return ["--net"] if self.net is not None and self.net.isolated else []

    def _holder_prefix(self) -> list[str]:
        h = self.helpers
        user = ["--user", "--map-root-user"] if self.mode == "userns" else []
        own_net = self._own_net()
        return [
            h.path("setpriv"), "--pdeathsig", "KILL", "--",
            h.path("unshare"), *user, "--mount", "--propagation", "private", "--pid", "--fork",
            "--kill-child", *own_net, "--",
        ]  # fmt: skip

    def launch(self, argv: list[str], user: str, cwd: str, envs: Mapping[str, str]) -> Launch:
        """How to run ``argv`` as ``user`` in ``cwd`` inside the sandbox, with ``envs`` added.

        Raises command_env.RefusedEnvError for a variable the sandbox refuses.
        """
        check_env(envs)
        env_dir = self.root / HOST_ENV_DIR
        env_file = write_env_file(env_dir, self.env(user, envs), self.owner_uid(user))
        h = self.helpers
        # Plain mode may be plain because util-linux is missing: then without the prefix.
        prefix = [h.path("setpriv"), "--pdeathsig", "KILL", "--"] if h.has("setpriv") else []
        if self.mode == "plain":
            shim = [h.path("sh"), "-c", SHIM, SHIM_NAME, self._host(cwd), str(env_file), *argv]
            return Launch([*prefix, *shim], dict(HELPER_ENV), None, env_file)
        shim = [h.path("sh"), "-c", SHIM, SHIM_NAME, cwd, f"{ENV_DIR}/{env_file.name}", *argv]
        user_ns = ["--user", "--preserve-credentials"] if self.mode == "userns" else []
        enter = [h.path("nsenter"), "--target", str(self.init_pid), *user_ns, "--mount", "--pid",
                 *self._own_net(), "--"]  # fmt: skip
        return Launch([*prefix, *enter, *self._as_user(user), *shim], dict(HELPER_ENV), None,
                      env_file)  # fmt: skip

    def _as_user(self, user: str) -> list[str]:
        if user == "root":
            return []
        setpriv = self.helpers.path("setpriv")
        if self.mode == "userns":
            uid = str(self.identity.uid)
            return [setpriv, "--no-new-privs", "--", self.helpers.path("unshare"), "--user",
                    f"--map-user={uid}", f"--map-group={uid}", "--"]  # fmt: skip
        uid, gid = str(self.identity.uid), str(self.identity.gid)
        return [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--no-new-privs",
                "--"]  # fmt: skip

    def _host(self, path: str) -> str:
        return str(self.root / path.lstrip("/"))

    def env(self, user: str, extra: Mapping[str, str]) -> dict[str, str]:
        """A scrubbed environment: nothing of the server's own leaks in."""
        home = home_of(user)
        if self.mode == "plain":
            home = self._host(home)
        name = "root" if user == "root" else "user"
        base = {"PATH": DEFAULT_PATH, "HOME": home, "USER": name, "LOGNAME": name}
        return {**base, "LANG": "C.UTF-8", **extra}

    def stop(self) -> None:
        """Kill the relay, slirp4netns and nsinit, and with it every process of the sandbox."""
        if self.gate is not None and self.gate.poll() is None:
            self.gate.kill()
            self.gate.wait(timeout=10)
        if self.slirp is not None:
            self.slirp.stop()
        if self.holder is None or self.holder.poll() is not None:
            return
        os.killpg(self.holder.pid, 9)
        self.holder.wait(timeout=10)

    def owner_uid(self, user: str) -> int | None:
        """Host uid that files written for ``user`` must belong to (None: keep ours)."""
        if self.mode == "root" and user != "root":
            return self.identity.uid
        return None


def _receive_fds(channel: socket.socket, count: int) -> list[int]:
    """The listening sockets nsinit made in the sandbox's network namespace."""
    channel.settimeout(5)
    _msg, fds, _flags, _addr = socket.recv_fds(channel, 64, count)
    if len(fds) != count:
        for fd in fds:
            os.close(fd)
        raise OSError(f"nsinit sent {len(fds)} of the {count} relay sockets")
    return fds


def _wait_ready(holder: subprocess.Popen[bytes]) -> int:
    """Wait for nsinit's "ready" line; return nsinit's host pid."""
    assert holder.stdout is not None  # noqa: S101 - stdout=PIPE above
    line = holder.stdout.readline()
    holder.stdout.close()
    if line.strip() != b"ready":
        holder.kill()
        raise OSError(f"sandbox namespaces failed to start (exit {holder.wait(timeout=5)})")
    return _child_pid(holder.pid)


def _child_pid(pid: int) -> int:
    """The host pid of ``pid``'s child (unshare --fork's child is nsinit)."""
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text(encoding="utf-8")
        except OSError:
            continue
        if f"\nPPid:\t{pid}\n" in text:
            return int(status.parent.name)
    raise OSError(f"sandbox init process (child of {pid}) not found")


def identity_for(mode: Mode) -> Identity:
    """Who "user" is: uid 1000 inside a user namespace, else a uid free on the host."""
    if mode == "userns":
        return Identity(USERNS_UID, USERNS_UID)
    if mode == "plain":
        return Identity(os.getuid(), os.getgid())
    uid = free_uid(Path("/etc/passwd").read_text(encoding="utf-8"))
    return Identity(uid, uid)


def resolve_cwd(cwd: str | None, user: str) -> str:
    """The absolute sandbox cwd of a command (default: the user's home)."""
    return absolute(cwd, user) if cwd else home_of(user)


def username(uid: int) -> str:
    """A host uid's name, or the number."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
