"""A command's own environment: checked, then handed to the command alone.

The helpers that start a command (setpriv, nsenter, unshare) run as root on the
host, so none of them may see the caller's variables: they run with HELPER_ENV.
The command's environment is written to a file only its user can read; the last
step, a POSIX shell already inside the sandbox and already that user, changes to
the command's directory, reads the file and execs the command. So PATH in
``envs`` decides where the command itself is found, and nothing else. The values
never appear in an argv, where every user of the host could read them.

Refused outright (INVALID_ARGUMENT, nothing runs): every ``LD_*`` variable (the
dynamic linker: LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, LD_DEBUG_OUTPUT, ...) and
the other variables glibc ignores in set-user-ID programs because they make it
load code or read files of the caller's choosing: GCONV_PATH, GETCONF_DIR,
GLIBC_TUNABLES, HOSTALIASES, LOCPATH, MALLOC_TRACE, NIS_PATH, NLSPATH,
RESOLV_HOST_CONF. (glibc's list also has TMPDIR, TZDIR, LOCALDOMAIN and
RES_OPTIONS; they are ordinary settings for a command and stay allowed.) Names
must be shell identifiers, since the shell exports them.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path

REFUSED_PREFIX = "LD_"
REFUSED_NAMES = frozenset({
    "GCONV_PATH", "GETCONF_DIR", "GLIBC_TUNABLES", "HOSTALIASES", "LOCPATH",
    "MALLOC_TRACE", "NIS_PATH", "NLSPATH", "RESOLV_HOST_CONF",
})  # fmt: skip
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# $1: the directory, $2: the environment file, then the command. cd runs before the
# file is read, so no CDPATH or the like of the caller's can steer it. exec looks the
# command up in the PATH the file set.
SHIM = 'cd -P -- "$1" || exit 125; . "$2" || exit 125; shift 2; exec "$@"'
SHIM_NAME = "localbox-exec"
# Where environment files live: ROOT/.localbox/env on the host, which no path inside
# the sandbox reaches, bound read-only at ENV_DIR in the sandbox (rootfs.py). So a
# sandbox user (the server's own uid in the userns mode) cannot swap in a file of its own.
HOST_ENV_DIR = ".localbox/env"
ENV_DIR = "/opt/localbox/env"


class RefusedEnvError(ValueError):
    """A variable the local sandbox does not pass to a command."""


def check_env(envs: Mapping[str, str]) -> None:
    """Refuse loader variables and names a shell cannot export. Raises RefusedEnvError."""
    for name, value in envs.items():
        if name.startswith(REFUSED_PREFIX) or name in REFUSED_NAMES:
            raise RefusedEnvError(
                f"environment variable {name} is refused: it changes how programs are "
                "loaded, which the local sandbox does not let a caller do"
            )
        if not _NAME.fullmatch(name):
            raise RefusedEnvError(
                f"environment variable name {name!r} is not allowed: use letters, "
                "digits and underscores, not starting with a digit"
            )
        if "\0" in value:
            raise RefusedEnvError(f"environment variable {name} contains a NUL byte")


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def env_script(env: Mapping[str, str]) -> str:
    """The file the shell sources: one ``export NAME='value'`` per variable."""
    return "".join(f"export {name}={_quote(value)}\n" for name, value in sorted(env.items()))


def write_env_file(directory: Path, env: Mapping[str, str], owner: int | None) -> Path:
    """Write ``env`` to a new file in ``directory`` that only ``owner`` can read."""
    path = directory / secrets.token_hex(16)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o400)
    try:
        os.write(fd, env_script(env).encode())
        if owner is not None:
            os.fchown(fd, owner, owner)
    finally:
        os.close(fd)
    return path


def prepare_env_dir(directory: Path) -> None:
    """The directory of environment files: searchable by all, listable by no one but us."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o711)
