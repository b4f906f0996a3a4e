"""Stand-ins for actions/setup-python and astral-sh/setup-uv, built from their sources.

They cannot download interpreters or uv, so they look for what the machine has and do
what the real actions do with it (read from actions/setup-python `src/find-python.ts`,
`src/setup-python.ts` and astral-sh/setup-uv `src/setup-uv.ts`, `src/utils/inputs.ts`,
`src/cache/restore-cache.ts`):

- setup-python: the version comes from `python-version` (several lines allowed), else
  `python-version-file`, else `.python-version`; the highest Python matching the range in
  the tool cache ($RUNNER_TOOL_CACHE/Python/<version>/x64) or on PATH is used (more
  places with `setup_python_stand_in(search)`); exports pythonLocation, Python_ROOT_DIR,
  Python2_ROOT_DIR, Python3_ROOT_DIR, PKG_CONFIG_PATH, LD_LIBRARY_PATH; adds its directory
  and bin/ to PATH; outputs python-version and python-path. Without a match the step
  fails with the real message.
- setup-uv: the existing `uv` ($HOME/.local/bin, else PATH) is "installed": its directory
  and the user bin directory go on PATH, UV_PYTHON_INSTALL_DIR (and UV_PYTHON, UV_CACHE_DIR,
  VIRTUAL_ENV when asked) are exported, outputs uv-version, uv-path, uvx-path,
  python-version, cache-key/cache-hit. `enable-cache` ('auto' resolved as the action does)
  and `cache-dependency-glob` with the files it matched are recorded on the step; a glob
  matching nothing warns as the real action does. A `version` the local uv does not
  satisfy fails the step: the stand-in cannot fetch another uv.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tomllib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from tests.stand_ins.actions.uses import StandInAction, StandInCall, StandInFailure, UsesTable

MANIFEST_URL = (
    "https://raw.githubusercontent.com/actions/python-versions/main/versions-manifest.json"
)
_PROBE = (
    "import json, sys; print(json.dumps([list(sys.version_info[:3]), "
    "sys.version_info.releaselevel, sys.base_prefix, sys.executable]))"
)

# ---------------------------------------------------------------- npm semver ranges


Triple = tuple[int, int, int]


def _partial(text: str) -> list[int | None]:
    parts = [p for p in text.lstrip("=v").split(".") if p]
    if not parts or len(parts) > 3 or not all(p.isdigit() or p in {"x", "X", "*"} for p in parts):
        raise ValueError(text)
    numbers = [int(p) if p.isdigit() else None for p in parts]
    return numbers + [None] * (3 - len(numbers))


def _floor(parts: list[int | None]) -> Triple:
    a, b, c = (p or 0 for p in parts)
    return a, b, c


def _ceiling(parts: list[int | None]) -> Triple | None:
    """The first version above everything `parts` (with wildcards) covers; None for `*`."""
    known = [p for p in parts if p is not None]
    if not known:
        return None
    if len(known) == 3:
        a, b, c = known
        return a, b, c + 1
    bumped = [*known[:-1], known[-1] + 1]
    a, b, c = (*bumped, 0, 0)[:3]
    return a, b, c


def _comparator(token: str) -> tuple[Triple | None, Triple | None]:
    """(lower bound inclusive, upper bound exclusive) of one comparator; None is unbounded."""
    op = re.match(r"[<>=^~]*", token).group(0)  # type: ignore[union-attr]
    parts = _partial(token[len(op) :])
    known = [p for p in parts if p is not None]
    bounds: dict[str, tuple[Triple | None, Triple | None]] = {
        "": (_floor(parts), _ceiling(parts)),
        "=": (_floor(parts), _ceiling(parts)),
        ">=": (_floor(parts), None),
        ">": (_ceiling(parts) or (10**9, 0, 0), None),
        "<": (None, _floor(parts)),
        "<=": (None, _ceiling(parts)),
        "^": (_floor(parts), ((parts[0] or 0) + 1, 0, 0)),
        "~": (_floor(parts), _ceiling([*known[:2], None, None][:3])),
    }
    if op not in bounds:
        raise ValueError(token)
    return bounds[op]


def semver_satisfies(version: Triple, spec: str) -> bool:
    """Whether `version` is in an npm range: "3.12", "3.x", ">=3.10 <3.13", "^3", "a || b"."""
    for alternative in spec.split("||"):
        words = alternative.split()
        if len(words) == 3 and words[1] == "-":
            words = [">=" + words[0], "<=" + words[2]]
        try:
            bounds = [_comparator(word) for word in words] or [(None, None)]
        except ValueError:
            return False
        if all((lo is None or version >= lo) and (hi is None or version < hi) for lo, hi in bounds):
            return True
    return False


# ---------------------------------------------------------------- setup-python


SETUP_PYTHON_INPUTS: dict[str, str | None] = {
    "python-version": None,
    "python-version-file": None,
    "cache": None,
    "architecture": None,
    "check-latest": "false",
    "token": "${{ github.server_url == 'https://github.com' && github.token || '' }}",
    "cache-dependency-path": None,
    "update-environment": "true",
    "allow-prereleases": "false",
    "freethreaded": "false",
    "pip-version": None,
}


@dataclass(frozen=True)
class FoundPython:
    version: Triple
    prefix: Path  # sys.base_prefix: a venv on PATH counts as the Python it was made from
    executable: Path


def _python_candidates(path: str) -> list[Path]:
    names = re.compile(r"python(3(\.\d+)?)?")
    seen: dict[Path, Path] = {}
    for directory in path.split(os.pathsep):
        folder = Path(directory or ".")
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            if names.fullmatch(entry.name) and os.access(entry, os.X_OK) and entry.is_file():
                seen.setdefault(entry.resolve(), entry)
    return list(seen.values())


def _probe(call: StandInCall, executable: Path) -> FoundPython | None:
    try:
        result = call.run([str(executable), "-I", "-c", _PROBE], silent=True)
        (major, minor, micro), level, prefix, _ = json.loads(result.stdout.strip().splitlines()[-1])
    except (OSError, StandInFailure, ValueError, IndexError):
        return None
    if result.exit_code != 0 or level != "final":
        return None
    names = ("python", "python3", f"python{major}.{minor}")
    binary = next(
        (Path(prefix) / "bin" / n for n in names if (Path(prefix) / "bin" / n).is_file()), None
    )
    return FoundPython((major, minor, micro), Path(prefix), binary or executable)


def _tool_cache_bins(call: StandInCall) -> list[str]:
    """Pythons in the runner's tool cache, where setup-python looks first (tc.find)."""
    cache = call.env.get("RUNNER_TOOL_CACHE")
    if not cache:
        return []
    return [str(p / "bin") for p in sorted(Path(cache).glob("Python/*/x64")) if p.is_dir()]


