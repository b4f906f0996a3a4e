"""Fast secret scanner: run before the upload, and on the changes coming back.

Two passes, because precise regexes are slow and secrets are rare:

1. A prefilter finds every *anchor*: a literal that each rule's token must start
   with (``ghp_``, ``AKIA``, ``-----BEGIN``, ``://``) or the exact value of a
   secret this run holds.  Hyperscan matches all anchors at once, over the whole
   file, at gigabytes a second (see ``bench/bench_secrets.py`` for the figures
   against Python ``re``, ``bytes.find`` and RE2).
2. At each anchor, only that anchor's rule runs, as a Python regex anchored there
   (``pattern.match(data, pos)``), followed by a placeholder check, so the cost of
   a rule is paid only where its prefix occurs.

The rules are data, ``data/secret_rules.toml`` in the package, read at import,
so users can read exactly what is searched for.

Files are scanned as bytes, never decoded.  A file with a NUL byte in its first
8 KiB is binary: it is searched only for the run's own secret values, since a
binary can hold one (a cache, a ``.pyc``) but the token formats would misfire.

A hit names the path, the line and the rule, never the value: hits are printed,
logged and put in reports, and the secret must not travel with them.
"""

from __future__ import annotations

import re
import stat
import threading
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO, Final

import hyperscan

from claude_e2b.errors import SyncError

# The same sniffing rule as git and grep: a NUL early on means binary.
_BINARY_SNIFF: Final = 8192
# Values this short would match everywhere; they cannot be told from ordinary text.
_MIN_KNOWN_SECRET: Final = 8
# Large files are read in windows this much apart less the overlap, so memory stays
# bounded; the overlap is longer than any token, so none is lost on a seam.
_WINDOW_OVERLAP: Final = 16 * 1024
# How far from where Hyperscan's approximation of an extra rule ends its real
# match may start or end: extra rules come without anchors.
_EXTRA_REACH: Final = 4096

RUN_SECRET_RULE: Final = "run-secret"  # noqa: S105 - a rule name, not a password

# The built-in rules are data, shipped in the package where users can read them.
_RULES_FILE: Final = "secret_rules.toml"
_REQUIRED_KEYS: Final = frozenset({"name", "anchors", "pattern"})
_RULE_KEYS: Final = _REQUIRED_KEYS | {"need"}
# {NAME} in a rule's pattern is a fragment of the file; regex braces hold digits.
_FRAGMENT: Final = re.compile(r"\{([A-Z][A-Z0-9_]*)\}")
_FIELDS_WANTED: Final = (
    "name (a string), anchors (a list of non-empty strings), pattern (a string)"
    ' and optionally need (made of "A", "a", "0")'
)


@dataclass(frozen=True)
class _RuleSpec:
    """One token format: the literals it starts with and its exact shape.

    ``pattern`` is matched at each anchor's position; its named group ``s`` (or
    the whole match) is the secret, which must pass the placeholder check and
    contain each character class named in ``need`` ("A" upper, "a" lower, "0" digit).
    """

    name: str
    anchors: tuple[str, ...]
    pattern: str
    need: str = ""


def _load_specs() -> tuple[_RuleSpec, ...]:
    """The built-in rules, from ``data/secret_rules.toml`` in the package, in file order."""
    text = resources.files("claude_e2b.data").joinpath(_RULES_FILE).read_text("utf-8")
    return _parse_rules(text)


def _parse_rules(text: str) -> tuple[_RuleSpec, ...]:
    """The ``[[rules]]`` of a rules file, with their patterns' fragments expanded.

    Raises ValueError (naming the rule) for a missing, unknown or mistyped field
    or an unknown fragment, and tomllib.TOMLDecodeError for text that is not TOML.
    """
    data = tomllib.loads(text)
    fragments: dict[str, str] = data.get("fragments", {})
    return tuple(_parse_rule(entry, fragments) for entry in data.get("rules", []))


def _parse_rule(entry: dict[str, Any], fragments: Mapping[str, str]) -> _RuleSpec:
    if not (_REQUIRED_KEYS <= entry.keys() <= _RULE_KEYS and _well_typed(entry)):
        fields = ", ".join(sorted(entry))
        raise ValueError(f"secret rule {entry.get('name')!r} has {fields}; want {_FIELDS_WANTED}")
    name = entry["name"]
    pattern = _FRAGMENT.sub(lambda m: _fragment(fragments, m[1], name), entry["pattern"])
    return _RuleSpec(name, tuple(entry["anchors"]), pattern, entry.get("need", ""))


