"""How commands of a local sandbox are isolated, in each of the three modes.

- ``root`` (the server runs as root): one mount + pid namespace per sandbox, held
  by ``nsinit`` as its pid 1. ROOT/home/user is bound at /home/user, ROOT/tmp at
  /tmp, ROOT/root at /root, a generated passwd/group/profile over /etc/…, the
  tools at /opt/localbox/bin. Commands for "user" run as a real unprivileged uid
  (setpriv), so Claude Code accepts --dangerously-skip-permissions.
- ``userns`` (not root, user namespaces allowed): the same mounts inside a user
  namespace where the server's uid is root; commands for "user" enter a nested
  user namespace that maps it to uid 1000. Every file stays owned by the server's
  uid on the host.
- ``plain`` (neither): commands run as the server's user with cwd and HOME mapped
  into ROOT; command lines naming /home/user do not work, nothing is isolated.

Commands enter the namespaces with ``nsenter``; killing nsinit (via ``unshare
--kill-child``) kills everything in the sandbox, grandchildren included.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .paths import absolute, home_of

Mode = Literal["root", "userns", "plain"]
TOOLS_DIR = "/opt/localbox/bin"
DEFAULT_PATH = f"{TOOLS_DIR}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
USERNS_UID = 1000
_COLONS = 6  # a passwd line has seven fields
_READY_TIMEOUT_S = 15.0


def detect_mode() -> Mode:
    """The strongest mode this machine allows the current process."""
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        return "plain"
    if os.geteuid() == 0:
        return "root"
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "--pid", "--fork", "true"],
        capture_output=True,
        check=False,
        timeout=10,
    )
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


@dataclass
class Isolation:
    """The namespaces of one sandbox and how to start a command in them."""

    mode: Mode
    root: Path
    identity: Identity
    tools: Mapping[str, Path] = field(default_factory=dict)
    holder: subprocess.Popen[bytes] | None = None
    init_pid: int = 0

    def start(self) -> None:
        """Create the namespaces (not in plain mode). Raises OSError on failure."""
        if self.mode == "plain":
            return
        etc = self.root / ".localbox" / "etc"
        write_etc(etc, self.identity)
        spec = etc.parent / "nsinit.json"
        tools = {name: str(path) for name, path in self.tools.items()}
        spec.write_text(json.dumps({"root": str(self.root), "etc": str(etc), "tools": tools}))
        self.holder = subprocess.Popen(
            [*self._holder_prefix(), sys.executable, "-m", f"{__package__}.nsinit", str(spec)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        self.init_pid = _wait_ready(self.holder)

    def _holder_prefix(self) -> list[str]:
        user = ["--user", "--map-root-user"] if self.mode == "userns" else []
        return [
            "setpriv", "--pdeathsig", "KILL", "--",
            "unshare", *user, "--mount", "--propagation", "private", "--pid", "--fork",
            "--kill-child", "--mount-proc", "--",
        ]  # fmt: skip

    def command_argv(self, argv: list[str], user: str, cwd: str) -> list[str]:
        """The argv that runs ``argv`` as ``user`` in ``cwd`` inside the sandbox."""
        prefix = ["setpriv", "--pdeathsig", "KILL", "--"]
        if self.mode == "plain":
            return [*prefix, *argv]
        user_ns = ["--user", "--preserve-credentials"] if self.mode == "userns" else []
        enter = ["nsenter", "--target", str(self.init_pid), *user_ns, "--mount", "--pid"]
        # nsenter --wd would open the directory before entering the mount namespace.
        chdir = ["env", f"--chdir={cwd}", "--"]
        return [*prefix, *enter, "--", *self._as_user(user), *chdir, *argv]

    def _as_user(self, user: str) -> list[str]:
        if user == "root":
            return []
        if self.mode == "userns":
            uid = str(self.identity.uid)
            return ["unshare", "--user", f"--map-user={uid}", f"--map-group={uid}", "--"]
        uid, gid = str(self.identity.uid), str(self.identity.gid)
        return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]

    def host_cwd(self, cwd: str) -> str | None:
        """The cwd to give Popen: None in namespace modes (env --chdir sets it)."""
        if self.mode != "plain":
            return None
        return str(self.root / cwd.lstrip("/"))

    def env(self, user: str, extra: Mapping[str, str]) -> dict[str, str]:
        """A scrubbed environment: nothing of the server's own leaks in."""
        home = home_of(user)
        if self.mode == "plain":
            home = str(self.root / home.lstrip("/"))
        name = "root" if user == "root" else "user"
        base = {"PATH": DEFAULT_PATH, "HOME": home, "USER": name, "LOGNAME": name}
        return {**base, "LANG": "C.UTF-8", **extra}

    def stop(self) -> None:
        """Kill nsinit, and with it every process of the sandbox."""
        if self.holder is None or self.holder.poll() is not None:
            return
        os.killpg(self.holder.pid, 9)
        self.holder.wait(timeout=10)

    def owner_uid(self, user: str) -> int | None:
        """Host uid that files written for ``user`` must belong to (None: keep ours)."""
        if self.mode == "root" and user != "root":
            return self.identity.uid
        return None


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