def find_python(call: StandInCall, spec: str, search: Sequence[Path] = ()) -> FoundPython | None:
    """The highest final-release Python within the npm range `spec`.

    Looked for in `search`, the tool cache, then the step's PATH.
    """
    path = [*map(str, search), *_tool_cache_bins(call), call.env.get("PATH", "")]
    candidates = _python_candidates(os.pathsep.join(path))
    # Probed side by side: pyenv shims take a few hundred milliseconds each.
    with ThreadPoolExecutor(max_workers=8) as pool:
        probed = list(pool.map(lambda e: _probe(call, e), candidates))
    matching = [f for f in probed if f and semver_satisfies(f.version, spec)]
    return max(matching, key=lambda f: f.version, default=None)


def _version_file(call: StandInCall, name: str) -> list[str]:
    path = call.workspace / name
    if not path.is_file():
        raise StandInFailure(f"The specified python version file at: {name} doesn't exist.")
    text = path.read_text(encoding="utf-8")
    if name.endswith(".toml"):
        data = tomllib.loads(text)
        if "project" in data:
            value = data["project"].get("requires-python")
        else:
            value = data.get("tool", {}).get("poetry", {}).get("dependencies", {}).get("python")
        return [value.replace(",", " ")] if value else []
    if ".tool-versions" in name:
        return [line.split()[1] for line in text.splitlines() if line.startswith("python ")]
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _requested_pythons(call: StandInCall) -> list[str]:
    versions = call.multiline_input("python-version")
    version_file = call.input("python-version-file")
    if versions:
        if version_file:
            call.warning(
                "Both python-version and python-version-file inputs are specified, "
                "only python-version will be used."
            )
        return versions
    if version_file:
        return _version_file(call, version_file)
    call.warning(
        "Neither 'python-version' nor 'python-version-file' inputs were supplied. "
        "Attempting to find '.python-version' file."
    )
    if (call.workspace / ".python-version").is_file():
        return _version_file(call, ".python-version")
    call.warning(".python-version doesn't exist.")
    return []


