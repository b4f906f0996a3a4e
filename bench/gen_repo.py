"""Deterministic synthetic repository for the sync benchmarks.

    uv run python bench/gen_repo.py DIR [--shape mixed|small-text] [--size-mb N]
                                        [--files N] [--seed 1] [--history 200]

Two shapes, so that the figures hold beyond one generator (``SHAPES`` has their
default sizes).

``mixed`` (the default; the same bytes for the same arguments):

- about ``--files`` tracked files totalling about ``--size-mb`` MiB in nested
  directories; ~90 % source-like text (many small files, a few large generated
  ones: JSON fixtures, CSV, minified bundles), ~10 % binary: incompressible
  (PNG/JPEG/zip/font-like random bytes) and compressible (sqlite-like pages,
  raw bitmaps);
- executable scripts, empty files, symlinks (inside the tree), names with spaces
  and non-ASCII characters;
- a ``.gitignore`` and ignored build output on disk (``build/``, ``node_modules/``,
  ``*.o``) that must never be uploaded;
- a git history of ``--history`` commits: the first adds everything, the rest
  edit, add, rename and delete a few files each (made with ``git fast-import``).

``small-text``: a monorepo of source and generated text, ~22,000 files and
~450 MiB (~470 MB): packages of TypeScript/Python/Go/Java sources under one license
header, generated protobuf code, JSON fixtures and lockfile-like records with
hashes, Markdown docs; log-normal sizes (median ~8 KiB) and a few generated files of
several MiB; no binaries, no ignored output. The sources and docs of one directory
share a prelude of 2-10 KiB, so the text is ~3:1 object by object (git's zlib, what
packs hold) but ~3.9:1 with ``zstd -3`` over the tar stream, which sees a
directory's files together: the figures of the repository issue 12 was measured on
(472 MB; packs 157 MB, ``tar | zstd -3`` 121 MB). Its content and commits are
deterministic (seeded, fixed dates), with the same kind of history as ``mixed``; it
is then cloned through a transport (``git clone --no-local file://…``) so its
objects are in one pack as a CI checkout leaves them (the pack's layout is git's).

A marker in ``.git`` records the arguments; an existing repository whose marker
matches is reused as is.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

GENERATOR_VERSION = 3
MARKER = "claude-e2b-bench-marker.json"
MiB = 2**20

_WORDS = (  # noqa: SIM905 - a word list reads better as text
    "user account request response handler config value result error buffer index cache "
    "token session client server query table column record stream parser node tree graph "
    "edge vertex item list map set queue stack channel worker task job batch chunk block "
    "page frame layer model view controller service router middleware plugin module "
    "package build test assert expect mock fixture spec data input output reader writer "
    "encoder decoder schema field type kind name path file dir root base offset length "
    "size count total limit timeout retry delay interval deadline start stop open close "
    "read write send receive emit listen bind connect accept reject resolve dispatch "
    "update create delete fetch load save store commit rollback lock unlock wait notify "
    "signal event state"
).split()
_KEYWORDS = {
    ".py": ("def", "return", "if", "for", "in", "import", "class", "self", "None", "raise"),
    ".js": ("const", "let", "function", "return", "if", "await", "async", "export", "new"),
    ".ts": ("const", "let", "function", "return", "interface", "type", "export", "async"),
    ".go": ("func", "return", "if", "err", "nil", "var", "type", "struct", "range", "go"),
    ".rs": ("fn", "let", "mut", "impl", "pub", "match", "Some", "None", "Ok", "Err"),
    ".c": ("static", "int", "char", "void", "return", "if", "struct", "sizeof", "NULL"),
    ".java": ("public", "private", "static", "final", "class", "new", "return", "void"),
}
_TEXT_EXT = (
    (".py", 22),
    (".ts", 14),
    (".js", 10),
    (".go", 10),
    (".rs", 6),
    (".c", 5),
    (".h", 4),
    (".java", 6),
    (".md", 7),
    (".json", 5),
    (".yaml", 4),
    (".txt", 2),
    (".css", 3),
    (".html", 2),
)
_BIN_INCOMPRESSIBLE = (".png", ".jpg", ".zip", ".woff2", ".gz", ".webp")
_BIN_COMPRESSIBLE = (".sqlite", ".db", ".bmp", ".bin", ".tiff", ".parquet")
_TOP_DIRS = ("src", "lib", "packages", "services", "tests", "docs", "tools", "assets", "vendor")
_ODD_NAMES = (
    "notes with spaces.md",
    "résumé.txt",
    "données/état initial.json",
    "日本語/読んでください.md",
    "emoji 🚀 launch.txt",
    "-starts-with-dash.txt",
    "semi;colon & ampersand.txt",
    'quote\'s "double".txt',
)


@dataclass
class _Plan:
    text_files: list[tuple[str, int]] = field(default_factory=list)
    binary_files: list[tuple[str, int, bool]] = field(default_factory=list)


def _git(repo: Path, *args: str, data: bytes | None = None) -> bytes:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "Bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
        "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
        "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
    }
    done = subprocess.run(
        ["git", "-C", str(repo), *args], input=data, capture_output=True, check=False, env=env
    )
    if done.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed: {done.stderr.decode()}")
    return done.stdout


def _dirs(rng: random.Random, count: int) -> list[str]:
    dirs: list[str] = list(_TOP_DIRS)
    while len(dirs) < count:
        parent = rng.choice(dirs)
        if parent.count("/") >= 5:
            continue
        dirs.append(f"{parent}/{rng.choice(_WORDS)}_{rng.randrange(100)}")
    return sorted(set(dirs))


def _text_sizes(rng: random.Random, count: int, budget: int) -> list[int]:
    # Log-normal around 3 KiB (most source files), plus a few large generated files.
    sizes = [max(64, int(rng.lognormvariate(8.0, 1.1))) for _ in range(count)]
    for i in rng.sample(range(count), max(1, count // 400)):
        sizes[i] = int(rng.uniform(0.5, 6) * MiB)
    scale = budget / sum(sizes)
    return [max(16, min(int(s * scale), 24 * MiB)) for s in sizes]


def _plan(rng: random.Random, files: int, size_bytes: int) -> _Plan:
    dirs = _dirs(rng, max(40, files // 28))
    n_bin = files // 10
    n_text = files - n_bin
    plan = _Plan()
    text_exts = [e for e, w in _TEXT_EXT for _ in range(w)]
    used: set[str] = set()

    def name(ext: str) -> str:
        while True:
            base = "_".join(rng.sample(_WORDS, rng.randint(1, 3)))
            path = f"{rng.choice(dirs)}/{base}{ext}"
            if path not in used:
                used.add(path)
                return path

    for size in _text_sizes(rng, n_text, int(size_bytes * 0.68)):
        plan.text_files.append((name(rng.choice(text_exts)), size))
    bin_budget = size_bytes - sum(s for _, s in plan.text_files)
    raw = [max(256, int(rng.lognormvariate(10.5, 1.3))) for _ in range(n_bin)]
    scale = bin_budget / sum(raw)
    for size in raw:
        incompressible = rng.random() < 0.6
        ext = rng.choice(_BIN_INCOMPRESSIBLE if incompressible else _BIN_COMPRESSIBLE)
        plan.binary_files.append(
            (name(ext), max(64, min(int(size * scale), 40 * MiB)), incompressible)
        )
    return plan


def _line(rng: random.Random, ext: str) -> str:
    keywords = _KEYWORDS.get(ext, ("the", "a", "of", "to", "and", "is", "for", "with"))
    indent = "    " * rng.choice((0, 1, 1, 2, 2, 2, 3, 4))
    words = [
        rng.choice(_WORDS if rng.random() < 0.7 else keywords) for _ in range(rng.randint(2, 9))
    ]
    shape = rng.random()
    if shape < 0.45:
        call = ".".join(words[2:]) or "None"
        return f"{indent}{words[0]}_{words[1]} = {call}({rng.randrange(1000)})\n"
    if shape < 0.7:
        return f"{indent}{' '.join(words)}:\n"
    if shape < 0.85:
        return f"{indent}# {' '.join(words)} {rng.randrange(10**6):x}\n"
    if shape < 0.95:
        return f'{indent}"{"_".join(words)}": "{rng.getrandbits(64):016x}",\n'
    return "\n"


def _text_pool(rng: random.Random, size: int) -> bytes:
    """A large body of source-like lines that files are cut from."""
    exts = list(_KEYWORDS)
    parts: list[str] = []
    total = 0
    while total < size:
        ext = rng.choice(exts)
        block = "".join(_line(rng, ext) for _ in range(rng.randint(20, 80)))
        parts.append(block)
        total += len(block)
    return "".join(parts).encode()


def _text(rng: random.Random, pool: bytes, size: int) -> bytes:
    pieces: list[bytes] = []
    have = 0
    while have < size:
        start = pool.find(b"\n", rng.randrange(len(pool) - 1)) + 1
        take = min(size - have, rng.randint(2048, 65536))
        piece = pool[start : start + take]
        pieces.append(piece)
        have += len(piece)
    return b"".join(pieces)[:size]


def _compressible(rng: random.Random, size: int, ext: str) -> bytes:
    if ext in {".bmp", ".tiff"}:
        # Raw bitmap: smooth gradients with a little noise.
        row = bytes((x * 3 + rng.randrange(4)) & 0xFF for x in range(4096))
        noise = rng.randbytes(max(1, size // 64))
        data = (row * (size // len(row) + 1))[:size]
        return data[: size - len(noise)] + noise
    # Database-like: 4 KiB pages, a record header and a few rows each, then zeros.
    out = bytearray()
    page = 0
    while len(out) < size:
        rows = b"".join(
            b"%08d|%s|%d\x00" % (page * 10 + i, rng.choice(_WORDS).encode(), rng.randrange(10**6))
            for i in range(rng.randint(3, 40))
        )
        out += (b"PG" + page.to_bytes(4, "big") + rows).ljust(4096, b"\0")[:4096]
        page += 1
    return bytes(out[:size])


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mode != 0o644:
        path.chmod(mode)


def _extras(repo: Path, rng: random.Random, pool: bytes, plan: _Plan) -> None:
    """Executables, empty files, symlinks, odd names, .gitignore and ignored output."""
    for i in range(60):
        body = b"#!/bin/sh\nset -eu\n" + _text(rng, pool, rng.randint(100, 3000))
        _write(repo / f"tools/scripts/task_{i:02d}.sh", body, 0o755)
    for i, (path, _) in enumerate(plan.text_files[:: max(1, len(plan.text_files) // 150)]):
        _write(repo / Path(path).parent / f"__init_{i}__.py", b"")
    for odd in _ODD_NAMES:
        _write(repo / "misc" / odd, _text(rng, pool, 500))
    targets = [p for p, _ in plan.text_files[:: max(1, len(plan.text_files) // 20)]]
    for i, target in enumerate(targets):
        link = repo / "links" / f"link_{i:02d}"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(repo / target, link.parent))
    (repo / "links" / "dangling").symlink_to("does/not/exist")
    _write(repo / ".gitignore", b"build/\ndist/\nnode_modules/\n*.o\n__pycache__/\n*.log\n")
    for i in range(400):
        _write(repo / f"build/obj/unit_{i}.o", rng.randbytes(rng.randint(1000, 60000)))
    for i in range(300):
        _write(repo / f"node_modules/pkg{i % 30}/index_{i}.js", _text(rng, pool, 20000))
    _write(repo / "src/debug.log", _text(rng, pool, 200_000))


def _history(repo: Path, rng: random.Random, pool: bytes, plan: _Plan, commits: int) -> None:
    """Commits 2..N: each edits a few small text files, sometimes adds, renames or deletes."""
    small = [p for p, s in plan.text_files if s < 64 * 1024]
    contents: dict[str, bytes] = {}
    stream = bytearray()
    for n in range(2, commits + 1):
        ops: list[bytes] = []
        for path in rng.sample(small, 6):
            old = contents.get(path) or (repo / path).read_bytes()
            lines = old.splitlines(keepends=True)
            at = rng.randrange(max(1, len(lines)))
            lines[at : at + rng.randint(0, 5)] = [_text(rng, pool, rng.randint(50, 1500))]
            contents[path] = b"".join(lines)
            ops.append(
                b"M 100644 inline %s\ndata %d\n%s\n"
                % (path.encode(), len(contents[path]), contents[path])
            )
        if n % 5 == 0:
            new = f"src/history/added_{n:03d}.py"
            contents[new] = _text(rng, pool, rng.randint(500, 8000))
            small.append(new)
            ops.append(
                b"M 100644 inline %s\ndata %d\n%s\n"
                % (new.encode(), len(contents[new]), contents[new])
            )
        if n % 37 == 0:
            victim = small.pop(rng.randrange(len(small)))
            contents.pop(victim, None)
            ops.append(b"D %s\n" % victim.encode())
        mark = n - 1
        msg = f"change {n}: edit {len(ops)} files".encode()
        stamp = 1704067200 + n * 3600
        stream += b"commit refs/heads/main\nmark :%d\n" % mark
        stream += b"author Bench <bench@example.com> %d +0000\n" % stamp
        stream += b"committer Bench <bench@example.com> %d +0000\n" % stamp
        stream += b"data %d\n%s\n" % (len(msg), msg)
        if n == 2:
            stream += b"from refs/heads/main^0\n"
        stream += b"".join(ops) + b"\n"
    _git(repo, "fast-import", "--quiet", data=bytes(stream))
    _git(repo, "reset", "-q", "--hard", "main")


def generate(repo: Path, size_mb: int, files: int, seed: int, history: int) -> dict[str, object]:
    rng = random.Random(seed)
    plan = _plan(rng, files, size_mb * MiB)
    pool = _text_pool(rng, 24 * MiB)
    if repo.exists():
        shutil.rmtree(repo)
    repo.mkdir(parents=True)
    for path, size in plan.text_files:
        _write(repo / path, _text(rng, pool, size))
    for path, size, incompressible in plan.binary_files:
        ext = Path(path).suffix
        _write(
            repo / path, rng.randbytes(size) if incompressible else _compressible(rng, size, ext)
        )
    _extras(repo, rng, pool, plan)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "--no-verify", "-m", "initial import")
    if history > 1:
        _history(repo, rng, pool, plan, history)
    tracked = _git(repo, "ls-files", "-z").count(b"\0")
    return {
        "tracked_files": tracked,
        "text_files": len(plan.text_files),
        "binary_files": len(plan.binary_files),
    }


# --- shape small-text: a monorepo of source and generated text -----------------------

SMALL_TEXT_VERSION = 2
_LICENSE = (
    "Copyright 2024 The Monorepo Authors. All rights reserved.",
    'Licensed under the Apache License, Version 2.0 (the "License");',
    "you may not use this file except in compliance with the License.",
    "You may obtain a copy of the License at http://www.apache.org/licenses/LICENSE-2.0",
    "Unless required by applicable law or agreed to in writing, software distributed",
    'under the License is distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR',
    "CONDITIONS OF ANY KIND, either express or implied.",
)
_MONO_TOP = ("packages", "services", "apps", "libs", "tools", "proto", "docs", "infra")
_MONO_KINDS = (  # extension, what is in it, weight by count
    (".ts", "source", 22),
    (".tsx", "source", 8),
    (".py", "source", 12),
    (".go", "source", 10),
    (".java", "source", 6),
    (".css", "source", 3),
    (".md", "docs", 7),
    (".pb.go", "generated", 6),
    (".graphql", "generated", 3),
    (".json", "records", 10),
    (".snap", "records", 6),
    (".lock", "lockfile", 5),
)
_LARGE_KINDS = ((".pb.go", "generated"), (".json", "records"), (".lock", "lockfile"))
_GO_ZERO = {"string": '""', "int64": "0", "bool": "false", "[]byte": "nil", "float64": "0"}


def _mono_dirs(rng: random.Random, count: int) -> list[str]:
    """Packages under a few top directories, each with nested source directories."""
    dirs: list[str] = []
    seen: set[str] = set()
    for _ in range(count // 12):
        package = f"{rng.choice(_MONO_TOP)}/{rng.choice(_WORDS)}-{rng.choice(_WORDS)}"
        if package not in seen:
            seen.add(package)
            dirs.append(package)
    while len(dirs) < count:
        child = f"{rng.choice(dirs)}/{rng.choice(_WORDS)}"
        if child.count("/") <= 6 and child not in seen:
            seen.add(child)
            dirs.append(child)
    return dirs


def _mono_plan(rng: random.Random, files: int, size_bytes: int) -> list[tuple[str, str, int]]:
    """(path, kind, size) of every file: log-normal sizes, a few large generated files."""
    dirs = _mono_dirs(rng, max(40, files // 18))
    kinds = [(e, k) for e, k, w in _MONO_KINDS for _ in range(w)]
    sizes = [max(40, int(rng.lognormvariate(9.0, 1.0))) for _ in range(files)]
    large = set(rng.sample(range(files), max(1, files // 400)))
    for i in large:
        sizes[i] = int(rng.uniform(1, 4) * MiB)
    scale = size_bytes / sum(sizes)
    used: set[str] = set()
    out: list[tuple[str, str, int]] = []
    for i, size in enumerate(sizes):
        ext, kind = rng.choice(_LARGE_KINDS if i in large else kinds)
        while True:
            path = f"{rng.choice(dirs)}/{'_'.join(rng.sample(_WORDS, rng.randint(1, 3)))}{ext}"
            if path not in used:
                used.add(path)
                break
        out.append((path, kind, max(16, min(int(size * scale), 8 * MiB))))
    return out


def _camel(rng: random.Random, words: int = 2) -> str:
    return "".join(rng.choice(_WORDS).capitalize() for _ in range(words))


def _mono_source(rng: random.Random, pool: bytes, size: int, ext: str, prelude: bytes) -> bytes:
    """The license header, a few imports, the directory's prelude, then source-like lines."""
    lines: list[str] = []
    if ext != ".md":
        mark = "#" if ext == ".py" else "//"
        lines = [f"{mark} {line}\n" for line in _LICENSE]
    for _ in range(rng.randint(2, 10) if lines else 0):
        if ext == ".py":
            lines.append(f"from mono.{rng.choice(_WORDS)} import {_camel(rng)}\n")
        else:
            lines.append(f'import {{ {_camel(rng)} }} from "@mono/{rng.choice(_WORDS)}";\n')
    head = "".join(lines).encode() + prelude
    return (head + _text(rng, pool, max(0, size - len(head))))[:size]