def _well_typed(entry: dict[str, Any]) -> bool:
    anchors, need = entry["anchors"], entry.get("need", "")
    return (
        isinstance(entry["name"], str)
        and isinstance(entry["pattern"], str)
        and isinstance(anchors, list)
        and bool(anchors)
        and all(isinstance(anchor, str) and anchor for anchor in anchors)
        and isinstance(need, str)
        and set(need) <= set("Aa0")
    )


def _fragment(fragments: Mapping[str, str], key: str, rule: str) -> str:
    if key not in fragments:
        raise ValueError(f"secret rule {rule!r} uses {{{key}}}, which [fragments] lacks")
    return fragments[key]


_SPECS: Final[tuple[_RuleSpec, ...]] = _load_specs()

RULE_NAMES: Final[tuple[str, ...]] = tuple(
    dict.fromkeys([*(s.name for s in _SPECS), RUN_SECRET_RULE])
)

# Words people put where a secret goes in docs and examples.  Lower-case.
_PLACEHOLDER_WORDS: Final = (
    b"example",
    b"xxxx",
    b"placeholder",
    b"your",
    b"redacted",
    b"changeme",
    b"dummy",
    b"abcdefgh",
    b"12345678",
    b"****",
    b"....",
)
# Whole passwords (in URLs) that say "a password goes here", not a password.
_PLACEHOLDER_PASSWORDS: Final = frozenset(
    b"password pass passwd pwd secret token apikey api_key key mypassword "
    b"yourpassword your_password user username test testing foo bar baz "
    b"hunter2 letmein secret123 password123 pa55word p4ssw0rd".split()
)
# Publicly documented values that are not secrets (Azurite's well-known dev key).
_PUBLIC_VALUE_PREFIXES: Final = (b"Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50",)


def _has_classes(value: bytes, need: str) -> bool:
    """Whether value holds each character class named in need (A, a, 0)."""
    tests: dict[str, Callable[[int], bool]] = {
        "A": lambda c: 65 <= c <= 90,  # noqa: PLR2004 - ASCII upper case
        "a": lambda c: 97 <= c <= 122,  # noqa: PLR2004 - ASCII lower case
        "0": lambda c: 48 <= c <= 57,  # noqa: PLR2004 - ASCII digits
    }
    return all(any(tests[cls](c) for c in value) for cls in need)


def _looks_like_placeholder(value: bytes) -> bool:
    """Doc examples, masks and fill-ins: few distinct characters or a tell-tale word."""
    lowered = value.lower()
    if any(word in lowered for word in _PLACEHOLDER_WORDS):
        return True
    if value.startswith(_PUBLIC_VALUE_PREFIXES):
        return True
    # Random tokens of 12+ characters almost never use fewer than 6 symbols;
    # "AKIAXXXXXXXXXXXXXXXX" and "0000-0000-…" do.
    return len(value) >= 12 and len(set(value)) < 6  # noqa: PLR2004 - see comment


@dataclass(frozen=True)
class SecretHit:
    """Where a secret is: path, 1-based line and rule name — never the value."""

    path: str
    line: int
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}"


@dataclass(frozen=True)
class _Rule:
    """A compiled rule; ``check`` vets a match (placeholders, character classes)."""

    name: str
    pattern: re.Pattern[bytes]
    check: Callable[[re.Match[bytes]], bool]


def _token_check(need: str) -> Callable[[re.Match[bytes]], bool]:
    def check(m: re.Match[bytes]) -> bool:
        value = m.group("s") if "s" in m.re.groupindex and m.group("s") else m.group(0)
        return _has_classes(value, need) and not _looks_like_placeholder(value)

    return check


def _url_check(m: re.Match[bytes]) -> bool:
    password = m.group("s")
    if password.lower() in _PLACEHOLDER_PASSWORDS or password == m.group("u"):
        return False
    if _looks_like_placeholder(password):
        return False
    # A password with no letter or digit is a mask or a template, not a credential.
    return _has_classes(password, "a") or _has_classes(password, "A0")


def _accept_all(_m: re.Match[bytes]) -> bool:
    return True


def _compile_spec(spec: _RuleSpec) -> _Rule:
    check = _url_check if spec.name == "url-credentials" else _token_check(spec.need)
    return _Rule(spec.name, re.compile(spec.pattern.encode()), check)