def _use_python(call: StandInCall, found: FoundPython) -> None:
    prefix = str(found.prefix)
    if call.boolean_input("update-environment"):
        for name in ("pythonLocation", "Python_ROOT_DIR", "Python2_ROOT_DIR", "Python3_ROOT_DIR"):
            call.export_variable(name, prefix)
        call.export_variable("PKG_CONFIG_PATH", prefix + "/lib/pkgconfig")
        library, current = str(found.prefix / "lib"), call.env.get("LD_LIBRARY_PATH", "")
        if library not in current.split(":"):
            call.export_variable("LD_LIBRARY_PATH", library + (f":{current}" if current else ""))
        call.add_path(prefix)
        call.add_path(str(found.prefix / "bin"))
    version = ".".join(map(str, found.version))
    call.set_output("python-version", version)
    call.set_output("python-path", str(found.executable))
    call.info(f"Successfully set up CPython ({version})")


def setup_python(call: StandInCall, search: Sequence[Path] = ()) -> None:
    """actions/setup-python with the Pythons already on the machine."""
    versions = _requested_pythons(call)
    if not versions:
        call.warning(
            "The `python-version` input is not set.  "
            "The version of Python currently in `PATH` will be used."
        )
        return
    call.group("Installed versions")
    for spec in versions:
        found = find_python(call, spec, search)
        call.records.setdefault("python", []).append({"spec": spec, "found": found})
        if found is None:
            architecture = call.input("architecture") or "x64"
            raise StandInFailure(
                f"The version '{spec}' with architecture '{architecture}' was not found for "
                "this operating system.\nThe list of all available versions can be found "
                f"here: {MANIFEST_URL}"
            )
        _use_python(call, found)
    call.end_group()
    if call.input("cache"):
        call.records["cache"] = call.input("cache")
        call.set_output("cache-hit", "false")


# ---------------------------------------------------------------- setup-uv


SETUP_UV_INPUTS: dict[str, str | None] = {
    "version": "",
    "version-file": "",
    "python-version": None,
    "activate-environment": "false",
    "venv-path": "",
    "no-project": "false",
    "working-directory": "${{ github.workspace }}",
    "checksum": None,
    "github-token": "${{ github.token }}",
    "enable-cache": "auto",
    "cache-dependency-glob": (
        "**/*requirements*.txt\n**/*requirements*.in\n**/*constraints*.txt\n"
        "**/*constraints*.in\n**/pyproject.toml\n**/uv.lock\n**/*.py.lock\n"
    ),
    "restore-cache": "true",
    "save-cache": "true",
    "cache-suffix": None,
    "cache-local-path": "",
    "prune-cache": "false",
    "cache-python": "false",
    "ignore-nothing-to-cache": "false",
    "ignore-empty-workdir": "false",
    "tool-dir": None,
    "tool-bin-dir": None,
    "manifest-file": None,
    "download-from-astral-mirror": "true",
    "add-problem-matchers": "true",
    "quiet": "false",
    "resolution-strategy": "highest",
}


def find_uv(env: dict[str, str]) -> Path | None:
    """The machine's uv: $HOME/.local/bin/uv first, else the first on PATH."""
    home_uv = Path(env.get("HOME", "/nonexistent")) / ".local" / "bin" / "uv"
    if home_uv.is_file() and os.access(home_uv, os.X_OK):
        return home_uv
    found = shutil.which("uv", path=env.get("PATH", ""))
    return Path(found) if found else None