def _mono_generated(rng: random.Random, size: int, ext: str) -> bytes:
    """Protobuf-like Go code or a GraphQL schema: the same few shapes, many names."""
    parts: list[str] = []
    have = 0
    while have < size:
        name = _camel(rng)
        fields = [(_camel(rng), rng.choice(tuple(_GO_ZERO))) for _ in range(rng.randint(3, 9))]
        if ext == ".graphql":
            body = "".join(f"  {f[0].lower()}{f[1:]}: {t.title()}!\n" for f, t in fields)
            block = f"type {name} implements Node {{\n  id: ID!\n{body}}}\n\n"
        else:
            tags = "".join(
                f'\t{f} {t} `protobuf:"{rng.randrange(1, 30)},opt,name={f.lower()}"'
                f' json:"{f.lower()},omitempty"`\n'
                for f, t in fields
            )
            getters = "".join(
                f"func (x *{name}) Get{f}() {t} {{\n\tif x != nil {{\n\t\treturn x.{f}\n"
                f"\t}}\n\treturn {_GO_ZERO[t]}\n}}\n\n"
                for f, t in fields
            )
            block = f"type {name} struct {{\n{tags}}}\n\n{getters}"
        parts.append(block)
        have += len(block)
    return "".join(parts).encode()[:size]


