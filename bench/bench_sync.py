"""Upload and change round trip against the local sandbox, next to a tar | zstd baseline.

    uv run python bench/bench_sync.py [--shape mixed|small-text]... [--repo DIR] [--runs 3]
                                      [--quick] [--no-sweeps]

Every figure is measured per repository shape: both of bench/gen_repo.py's by
default (generated in /tmp/claude-e2b-bench, reused while their markers match), or
the ``--shape`` ones, or the one repository at ``--repo``. For each, every run
times, in the same loop and alternately:

- baseline: ``git ls-files -z | tar --null -T - -cf - | zstd -3 -T0 > FILE``
  (and the same into /dev/null);
- ours: select_files + upload_repository (default: clean tracked files as git
  packs, the rest in the tar) into a fresh local sandbox, in a child process
  whose peak RSS (VmHWM) is read right after the upload; the sandbox server is
  another process and is not counted. The child then makes 10 small changes in
  the sandbox and times detect + pack + download + apply onto a copy of the
  checkout;
- tar-only: the same upload with ``git_objects=False`` (everything in the
  tar | zstd stream), in its own child process, without the change round trip.

Once per invocation (unless --no-sweeps), one upload each: pack group sizes
(gitpack's default ``group_bytes``), checkout workers (``upload_scripts.CHECKOUT_CONFIG``),
the non-streaming variant (verify and take in after the upload: phases apart) and
zstd levels of the tar-only path. Also secret-scan throughput over the selection
and history bundle sizes. Every row gives the bytes sent beside the time. Writes
bench/results/sync.json (one entry per shape under "shapes") and
bench/results/sync.md, and prints the Markdown tables of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import shlex  # noqa: E402

import structlog  # noqa: E402

from bench.gen_repo import SHAPES, ensure_repo  # noqa: E402
from claude_e2b.sandbox.localbox.launcher import LocalBoxHost  # noqa: E402
from claude_e2b.sandbox.session import SandboxSpec, open_session  # noqa: E402
from claude_e2b.sync import gitpack, tarstream, upload, upload_scripts  # noqa: E402
from claude_e2b.sync.apply import ApplyPolicy, apply_changes, verify_archive  # noqa: E402
from claude_e2b.sync.changes import (  # noqa: E402
    detect_script,
    pack_script,
    parse_detect_output,
    parse_pack_output,
)
from claude_e2b.sync.select import select_files  # noqa: E402

CACHE = Path("/tmp/claude-e2b-bench")
REPO_DIRS = {"mixed": "repo-460", "small-text": "repo-small-text"}
MiB = 2**20
REPO_DIR = "/home/user/repo"
WORK_DIR = "/tmp/claude-e2b"


# --- child: one upload (+ change round trip) in a fresh process ------------------


def _vm_hwm_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _changes_commands() -> str:
    """10 changes: edit 5 files, add 3, delete 1, rename 1 (picked from git's list)."""
    return r"""set -euo pipefail
cd /home/user/repo
mapfile -t files < <(git ls-files -- 'src/*.py' | head -n 7)
for f in "${files[@]:0:5}"; do printf '\n# edited by the benchmark\nvalue = 42\n' >> "$f"; done
for i in 1 2 3; do
  printf 'def added_%s():\n    return %s\n' "$i" "$i" > "src/bench_added_$i.py"
done
rm -- "${files[5]}"
mv -- "${files[6]}" "${files[6]%.py}_renamed.py"
"""


def _patch_group_bytes(group_bytes: int) -> None:
    """Set gitpack's pack group size: write_packs bound GROUP_BYTES as its default at import."""
    defaults = gitpack.write_packs.__defaults__
    if defaults != (gitpack.GROUP_BYTES, None):
        raise SystemExit(f"write_packs defaults changed ({defaults}): update the benchmark")
    gitpack.GROUP_BYTES = group_bytes
    gitpack.write_packs.__defaults__ = (group_bytes, None)


def _patch_checkout_workers(workers: int) -> None:
    kept = tuple(c for c in upload_scripts.CHECKOUT_CONFIG if not c.startswith("checkout.workers="))
    upload_scripts.CHECKOUT_CONFIG = (*kept, f"checkout.workers={workers}")


def child(args: argparse.Namespace) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    if args.group_mb is not None:
        _patch_group_bytes(args.group_mb * MiB)
    if args.checkout_workers is not None:
        _patch_checkout_workers(args.checkout_workers)
    out: dict[str, object] = {"rss_before_mb": _vm_hwm_kb() / 1024}
    state = Path(tempfile.mkdtemp(prefix="bench-state-", dir=CACHE))
    host = LocalBoxHost(state / "localbox", os.environ)
    session = open_session(SandboxSpec(backend="local", local_tools={}, lifetime_s=900), host)
    try:
        out["rss_after_session_mb"] = _vm_hwm_kb() / 1024
        started = time.monotonic()
        selection = select_files(Path(args.repo))
        out["select_s"] = time.monotonic() - started
        report = upload.upload_repository(
            session, selection, repo_dir=REPO_DIR, work_dir=WORK_DIR,
            zstd_level=args.level, stream_extract=not args.no_stream,
            transfer="tar" if args.tar_only else args.transfer,
        )  # fmt: skip
        out["upload_s"] = time.monotonic() - started
        out["peak_rss_mb"] = _vm_hwm_kb() / 1024
        out["report"] = dict(report.__dict__)
        if args.changes:
            out["changes"] = _round_trip(session, Path(args.repo), report.baseline)
    finally:
        session.kill()
        shutil.rmtree(state, ignore_errors=True)
    print(json.dumps(out))


def _round_trip(session, repo: Path, baseline: str) -> dict[str, object]:
    session.run(f"bash -c {shlex.quote(_changes_commands())}", timeout=120, check=True)
    copy = Path(tempfile.mkdtemp(prefix="bench-apply-", dir=CACHE))
    subprocess.run(["cp", "-a", f"{repo}/.", str(copy)], check=True)
    times: dict[str, float] = {}
    t = time.monotonic()
    out_path = f"{WORK_DIR}/changes.bin"
    script = detect_script(REPO_DIR, baseline, upload.stat_cache_path(WORK_DIR))
    session.run(f"bash -c {shlex.quote(script)} > {out_path}", timeout=300, check=True)
    changeset = parse_detect_output(session.read_bytes(out_path))
    times["detect_s"] = time.monotonic() - t
    t = time.monotonic()
    archive = f"{WORK_DIR}/changes.tar.zst"
    job = pack_script(REPO_DIR, changeset, archive)
    session.write_file(job.list_path, job.list_content)
    done = session.run(f"bash -c {shlex.quote(job.script)}", timeout=300, check=True)
    packed = parse_pack_output(done.stdout.encode())
    times["pack_s"] = time.monotonic() - t
    t = time.monotonic()
    local = copy.parent / f"{copy.name}.archive"
    with local.open("wb") as handle:
        for block in session.read_stream(archive):
            handle.write(block)
    verify_archive(local, packed)
    times["download_s"] = time.monotonic() - t
    t = time.monotonic()
    result = apply_changes(copy, changeset, local, policy=ApplyPolicy())
    times["apply_s"] = time.monotonic() - t
    shutil.rmtree(copy)
    local.unlink()
    return {
        **times,
        "total_s": sum(times.values()),
        "changes": len(changeset.changes),
        "statuses": sorted(c.status for c in changeset.changes),
        "applied": len(result.applied),
        "skipped": len(result.skipped),
        "download_bytes": packed.bytes,
        "detect_output_bytes": len(session.read_bytes(out_path)),
    }


def run_child(repo: Path, **opts: object) -> dict[str, object]:
    argv = [sys.executable, __file__, "--child", "--repo", str(repo)]
    for key, value in opts.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value not in (False, None):
            argv += [flag, str(value)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- baseline ------------------------------------------------------------------------


def baseline(repo: Path, target: str) -> float:
    cmd = f"git ls-files -z | tar --null -T - -cf - | zstd -3 -T0 -q > {target}"
    started = time.monotonic()
    subprocess.run(["bash", "-c", cmd], cwd=repo, check=True)
    return time.monotonic() - started


# --- once-per-invocation measurements ------------------------------------------------


def secret_scan(repo: Path) -> dict[str, object]:
    try:
        from claude_e2b.sync.secrets import SecretScanner, scan_tree  # noqa: PLC0415
    except Exception as exc:
        return {"error": f"secrets.py not importable: {exc}"}
    selection = select_files(repo)
    scanner = SecretScanner()
    paths = [f.path for f in selection.files if not f.is_symlink]
    size = sum(f.size for f in selection.files if not f.is_symlink)
    scan_tree(scanner, repo, paths[:200])  # warm up
    started = time.monotonic()
    hits = scan_tree(scanner, repo, paths)
    seconds = time.monotonic() - started
    return {"bytes": size, "seconds": seconds, "mb_per_s": size / MiB / seconds, "hits": len(hits)}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


def history(repo: Path) -> list[dict[str, object]]:
    """Size and time of the history the sandbox would need for `git log`/`blame`."""
    rows: list[dict[str, object]] = []
    commits = int(_git(repo, "rev-list", "--count", "HEAD"))
    work = Path(tempfile.mkdtemp(prefix="bench-history-", dir=CACHE))
    try:
        rows.extend(_shallow_row(repo, work, d, commits, blobs=True) for d in (1, 50, commits))
        rows.append(_shallow_row(repo, work, commits, commits, blobs=False))
    finally:
        shutil.rmtree(work)
    return rows


def _shallow_row(
    repo: Path, work: Path, depth: int, commits: int, *, blobs: bool
) -> dict[str, object]:
    target = work / f"d{depth}{'' if blobs else '-noblobs'}"
    started = time.monotonic()
    if blobs and depth == commits:
        subprocess.run(
            ["git", "-C", str(repo), "bundle", "create", "-q", str(target), "--all"], check=True
        )
        size = target.stat().st_size
    else:
        # A shallow (or blob-less) pack of HEAD's history, as the sandbox would receive it.
        spec = ["--objects", "HEAD"] + (["--filter=blob:none"] if not blobs else [])
        if depth < commits:
            spec += [f"--max-count={depth}"]
        revs = subprocess.run(
            ["git", "-C", str(repo), "rev-list", *spec], capture_output=True, check=True
        ).stdout
        pack = subprocess.run(
            ["git", "-C", str(repo), "pack-objects", "--stdout", "-q"],
            input=revs, capture_output=True, check=True,
        ).stdout  # fmt: skip
        target.write_bytes(pack)
        size = len(pack)
    seconds = time.monotonic() - started
    label = f"depth {depth}" if depth < commits else f"all {commits} commits"
    return {"history": label + ("" if blobs else ", no blobs"), "bytes": size, "seconds": seconds}


def machine() -> dict[str, object]:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    sha = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "git": _git(ROOT, "--version").strip() if shutil.which("git") else "",
        "project_sha": sha,
    }


# --- report --------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main_runs(repo: Path, runs: int) -> dict[str, object]:
    base_file = CACHE / "baseline.tar.zst"
    base_s, null_s, ours, tar_only = [], [], [], []
    for i in range(runs):
        base_s.append(baseline(repo, str(base_file)))
        ours.append(run_child(repo, changes=True))
        null_s.append(baseline(repo, "/dev/null"))
        tar_only.append(run_child(repo, tar_only=True))
        print(
            f"run {i + 1}: baseline {base_s[-1]:.2f}s ours {ours[-1]['upload_s']:.2f}s"
            f" tar-only {tar_only[-1]['upload_s']:.2f}s",
            file=sys.stderr,
        )
    changes = [o["changes"] for o in ours]
    b = median(base_s)
    return {
        "baseline_s": base_s,
        "baseline_devnull_s": null_s,
        "baseline_bytes": base_file.stat().st_size,
        # ours: the default upload (git objects), the headline figure
        **_summary(ours, b),
        "changes": changes[-1],
        "changes_total_s": [c["total_s"] for c in changes],
        "tar_only": _summary(tar_only, b),
    }


def _summary(outs: list[dict[str, object]], baseline_s: float) -> dict[str, object]:
    """Medians (peak RSS: the highest) of one variant's child runs."""
    # A run whose streamed transfer fell back has verify/extract phases the others lack.
    keys = dict.fromkeys(k for o in outs for k in o["report"]["phases"])
    phases = {k: median([o["report"]["phases"].get(k, 0.0) for o in outs]) for k in keys}
    reports = [o["report"] for o in outs]
    return {
        "ours_s": [o["upload_s"] for o in outs],
        "select_s": median([o["select_s"] for o in outs]),
        "phases_median": phases,
        "peak_rss_mb": max(o["peak_rss_mb"] for o in outs),
        "peak_rss_mb_runs": [o["peak_rss_mb"] for o in outs],
        "rss_after_session_mb": max(o["rss_after_session_mb"] for o in outs),
        "sent_bytes": median([r["sent_bytes"] for r in reports]),
        "packs": reports[-1]["packs"],
        "packed_files": reports[-1]["packed_files"],
        "chunks": reports[-1]["chunks"],
        "resends": [r["resends"] for r in reports],
        "report": reports[-1],
        "ratio": median([o["upload_s"] for o in outs]) / baseline_s,
    }


def sweeps(repo: Path, quick: bool) -> dict[str, object]:
    out: dict[str, object] = {}
    groups = (32, 64) if quick else (16, 32, 64, 128)
    out["group_mb"] = [{"group_mb": g, **_brief(run_child(repo, group_mb=g))} for g in groups]
    out["checkout_workers"] = [
        {"checkout_workers": w, **_brief(run_child(repo, checkout_workers=w))} for w in (1, 0)
    ]
    out["no_stream"] = _brief(run_child(repo, no_stream=True))
    # Level 3 (the default) is the tar-only row of the main runs.
    levels = () if quick else (1, 6)
    out["tar_level"] = [
        {"level": lv, **_brief(run_child(repo, tar_only=True, level=lv))} for lv in levels
    ]
    mixed = mixed_copy(repo)
    out["mixed"] = {
        "edited_files": MIXED_EDITED,
        "baseline_s": baseline(mixed, str(CACHE / "baseline-mixed.tar.zst")),
        **_brief(run_child(mixed)),
    }
    return out


MIXED_EDITED = 1000


def mixed_copy(repo: Path) -> Path:
    """A copy of the repository with MIXED_EDITED text files edited (the index refreshed,
    as `git status` leaves it): what a developer's checkout looks like mid-work."""
    mixed = CACHE / f"{repo.name}-mixed"
    shutil.rmtree(mixed, ignore_errors=True)
    subprocess.run(["cp", "-a", str(repo), str(mixed)], check=True)
    texts = [p for p in _git(mixed, "ls-files").splitlines() if p.endswith((".py", ".ts", ".md"))]
    for path in texts[:: max(1, len(texts) // MIXED_EDITED)][:MIXED_EDITED]:
        with (mixed / path).open("a") as handle:
            handle.write("# edited\n")
    subprocess.run(["git", "-C", str(mixed), "update-index", "-q", "--refresh"], check=False)
    return mixed


def _brief(child_out: dict[str, object]) -> dict[str, object]:
    report = child_out["report"]
    return {
        "upload_s": child_out["upload_s"],
        "select_s": child_out["select_s"],
        "sent_mb": report["sent_bytes"] / MiB,
        "packs": report["packs"],
        "packed_files": report["packed_files"],
        "chunks": report["chunks"],
        "phases": report["phases"],
        "peak_rss_mb": child_out["peak_rss_mb"],
    }


# Phase labels for the tables, in upload order (verify/extract appear only on the slow path).
PHASES = {
    "split_s": "split (which files go as objects)",
    "pack_send_s": "pack + send",
    "extract_tail_s": "tail (sandbox finishes checkout / extract)",
    "verify_s": "verify (slow path)",
    "extract_s": "take in (slow path)",
    "baseline_s": "baseline commit",
}


def markdown(result: dict[str, object]) -> str:
    """One shape's tables; every row has the bytes sent beside the time."""
    m = result["main"]
    raw = m["report"]["raw_bytes"] / MiB
    repo = result["repo"]["tracked_files"]
    where = f"{result['machine']['cpus']} CPUs ({result['machine']['cpu']})"
    when = f"medians of {len(m['ours_s'])} runs, {result['machine']['date']}"
    lines = [
        f"### {result['shape']}: {repo} files, {raw:.0f} MiB; {where}; {when}.",
        "",
        *_main_table(m),
        "",
        *_changes_table(m["changes"], m["changes_total_s"]),
    ]
    sc = result.get("secrets", {})
    if "mb_per_s" in sc:
        scanned = f"{sc['bytes'] / MiB:.0f} MiB in {sc['seconds']:.2f} s"
        rate = f"**{sc['mb_per_s']:.0f} MB/s**, {sc['hits']} hits"
        lines += [
            "",
            f"Secret scan (scan_tree, SecretScanner()) over the selection: {scanned} = {rate}.",
        ]
    elif sc:
        lines += ["", f"Secret scan: {sc.get('error')}"]
    if result.get("sweeps"):
        lines += ["", *_sweep_table(result["sweeps"])]
    h = result.get("history", [])
    if h:
        lines += ["", "| history for the sandbox | size | time on the runner |", "|---|---:|---:|"]
        lines += [
            f"| {r['history']} | {r['bytes'] / MiB:.1f} MiB | {r['seconds']:.2f} s |" for r in h
        ]
    return "\n".join(lines)


def _main_table(m: dict[str, object]) -> list[str]:
    t = m["tar_only"]
    b, b0 = median(m["baseline_s"]), median(m["baseline_devnull_s"])
    o, ot = median(m["ours_s"]), median(t["ours_s"])
    base_mib = _mib(m["baseline_bytes"])
    baseline_cmd = "`git ls-files -z \\| tar --null -T - -cf - \\| zstd -3 -T0 > FILE`"
    files = m["report"]["files"]
    split = f"{m['packed_files']} of {files} files as objects in {m['packs']} packs"
    if m["chunks"]:
        split += f", {files - m['packed_files']} in {m['chunks']} tar chunks"
    lines = [
        "| what | time | vs baseline | sent | notes |",
        "|---|---:|---:|---:|---|",
        f"| baseline: {baseline_cmd} | {b:.2f} s | 1.00 | {base_mib} | |",
        f"| baseline into /dev/null | {b0:.2f} s | {b0 / b:.2f} | {base_mib} | |",
        (
            f"| **ours: select + upload to the local sandbox (git objects)** | **{o:.2f} s** |"
            f" **{o / b:.2f}** | **{_mib(m['sent_bytes'])}** | peak RSS"
            f" {m['peak_rss_mb']:.0f} MB; {split} |"
        ),
        f"| of which select | {m['select_s']:.2f} s | | — | |",
    ]
    for k, v in m["phases_median"].items():
        sent = _mib(m["sent_bytes"]) if k == "pack_send_s" else "—"
        lines.append(f"| of which {PHASES.get(k, k)} | {v:.2f} s | | {sent} | |")
    lines.append(
        f"| tar-only variant (`git_objects=False`) | {ot:.2f} s | {ot / b:.2f} |"
        f" {_mib(t['sent_bytes'])} | peak RSS {t['peak_rss_mb']:.0f} MB, {t['chunks']} chunks;"
        f" {_phase_list({'select_s': t['select_s'], **t['phases_median']})} |"
    )
    return lines


def _changes_table(c: dict[str, object], totals: list[float]) -> list[str]:
    archive = f"{c['download_bytes']} B"
    found = f"{c['changes']} / {c['applied']} / {c['skipped']}"
    return [
        "| 10 small changes back (5 edits, 3 adds, 1 delete, 1 rename) | time | bytes |",
        "|---|---:|---:|",
        f"| detect (git in the sandbox) | {c['detect_s']:.2f} s | {c['detect_output_bytes']} B |",
        f"| pack in the sandbox | {c['pack_s']:.2f} s | {archive} archive |",
        f"| download + verify | {c['download_s']:.2f} s | {archive} |",
        f"| apply to a copy of the checkout | {c['apply_s']:.2f} s | — |",
        f"| **total** (median of runs) | **{median(totals):.2f} s** | {archive} |",
        f"| changes found / applied / skipped | {found} | |",
    ]


def _sweep_table(s: dict[str, object]) -> list[str]:
    default_group = gitpack.GROUP_BYTES // MiB
    lines = [
        "| variant (one run each) | upload | sent | packs | peak RSS | phases |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for row in s["group_mb"]:
        mark = " (default)" if row["group_mb"] == default_group else ""
        lines.append(_variant_row(f"pack group {row['group_mb']} MiB{mark}", row))
    for row in s["checkout_workers"]:
        workers = f"checkout.workers={row['checkout_workers']}"
        mark = " (default)" if workers in upload_scripts.CHECKOUT_CONFIG else ""
        lines.append(_variant_row(f"{workers}{mark}", row))
    lines.append(_variant_row("no streaming (phases apart)", s["no_stream"]))
    lines += [_variant_row(f"tar-only, zstd level {r['level']}", r) for r in s["tar_level"]]
    if "mixed" in s:
        mx = s["mixed"]
        name = (
            f"{mx['edited_files']} files edited (objects + tar; baseline"
            f" {mx['baseline_s']:.2f} s, ratio {mx['upload_s'] / mx['baseline_s']:.2f})"
        )
        lines.append(_variant_row(name, mx))
    return lines


def _mib(value: float) -> str:
    return f"{value / MiB:.0f} MiB"


def _phase_list(phases: dict[str, float]) -> str:
    return ", ".join(f"{k.removesuffix('_s')} {v:.2f}" for k, v in phases.items())


def _variant_row(name: str, row: dict[str, object]) -> str:
    phases = _phase_list({"select_s": row["select_s"], **row["phases"]})
    size, rss = f"{row['sent_mb']:.0f} MiB", f"{row['peak_rss_mb']:.0f} MB"
    return f"| {name} | {row['upload_s']:.2f} s | {size} | {row['packs']} | {rss} | {phases} |"


def measure(shape: str, repo: Path, args: argparse.Namespace) -> dict[str, object]:
    """Every figure for one repository."""
    marker = repo / ".git" / "claude-e2b-bench-marker.json"
    info = json.loads(marker.read_text()) if marker.exists() else {}
    info["tracked_files"] = _git(repo, "ls-files").count("\n")
    result: dict[str, object] = {
        "shape": shape,
        "machine": machine(),
        "repo": {"path": str(repo), **info},
    }
    result["main"] = main_runs(repo, args.runs)
    result["secrets"] = secret_scan(repo)
    result["history"] = history(repo)
    if not args.no_sweeps:
        result["sweeps"] = sweeps(repo, args.quick)
    result["markdown"] = markdown(result)
    return result


def repositories(args: argparse.Namespace) -> dict[str, Path]:
    """Shape name → repository: --repo alone, else the --shape ones (default: all)."""
    if args.repo is not None:
        return {args.repo.resolve().name: args.repo.resolve()}
    shapes = args.shape or list(SHAPES)
    return {s: ensure_repo(CACHE / REPO_DIRS[s], shape=s).resolve() for s in shapes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), action="append",
                        help="repeatable; default: every shape")  # fmt: skip
    parser.add_argument("--repo", type=Path, help="measure this repository (no --shape)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer sweep points")
    parser.add_argument("--no-sweeps", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/sync.json")
    # child-only flags
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--level", type=int, default=tarstream.ZSTD_LEVEL, help=argparse.SUPPRESS)
    parser.add_argument("--no-stream", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--changes", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tar-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--transfer", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--group-mb", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--checkout-workers", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.repo is not None and args.shape:
        parser.error("--repo and --shape exclude each other")
    CACHE.mkdir(parents=True, exist_ok=True)
    shapes = {name: measure(name, repo, args) for name, repo in repositories(args).items()}
    text = "\n\n".join(r["markdown"] for r in shapes.values()) + "\n"
    result = {"machine": machine(), "shapes": shapes, "markdown": text}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
