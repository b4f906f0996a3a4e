"""The secret scanner: recall on every format, silence on near-misses, exact lines."""

from __future__ import annotations

import errno
import json
import os
import random
import re
import sysconfig
import textwrap
import tomllib
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import pytest

from claude_e2b.errors import SyncError
from claude_e2b.sync import secrets
from claude_e2b.sync.secrets import (
    _SPECS,
    RULE_NAMES,
    RUN_SECRET_RULE,
    SecretHit,
    SecretScanner,
    _compile_gate,
    _Detector,
    _Gate,
    _parse_rules,
    _rules_gate,
    _RuleSpec,
    scan_tree,
    widen,
)
from tests.unit.secret_corpus import (
    POSITIVES,
    RUN_SECRET,
    Example,
    filler_line,
    negatives,
    reference_hits,
    reference_scan_tree,
    write_tree,
)

SCANNER = SecretScanner()

# Found when written: one JWT, the example token in PyJWT's README (METADATA).
# Raise this only after reading the new hits: each one is a rule misfiring or a
# real-format token shipped in a package.
SITE_PACKAGES_MAX_HITS = 3


def _block(key: str, value: str) -> str:
    return f"{key}: |\n" + textwrap.indent(value, "  ")


def _py(key: str, value: str) -> str:
    quote = '"""' if "\n" in value else '"'
    return f"{key} = {quote}{value}{quote}"


CONTEXTS: dict[str, Callable[[str, str], str]] = {
    "raw": lambda _key, value: value,
    "json": lambda key, value: f"  {json.dumps(key)}: {json.dumps(value)},",
    "yaml": lambda key, value: _block(key, value) if "\n" in value else f"{key}: {value}",
    "env": lambda key, value: f"{key}={value}",
    "python": _py,
    "shell": lambda key, value: f"export {key}='{value}'",
}


def render(ex: Example, context: str) -> str:
    """The example as it would sit in a file of the given kind."""
    return CONTEXTS[context](ex.key or "secret", ex.value)


def marker(ex: Example) -> str:
    """Text on the line where the rule's match starts."""
    if ex.rule == "gcp-service-account-key":
        return '"private_key"'
    return ex.value.split("\n", 1)[0]


def bury(rng: random.Random, snippet: str, ex: Example, *, newline: str = "\n") -> tuple[str, int]:
    """Snippet between random filler lines; returns the text and the expected line."""
    before = [filler_line(rng) for _ in range(rng.randrange(0, 40))]
    after = [filler_line(rng) for _ in range(rng.randrange(0, 40))]
    text = "\n".join([*before, snippet, *after]) + "\n"
    start = len("\n".join(before)) + (1 if before else 0)
    line = text.count("\n", 0, text.index(marker(ex), start)) + 1
    return text.replace("\n", newline), line


def examples(rule: str, seed: int) -> list[tuple[Example, str]]:
    rng = random.Random(seed)
    return [(ex, ctx) for gen in POSITIVES[rule] for ex in [gen(rng)] for ctx in ex.contexts]


def test_every_rule_has_a_corpus_of_at_least_three() -> None:
    """Each named rule has at least three generated positives."""
    assert set(POSITIVES) == set(RULE_NAMES) - {RUN_SECRET_RULE}
    for rule in POSITIVES:
        assert len(examples(rule, 1)) >= 3, rule


@pytest.mark.parametrize("rule", sorted(POSITIVES))
def test_recall_with_right_line(rule: str) -> None:
    """Every generated token is found, by its rule, on its line, in every context."""
    rng = random.Random(rule)
    missed = []
    for ex, ctx in examples(rule, seed=zlib.crc32(rule.encode())):
        text, line = bury(rng, render(ex, ctx), ex)
        found = {(h.line, h.rule) for h in SCANNER.scan_bytes(text.encode(), "f")}
        if (line, rule) not in found or {ln for ln, _ in found} != {line}:
            missed.append((ctx, line, sorted(found)))
    assert not missed


def test_all_positives_in_one_file() -> None:
    """Tokens of every rule in one file are each reported once on their own line."""
    rng = random.Random(7)
    lines: list[str] = []
    expected: set[tuple[int, str]] = set()
    for rule in sorted(POSITIVES):
        for ex, ctx in examples(rule, seed=3):
            lines.append(filler_line(rng))
            text, line = bury(rng, render(ex, ctx), ex)
            offset = "\n".join(lines).count("\n") + 1 if lines else 0
            expected.add((offset + line, rule))
            lines.append(text.rstrip("\n"))
    hits = SCANNER.scan_bytes("\n".join(lines).encode(), "all")
    found = {(h.line, h.rule) for h in hits}
    assert expected <= found
    extra = found - expected
    # A GCP service-account file also holds a private key block on the same line.
    assert {rule for _, rule in extra} <= {"private-key"}


