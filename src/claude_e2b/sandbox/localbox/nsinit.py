"""Init process of a local sandbox's namespaces: set up the mounts, then reap.

Started by the server as ``unshare … --pid --fork --kill-child --mount-proc
python -m claude_e2b.sandbox.localbox.nsinit SPEC.json``, so it is pid 1 of the
sandbox's pid namespace: when it dies the kernel kills everything in the sandbox.
It prints "ready" on stdout once the mounts are in place.

Every bind source is opened before the first mount, because later mounts (a tmpfs
on /home, ROOT/tmp on /tmp) may hide the host paths the sources live under.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

MS_RDONLY = 1
MS_BIND = 4096
MS_REC = 16384
MNT_DETACH = 2
_STAGE = "/home/.localbox-opt"

_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    rc = _libc.mount(
        source.encode(),
        target.encode(),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def _bind_fd(fd: int, target: str, *, recursive: bool = False) -> None:
    _mount(f"/proc/self/fd/{fd}", target, None, MS_BIND | (MS_REC if recursive else 0), None)


def _tmpfs(target: str) -> None:
    _mount("tmpfs", target, "tmpfs", 0, "mode=755")


def _open_path(path: str) -> int:
    return os.open(path, os.O_PATH | os.O_CLOEXEC)


def _touch(path: str, *, directory: bool) -> None:
    if directory:
        Path(path).mkdir(parents=True, exist_ok=True)
    else:
        Path(path).touch()


def _stage_opt(tools: dict[str, int]) -> None:
    """Put a tmpfs on /opt holding the host's /opt entries plus localbox/bin/<tool>."""
    has_opt = Path("/opt").is_dir()
    if has_opt:
        Path(_STAGE).mkdir()
        _bind_fd(_open_path("/opt"), _STAGE, recursive=True)
    else:
        return
    _tmpfs("/opt")
    for source in sorted(Path(_STAGE).iterdir()):
        _touch(f"/opt/{source.name}", directory=source.is_dir())
        _bind_fd(_open_path(str(source)), f"/opt/{source.name}", recursive=True)
    Path("/opt/localbox/bin").mkdir(parents=True, exist_ok=True)
    for name, fd in tools.items():
        _touch(f"/opt/localbox/bin/{name}", directory=False)
        _bind_fd(fd, f"/opt/localbox/bin/{name}")
    if _libc.umount2(_STAGE.encode(), MNT_DETACH) == 0:
        Path(_STAGE).rmdir()


def setup(spec: dict[str, Any]) -> None:
    """Mount the sandbox's view of the file system (see the module docstring)."""
    root = spec["root"]
    etc = spec["etc"]
    fds = {
        "home": _open_path(f"{root}/home/user"),
        "tmp": _open_path(f"{root}/tmp"),  # noqa: S108 - ROOT/tmp, not the host's /tmp
        "root": _open_path(f"{root}/root"),
        **{f"etc/{name}": _open_path(f"{etc}/{name}") for name in ("passwd", "group", "profile")},
    }
    tools = {name: _open_path(path) for name, path in spec["tools"].items()}
    _tmpfs("/home")
    _stage_opt(tools)
    Path("/home/user").mkdir()
    _bind_fd(fds["home"], "/home/user")
    _bind_fd(fds["root"], "/root")
    _bind_fd(fds["tmp"], "/tmp")  # noqa: S108 - the sandbox's own /tmp
    for name in ("passwd", "group", "profile"):
        if Path(f"/etc/{name}").exists():
            _bind_fd(fds[f"etc/{name}"], f"/etc/{name}")
    os.chdir("/")


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
    """Entry point: ``nsinit SPEC.json``."""
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    setup(spec)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    os.close(1)
    reap_forever()
    return 0  # pragma: no cover - reap_forever only ends by SIGKILL


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
