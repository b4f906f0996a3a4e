"""Secret-scanner throughput per engine, one thread, on a realistic tree.

    uv run python bench/bench_secrets.py [--tree DIR] [--size-mb 200] [--out PATH]

Without --tree it builds one (default /tmp/claude-e2b-bench-tree) from the text
files of the running interpreter's site-packages, copied until it holds
--size-mb megabytes.  Files are read into memory first, so the figures are the
engine's, not the disk's; an end-to-end scan_tree pass (warm page cache) is
timed too.  One generated token per rule is planted in memory into some files,
and each engine's recall on them is reported.

Engines: the shipped scanner (Hyperscan prefilter over anchor literals) and,
with the same anchors and the same verification, prefilters on RE2, Python
``re``, ``bytes.find`` and pyahocorasick; plus the naive baseline, one combined
Python regex of all rules.  An engine whose module is not installed is listed as
skipped (install google-re2 and pyahocorasick in a scratch venv to see them).
"""

# The bench swaps the scanner's prefilter and reuses its rules: private access is its point.
# ruff: noqa: SLF001

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import platform
import random
import re
import shutil
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from claude_e2b.sync import secrets  # noqa: E402
from tests.unit.secret_corpus import POSITIVES  # noqa: E402

Buffers = list[tuple[str, bytes]]


def build_tree(dest: Path, size_mb: int) -> Path:
    """Copy site-packages' text files into dest until it holds size_mb megabytes."""
    src = Path(sysconfig.get_paths()["purelib"])
    files = []
    for path in sorted(src.rglob("*")):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if b"\0" not in data[:8192]:
                files.append((path.relative_to(src), data))
    if dest.exists():
        shutil.rmtree(dest)
    total, copy = 0, 0
    while total < size_mb * 1e6:
        for rel, data in files:
            target = dest / f"copy{copy}" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            total += len(data)
        copy += 1
    return dest


def load(tree: Path) -> Buffers:
    return [
        (str(p.relative_to(tree)), p.read_bytes())
        for p in sorted(tree.rglob("*"))
        if p.is_file() and not p.is_symlink()
    ]