class _Prefilter:
    """Hyperscan over every anchor literal, plus extra rules in prefilter mode.

    Literals go through Hyperscan's literal compiler (any bytes, NUL included,
    and the fastest mode); extra rules are arbitrary regexes, which Hyperscan
    approximates from above (``HS_FLAG_PREFILTER``), so they need their own
    database.  A scratch space serves one scan at a time: one per thread.
    """

    def __init__(self, literals: list[bytes], extras: list[bytes]) -> None:
        self._literals = _compile_db(literals, literal=True)
        self._extras = _compile_db(extras, literal=False) if extras else None
        self._local = threading.local()

    def _scratch(self, name: str, db: hyperscan.Database) -> hyperscan.Scratch:
        scratch: hyperscan.Scratch | None = getattr(self._local, name, None)
        if scratch is None:
            scratch = hyperscan.Scratch(db)
            setattr(self._local, name, scratch)
        return scratch

    def literal_ends(self, data: bytes) -> list[tuple[int, int]]:
        """(literal index, end offset) of every occurrence of every literal."""
        return _scan(self._literals, data, self._scratch("literals", self._literals))

    def extra_ends(self, data: bytes) -> list[tuple[int, int]]:
        """(extra rule index, end offset) where an extra rule may match."""
        if self._extras is None:
            return []
        return _scan(self._extras, data, self._scratch("extras", self._extras))


def _compile_db(expressions: list[bytes], *, literal: bool) -> hyperscan.Database:
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    flags = 0 if literal else hyperscan.HS_FLAG_PREFILTER | hyperscan.HS_FLAG_ALLOWEMPTY
    db.compile(
        expressions=expressions,
        ids=list(range(len(expressions))),
        elements=len(expressions),
        flags=flags,
        literal=literal,
    )
    return db


def _scan(db: hyperscan.Database, data: bytes, scratch: hyperscan.Scratch) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []

    def on_match(pid: int, _start: int, end: int, _flags: int, _ctx: object) -> None:
        found.append((pid, end))

    db.scan(data, match_event_handler=on_match, scratch=scratch)
    return found


def _known_values(known_secrets: Iterable[str]) -> list[bytes]:
    values = {v.encode() for v in known_secrets if len(v) >= _MIN_KNOWN_SECRET}
    return sorted(values)


def _compile_extra(name: str, pattern: str) -> _Rule:
    try:
        compiled = re.compile(pattern.encode())
    except re.error as exc:
        raise ValueError(f"extra secret rule {name!r} is not a valid regex: {exc}") from None
    return _Rule(name, compiled, _accept_all)


def _literal_table(
    known: list[bytes],
) -> tuple[list[bytes], list[tuple[_Rule, ...]]]:
    """Every anchor literal, and for each the rules that start at it."""
    by_literal: dict[bytes, list[_Rule]] = {}
    for spec in _SPECS:
        rule = _compile_spec(spec)
        for anchor in spec.anchors:
            by_literal.setdefault(anchor.encode(), []).append(rule)
    for value in known:
        # The value itself is the whole rule: no pattern needed past the anchor.
        rule = _Rule(RUN_SECRET_RULE, re.compile(b""), _accept_all)
        by_literal.setdefault(value, []).append(rule)
    literals = list(by_literal)
    return literals, [tuple(by_literal[lit]) for lit in literals]


