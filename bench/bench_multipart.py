"""Multipart upload throughput of the local sandbox's /files endpoint, next to plain copies.

    uv run python bench/bench_multipart.py [--size-mib 256] [--piece-kib 64] [--runs 5]
                                           [--ref GITREF]

A body of --size-mib random bytes arrives in --piece-kib pieces (uvicorn hands the
app reads of up to 64 KiB). Each variant runs in its own child process, the
variants alternating within each run, and writes the bytes to a file under --dir
(default /dev/shm, so that disk writeback does not drown the parsing time):

- copy: the pieces written to a file as they come: the floor for any upload.
- parser: python-multipart's MultipartParser alone, the part's data written to a
  file from its on_part_data callback (no server code at all).
- raw: FilesAPI (the /files endpoint, driven in-process as an ASGI app) with an
  application/octet-stream body: our upload path without multipart.
- multipart: FilesAPI with a one-file multipart/form-data body, as the e2b SDK
  sends one (the path in the part's filename).

With --ref GITREF (say the commit before a parser change), raw and multipart also
run against that commit's src/ (``git archive``), so two parsers are timed in the
same invocation. Peak memory is the child's peak RSS during the upload (VmHWM,
reset through /proc/self/clear_refs just before) less its RSS before it. Writes
bench/results/multipart.json and prints a Markdown table.
"""

# A child imports the server from the src/ tree it was pointed at, after setting sys.path.
# ruff: noqa: PLC0415

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KiB = 1024
MiB = 1024 * KiB
BOUNDARY = b"bench-boundary-7f3a9c0e51"
UPLOAD_PATH = "/tmp/bench/upload.bin"
HEAD = (
    b"--" + BOUNDARY + b"\r\n"
    b'Content-Disposition: form-data; name="file"; filename="' + UPLOAD_PATH.encode() + b'"\r\n'
    b"Content-Type: application/octet-stream\r\n\r\n"
)
TAIL = b"\r\n--" + BOUNDARY + b"--\r\n"
KINDS_PER_SOURCE = ("raw", "multipart")
# A memory file system: on a disk, writeback stalls swamp the parsing time.
DEFAULT_DIR = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())


# --- child: one upload in a fresh process ------------------------------------------


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise SystemExit(f"no {key} in /proc/self/status")


def _reset_peak() -> None:
    # "5" resets VmHWM to the current RSS (Linux >= 4.0).
    Path("/proc/self/clear_refs").write_text("5")