def _uv_version(call: StandInCall, uv: Path) -> str:
    result = call.run([str(uv), "--version"])
    words = result.stdout.split()
    if result.exit_code != 0 or len(words) < 2:
        raise StandInFailure(f"{uv} --version failed: {result.stderr.strip()}")
    return words[1]


def _check_uv_version(call: StandInCall, version: str) -> None:
    wanted = call.input("version")
    if wanted in {"", "latest", "latest-known"}:
        return
    try:
        accepted = SpecifierSet(wanted) if wanted[0] in "<>=!~" else SpecifierSet(f"=={wanted}")
        ok = Version(version) in accepted
    except (InvalidSpecifier, InvalidVersion):
        ok = False
    if not ok:
        raise StandInFailure(
            f"The stand-in can only offer the local uv {version}; the step asks for '{wanted}'"
        )


def _enable_cache(call: StandInCall) -> bool:
    """setup-uv's getEnableCache: 'auto' means on GitHub-hosted, except some events."""
    value = call.input("enable-cache")
    if value != "auto":
        return value == "true"
    if call.env.get("RUNNER_ENVIRONMENT") != "github-hosted":
        return False
    event = call.env.get("GITHUB_EVENT_NAME", "")
    tag_push = event == "push" and call.env.get("GITHUB_REF", "").startswith("refs/tags/")
    return not tag_push and event not in {"pull_request_target", "workflow_run", "release"}


def _glob(root: Path, patterns: list[str]) -> list[Path]:
    chosen: set[Path] = set()
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.removeprefix("!")
        base = Path(body) if Path(body).is_absolute() else root / body
        anchor = Path(base.anchor)
        matches = {p for p in anchor.glob(str(base.relative_to(anchor))) if p.is_file()}
        chosen = chosen - matches if negate else chosen | matches
    return sorted(chosen)


def _cache(call: StandInCall, working_directory: Path, python_version: str) -> None:
    globs = [
        line.strip() for line in call.input("cache-dependency-glob").split("\n") if line.strip()
    ]
    matched = _glob(working_directory, globs) if globs else []
    call.records["cache-dependency-glob"] = globs
    call.records["cache-dependency-files"] = matched
    if globs and not matched:
        call.warning(
            f"No file matched to [{','.join(globs)}]. The cache will never get invalidated. "
            "Make sure you have checked out the target repository and configured the "
            "cache-dependency-glob input correctly."
        )
    digest = hashlib.sha256(b"".join(hashlib.sha256(p.read_bytes()).digest() for p in matched))
    suffix = f"-{call.input('cache-suffix')}" if call.input("cache-suffix") else ""
    dependency = f"-{digest.hexdigest()}" if matched else "-no-dependency-glob"
    call.set_output(
        "cache-key", f"setup-uv-2-x86_64-unknown-linux-gnu-{python_version}{dependency}{suffix}"
    )
    call.set_output("cache-hit", "false")
    call.set_output("python-cache-hit", "false")


def _cache_dir(call: StandInCall, enabled: bool) -> str | None:
    local = call.input("cache-local-path")
    if local:
        return str(Path(call.input("working-directory")) / Path(local).expanduser())
    if "UV_CACHE_DIR" in call.env:
        return call.env["UV_CACHE_DIR"]
    if not enabled:
        return None
    if call.env.get("RUNNER_ENVIRONMENT") == "github-hosted":
        return f"{call.runner_temp}/setup-uv-cache"
    return f"{call.env.get('HOME', '')}/.cache/uv"


def _python_dir(call: StandInCall) -> str:
    if "UV_PYTHON_INSTALL_DIR" in call.env:
        return call.env["UV_PYTHON_INSTALL_DIR"]
    if call.env.get("RUNNER_ENVIRONMENT") != "github-hosted":
        return f"{call.env.get('HOME', '')}/.local/share/uv/python"
    return f"{call.runner_temp}/uv-python-dir"