class SecretScanner:
    """Finds credentials in file contents: known token formats and the run's own secrets.

    ``known_secrets`` are the exact values the run holds (API keys, tokens);
    values shorter than 8 characters are ignored, since they would match ordinary
    text.  ``extra_rules`` maps rule names to Python regexes (bytes semantics);
    they are slower than the built-in rules, and a match may be up to 4 KiB long.
    Raises ValueError for an extra rule that does not compile (the message names
    the rule, never a secret).  One scanner may serve several threads at once.
    """

    def __init__(
        self,
        known_secrets: Iterable[str] = (),
        *,
        extra_rules: Mapping[str, str] = MappingProxyType({}),
    ) -> None:
        self._known = _known_values(known_secrets)
        self._literals, self._rules_at = _literal_table(self._known)
        self._extras = [_compile_extra(name, pat) for name, pat in extra_rules.items()]
        try:
            self._prefilter = _Prefilter(
                self._literals, [rule.pattern.pattern for rule in self._extras]
            )
        except hyperscan.error as exc:
            names = ", ".join(extra_rules)
            raise ValueError(f"extra secret rules ({names}) cannot be compiled: {exc}") from None

    def __repr__(self) -> str:
        # The default repr would show the known secrets' values.
        return f"<SecretScanner: {len(self._known)} run secrets, {len(self._extras)} extra rules>"

    def scan_bytes(self, data: bytes, path: str) -> list[SecretHit]:
        """Hits in one file's contents, sorted by line; ``path`` only labels them."""
        return _to_hits(path, data, self._offsets(data), line_base=0)

    def scan_file(self, path: Path, rel: str, *, max_bytes: int = 10 * 2**20) -> list[SecretHit]:
        """Hits in the file at ``path``, labelled ``rel``.

        The whole file is scanned, whatever its size: files larger than
        ``max_bytes`` are read in windows of that size overlapping by 16 KiB, so
        memory stays bounded and no token is lost on a seam.  Raises OSError when
        the file cannot be read.
        """
        with path.open("rb") as stream:
            data = stream.read(max_bytes)
            if len(data) < max_bytes:
                return self.scan_bytes(data, rel)
            return self._scan_windows(stream, data, rel, max_bytes)

    def _scan_windows(
        self, stream: BinaryIO, first: bytes, rel: str, max_bytes: int
    ) -> list[SecretHit]:
        overlap = min(_WINDOW_OVERLAP, max_bytes // 2)
        binary = _is_binary(first)
        hits: set[SecretHit] = set()
        window, line_base = first, 0
        while True:
            hits.update(_to_hits(rel, window, self._offsets(window, binary=binary), line_base))
            more = stream.read(max_bytes - overlap)
            if not more:
                return sorted(hits, key=_hit_order)
            line_base += window.count(b"\n", 0, len(window) - overlap)
            window = window[len(window) - overlap :] + more

    def _offsets(self, data: bytes, *, binary: bool | None = None) -> list[tuple[int, str]]:
        """(start offset, rule name) of every confirmed secret in data."""
        if binary if binary is not None else _is_binary(data):
            return self._known_offsets(data)
        found = self._anchored(data)
        found.extend(self._searched(data))
        return found

    def _known_offsets(self, data: bytes) -> list[tuple[int, str]]:
        # Binary files: the run's own values only; token formats misfire on binary.
        found: list[tuple[int, str]] = []
        for value in self._known:
            at = data.find(value)
            while at != -1:
                found.append((at, RUN_SECRET_RULE))
                at = data.find(value, at + 1)
        return found

    def _anchored(self, data: bytes) -> list[tuple[int, str]]:
        found: list[tuple[int, str]] = []
        for index, end in self._prefilter.literal_ends(data):
            start = end - len(self._literals[index])
            for rule in self._rules_at[index]:
                m = rule.pattern.match(data, start)
                if m is not None and rule.check(m):
                    found.append((start, rule.name))
        return found

    def _searched(self, data: bytes) -> list[tuple[int, str]]:
        found: list[tuple[int, str]] = []
        searched_to = [-1] * len(self._extras)
        for index, end in sorted(self._prefilter.extra_ends(data), key=lambda e: e[1]):
            # A match ending at end starts within _EXTRA_REACH before it; the
            # previous window of this rule already covered it if it reached end.
            if end <= searched_to[index]:
                continue
            rule = self._extras[index]
            lo, hi = max(0, end - _EXTRA_REACH), min(len(data), end + _EXTRA_REACH)
            found.extend((m.start(), rule.name) for m in rule.pattern.finditer(data, lo, hi))
            searched_to[index] = hi
        return found


def _is_binary(data: bytes) -> bool:
    return b"\0" in data[:_BINARY_SNIFF]


def _hit_order(hit: SecretHit) -> tuple[int, str]:
    return hit.line, hit.rule


def _to_hits(
    path: str, data: bytes, offsets: list[tuple[int, str]], line_base: int
) -> list[SecretHit]:
    """Turn offsets into one hit per (line, rule); lines are counted only up to hits."""
    hits: dict[tuple[int, str], SecretHit] = {}
    line, counted_to = line_base + 1, 0
    for offset, rule in sorted(offsets):
        line += data.count(b"\n", counted_to, offset)
        counted_to = offset
        hits.setdefault((line, rule), SecretHit(path, line, rule))
    return sorted(hits.values(), key=_hit_order)


def scan_tree(scanner: SecretScanner, root: Path, rel_paths: Iterable[str]) -> list[SecretHit]:
    """Scan the regular files among rel_paths under root, in the order given.

    Symbolic links are not followed (they go up as links, not as their targets);
    anything that is not a regular file, or no longer exists, is skipped.  Raises SyncError when a
    file cannot be read, since an unscanned file must not be uploaded.
    """
    hits: list[SecretHit] = []
    for rel in rel_paths:
        path = root / rel
        try:
            if not stat.S_ISREG(path.lstat().st_mode):
                continue
            hits.extend(scanner.scan_file(path, rel))
        except FileNotFoundError:
            continue  # gone since it was listed: it will not be uploaded either
        except OSError as exc:
            raise SyncError(
                f"cannot read {rel} to scan it for secrets: {exc.strerror}",
                hint="make the file readable, or exclude it from the upload",
            ) from exc
    return hits
