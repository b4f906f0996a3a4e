"""Uploads at simulated link speeds: every transfer, bytes beside time (issue 12, point 4).

    uv run python bench/bench_link.py [--shape mixed|small-text]... [--links none,1000,100]
                                      [--transfers packs,zpacks,tar,auto] [--runs 1]
                                      [--rtt-ms 0] [--out bench/results/link.json] [--quick]

For each repository shape (bench/gen_repo.py's, generated in /tmp/claude-e2b-bench and
reused while their markers match), each link (``none``: unthrottled; a number: the
local sandbox's /files API paced to that many megabits/s, see LocalBoxHost's
``link_mbit``) and each transfer of ``upload_repository`` (packs, zpacks, tar, auto),
``--runs`` uploads: select_files + upload_repository into a fresh local sandbox, in a
child process of its own that prints its figures as JSON. Within a run every transfer
goes once, in an order that rotates from run to run, so that drift hits all alike.

Once per shape per run, the baseline ``git ls-files -z | tar --null -T - -cf - |
zstd -3 -T0 > FILE``; at each link its "ideal transfer time" (its bytes / the link's
rate) is the reference of that link's rows (unthrottled: the baseline's own time).

``--quick``: the small-text shape, unthrottled and 100 Mbit/s only (a smoke check;
--shape/--links given explicitly still win). A child that fails (or times out) leaves
its stderr tail on stderr and a "failed" row; the bench goes on. Writes every raw
figure to ``--out`` (JSON), the tables to the same name with ``.md``, and prints them.
MB are 10^6 bytes and Mbit/s 10^6 bits/s throughout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from bench import bench_sync  # noqa: E402
from bench.gen_repo import SHAPES, ensure_repo  # noqa: E402

CACHE = Path("/tmp/claude-e2b-bench")
REPO_DIRS = {"mixed": "repo-460", "small-text": "repo-small-text"}
REPO_DIR = "/home/user/repo"
WORK_DIR = "/tmp/claude-e2b"
TRANSFERS = ("packs", "zpacks", "tar", "auto")
FIXED = ("packs", "zpacks", "tar")
DEFAULT_LINKS = "none,1000,100"
QUICK_SHAPES = ["small-text"]
QUICK_LINKS = "none,100"
MB = 1e6
# Auto passes when its time is within this of the fastest fixed transfer's.
AUTO_SLACK = 1.10
BASELINE_TIMEOUT_S = 600.0
# A child's budget: starting the sandbox, selecting, the sandbox's tail, plus the
# bytes at the link's rate (at most this many: more than any shape's packs).
CHILD_BASE_TIMEOUT_S = 300.0
CHILD_MAX_BYTES = 600 * MB
STDERR_TAIL = 3000
Json = dict[str, Any]


# --- child: one upload in a fresh process and a fresh sandbox -------------------------


def child(args: argparse.Namespace) -> None:
    """Upload ``args.repo`` with ``args.transfer`` over the simulated link; print JSON."""
    import structlog  # noqa: PLC0415 - the parent does not need the project's imports

    from claude_e2b.sandbox.session import SandboxSpec, open_session  # noqa: PLC0415

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    # The parent ends a child that overruns with SIGTERM: unwind, so the sandbox dies.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    host = _host(args.state, args.link, args.rtt_ms)
    session = open_session(SandboxSpec(backend="local", local_tools={}, lifetime_s=900), host)
    try:
        out = _upload(session, Path(args.repo), args.transfer)
    finally:
        session.kill()
    print(json.dumps(out, default=str))


def _host(state: str, link: float | None, rtt_ms: float) -> Any:
    """The local sandbox host, its file API paced to ``link`` Mbit/s (None: unthrottled)."""
    from claude_e2b.sandbox.localbox.launcher import LocalBoxHost  # noqa: PLC0415

    return LocalBoxHost(Path(state) / "localbox", os.environ, link_mbit=link, link_rtt_ms=rtt_ms)


def _upload(session: Any, repo: Path, transfer: str) -> Json:
    """Select and upload; the seconds of each and the upload's report."""
    from claude_e2b.sync import upload  # noqa: PLC0415
    from claude_e2b.sync.select import select_files  # noqa: PLC0415

    started = time.monotonic()
    selection = select_files(repo)
    select_s = time.monotonic() - started
    started = time.monotonic()
    report = upload.upload_repository(
        session, selection, repo_dir=REPO_DIR, work_dir=WORK_DIR, transfer=transfer
    )
    upload_s = time.monotonic() - started
    return {"select_s": select_s, "upload_s": upload_s, "report": dict(report.__dict__)}