def _mono_records(rng: random.Random, size: int, hashed: float) -> bytes:
    """JSON-like records (fixtures, snapshots, lockfiles); ``hashed`` of them carry a hash."""
    parts: list[str] = []
    have = 0
    while have < size:
        name = f"{rng.choice(_WORDS)}_{rng.choice(_WORDS)}"
        record = (
            f'  {{"id": {rng.randrange(10**6)}, "name": "{name}",'
            f' "kind": "{rng.choice(_WORDS)}", "version": "{rng.randrange(9)}.{rng.randrange(40)}'
            f'.{rng.randrange(20)}", "count": {rng.randrange(1000)}'
        )
        if rng.random() < hashed:
            record += f', "integrity": "sha512-{rng.randbytes(48).hex()}"'
        record += "},\n"
        parts.append(record)
        have += len(record)
    return "".join(parts).encode()[:size]


def _mono_content(
    rng: random.Random, pool: bytes, preludes: dict[str, bytes], entry: tuple[str, str, int]
) -> bytes:
    """One planned file; the sources and docs of a directory start with the same prelude."""
    path, kind, size = entry
    ext = path[path.index(".", path.rindex("/")) :]
    if kind in {"source", "docs"}:
        folder = path.rsplit("/", 1)[0]
        if folder not in preludes:
            preludes[folder] = _text(rng, pool, rng.randint(2000, 10000))
        return _mono_source(rng, pool, size, ext, preludes[folder])
    if kind == "generated":
        return _mono_generated(rng, size, ext)
    return _mono_records(rng, size, hashed=1.0 if kind == "lockfile" else 0.2)