def _pieces(size: int, piece: int) -> list[bytes]:
    """The body's content: references into a pool of 16 random pieces (little memory)."""
    pool = [os.urandom(piece) for _ in range(16)]
    return [pool[i % len(pool)] for i in range(size // piece)]


def _copy(root: Path, pieces: list[bytes]) -> Path:
    target = root / "copy.bin"
    with target.open("wb") as handle:
        for piece in pieces:
            handle.write(piece)
    return target


def _parse(root: Path, pieces: list[bytes]) -> Path:
    from python_multipart import MultipartParser

    target = root / "parsed.bin"
    with target.open("wb") as handle:

        def on_part_data(data: bytes, start: int, end: int) -> None:
            handle.write(memoryview(data)[start:end])

        parser = MultipartParser(BOUNDARY, {"on_part_data": on_part_data})
        for piece in itertools.chain([HEAD], pieces, [TAIL]):
            parser.write(piece)
        parser.finalize()
    return target


def _messages(pieces: list[bytes], *, multipart: bool) -> Iterator[dict[str, object]]:
    body = itertools.chain([HEAD], pieces, [TAIL]) if multipart else iter(pieces)
    for piece in body:
        yield {"type": "http.request", "body": piece, "more_body": True}
    yield {"type": "http.request", "body": b"", "more_body": False}


async def _asgi_upload(root: Path, pieces: list[bytes], *, multipart: bool) -> Path:
    from claude_e2b.sandbox.localbox.faults import Faults
    from claude_e2b.sandbox.localbox.files_http import FilesAPI
    from claude_e2b.sandbox.localbox.paths import SandboxFS

    api = FilesAPI(SandboxFS(root), lambda _user: None, Faults())
    messages = _messages(pieces, multipart=multipart)
    content_type = b"multipart/form-data; boundary=" + BOUNDARY
    scope = {
        "type": "http",
        "method": "POST",
        "query_string": b"" if multipart else f"path={UPLOAD_PATH}".encode(),
        "headers": [(b"content-type", content_type if multipart else b"application/octet-stream")],
    }
    answers: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return next(messages)

    async def send(message: dict[str, object]) -> None:
        answers.append(message)

    await api(scope, receive, send)
    if answers[0].get("status") != 200:
        raise SystemExit(f"upload failed: {answers}")
    return root / UPLOAD_PATH.lstrip("/")


def _measure(kind: str, root: Path, pieces: list[bytes]) -> Path:
    if kind == "copy":
        return _copy(root, pieces)
    if kind == "parser":
        return _parse(root, pieces)
    return asyncio.run(_asgi_upload(root, pieces, multipart=kind == "multipart"))


def _import_outside_the_timing(kind: str) -> None:
    if kind == "parser":
        import python_multipart  # noqa: F401
    elif kind in KINDS_PER_SOURCE:
        import claude_e2b.sandbox.localbox.files_http  # noqa: F401


def child(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(args.src))
    size, piece = args.size_mib * MiB, args.piece_kib * KiB
    pieces = _pieces(size, piece)
    root = Path(tempfile.mkdtemp(prefix="bench-multipart-", dir=args.dir))
    try:
        _import_outside_the_timing(args.kind)
        rss_before = _status_kb("VmRSS")
        _reset_peak()
        started, cpu_started = time.perf_counter(), time.process_time()
        target = _measure(args.kind, root, pieces)
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        peak = _status_kb("VmHWM")
        with target.open("rb") as handle:
            handle.seek(-piece, os.SEEK_END)
            intact = target.stat().st_size == size and handle.read() == pieces[-1]
        if not intact:
            raise SystemExit(f"{args.kind}: the file written is not the body's content")
    finally:
        shutil.rmtree(root)
    sample = {"seconds": seconds, "cpu_s": cpu, "rss_before_kb": rss_before, "peak_kb": peak}
    print(json.dumps(sample))


# --- parent --------------------------------------------------------------------------


def run_child(args: argparse.Namespace, kind: str, src: Path) -> dict[str, float]:
    argv = [sys.executable, __file__, "--child", kind, "--src", str(src), "--dir", str(args.dir)]
    argv += ["--size-mib", str(args.size_mib), "--piece-kib", str(args.piece_kib)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child {kind} ({src}) failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def export_ref(ref: str, into: Path) -> Path:
    """The src/ tree of a git commit, extracted under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref, "src"],
        capture_output=True,
        check=True,
    ).stdout
    tar_path = into / "src.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def variants(args: argparse.Namespace, ref_src: Path | None) -> list[tuple[str, str, Path]]:
    """(label, kind, src) of every variant, in the order each run times them."""
    found = [("copy", "copy", args.src), ("parser", "parser", args.src)]
    found += [(f"{kind} (work tree)", kind, args.src) for kind in KINDS_PER_SOURCE]
    if ref_src is not None:
        found += [(f"{kind} ({args.ref})", kind, ref_src) for kind in KINDS_PER_SOURCE]
    return found


def summarise(samples: list[dict[str, float]], size_mib: int) -> dict[str, object]:
    best = min(s["seconds"] for s in samples)
    growth = max(s["peak_kb"] - s["rss_before_kb"] for s in samples) / KiB
    return {
        "best_s": best,
        "median_s": statistics.median(s["seconds"] for s in samples),
        "best_cpu_s": min(s["cpu_s"] for s in samples),
        "mib_per_s": size_mib / best,
        "max_peak_growth_mib": growth,
        "all_s": [s["seconds"] for s in samples],
    }


def table(summary: dict[str, dict[str, float]], ref: str | None) -> str:
    """The Markdown table; ratios are of best-of-N times (noise only ever adds time)."""
    copy = summary["copy"]
    lines = [
        "| variant | best s | median s | best CPU s | MiB/s | vs copy | peak RSS growth MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, row in summary.items():
        lines.append(
            f"| {label} | {row['best_s']:.3f} | {row['median_s']:.3f} | {row['best_cpu_s']:.3f} | "
            f"{row['mib_per_s']:.0f} | {row['best_s'] / copy['best_s']:.2f}x | "
            f"{row['max_peak_growth_mib']:.1f} |"
        )
    ratios = [("multipart / raw (work tree)", "multipart (work tree)", "raw (work tree)")]
    if ref:
        ratios += [
            (f"multipart / raw ({ref})", f"multipart ({ref})", f"raw ({ref})"),
            (f"multipart: work tree / {ref}", "multipart (work tree)", f"multipart ({ref})"),
        ]
    lines.append("")
    for name, top, bottom in ratios:
        wall = summary[top]["best_s"] / summary[bottom]["best_s"]
        cpu = summary[top]["best_cpu_s"] / summary[bottom]["best_cpu_s"]
        lines.append(f"- {name}: {wall:.2f}x wall time, {cpu:.2f}x CPU time (best of each)")
    return "\n".join(lines)


def main_runs(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-multipart-ref-") as tmp:
        ref_src = export_ref(args.ref, Path(tmp)) if args.ref else None
        chosen = variants(args, ref_src)
        samples: dict[str, list[dict[str, float]]] = {label: [] for label, _, _ in chosen}
        for run in range(args.runs):
            for label, kind, src in chosen:
                samples[label].append(run_child(args, kind, src))
            print(f"run {run + 1}/{args.runs} done", file=sys.stderr)
    summary = {label: summarise(found, args.size_mib) for label, found in samples.items()}
    return {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "size_mib": args.size_mib,
        "piece_kib": args.piece_kib,
        "runs": args.runs,
        "ref": args.ref,
        "summary": summary,
        "markdown": table(summary, args.ref),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--piece-kib", type=int, default=64)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ref", help="also time raw and multipart with this commit's src/")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/multipart.json")
    parser.add_argument("--child", choices=["copy", "parser", *KINDS_PER_SOURCE])
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="the src/ tree to time")
    args = parser.parse_args()
    if args.child:
        args.kind = args.child
        child(args)
        return
    result = main_runs(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(result["markdown"])


if __name__ == "__main__":
    main()