def run_child(repo: Path, transfer: str, link: float | None, rtt_ms: float) -> Json:
    """One upload in a child process; a dict with ``failed`` when it did not finish."""
    state = Path(tempfile.mkdtemp(prefix="bench-link-state-", dir=CACHE))
    argv = [sys.executable, __file__, "--child", "--repo", str(repo), "--transfer", transfer]
    argv += ["--state", str(state), "--rtt-ms", str(rtt_ms)]
    argv += ["--link", str(link)] if link is not None else []
    budget = CHILD_BASE_TIMEOUT_S + (CHILD_MAX_BYTES * 8 / (link * MB) if link else 0.0)
    try:
        code, stdout, stderr = _run_bounded(argv, budget)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    if code == 0:
        with contextlib.suppress(ValueError, IndexError):
            return dict(json.loads(stdout.strip().splitlines()[-1]))
    tail = stderr[-STDERR_TAIL:]
    print(f"child {transfer} at {link_label(link)} failed ({code}):\n{tail}", file=sys.stderr)
    return {"failed": True, "returncode": code, "stderr_tail": tail}


def _run_bounded(argv: list[str], timeout: float) -> tuple[int | str, str, str]:
    """Run ``argv``; past ``timeout`` SIGTERM it (then SIGKILL) and report "timeout"."""
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)
            try:
                stdout, stderr = process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                stdout, stderr = process.communicate(timeout=30)
            return "timeout", stdout, stderr + f"\n(killed after {timeout:.0f} s)"
    return process.returncode, stdout, stderr


# --- baseline -----------------------------------------------------------------------------


def baseline(repo: Path, target: Path) -> Json:
    """``git ls-files | tar | zstd -3 -T0 > target``: seconds and bytes (or why it failed)."""
    cmd = f"git ls-files -z | tar --null -T - -cf - | zstd -3 -T0 -q -f -o {target}"
    started = time.monotonic()
    try:
        subprocess.run(
            ["bash", "-o", "pipefail", "-c", cmd],
            cwd=repo, check=True, timeout=BASELINE_TIMEOUT_S, capture_output=True,
        )  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        print(f"baseline failed in {repo}: {exc}", file=sys.stderr)
        return {"failed": True, "error": str(exc)}
    return {"seconds": time.monotonic() - started, "bytes": target.stat().st_size}


# --- the runs -----------------------------------------------------------------------------


def link_label(link: float | None) -> str:
    """``unthrottled`` or ``100 Mbit/s``."""
    return "unthrottled" if link is None else f"{link:g} Mbit/s"


def parse_links(text: str) -> list[float | None]:
    """``none,1000,100`` → [None, 1000.0, 100.0]."""
    items = [part.strip() for part in text.split(",") if part.strip()]
    return [None if item.lower() in {"none", "unthrottled"} else float(item) for item in items]


def parse_transfers(text: str) -> list[str]:
    """``packs,tar`` → ["packs", "tar"]; raises ValueError on an unknown one."""
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(chosen) - set(TRANSFERS))
    if unknown:
        raise ValueError(f"unknown transfers {unknown}: choose among {list(TRANSFERS)}")
    return chosen


def rotated(items: list[str], by: int) -> list[str]:
    """``items`` starting at index ``by`` (mod its length), so each run starts elsewhere."""
    shift = by % len(items) if items else 0
    return items[shift:] + items[:shift]


def measure(repos: dict[str, Path], plan: Json) -> Json:
    """Every run: per shape the baseline, then per link each transfer once."""
    uploads: Json = {s: {link_label(lk): {t: [] for t in plan["transfers"]} for lk in plan["links"]}
                     for s in repos}  # fmt: skip
    baselines: Json = {s: [] for s in repos}
    loads: list[Json] = []
    for run in range(plan["runs"]):
        for shape, repo in repos.items():
            baselines[shape].append(baseline(repo, CACHE / f"baseline-link-{shape}.tar.zst"))
            for link in plan["links"]:
                for transfer in rotated(plan["transfers"], run):
                    out = run_child(repo, transfer, link, plan["rtt_ms"])
                    out["loadavg_after"] = os.getloadavg()
                    uploads[shape][link_label(link)][transfer].append(out)
                    _progress(run, shape, link, transfer, out)
        loads.append({"run": run + 1, "loadavg": os.getloadavg()})
    return {"uploads": uploads, "baselines": baselines, "loads": loads}


def _progress(run: int, shape: str, link: float | None, transfer: str, out: Json) -> None:
    if out.get("failed"):
        line = "FAILED"
    else:
        report = out["report"]
        line = f"{out['upload_s']:.2f} s, {report['sent_bytes'] / MB:.0f} MB"
        line += f", {report.get('transfer', transfer)}"
    where = f"run {run + 1} {shape} {link_label(link)} {transfer}"
    print(f"{where}: {line} (load {os.getloadavg()[0]:.2f})", file=sys.stderr)


