"""The file system a sandbox sees, as a list of steps nsinit carries out.

nsinit mounts a fresh tmpfs as the new root, builds it with these steps, then
pivots into it and detaches the host's root: afterwards no path, and no
``umount``, leads back to the host. What the new root holds:

- read-only: /usr, /bin, /sbin, /lib* (the host's programs and libraries), /etc
  (the host's entries one by one, minus shadow files and sudoers, plus generated
  passwd, group, profile, hosts and resolv.conf), the tools at /opt/localbox/bin,
  the commands' environment files at /opt/localbox/env;
- the sandbox's own, from its directory ROOT (so they are removed with it):
  /home/user, /root, /tmp, /var/tmp, /dev/shm, /run;
- a minimal /dev (null, zero, full, random, urandom, tty, a private pts), /proc
  of the sandbox's pid namespace, /sys read-only;
- nothing else: no other home, checkout or /opt entry, no /srv, /mnt, /media,
  and of /var only tmp (and run/lock links).

Everything is mounted nosuid, and nodev except the device nodes. The steps are
plain data (JSON for nsinit), so what a sandbox sees can be read and tested here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .command_env import ENV_DIR

Step = dict[str, Any]

SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
GENERATED_ETC = ("passwd", "group", "profile", "hosts", "resolv.conf")
HIDDEN_ETC = frozenset({
    "shadow", "shadow-", "gshadow", "gshadow-", "passwd-", "group-",
    "sudoers", "sudoers.d", "subuid", "subgid",
})  # fmt: skip
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
    "ptmx": "pts/ptmx",
}
# Sandbox path -> (directory under ROOT, mode): writable places, removed with ROOT.
PRIVATE_DIRS = {
    "home/user": ("home/user", 0o755),
    "root": ("root", 0o700),
    "tmp": ("tmp", 0o1777),
    "var/tmp": ("var/tmp", 0o1777),
    "dev/shm": ("dev/shm", 0o1777),
    "run": ("run", 0o755),
}
TOOLS_DIR = "opt/localbox/bin"


def bind(source: str | Path, path: str, *, writable: bool = False, dev: bool = False) -> Step:
    """Bind ``source`` (recursively) at ``path``; read-only unless ``writable``."""
    return {"op": "bind", "src": str(source), "path": path, "rw": writable, "dev": dev}


def symlink(path: str, target: str) -> Step:
    """A symbolic link at ``path``."""
    return {"op": "symlink", "path": path, "target": target}


def directory(path: str, mode: int = 0o755) -> Step:
    """An empty directory (on the new root's tmpfs, read-only in the end)."""
    return {"op": "dir", "path": path, "mode": mode}


def special(kind: str, path: str) -> Step:
    """A kernel file system: "proc", "sysfs" or "devpts"."""
    return {"op": kind, "path": path}


def prepare_private_dirs(root: Path) -> None:
    """Create ROOT's writable places that the server itself does not (modes as in a system)."""
    for source, mode in PRIVATE_DIRS.values():
        place = root / source
        if not place.exists():
            place.mkdir(parents=True)
            place.chmod(mode)
    lock = root / "run" / "lock"
    lock.mkdir(exist_ok=True)
    lock.chmod(0o1777)


def system_steps(host_root: Path = Path("/")) -> Iterator[Step]:
    """/usr and the /bin, /sbin, /lib* next to it: links stay links (merged /usr)."""
    for name in SYSTEM_DIRS:
        host = host_root / name
        if host.is_symlink():
            yield symlink(name, str(host.readlink()))
        elif host.is_dir():
            yield bind(host, name)


def etc_steps(generated: Path, host_etc: Path = Path("/etc")) -> Iterator[Step]:
    """/etc: each host entry read-only (links as links), the generated files over theirs."""
    yield directory("etc")
    for entry in sorted(host_etc.iterdir(), key=lambda p: p.name):
        name = entry.name
        if name in HIDDEN_ETC or name in GENERATED_ETC:
            continue
        if entry.is_symlink():
            yield symlink(f"etc/{name}", str(entry.readlink()))
        elif entry.is_dir() or entry.is_file():
            yield bind(entry, f"etc/{name}")
    for name in GENERATED_ETC:
        yield bind(generated / name, f"etc/{name}")


def dev_steps(root: Path) -> Iterator[Step]:
    """A /dev with the harmless devices, a private pts, and ROOT's shm."""
    yield directory("dev")
    for name in DEVICES:
        yield bind(f"/dev/{name}", f"dev/{name}", writable=True, dev=True)
    for name, target in DEV_LINKS.items():
        yield symlink(f"dev/{name}", target)
    yield directory("dev/pts")
    yield special("devpts", "dev/pts")
    yield bind(root / PRIVATE_DIRS["dev/shm"][0], "dev/shm", writable=True)


def private_steps(root: Path) -> Iterator[Step]:
    """The sandbox's writable directories, from ROOT, and the /var around /var/tmp."""
    yield directory("home")
    yield directory("var")
    for name in ("cache", "lib", "log"):
        yield directory(f"var/{name}")
    yield symlink("var/run", "/run")
    yield symlink("var/lock", "/run/lock")
    for path, (source, _mode) in PRIVATE_DIRS.items():
        if path != "dev/shm":
            yield bind(root / source, path, writable=True)


def tool_steps(tools: Mapping[str, Path], env_dir: Path) -> Iterator[Step]:
    """Each tool, one file, read-only at /opt/localbox/bin/NAME; the environment files."""
    yield directory(TOOLS_DIR)
    for name, path in sorted(tools.items()):
        yield bind(Path(path).resolve(), f"{TOOLS_DIR}/{name}")
    yield bind(env_dir, ENV_DIR.lstrip("/"))


def plan(root: Path, generated_etc: Path, tools: Mapping[str, Path], env_dir: Path) -> list[Step]:
    """Every step that builds the sandbox's root, in order."""
    return [
        *system_steps(),
        *etc_steps(generated_etc),
        *private_steps(root),
        *dev_steps(root),
        directory("proc"),
        special("proc", "proc"),
        directory("sys"),
        special("sysfs", "sys"),
        *tool_steps(tools, env_dir),
    ]