@pytest.mark.parametrize("context", ["raw", "json", "yaml", "env", "python", "shell"])
def test_no_false_positive_on_near_misses(context: str) -> None:
    """Placeholders, doc examples, templates, public values and hashes give no hit."""
    rng = random.Random(11)
    noisy = []
    for text in negatives(rng):
        snippet = render(Example("none", "value", text), context)
        hits = SCANNER.scan_bytes(snippet.encode(), "neg")
        if hits:
            noisy.append((snippet[:120], [str(h) for h in hits]))
    assert not noisy


def test_no_false_positive_in_filler() -> None:
    """Ten thousand lines of hashes, UUIDs, base64 and code give no hit."""
    rng = random.Random(5)
    text = "\n".join(filler_line(rng) for _ in range(10_000))
    assert SCANNER.scan_bytes(text.encode(), "filler") == []


def test_crlf_lines_are_counted_right() -> None:
    """Windows line endings do not shift the reported line."""
    rng = random.Random(9)
    ex = POSITIVES["github-token"][0](rng)
    text, line = bury(rng, render(ex, "env"), ex, newline="\r\n")
    hits = SCANNER.scan_bytes(text.encode(), "win.env")
    assert [(h.line, h.rule) for h in hits] == [(line, "github-token")]


def test_value_never_in_str_or_repr() -> None:
    """A hit prints as path:line: rule, and neither str nor repr holds the value."""
    for rule in sorted(POSITIVES):
        for ex, ctx in examples(rule, seed=5)[:2]:
            for hit in SCANNER.scan_bytes(render(ex, ctx).encode(), "p.txt"):
                assert str(hit) == f"p.txt:{hit.line}: {hit.rule}"
                for shown in (str(hit), repr(hit)):
                    assert ex.value.split("\n")[0] not in shown
                    assert ex.value[-12:] not in shown


def test_known_secrets_found_without_format() -> None:
    """The run's own values are found even in no known format; short ones are ignored."""
    value = "correct horse battery staple 42"
    scanner = SecretScanner([value, "short", ""])
    text = f"a = 1\nnote: {value}\nb = 'short'\n".encode()
    assert scanner.scan_bytes(text, "n.txt") == [SecretHit("n.txt", 2, RUN_SECRET_RULE)]
    assert value not in repr(scanner)


def test_known_secret_also_matching_a_format_gives_both_rules() -> None:
    """A run secret that is also a known token format is reported under both names."""
    rng = random.Random(1)
    token = POSITIVES["anthropic-api-key"][0](rng).value
    hits = SecretScanner([token]).scan_bytes(f"x\nKEY={token}\n".encode(), "e")
    assert {(h.line, h.rule) for h in hits} == {(2, "anthropic-api-key"), (2, RUN_SECRET_RULE)}


def test_binary_files_are_skipped_but_run_secrets_are_not() -> None:
    """A NUL in the first 8 KiB means binary: no format rules, only the run's values."""
    rng = random.Random(2)
    token = POSITIVES["github-token"][0](rng).value
    known = "e2e-run-secret-value-0001"
    scanner = SecretScanner([known])
    binary = b"\x7fELF\0\0" + f"\n{token}\n{known}\n".encode()
    assert scanner.scan_bytes(binary, "bin") == [SecretHit("bin", 3, RUN_SECRET_RULE)]
    late_nul = b"x" * 9000 + f"\n{token}\n".encode() + b"\0"
    assert [h.rule for h in scanner.scan_bytes(late_nul, "t")] == ["github-token"]


def test_large_file_scanned_whole_in_windows(tmp_path: Path) -> None:
    """A file past max_bytes is scanned to its end, seams included, lines exact."""
    rng = random.Random(4)
    lines = [filler_line(rng) for _ in range(30_000)]
    expected = set()
    for at in (5, 1000, 4096, 9999, 20_000, 29_999):
        ex = POSITIVES["npm-token"][0](rng)
        lines[at] = render(ex, "env")
        expected.add((at + 1, "npm-token"))
    path = tmp_path / "big.txt"
    path.write_text("\n".join(lines) + "\n")
    for max_bytes in (40_000, 100_003, 10 * 2**20):
        hits = SCANNER.scan_file(path, "big.txt", max_bytes=max_bytes)
        assert [(h.line, h.rule) for h in hits] == sorted(expected)