# --- summary ------------------------------------------------------------------------------


def median(values: list[float]) -> float | None:
    """The median, None when there are no values."""
    return statistics.median(values) if values else None


def summarize_row(outs: list[Json]) -> Json:
    """One (shape, link, transfer): medians over the runs that finished."""
    done = [o for o in outs if not o.get("failed")]
    reports = [o["report"] for o in done]
    chosen = sorted({str(r.get("transfer", "?")) for r in reports})
    observed = [r["link_mbit"] for r in reports if r.get("link_mbit") is not None]
    return {
        "runs": len(outs),
        "failed": len(outs) - len(done),
        "upload_s": median([o["upload_s"] for o in done]),
        "select_s": median([o["select_s"] for o in done]),
        "sent_bytes": median([r["sent_bytes"] for r in reports]),
        "chosen": chosen,
        "observed_mbit": median(observed),
    }


def summarize_baseline(runs: list[Json], link: float | None) -> Json:
    """The baseline's medians and, at a link, its ideal transfer time there."""
    done = [r for r in runs if not r.get("failed")]
    size = median([r["bytes"] for r in done])
    ideal = size * 8 / (link * MB) if size is not None and link else None
    seconds = median([r["seconds"] for r in done])
    return {"seconds": seconds, "bytes": size, "ideal_s": ideal, "reference_s": ideal or seconds}


def verdict(rows: dict[str, Json]) -> Json:
    """Which fixed transfer was fastest, and whether auto matched it (10 % or the same pick)."""
    timed = {t: rows[t]["upload_s"] for t in FIXED if rows.get(t, {}).get("upload_s") is not None}
    if not timed:
        return {"fastest": None}
    fastest = min(timed, key=lambda t: timed[t])
    out: Json = {"fastest": fastest, "fastest_s": timed[fastest]}
    auto = rows.get("auto", {})
    if auto.get("upload_s") is None:
        return out
    finals = {c.split("+")[-1] for c in auto["chosen"]}
    out["auto_s"] = auto["upload_s"]
    out["auto_vs_fastest"] = auto["upload_s"] / timed[fastest]
    out["auto_chose_fastest"] = finals == {fastest}
    out["auto_ok"] = out["auto_chose_fastest"] or auto["upload_s"] <= AUTO_SLACK * timed[fastest]
    return out


def summarize(raw: Json, plan: Json) -> Json:
    """Per shape and link: the baseline, each transfer's row and the verdict."""
    summary: Json = {}
    for shape, by_link in raw["uploads"].items():
        summary[shape] = {}
        for link in plan["links"]:
            rows = {t: summarize_row(outs) for t, outs in by_link[link_label(link)].items()}
            summary[shape][link_label(link)] = {
                "baseline": summarize_baseline(raw["baselines"][shape], link),
                "rows": rows,
                "verdict": verdict(rows),
            }
    return summary


# --- report -------------------------------------------------------------------------------


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def _mb(value: float | None) -> str:
    return "—" if value is None else f"{value / MB:.0f} MB"


def _transfer_row(shape: str, link: str, name: str, row: Json, reference: float | None) -> str:
    if row["upload_s"] is None:
        return f"| {shape} | {link} | {name} | failed ({row['failed']} of {row['runs']}) | | | | |"
    ratio = f"{row['upload_s'] / reference:.2f}" if reference else "—"
    chosen = ", ".join(row["chosen"])
    observed = row["observed_mbit"]
    seen = "" if observed is None else f"{observed:.0f} Mbit/s"
    failed = f" ({row['failed']} failed)" if row["failed"] else ""
    return (
        f"| {shape} | {link} | {name}{failed} | {_s(row['upload_s'])} | {_mb(row['sent_bytes'])}"
        f" | {ratio} | {chosen} | {seen} |"
    )


def _baseline_row(shape: str, link: str, base: Json) -> str:
    ideal = base["ideal_s"]
    reference = f"= {_s(ideal)} ideal transfer" if ideal is not None else "1.00"
    return (
        f"| {shape} | {link} | baseline `tar \\| zstd -3 -T0` (runner only) |"
        f" {_s(base['seconds'])} | {_mb(base['bytes'])} | {reference} | | |"
    )


def rows_table(summary: Json) -> list[str]:
    """Every row: upload time (median), bytes sent, ÷ the link's reference, what went.

    "used" is the report's transfer (auto's choice; "packs+zpacks": the first pack as
    stored, the rest recompressed), "rate seen" the link rate its first pack measured.
    """
    lines = [
        "| shape | link | transfer | upload | sent | ÷ reference | used | rate seen |",
        "|---|---|---|---:|---:|---:|---|---:|",
    ]
    for shape, by_link in summary.items():
        for link, cell in by_link.items():
            base = cell["baseline"]
            lines.append(_baseline_row(shape, link, base))
            lines += [
                _transfer_row(shape, link, name, row, base["reference_s"])
                for name, row in cell["rows"].items()
            ]
    return lines


