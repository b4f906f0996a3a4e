"""Selection + secret scan throughput, end to end, on two repository shapes.

    uv run python bench/bench_scan.py [--work DIR] [--runs 5] [--shape NAME ...] [--out JSON]

What a run pays before the sandbox gets a byte: ``select_files`` (git lists, our
rules, one ``lstat`` per file) and ``screen`` (every selected regular file read
and scanned for secrets), as ``pipeline.select_step`` and ``pipeline.screen_step``
call them, with a scanner that holds one run secret as a run's does. Timed in
this process, warm page cache (one untimed pass first), median of ``--runs``.

The shapes:

- ``gen``: ``bench/gen_repo.py``'s repository (23k files, 460 MiB, ~10 % binary,
  a few large generated files), made by calling the script as it is;
- ``small``: 22,000 small text files of ~21 KiB, 470 MiB, compressing about 3:1
  with ``zstd -3`` (source, docs, configs, SQL, CSV), with secrets planted in a
  few dozen of them; made here, reused while its marker matches;
- ``gen-small-text``: ``bench/gen_repo.py --shape small-text`` (22k text files,
  473 MB; the shape bench_sync and bench_start use), with ``--shape`` only.

Beside each figure, in the same loop, the baselines over the same files:
``tar --null -T - -cf /dev/null`` (GNU tar does not read file data when the
archive is /dev/null: that is the cost of listing and stat-ing) and
``tar --null -T - -cf - | cat > /dev/null`` (reading every byte: what "disk
speed" means on a warm cache). Prints a Markdown table (bench/results/scan.md
holds one), with the CPU seconds and the load average beside the wall time,
since other work on the machine moves the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from claude_e2b.sync.screen import screen  # noqa: E402
from claude_e2b.sync.secrets import SecretScanner  # noqa: E402
from claude_e2b.sync.select import SelectOptions, select_files  # noqa: E402
from tests.unit.secret_corpus import POSITIVES  # noqa: E402

MiB = 2**20
SMALL_VERSION = 1
MARKER = "claude-e2b-bench-scan-marker.json"
RUN_SECRET = "sk-ant-api03-bench-run-secret-value-0123456789abcdef"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
}
TIMEOUT_S = 600

_WORDS = (  # noqa: SIM905 - a word list reads better as text
    "account address admin agent alert amount api app archive array asset async audit auth "
    "backend backup balance batch billing binary block body bucket buffer build bundle cache "
    "callback cart channel check client cluster code column commit config connect consumer "
    "container content context controller cookie count create cursor customer dashboard data "
    "database date debug default delete deploy device diff digest domain download draft driver "
    "email encode endpoint engine entity entry error event export feature fetch field filter "
    "flag format frame gateway graph group handler hash header health host image import index "
    "input instance invoice item job key label layer layout level limit link list load locale "
    "lock log login manager mapping message metric middleware migration mode model module "
    "monitor mount name network node notify number object offset option order output owner "
    "package page param parser partition patch path payload payment peer permission pipeline "
    "plugin policy pool port post price process product profile project provider proxy query "
    "queue quota range rate reader record region registry release remote render replica "
    "report request resource response result retry role route rule runner sample scheduler "
    "schema scope search secret section session setting shard signal size snapshot socket "
    "source span stage state status step storage store stream subscription summary sync table "
    "tag target task template tenant test thread ticket timeout timer token topic trace "
    "transaction transport type update upload usage user value version view volume webhook "
    "widget worker workflow writer zone"
).split()
_KINDS = (
    (".py", 24),
    (".ts", 14),
    (".go", 8),
    (".java", 6),
    (".md", 12),
    (".json", 8),
    (".yaml", 8),
    (".html", 4),
    (".csv", 4),
    (".log", 0),  # ignored by .gitignore: never selected
    (".txt", 6),
    (".sql", 6),
)
_TOP = ("api", "web", "services", "libs", "docs", "config", "data", "tests", "tools", "infra")


def _ident(rng: random.Random) -> str:
    words = rng.sample(_WORDS, rng.randint(1, 3))
    style = rng.random()
    if style < 0.5:
        return "_".join(words)
    if style < 0.85:
        return words[0] + "".join(w.title() for w in words[1:])
    return "_".join(words).upper()


def _code_line(rng: random.Random) -> str:
    indent = " " * (4 * rng.randint(0, 4))
    a, b, c = _ident(rng), _ident(rng), _ident(rng)
    shape = rng.random()
    if shape < 0.3:
        return f"{indent}{a} = {b}.{c}({rng.randrange(1000)}, timeout={rng.randrange(60)})"
    if shape < 0.5:
        return f"{indent}if {a} is not None and {b} > {rng.randrange(100)}:"
    if shape < 0.65:
        return f"{indent}# {' '.join(rng.sample(_WORDS, rng.randint(4, 10)))}"
    if shape < 0.75:
        return f'{indent}log.info("{a} {b}", {c}={c}, id="{rng.getrandbits(48):012x}")'
    if shape < 0.85:
        return f'{indent}{a}_URL = "https://{b}.example.org/v{rng.randint(1, 3)}/{c}"'
    return f"{indent}return {a}({b}, {c})"


def _doc_line(rng: random.Random) -> str:
    words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 16)))
    shape = rng.random()
    if shape < 0.15:
        return f"## {words.title()}"
    if shape < 0.3:
        return f"- see [{rng.choice(_WORDS)}](https://docs.example.com/{rng.choice(_WORDS)}/)"
    return words + "."


def _data_line(rng: random.Random, ext: str) -> str:
    key, value = _ident(rng), rng.choice(_WORDS)
    number = rng.randrange(10**5)
    if ext == ".json":
        return f'  "{key}": {{"name": "{value}", "count": {number}, "enabled": true}},'
    if ext == ".yaml":
        return f"{' ' * 2 * rng.randint(0, 3)}{key}: {value}-{number}"
    if ext == ".csv":
        return f"{number},{key},{value},{rng.random():.4f},{rng.choice(_WORDS)}"
    if ext == ".sql":
        return f"INSERT INTO {key} (id, name) VALUES ({number}, '{value}');"
    return f'<div class="{key}"><a href="/{value}/{number}">{value}</a></div>'


def _line(rng: random.Random, ext: str) -> str:
    if ext in {".py", ".ts", ".go", ".java"}:
        return _code_line(rng)
    if ext in {".md", ".txt"}:
        return _doc_line(rng)
    return _data_line(rng, ext)


def _pool(rng: random.Random, ext: str, size: int) -> bytes:
    """Lines of one kind of file, for files of that kind to be cut from."""
    lines: list[str] = []
    total = 0
    while total < size:
        line = _line(rng, ext)
        lines.append(line)
        total += len(line) + 1
    return ("\n".join(lines) + "\n").encode()


def _cut(rng: random.Random, pool: bytes, size: int) -> bytes:
    start = pool.find(b"\n", rng.randrange(len(pool) - size - 1)) + 1
    end = pool.find(b"\n", start + size)
    return pool[start : end + 1]


def _planted(rng: random.Random, count: int) -> list[str]:
    rules = sorted(POSITIVES)
    return [
        f"{ex.key or 'token'} = {ex.value}"
        for ex in (rng.choice(POSITIVES[rng.choice(rules)])(rng) for _ in range(count))
        if "\n" not in ex.value
    ]


def _small_files(dest: Path, files: int, size_mb: int, seed: int) -> int:
    rng = random.Random(seed)
    kinds = [ext for ext, weight in _KINDS for _ in range(weight)]
    pools = {ext: _pool(rng, ext, 4 * MiB) for ext in set(kinds)}
    mean = size_mb * MiB / files
    dirs = [f"{rng.choice(_TOP)}/{_ident(rng).lower()}" for _ in range(files // 25)]
    secrets = _planted(rng, 40)
    planted = 0
    for n in range(files):
        ext = rng.choice(kinds)
        size = min(int(rng.lognormvariate(0, 0.6) * mean * 0.84), 2 * MiB)
        data = _cut(rng, pools[ext], max(size, 200))
        if n % (files // len(secrets)) == 0 and planted < len(secrets):
            data += (secrets[planted] + "\n").encode()
            planted += 1
        path = dest / rng.choice(dirs) / f"{_ident(rng).lower()}_{n}{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (dest / ".gitignore").write_text("*.log\nbuild/\n")
    return planted


def _git(repo: Path, *args: str) -> bytes:
    done = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        check=False,
        env={**os.environ, **GIT_ENV},
        timeout=TIMEOUT_S,
    )
    if done.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed: {done.stderr.decode()}")
    return done.stdout


def ensure_small_repo(repo: Path, files: int = 22_000, size_mb: int = 470, seed: int = 1) -> Path:
    """The many-small-text-files repository at ``repo``, made unless its marker matches."""
    wanted = {"version": SMALL_VERSION, "files": files, "size_mb": size_mb, "seed": seed}
    marker = repo / ".git" / MARKER
    if marker.exists() and json.loads(marker.read_text()).get("wanted") == wanted:
        return repo
    started = time.monotonic()
    if repo.exists():
        shutil.rmtree(repo)
    planted = _small_files(repo, files, size_mb, seed)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "--no-verify", "-m", "initial import")
    seconds = round(time.monotonic() - started, 1)
    marker.write_text(json.dumps({"wanted": wanted, "planted": planted, "seconds": seconds}))
    print(f"generated {repo} in {seconds} s", file=sys.stderr)
    return repo


def ensure_gen_repo(repo: Path, shape: str = "mixed") -> Path:
    """bench/gen_repo.py's repository of a shape at ``repo``, by calling the script as it is."""
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gen_repo.py"), str(repo), "--shape", shape],
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=TIMEOUT_S,
    )
    return repo