def test_scan_tree_skips_links_and_missing(tmp_path: Path) -> None:
    """scan_tree scans regular files by relative path; links and gaps are skipped."""
    rng = random.Random(6)
    token = POSITIVES["gitlab-token"][0](rng).value
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "conf.yml").write_text(f"a: 1\ntoken: {token}\n")
    outside = tmp_path.parent / (tmp_path.name + "-outside.txt")
    outside.write_text(f"{token}\n")
    (tmp_path / "link").symlink_to(outside)
    hits = scan_tree(SCANNER, tmp_path, ["src/conf.yml", "link", "gone.txt", "src"])
    assert hits == [SecretHit("src/conf.yml", 2, "gitlab-token")]


def test_one_scanner_serves_many_threads() -> None:
    """Concurrent scans from several threads each get their own, right, hits."""
    rng = random.Random(8)
    texts = [f"x\n{i}\nTOKEN={POSITIVES['npm-token'][0](rng).value}\n".encode() for i in range(64)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda t: SCANNER.scan_bytes(t * 200, "t"), texts))
    assert all(len(r) == 200 and r[0] == SecretHit("t", 3, "npm-token") for r in results)


def test_extra_rules_are_applied() -> None:
    """Extra rules given by name and regex are found like built-in ones."""
    scanner = SecretScanner(extra_rules={"acme-token": r"acme_[0-9a-f]{16}\b"})
    text = b"x\ny\nkey = 'acme_0123456789abcdef'\nacme_short\n"
    assert scanner.scan_bytes(text, "c.py") == [SecretHit("c.py", 3, "acme-token")]


def test_bad_extra_rule_is_a_value_error_naming_it() -> None:
    """An extra rule that is not a regex raises ValueError with its name."""
    with pytest.raises(ValueError, match="broken"):
        SecretScanner(["a-known-secret-value"], extra_rules={"broken": "(unclosed"})


def test_rule_names_are_unique_and_include_run_secret() -> None:
    """RULE_NAMES lists each rule once, run-secret included."""
    assert len(RULE_NAMES) == len(set(RULE_NAMES))
    assert RUN_SECRET_RULE in RULE_NAMES


def test_few_hits_in_real_site_packages() -> None:
    """Thousands of real files from the project's venv give almost no hit."""
    root = Path(sysconfig.get_paths()["purelib"])
    rels = [str(p.relative_to(root)) for p in sorted(root.rglob("*")) if p.is_file()]
    assert len(rels) > 1000
    hits = scan_tree(SCANNER, root, rels)
    for hit in hits:
        print(hit)
    assert len(hits) <= SITE_PACKAGES_MAX_HITS


def test_rules_file_ships_in_the_package_and_every_rule_compiles() -> None:
    """Each [[rules]] of data/secret_rules.toml has its fields and compiles, expanded."""
    rules_file = resources.files("claude_e2b.data").joinpath("secret_rules.toml")
    assert rules_file.is_file()
    entries = tomllib.loads(rules_file.read_text("utf-8"))["rules"]
    assert [e["name"] for e in entries] == [spec.name for spec in _SPECS]
    for entry, spec in zip(entries, _SPECS, strict=True):
        assert {"name", "anchors", "pattern"} <= entry.keys(), spec.name
        assert entry.keys() <= {"name", "anchors", "pattern", "need"}, spec.name
        assert spec.anchors, spec.name
        assert all(isinstance(a, str) and a for a in entry["anchors"]), spec.name
        assert set(spec.need) <= set("Aa0"), spec.name
        assert not re.search(r"\{[A-Z]", spec.pattern), spec.name  # every fragment expanded
        assert "s" in re.compile(spec.pattern.encode()).groupindex, spec.name


RULE = 'name = "acme"\nanchors = ["acme_"]\npattern = \'{L}acme_(?P<s>[0-9]{8})\'\n'