def generate_small_text(
    repo: Path, size_mb: int, files: int, seed: int, history: int
) -> dict[str, object]:
    """Write the small-text monorepo with its history, then clone it to ``repo`` through
    a transport (``git clone --no-local file://``), as a CI checkout is made."""
    rng = random.Random(seed)
    plan = _mono_plan(rng, files, size_mb * MiB)
    pool = _text_pool(rng, 48 * MiB)  # large: a file's lines rarely recur within zstd's window
    source = repo.with_name(repo.name + ".source")
    for path in (repo, source):
        if path.exists():
            shutil.rmtree(path)
    source.mkdir(parents=True)
    preludes: dict[str, bytes] = {}
    for entry in plan:
        _write(source / entry[0], _mono_content(rng, pool, preludes, entry))
    _write(source / ".gitignore", b"node_modules/\ndist/\n*.log\n__pycache__/\n")
    _write(source / "README.md", b"# Monorepo\n\n" + _text(rng, pool, 4000))
    _git(source, "init", "-q", "-b", "main")
    _git(source, "add", "-A")
    _git(source, "commit", "-q", "--no-verify", "-m", "initial import")
    if history > 1:
        text_files = [(p, s) for p, k, s in plan if k in {"source", "docs"}]
        _history(source, rng, pool, _Plan(text_files=text_files), history)
    _git(source.parent, "clone", "-q", "--no-local", "-b", "main", f"file://{source}", str(repo))
    shutil.rmtree(source)
    tracked = _git(repo, "ls-files", "-z").count(b"\0")
    kinds: dict[str, int] = {}
    for _, kind, _ in plan:
        kinds[kind] = kinds.get(kind, 0) + 1
    return {"tracked_files": tracked, "kinds": kinds}