# --- measuring ---------------------------------------------------------------------

BASELINES = {
    "tar_devnull": "git ls-files -z | tar --null -T - -cf /dev/null",
    "tar_cat": "git ls-files -z | tar --null -T - -cf - | cat > /dev/null",
}
MB = 10**6


def _shell(repo: Path, command: str) -> None:
    subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], cwd=repo, check=True, timeout=TIMEOUT_S
    )


class _Clock:
    """Wall and CPU seconds (this process, every thread) of what runs under it."""

    def __init__(self) -> None:
        self.wall: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}

    def time(self, name: str, action: Callable[[], object]) -> object:
        wall, cpu = time.perf_counter(), time.process_time()
        result = action()
        self.wall.setdefault(name, []).append(time.perf_counter() - wall)
        self.cpu.setdefault(name, []).append(time.process_time() - cpu)
        return result

    def medians(self, which: dict[str, list[float]]) -> dict[str, float]:
        return {k: round(statistics.median(v), 3) for k, v in which.items()}


def measure(repo: Path, runs: int) -> dict[str, object]:
    """Median seconds of select, screen, both, and the baselines, over runs (warm cache)."""
    scanner = SecretScanner([RUN_SECRET])
    options = SelectOptions()
    selection = select_files(repo, options)
    screening = screen(selection, scanner, "exclude")  # warms the cache; the figures
    clock = _Clock()
    load = [os.getloadavg()[0]]
    for _ in range(runs):
        for name, command in BASELINES.items():
            clock.time(name, lambda c=command: _shell(repo, c))
        started = (time.perf_counter(), time.process_time())
        chosen = clock.time("select", lambda: select_files(repo, options))
        clock.time("screen", lambda s=chosen: screen(s, scanner, "exclude"))
        clock.wall.setdefault("total", []).append(time.perf_counter() - started[0])
        clock.cpu.setdefault("total", []).append(time.process_time() - started[1])
        load.append(os.getloadavg()[0])
    size = selection.total_bytes
    wall = clock.medians(clock.wall)
    return {
        "files": len(selection.files),
        "bytes": size,
        "hits": len(screening.hits),
        "excluded": len(screening.selection.excluded),
        "seconds": wall,
        "cpu_seconds": clock.medians(clock.cpu),
        "mb_per_s": {k: round(size / MB / v, 1) for k, v in wall.items()},
        "load_1min": [round(x, 2) for x in load],
    }