def test_rules_file_fragments_expand_in_patterns() -> None:
    """{NAME} in a pattern is replaced by the fragment; regex braces are kept."""
    (spec,) = _parse_rules(f"[fragments]\nL = '^'\n[[rules]]\n{RULE}need = 'a0'\n")
    assert (spec.name, spec.anchors, spec.need) == ("acme", ("acme_",), "a0")
    assert spec.pattern == "^acme_(?P<s>[0-9]{8})"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("[[rules]]\nname = 'acme'\nanchors = ['acme_']\n", "acme"),
        (f"[fragments]\nL = ''\n[[rules]]\n{RULE}flags = 'i'\n", "flags"),
        (f"[fragments]\nL = ''\n[[rules]]\n{RULE}need = 'x'\n", "acme"),
        (f"[fragments]\nL = ''\n[[rules]]\n{RULE}".replace('"acme_"', ""), "acme"),
        (f"[fragments]\nLEFT = ''\n[[rules]]\n{RULE}", "{L}"),
    ],
    ids=["no-pattern", "unknown-field", "bad-need", "no-anchor", "unknown-fragment"],
)
def test_malformed_rule_is_a_value_error_naming_it(text: str, complaint: str) -> None:
    """A rule with a missing, unknown or wrong field, or an unknown fragment, is refused."""
    with pytest.raises(ValueError, match=re.escape(complaint)):
        _parse_rules(text)


# --- the gate, the reader and the threads: the same hits as the scan before them -----


def test_every_rule_is_gated_by_its_widened_pattern() -> None:
    """widen translates every built-in rule; none falls back to its anchors (slow)."""
    gate = _rules_gate().get()
    assert gate.widened == {spec.name for spec in _SPECS}
    assert gate.anchored == frozenset()


def _texts(rng: random.Random) -> list[str]:
    """Every positive in every context, each near miss, and each cut or glued to its neighbours."""
    texts = [render(ex, ctx) for rule in sorted(POSITIVES) for ex, ctx in examples(rule, 21)]
    texts += negatives(rng)
    cut = [t[: rng.randrange(1, len(t) + 1)] for t in texts]
    glued = ["x" + t + "_" for t in texts] + ["AB" + t.upper() for t in texts]
    return texts + cut + glued


def test_widened_pattern_matches_wherever_its_rule_does() -> None:
    """Each rule's widened form finds a match in every text where the rule's regex has one."""
    texts = [t.encode() for t in _texts(random.Random(13))]
    missed = []
    for spec in _SPECS:
        exact = re.compile(spec.pattern.encode())
        widened = _Detector(_compile_gate([widen(spec.pattern.encode())]))
        matching = [t for t in texts if exact.search(t)]
        missed += [(spec.name, t[:60]) for t in matching if not widened.found_in(t)]
    assert not missed


def test_a_rule_widen_cannot_translate_is_gated_by_its_anchors() -> None:
    """A back reference is beyond widen: that rule's gate is its anchors, still exact."""
    specs = [_RuleSpec("doubled", ("dbl_",), r"dbl_(\w{8})\1")]
    gate = _Gate(specs)
    assert (gate.widened, gate.anchored) == (frozenset(), {"doubled"})
    assert gate.may_match(b"x dbl_ y") is True
    assert gate.may_match(b"x dbl y") is False


def test_a_rule_hyperscan_refuses_is_gated_by_its_anchors_the_secrets_apart() -> None:
    """A widened form Hyperscan refuses (it matches nothing at all) falls back to anchors."""
    gate = _Gate([_RuleSpec("maybe-empty", ("tok_",), r"(?:tok_)?x*")], [b"run-secret-value-1"])
    assert (gate.anchored, gate.known) == ({"maybe-empty"}, frozenset())
    assert gate.may_match(b"a tok_ b") is True
    assert gate.may_match(b"a run-secret-value-1 b") is False