def _put_on_path(call: StandInCall, uv: Path) -> None:
    tool_bin = call.input("tool-bin-dir")
    if tool_bin:
        call.export_variable("UV_TOOL_BIN_DIR", tool_bin)
        call.add_path(tool_bin)
    else:
        call.add_path(call.env.get("XDG_BIN_HOME") or f"{call.env.get('HOME', '')}/.local/bin")
    call.add_path(str(uv.parent))
    call.set_output("uv-path", str(uv))
    call.set_output("uvx-path", str(uv.parent / "uvx"))
    if call.input("tool-dir"):
        call.export_variable("UV_TOOL_DIR", call.input("tool-dir"))
    python_dir = _python_dir(call)
    call.export_variable("UV_PYTHON_INSTALL_DIR", python_dir)
    call.add_path(python_dir)
    if call.input("python-version"):
        call.export_variable("UV_PYTHON", call.input("python-version"))


def _activate(call: StandInCall, uv: Path, working_directory: Path) -> None:
    venv = call.input("venv-path") or str(working_directory / ".venv")
    argv = [str(uv), "venv", venv, "--directory", str(working_directory), "--clear"]
    argv += ["--no-project"] if call.boolean_input("no-project") else []
    if call.run(argv).exit_code != 0:
        raise StandInFailure(f"The process '{uv}' failed to create {venv}")
    call.add_path(str(Path(venv).resolve() / "bin"))
    call.export_variable("VIRTUAL_ENV", venv)
    call.set_output("venv", venv)


def _detected_python(call: StandInCall, uv: Path, working_directory: Path) -> str:
    if call.input("python-version"):
        return call.input("python-version")
    found = call.run([str(uv), "python", "find", "--directory", str(working_directory)])
    if found.exit_code != 0 or not found.stdout.strip():
        return "unknown"
    version = call.run([found.stdout.strip(), "--version"])
    words = version.stdout.split()
    return words[1] if version.exit_code == 0 and len(words) > 1 else "unknown"


def setup_uv(call: StandInCall) -> None:
    """astral-sh/setup-uv with the uv already on the machine."""
    working_directory = Path(call.input("working-directory") or call.workspace)
    if working_directory.is_dir() and not any(working_directory.iterdir()):
        call.warning(
            "Empty workdir detected. This may cause unexpected behavior. "
            "You can enable ignore-empty-workdir to mute this warning."
        )
    uv = find_uv(call.env)
    if uv is None:
        raise StandInFailure("no uv on this machine ($HOME/.local/bin or PATH) for the stand-in")
    version = _uv_version(call, uv)
    _check_uv_version(call, version)
    enabled = _enable_cache(call)
    call.records.update({"uv": uv, "uv-version": version, "enable-cache": enabled})
    _put_on_path(call, uv)
    if call.boolean_input("activate-environment"):
        _activate(call, uv, working_directory)
    cache_dir = _cache_dir(call, enabled)
    if cache_dir is not None:
        call.export_variable("UV_CACHE_DIR", cache_dir)
    call.set_output("uv-version", version)
    call.info(f"Successfully installed uv version {version}")
    python_version = _detected_python(call, uv, working_directory)
    call.set_output("python-version", python_version)
    if enabled:
        _cache(call, working_directory, python_version)


# ---------------------------------------------------------------- the default table


SETUP_PYTHON = StandInAction("actions/setup-python", SETUP_PYTHON_INPUTS, setup_python)


def setup_python_stand_in(search: Sequence[Path]) -> StandInAction:
    """setup-python that also finds Pythons in `search` (directories holding python3.X).

    For a version the machine has off PATH, e.g. `/root/.pyenv/versions/3.12.1/bin`:
    `default_stand_ins().add(setup_python_stand_in([that_dir]))`.
    """
    return StandInAction(
        "actions/setup-python", SETUP_PYTHON_INPUTS, lambda call: setup_python(call, search)
    )


SETUP_UV = StandInAction("astral-sh/setup-uv", SETUP_UV_INPUTS, setup_uv)


def default_stand_ins(*, pinned_only: bool = False) -> UsesTable:
    """The stand-ins the project's action.yml needs: setup-python and setup-uv."""
    return UsesTable([SETUP_PYTHON, SETUP_UV], pinned_only=pinned_only)