def verdict_table(summary: Json) -> list[str]:
    """Per shape and link: the fastest fixed transfer and how auto did."""
    lines = [
        "| shape | link | fastest fixed | its time | auto | auto ÷ fastest | auto picks it? |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for shape, by_link in summary.items():
        for link, cell in by_link.items():
            v = cell["verdict"]
            if v["fastest"] is None:
                lines.append(f"| {shape} | {link} | — (none finished) | | | | |")
                continue
            ok = "—" if "auto_ok" not in v else ("**yes**" if v["auto_ok"] else "**no**")
            if "auto_ok" in v:
                ok += " (same pick)" if v["auto_chose_fastest"] else " (other pick)"
            ratio = f"{v['auto_vs_fastest']:.2f}" if "auto_vs_fastest" in v else "—"
            lines.append(
                f"| {shape} | {link} | {v['fastest']} | {_s(v['fastest_s'])}"
                f" | {_s(v.get('auto_s'))} | {ratio} | {ok} |"
            )
    return lines


def markdown(result: Json) -> str:
    """The two tables with a header saying where, when and under what load."""
    m, plan = result["machine"], result["plan"]
    load = f"load average {m['loadavg_start'][0]:.2f} at start, {m['loadavg_end'][0]:.2f} at end"
    rtt = f", {plan['rtt_ms']:g} ms per /files request" if plan["rtt_ms"] else ""
    head = (
        f"### Uploads at simulated link speeds: {m['cpus']} CPUs ({m['cpu']}),"
        f" {m['date']}, medians of {plan['runs']} run(s){rtt}; {load}."
    )
    note = (
        "Upload = `upload_repository` into a fresh local sandbox whose /files API is paced"
        " to the link (select excluded). Reference: unthrottled, the baseline's own time;"
        " at a link, the baseline's bytes at the link's rate. Used: the upload report's"
        " transfer (packs+zpacks: the first pack as git stored it, the rest recompressed);"
        " rate seen: the link rate measured on the first pack. MB = 10^6 bytes. Auto passes"
        f" when it picks the fastest fixed transfer or is within {AUTO_SLACK - 1:.0%} of it."
    )
    return "\n".join([head, "", note, "", *rows_table(result["summary"]), "",
                      *verdict_table(result["summary"])]) + "\n"  # fmt: skip


def machine() -> Json:
    """Where and when (bench_sync's description of the machine), and the load at the start."""
    return {**bench_sync.machine(), "loadavg_start": os.getloadavg()}


# --- main ---------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), action="append",
                        help="repeatable; default: every shape")  # fmt: skip
    parser.add_argument("--links", help=f"comma-separated Mbit/s or none (default {DEFAULT_LINKS})")
    parser.add_argument("--transfers", default=",".join(TRANSFERS))
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--rtt-ms", type=float, default=0.0, help="extra delay per /files call")
    parser.add_argument("--quick", action="store_true", help="small-text at none and 100 only")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/link.json")
    # child-only flags
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--repo", help=argparse.SUPPRESS)
    parser.add_argument("--transfer", help=argparse.SUPPRESS)
    parser.add_argument("--state", help=argparse.SUPPRESS)
    parser.add_argument("--link", type=float, help=argparse.SUPPRESS)
    return parser


def _plan(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Json:
    links = args.links or (QUICK_LINKS if args.quick else DEFAULT_LINKS)
    try:
        plan: Json = {"links": parse_links(links), "transfers": parse_transfers(args.transfers)}
    except ValueError as exc:
        parser.error(str(exc))
    if not plan["links"] or not plan["transfers"] or args.runs < 1:
        parser.error("need at least one link, one transfer and one run")
    shapes = args.shape or (QUICK_SHAPES if args.quick else list(SHAPES))
    return {**plan, "shapes": shapes, "runs": args.runs, "rtt_ms": args.rtt_ms}


def main() -> None:
    """Parse the flags; run the child, or every upload and write the results."""
    parser = _parser()
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    plan = _plan(args, parser)
    CACHE.mkdir(parents=True, exist_ok=True)
    repos = {s: ensure_repo(CACHE / REPO_DIRS[s], shape=s).resolve() for s in plan["shapes"]}
    result: Json = {"machine": machine(), "plan": plan}
    raw = measure(repos, plan)
    result["machine"]["loadavg_end"] = os.getloadavg()
    result.update(raw=raw, summary=summarize(raw, plan))
    result["markdown"] = markdown(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    args.out.with_suffix(".md").write_text(result["markdown"])
    print(result["markdown"])


if __name__ == "__main__":
    main()