def gate_compile_seconds() -> float:
    """CPU seconds a fresh process spends compiling the scanner's gate (once, in a thread)."""
    code = (
        "import time; from claude_e2b.sync.secrets import _rules_gate; "
        "c = time.process_time(); _rules_gate().get(); print(time.process_time() - c)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=TIMEOUT_S,
    )
    return round(float(done.stdout), 3)


def _row(shape: str, r: dict[str, Any]) -> str:
    s, cpu, rate = r["seconds"], r["cpu_seconds"], r["mb_per_s"]
    mib_s = r["bytes"] / MiB / s["total"]
    cells = [
        shape,
        str(r["files"]),
        f"{r['bytes'] / MB:.0f} MB",
        f"{s['select']:.2f} s",
        f"{s['screen']:.2f} s",
        f"**{s['total']:.2f} s = {rate['total']:.0f} MB/s** ({mib_s:.0f} MiB/s)",
        f"{cpu['total']:.2f} s",
        f"{s['tar_cat']:.2f} s = {rate['tar_cat']:.0f} MB/s",
        f"{rate['total'] / rate['tar_cat']:.2f}",
        f"{s['tar_devnull']:.2f} s",
        str(r["hits"]),
        f"{min(r['load_1min']):.1f} to {max(r['load_1min']):.1f}",
    ]
    return "| " + " | ".join(cells) + " |"


def markdown(results: dict[str, dict[str, Any]], runs: int, compile_s: float) -> str:
    """The table for bench/results/scan.md."""
    head = (
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}, medians of {runs} runs, warm page cache; "
        f"MB = 10^6 bytes of the selected files.\n\n"
        "| shape | files | size | select | screen | **select + screen** | its CPU "
        "| tar \\| cat | vs tar \\| cat | tar -cf /dev/null | hits | load (1 min) |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    rows = "\n".join(_row(shape, r) for shape, r in results.items())
    tail = (
        f"\n\nThe scanner's gate compiles once per process in a background thread: "
        f"{compile_s:.2f} s of CPU, started when the first SecretScanner is made.\n"
    )
    return head + rows + tail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/claude-e2b-bench-scan"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--shape", choices=("gen", "small", "gen-small-text"), action="append")
    parser.add_argument("--out", type=Path, help="also write the figures there, as JSON")
    args = parser.parse_args()
    makers: dict[str, Callable[[Path], Path]] = {
        "gen": ensure_gen_repo,
        "small": ensure_small_repo,
        "gen-small-text": lambda repo: ensure_gen_repo(repo, "small-text"),
    }
    results = {}
    for shape in args.shape or ["gen", "small"]:
        repo = makers[shape](args.work / f"{shape}-shape")
        results[shape] = measure(repo, args.runs)
        print(shape, json.dumps(results[shape]), file=sys.stderr)
    table = markdown(results, args.runs, gate_compile_seconds())
    print(table)
    if args.out:
        args.out.write_text(json.dumps({"results": results, "markdown": table}, indent=2) + "\n")


if __name__ == "__main__":
    main()