@dataclass(frozen=True)
class Shape:
    """A repository shape: its generator and default arguments."""

    generate: Callable[[Path, int, int, int, int], dict[str, object]]
    size_mb: int
    files: int
    version: int


SHAPES = {
    "mixed": Shape(generate, 460, 23000, GENERATOR_VERSION),
    "small-text": Shape(generate_small_text, 450, 22000, SMALL_TEXT_VERSION),
}
DEFAULT_SHAPE = "mixed"


def ensure_repo(
    repo: Path,
    *,
    shape: str = DEFAULT_SHAPE,
    size_mb: int | None = None,
    files: int | None = None,
    seed: int = 1,
    history: int = 200,
) -> Path:
    """Generate the repository at ``repo`` unless one with the same arguments is there.

    ``size_mb`` and ``files`` default to the shape's.
    """
    kind = SHAPES[shape]
    size_mb = kind.size_mb if size_mb is None else size_mb
    files = kind.files if files is None else files
    wanted: dict[str, object] = {
        "version": kind.version,
        "size_mb": size_mb,
        "files": files,
        "seed": seed,
        "history": history,
    }
    if shape != DEFAULT_SHAPE:  # the default's marker predates shapes: keep it reusable
        wanted["shape"] = shape
    marker = repo / ".git" / MARKER
    if marker.exists():
        found = json.loads(marker.read_text())
        if {k: found.get(k) for k in wanted} == wanted:
            return repo
    started = time.monotonic()
    stats = kind.generate(repo, size_mb, files, seed, history)
    seconds = round(time.monotonic() - started, 1)
    marker.write_text(json.dumps({**wanted, **stats, "seconds": seconds}, indent=2))
    print(f"generated {repo} in {seconds} s: {stats}", file=sys.stderr)
    return repo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--shape", choices=sorted(SHAPES), default=DEFAULT_SHAPE)
    parser.add_argument("--size-mb", type=int, help="default: the shape's")
    parser.add_argument("--files", type=int, help="default: the shape's")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--history", type=int, default=200, help="commits (1: just the import)")
    args = parser.parse_args()
    ensure_repo(
        args.dir.resolve(),
        shape=args.shape,
        size_mb=args.size_mb,
        files=args.files,
        seed=args.seed,
        history=args.history,
    )
    print(args.dir.resolve())


if __name__ == "__main__":
    main()