def test_a_long_run_secret_is_looked_for_beside_the_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run secret too long for the gate is still found, by a search of its own."""
    monkeypatch.setattr(secrets, "_GATE_JOBS", {})
    long = "k" * 300 + "-long-run-secret-" + "v" * 300
    scanner = SecretScanner([long, RUN_SECRET])
    assert secrets._rules_gate().get().known == {RUN_SECRET.encode()}
    hits = scanner.scan_bytes(f"a\nx={long}\n".encode(), "f")
    assert hits == [SecretHit("f", 2, RUN_SECRET_RULE)]


def _scanner(kind: str, monkeypatch: pytest.MonkeyPatch) -> SecretScanner:
    """A scanner of each kind; "in-gate": the first of its process, its secrets in the gate."""
    if kind == "built-in":
        return SCANNER
    if kind == "extra-rules":
        return SecretScanner(extra_rules={"acme": r"acme_[0-9a-f]{16}\b", "corp": r"corp-\d{6}"})
    if kind == "in-gate":
        monkeypatch.setattr(secrets, "_GATE_JOBS", {})  # as in a run's own process
    scanner = SecretScanner([RUN_SECRET, "another-run-secret-9"])
    in_gate = secrets._rules_gate().get().known == {RUN_SECRET.encode(), b"another-run-secret-9"}
    assert in_gate == (kind == "in-gate")
    return scanner


KINDS = ["built-in", "run-secrets", "in-gate", "extra-rules"]


@pytest.mark.parametrize("kind", KINDS)
def test_gated_scan_equals_the_scan_before_the_gate(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """For each text alone, in files of every kind and as one file, the hits are unchanged."""
    scanner = _scanner(kind, monkeypatch)
    rng = random.Random(17)
    texts = [*_texts(rng), f"k={RUN_SECRET}", "x acme_0123456789abcdef y", "corp-123456"]
    docs = [t.encode() for t in texts]
    docs += [bury(rng, t, Example("none", "", t))[0].encode() for t in texts[:200]]
    docs += [b"\x7fELF\0" + d for d in docs[::7]]  # binaries: run secrets only
    docs.append(b"\n".join(docs))
    assert sum(bool(reference_hits(scanner, "f", d)) for d in docs) > 100
    for doc in docs:
        assert scanner.scan_bytes(doc, "f") == reference_hits(scanner, "f", doc)


@pytest.fixture
def planted_tree(tmp_path: Path) -> tuple[Path, list[str]]:
    """A tree of 400 files of many kinds with secrets planted, and things that are no files."""
    root = tmp_path / "tree"
    rels = write_tree(root, random.Random(23), files=400)
    rng = random.Random(29)
    filler = "".join(f"{filler_line(rng)}\n" for _ in range(9000))
    token = POSITIVES["npm-token"][0](rng).value
    (root / "big.txt").write_text(
        f"{filler[:70_000]}NPM={token}\n{filler[70_000:]}k={RUN_SECRET}\n"
    )
    medium = [f"d2/medium_{size}.txt" for size in (9_000, 13_000, 21_000, 40_000, 70_000)]
    for rel in medium:  # larger than a small region, some than a small window
        (root / rel).write_text(filler[: int(rel[10:-4])] + f"\nNPM={token}\n")
    outside = tmp_path / "outside.txt"
    outside.write_text(f"NPM={token}\n")
    (root / "link").symlink_to(outside)
    os.mkfifo(root / "fifo")
    extra = ["big.txt", *medium, "link", "fifo", "d0", "gone.txt", "d1/sub1/no/such"]
    return root, sorted([*rels, *extra])


@pytest.mark.parametrize(
    "case",
    [
        (1, 32 * 1024, 8 * 1024, "run-secrets"),
        (3, 32 * 1024, 8 * 1024, "in-gate"),
        (2, 2**20, 256 * 1024, "run-secrets"),
    ],
    ids=["1-thread-small-buffers", "3-threads-small-buffers", "2-threads"],
)
def test_scan_tree_equals_the_scan_before(
    planted_tree: tuple[Path, list[str]],
    case: tuple[int, int, int, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Threads, the reused buffers, regions and the gate give the old hits in the old order."""
    workers, window, region, kind = case
    root, rels = planted_tree
    monkeypatch.setattr(secrets, "_WINDOW", window)  # small: big.txt is read in windows
    monkeypatch.setattr(secrets, "_REGION", region)  # small: medium files do not fit
    monkeypatch.setattr(secrets, "_REGION_BUFFER", 2 * region)
    scanner = _scanner(kind, monkeypatch)
    expected = reference_scan_tree(scanner, root, rels, max_bytes=window)
    assert len(expected) > 150
    assert {h.path for h in expected} >= {"big.txt", "d2/medium_9000.txt", "d2/medium_70000.txt"}
    assert scan_tree(scanner, root, rels, workers=workers) == expected


class _RefusingOs:
    """The os module, except that opening the named files fails as for a file without access."""

    def __init__(self, refused: set[str]) -> None:
        self.refused = refused

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    def open(self, path: str, flags: int, mode: int = 0o777) -> int:
        if any(path.endswith(f"/{rel}") for rel in self.refused):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return os.open(path, flags, mode)


def test_unreadable_file_fails_the_scan_naming_the_first_in_order(
    planted_tree: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that cannot be read is a SyncError, for the first such file of the list."""
    root, rels = planted_tree
    files = [r for r in rels if (root / r).is_file() and not (root / r).is_symlink()]
    first, later = files[100], files[300]
    monkeypatch.setattr(secrets, "os", _RefusingOs({later, first}))
    with pytest.raises(SyncError, match=f"cannot read {re.escape(first)} to scan it"):
        scan_tree(SCANNER, root, rels, workers=4)