def plant(buffers: Buffers, seed: int = 1) -> tuple[Buffers, set[tuple[str, str]]]:
    """One token per rule, in the middle of a random text file, on a line of its own."""
    rng = random.Random(seed)
    out = list(buffers)
    planted = set()
    for rule, gens in sorted(POSITIVES.items()):
        ex = gens[0](rng)
        i = rng.randrange(len(out))
        path, data = out[i]
        if b"\0" in data[:8192] or (path, rule) in planted:
            continue
        cut = data.find(b"\n", len(data) // 2) + 1
        snippet = f"{ex.key or 'secret'}={ex.value}\n".encode()
        out[i] = (path, data[:cut] + snippet + data[cut:])
        planted.add((path, rule))
    return out, planted


class LiteralFinder:
    """A prefilter with the shipped scanner's interface over another engine."""

    def __init__(self, literals: list[bytes], find: Callable[[bytes], list[tuple[int, int]]]):
        self.literals = literals
        self.literal_ends = find

    def extra_ends(self, _data: bytes) -> list[tuple[int, int]]:
        return []


def alternation_finder(
    module: object, literals: list[bytes]
) -> Callable[[bytes], list[tuple[int, int]]]:
    # Longest first, so a literal that prefixes another does not hide it.
    index = {lit: i for i, lit in enumerate(literals)}
    ordered = sorted(literals, key=len, reverse=True)
    pattern = module.compile(b"|".join(re.escape(lit) for lit in ordered))  # type: ignore[attr-defined]

    def find(data: bytes) -> list[tuple[int, int]]:
        return [(index[m.group()], m.end()) for m in pattern.finditer(data)]

    return find


def re2_finder(literals: list[bytes]) -> Callable[[bytes], list[tuple[int, int]]]:
    return alternation_finder(importlib.import_module("re2"), literals)


def re_finder(literals: list[bytes]) -> Callable[[bytes], list[tuple[int, int]]]:
    return alternation_finder(re, literals)


def bytes_find_finder(literals: list[bytes]) -> Callable[[bytes], list[tuple[int, int]]]:
    def find(data: bytes) -> list[tuple[int, int]]:
        out = []
        for i, lit in enumerate(literals):
            at = data.find(lit)
            while at != -1:
                out.append((i, at + len(lit)))
                at = data.find(lit, at + 1)
        return out

    return find


def ahocorasick_finder(literals: list[bytes]) -> Callable[[bytes], list[tuple[int, int]]]:
    import ahocorasick  # noqa: PLC0415 - optional engine

    automaton = ahocorasick.Automaton()
    for i, lit in enumerate(literals):
        automaton.add_word(lit.decode("latin-1"), i)
    automaton.make_automaton()

    def find(data: bytes) -> list[tuple[int, int]]:
        # latin-1 maps bytes 1:1 to a compact str: the cheapest bytes -> str.
        return [(i, end + 1) for end, i in automaton.iter(data.decode("latin-1"))]

    return find


def with_prefilter(make: Callable[[list[bytes]], Callable[[bytes], list[tuple[int, int]]]]):
    def engine() -> Callable[[bytes, str], list[secrets.SecretHit]]:
        scanner = secrets.SecretScanner()
        finder = make(scanner._literals)
        scanner._prefilter = LiteralFinder(scanner._literals, finder)  # type: ignore[assignment]
        return scanner.scan_bytes

    return engine


def combined_regex_engine() -> Callable[[bytes, str], list[secrets.SecretHit]]:
    """The naive design: every rule in one Python alternation, matched everywhere."""
    parts = []
    for i, spec in enumerate(secrets._SPECS):
        body = re.sub(r"\(\?P<\w+>", "(?:", spec.pattern)
        parts.append(f"(?P<r{i}>{body})")
    pattern = re.compile("|".join(parts).encode())
    names = [spec.name for spec in secrets._SPECS]

    def scan(data: bytes, path: str) -> list[secrets.SecretHit]:
        if b"\0" in data[:8192]:
            return []
        offsets = [(m.start(), names[int(m.lastgroup[1:])]) for m in pattern.finditer(data)]  # type: ignore[index]
        return secrets._to_hits(path, data, offsets, line_base=0)

    return scan


def hyperscan_engine() -> Callable[[bytes, str], list[secrets.SecretHit]]:
    return secrets.SecretScanner().scan_bytes


ENGINES: dict[
    str, tuple[str | None, Callable[[], Callable[[bytes, str], list[secrets.SecretHit]]]]
] = {
    "hyperscan literals + re verify (shipped)": (None, hyperscan_engine),
    "google-re2 alternation + re verify": ("re2", with_prefilter(re2_finder)),
    "pyahocorasick + re verify": ("ahocorasick", with_prefilter(ahocorasick_finder)),
    "bytes.find per literal + re verify": (None, with_prefilter(bytes_find_finder)),
    "python re alternation + re verify": (None, with_prefilter(re_finder)),
    "python re, all rules in one regex": (None, combined_regex_engine),
}


def measure(
    scan: Callable[[bytes, str], list[secrets.SecretHit]], buffers: Buffers, budget_s: float
) -> dict[str, float | int]:
    """Scan buffers once (or as much as fits in budget_s, for slow engines)."""
    total = 0
    hits: list[secrets.SecretHit] = []
    start = time.perf_counter()
    for path, data in buffers:
        hits.extend(scan(data, path))
        total += len(data)
        if time.perf_counter() - start > budget_s:
            break
    seconds = time.perf_counter() - start
    return {"bytes": total, "seconds": seconds, "mb_per_s": total / 1e6 / seconds, "hits": hits}  # type: ignore[dict-item]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, help="scan this tree instead of building one")
    parser.add_argument("--build-at", type=Path, default=Path("/tmp/claude-e2b-bench-tree"))
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--budget-s", type=float, default=20.0, help="cap per slow engine")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "secrets.json")
    args = parser.parse_args()

    tree = args.tree or build_tree(args.build_at, args.size_mb)
    buffers, planted = plant(load(tree))
    size = sum(len(d) for _, d in buffers)
    print(f"tree {tree}: {len(buffers)} files, {size / 1e6:.1f} MB, {len(planted)} planted tokens")

    results = []
    for name, (module, make) in ENGINES.items():
        if module is not None and importlib.util.find_spec(module) is None:
            print(f"{name:45s} skipped: {module} not installed")
            results.append({"engine": name, "skipped": f"{module} not installed"})
            continue
        row = measure(make(), buffers, args.budget_s)
        hits = row.pop("hits")
        found = {(h.path, h.rule) for h in hits} & planted  # type: ignore[union-attr]
        complete = row["bytes"] == size
        recall = len(found) / len(planted) if complete else None
        results.append(
            {
                "engine": name,
                **row,
                "whole_tree": complete,
                "hits": len(hits),
                "planted_recall": recall,
            }
        )  # type: ignore[arg-type]
        shown = f"{recall:.0%}" if recall is not None else "n/a (partial)"
        print(
            f"{name:45s} {row['mb_per_s']:8.1f} MB/s  hits={len(hits):5d}  planted recall={shown}"
        )

    scanner = secrets.SecretScanner()
    rels = [p for p, _ in buffers]
    # Best of two: the first pass may still be filling the page cache.
    timings = []
    for _ in range(2):
        start = time.perf_counter()
        tree_hits = secrets.scan_tree(scanner, tree, rels)
        timings.append(time.perf_counter() - start)
    seconds = min(timings)
    end_to_end = {"seconds": seconds, "mb_per_s": size / 1e6 / seconds, "hits": len(tree_hits)}
    print(f"{'scan_tree end to end (reads, warm cache)':45s} {end_to_end['mb_per_s']:8.1f} MB/s")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "tree": {"path": str(tree), "files": len(buffers), "bytes": size, "planted": len(planted)},
        "threads": 1,
        "engines": results,
        "scan_tree_end_to_end": end_to_end,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
