"""Fast secret scanner: run before the upload, and on the changes coming back.

Three passes, because precise regexes are slow and secrets are rare:

1. A *gate* asks whether any rule could match anywhere in the text: every rule,
   widened (look-arounds dropped, see ``widen``), in one Hyperscan database that
   stops at the first match.  Text where nothing can match, nearly all of it, has
   no hit and costs no Python work.  The gate is compiled once per process, in a
   background thread started by the first scanner (Hyperscan compiles without the
   GIL), so it overlaps whatever the run does next.
2. In text the gate lets through, a prefilter finds every *anchor*: a literal
   that each rule's token must start with (``ghp_``, ``AKIA``, ``-----BEGIN``,
   ``://``) or the exact value of a secret this run holds, all at once with
   Hyperscan (see ``bench/bench_secrets.py`` for the figures against Python
   ``re``, ``bytes.find`` and RE2).
3. At each anchor, only that anchor's rule runs, as a Python regex anchored there
   (``pattern.match(data, pos)``), followed by a placeholder check, so the cost of
   a rule is paid only where its prefix occurs.

Passes 2 and 3 alone decide every hit; the gate only skips text where they would
find none, so the hits are exactly theirs.

The rules are data, ``data/secret_rules.toml`` in the package, read at import,
so users can read exactly what is searched for.

Files are scanned as bytes, never decoded, read into a buffer each thread reuses
(``scan_tree`` scans on several threads: reading and Hyperscan both release the
GIL).  A file with a NUL byte in its first 8 KiB is binary: it is searched only
for the run's own secret values, since a binary can hold one (a cache, a
``.pyc``) but the token formats would misfire.

A hit names the path, the line and the rule, never the value: hits are printed,
logged and put in reports, and the secret must not travel with them.
"""

from __future__ import annotations

import importlib
import os
import queue
import re
import stat
import threading
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO, Final, Generic, TypeVar, cast

import hyperscan

from claude_e2b.errors import SyncError

# The same sniffing rule as git and grep: a NUL early on means binary.
_BINARY_SNIFF: Final = 8192
# Values this short would match everywhere; they cannot be told from ordinary text.
_MIN_KNOWN_SECRET: Final = 8
# Run secrets longer than this are looked for in a pass of their own, not in the gate.
_GATE_VALUE_MAX: Final = 512
# Large files are read in windows this much apart less the overlap, so memory stays
# bounded; the overlap is longer than any token, so none is lost on a seam.
_WINDOW_OVERLAP: Final = 16 * 1024
# How far from where Hyperscan's approximation of an extra rule ends its real
# match may start or end: extra rules come without anchors.
_EXTRA_REACH: Final = 4096
# Files are read into a buffer this large; a file that fills it is scanned in windows.
_WINDOW: Final = 10 * 2**20
# Text files read one behind the other are gated together from this much on, in
# buffers of the second size; a file that does not fit goes on its own.
_REGION: Final = 256 * 1024
_REGION_BUFFER: Final = 2**20
# The most threads (Hyperscan releases the GIL), and the fewest files worth a thread.
_MAX_WORKERS: Final = 4
_FEW_FILES: Final = 64
# No symlink is followed at the end of a path, nor does a FIFO block the scan.
_OPEN_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

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


# --- the gate: every rule, widened, in one Hyperscan database ------------------------

# The parser behind ``re``, under its current name (``sre_parse`` warns when imported).
_parser: Any = importlib.import_module("re._parser")
_sre: Any = importlib.import_module("re._constants")

_ANY_BYTE: Final = "[\\x00-\\xff]"
# What \d, \s and \w match in a bytes pattern.
_CATEGORY_BYTES: Final[dict[Any, bytes]] = {
    _sre.CATEGORY_DIGIT: b"0123456789",
    _sre.CATEGORY_SPACE: b" \t\n\r\x0b\x0c",
    _sre.CATEGORY_WORD: b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz",
}
_ZERO_WIDTH: Final = (_sre.ASSERT, _sre.ASSERT_NOT, _sre.AT)
_REPEATS: Final = (_sre.MAX_REPEAT, _sre.MIN_REPEAT)
_T = TypeVar("_T")


class _UnwidenableError(ValueError):
    """A regex construct ``widen`` does not translate."""


def widen(pattern: bytes) -> tuple[bytes, int]:
    r"""A Hyperscan expression and flags matching wherever the bytes regex ``pattern`` can.

    Zero-width assertions (look-arounds, ``\b``, ``^``) are dropped and group
    names forgotten: what is left matches every text the regex matches, and some
    more.  Raises ValueError for a construct it does not translate (back
    references, locale-dependent classes, atomic groups).
    """
    parsed = _parser.parse(pattern)
    flags: int = parsed.state.flags
    if flags & _sre.SRE_FLAG_LOCALE:
        raise _UnwidenableError("locale-dependent pattern")
    body = _emit(parsed, dotall=bool(flags & _sre.SRE_FLAG_DOTALL))
    caseless = hyperscan.HS_FLAG_CASELESS if flags & _sre.SRE_FLAG_IGNORECASE else 0
    return body.encode(), caseless


def _emit(items: Iterable[tuple[Any, Any]], *, dotall: bool) -> str:
    return "".join(_emit_one(op, av, dotall=dotall) for op, av in items)


def _emit_one(op: Any, av: Any, *, dotall: bool) -> str:  # noqa: PLR0911 - one case per op
    if op is _sre.LITERAL:
        return _byte(av)
    if op is _sre.NOT_LITERAL:
        return f"[^{_byte(av)}]"
    if op in (_sre.IN, _sre.CATEGORY):
        return _emit_class(av if op is _sre.IN else [(op, av)])
    if op is _sre.ANY:
        return _ANY_BYTE if dotall else "[^\\n]"
    if op in _REPEATS:
        low, high, item = av
        return f"(?:{_emit(item, dotall=dotall)}){{{low},{'' if high is _sre.MAXREPEAT else high}}}"
    if op is _sre.SUBPATTERN:
        return _emit_group(av, dotall=dotall)
    if op is _sre.BRANCH:
        return "(?:" + "|".join(_emit(branch, dotall=dotall) for branch in av[1]) + ")"
    if op in _ZERO_WIDTH:
        return ""
    raise _UnwidenableError(f"unsupported regex construct {op}")


def _emit_group(av: Any, *, dotall: bool) -> str:
    _group, add, remove, item = av
    if (add | remove) & _sre.SRE_FLAG_LOCALE:
        raise _UnwidenableError("locale-dependent group")
    dotall = bool(add & _sre.SRE_FLAG_DOTALL) or (dotall and not remove & _sre.SRE_FLAG_DOTALL)
    # A group made case-sensitive stays as wide as its surroundings: wider is fine.
    opening = "(?i:" if add & _sre.SRE_FLAG_IGNORECASE else "(?:"
    return opening + _emit(item, dotall=dotall) + ")"


def _emit_class(items: Iterable[tuple[Any, Any]]) -> str:
    negated, members = False, []
    for op, av in items:
        if op is _sre.NEGATE:
            negated = True
        elif op is _sre.LITERAL:
            members.append(_byte(av))
        elif op is _sre.RANGE:
            members.append(f"{_byte(av[0])}-{_byte(av[1])}")
        elif op is _sre.CATEGORY and av in _CATEGORY_BYTES:
            members.extend(_byte(b) for b in _CATEGORY_BYTES[av])
        else:  # a negated category or the like: every byte is wider, negated or not
            return _ANY_BYTE
    return "[" + "^" * negated + "".join(members) + "]"


def _byte(value: int) -> str:
    return f"\\x{value:02x}"


def _anchors_expression(spec: _RuleSpec) -> tuple[bytes, int]:
    """The rule's anchors as one expression: a gate for a rule ``widen`` cannot translate."""
    alternatives = ("".join(_byte(b) for b in anchor.encode()) for anchor in spec.anchors)
    return ("(?:" + "|".join(alternatives) + ")").encode(), 0


def _gate_expression(spec: _RuleSpec) -> tuple[bytes, int] | None:
    try:
        return widen(spec.pattern.encode())
    except (_UnwidenableError, re.error):
        return None


def _compile_gate(expressions: Sequence[tuple[bytes, int]]) -> hyperscan.Database:
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(
        expressions=[e for e, _ in expressions],
        ids=list(range(len(expressions))),
        elements=len(expressions),
        flags=[f | hyperscan.HS_FLAG_SINGLEMATCH for _, f in expressions],
    )
    return db


def _compiles(expression: tuple[bytes, int]) -> bool:
    try:
        _compile_gate([expression])
    except hyperscan.error:
        return False
    return True


def _stop(*_match: object) -> bool:
    return True  # the first match answers the question: stop the scan there


class _Detector:
    """A Hyperscan database asked only whether anything matches; one scratch per thread."""

    def __init__(self, db: hyperscan.Database) -> None:
        self._db = db
        self._local = threading.local()

    def found_in(self, data: bytes) -> bool:
        """Whether something matches in data (any buffer); the scan stops at the first."""
        scratch: hyperscan.Scratch | None = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = hyperscan.Scratch(self._db)
        try:
            self._db.scan(data, match_event_handler=_stop, scratch=scratch)
        except hyperscan.ScanTerminated:
            return True
        return False


def _literals_detector(values: list[bytes]) -> _Detector | None:
    return _Detector(_compile_db(values, literal=True)) if values else None


class _Gate:
    """Whether any built-in rule may match in a text, or one of ``known`` occurs.

    Rules that ``widen`` cannot translate, or whose widened form Hyperscan refuses,
    are gated by their anchors instead (named in ``anchored``): slower, never wrong.
    Run secrets are in it if short enough, and if Hyperscan takes them (``known``).
    """

    def __init__(self, specs: Sequence[_RuleSpec], known: Sequence[bytes] = ()) -> None:
        exact = [_gate_expression(spec) for spec in specs]
        values = [v for v in known if len(v) <= _GATE_VALUE_MAX]
        chosen = [e or _anchors_expression(s) for e, s in zip(exact, specs, strict=True)]
        try:
            db = _compile_gate([*chosen, *map(_value_expression, values)])
        except hyperscan.error:  # find the ones Hyperscan refuses, gate those by anchors
            exact = [e if e is not None and _compiles(e) else None for e in exact]
            chosen = [e or _anchors_expression(s) for e, s in zip(exact, specs, strict=True)]
            values = []  # the scanners look for their run secrets apart
            db = _compile_gate(chosen)
        self.widened = frozenset(s.name for e, s in zip(exact, specs, strict=True) if e)
        self.anchored = frozenset(s.name for e, s in zip(exact, specs, strict=True) if not e)
        self.known = frozenset(values)
        self.may_match = _Detector(db).found_in


def _value_expression(value: bytes) -> tuple[bytes, int]:
    return "".join(_byte(b) for b in value).encode(), 0


class _Pending(Generic[_T]):
    """A value made in a daemon thread; ``get`` waits for it and raises what it raised."""

    def __init__(self, make: Callable[[], _T], name: str) -> None:
        self._future: Future[_T] = Future()
        self._value: _T | None = None  # set once made: read without the future's lock
        threading.Thread(target=self._run, args=(make,), name=name, daemon=True).start()

    def _run(self, make: Callable[[], _T]) -> None:
        try:
            self._future.set_result(make())
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits
            self._future.set_exception(exc)

    def get(self) -> _T:
        """The value, once made."""
        if self._value is None:
            self._value = self._future.result()
        return self._value


_GATE_JOBS: dict[str, _Pending[_Gate]] = {}
_GATE_LOCK = threading.Lock()
# A forked child has no compiling thread to wait for: it compiles its own.
os.register_at_fork(after_in_child=_GATE_JOBS.clear)


def _rules_gate(known: Sequence[bytes] = ()) -> _Pending[_Gate]:
    """The process's gate; the first call starts compiling it, with its caller's run secrets.

    Compiling takes ~0.15 s of one core, once per process, off the GIL. A run
    makes its scanner first: its secrets are then found in the same pass as the
    rules. A scanner whose secrets the gate lacks looks for them in a pass of its own.
    """
    with _GATE_LOCK:
        if "gate" not in _GATE_JOBS:
            values = tuple(known)
            _GATE_JOBS["gate"] = _Pending(lambda: _Gate(_SPECS, values), "secret-gate-compile")
        return _GATE_JOBS["gate"]


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
        self._gate = _rules_gate(self._known)  # starts compiling, if no scanner did before
        # Binaries are searched for every run secret; text, for those the gate lacks.
        self._known_db = _literals_detector(self._known)
        self._text_checks: tuple[_Gate, _Detector | None] | None = None
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

    def scan_file(self, path: Path, rel: str, *, max_bytes: int = _WINDOW) -> list[SecretHit]:
        """Hits in the file at ``path``, labelled ``rel``.

        The whole file is scanned, whatever its size: files larger than
        ``max_bytes`` are read in windows of that size overlapping by 16 KiB, so
        memory stays bounded and no token is lost on a seam.  Raises OSError when
        the file cannot be read.
        """
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            reader = _Reader(max_bytes)
            return self._scan_filled(fd, rel, reader, reader.fill(fd, 0))
        finally:
            os.close(fd)

    def _scan_filled(self, fd: int, rel: str, reader: _Reader, end: int) -> list[SecretHit]:
        """Hits in fd, whose first end bytes fill reader's buffer from 0 (its size: the window)."""
        if end < len(reader.buffer):
            return self._scan_read(reader.buffer, 0, end, rel)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return []  # a device or the like, which would never end
        with open(fd, "rb", closefd=False) as stream:
            return self._scan_windows(stream, bytes(reader.buffer), rel, end)

    def _scan_read(self, buffer: bytearray, start: int, end: int, rel: str) -> list[SecretHit]:
        """Hits in the file read into buffer[start:end]; copied only if there may be some."""
        text = buffer.find(b"\0", start, min(end, start + _BINARY_SNIFF)) == -1
        view = memoryview(buffer)[start:end]
        data = cast("bytes", view)  # Hyperscan reads any buffer; its stubs say bytes
        if not (self._may_hit(data) if text else self._has_known(data)):
            return []
        return self.scan_bytes(bytes(view), rel)

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

    def _has_known(self, data: bytes) -> bool:
        return self._known_db is not None and self._known_db.found_in(data)

    def _may_hit(self, data: bytes) -> bool:
        """Whether text data may hold a hit: a rule's widened form, a run secret, an extra."""
        gate, beyond_gate = self._text_checks or self._ready_text_checks()
        if gate.may_match(data):
            return True
        if beyond_gate is not None and beyond_gate.found_in(data):
            return True
        return bool(self._extras) and bool(self._prefilter.extra_ends(data))

    def _ready_text_checks(self) -> tuple[_Gate, _Detector | None]:
        """The gate, once compiled, and a search for the run secrets it lacks."""
        gate = self._gate.get()
        beyond = _literals_detector([value for value in self._known if value not in gate.known])
        self._text_checks = (gate, beyond)
        return self._text_checks

    def _offsets(self, data: bytes, *, binary: bool | None = None) -> list[tuple[int, str]]:
        """(start offset, rule name) of every confirmed secret in data."""
        if binary if binary is not None else _is_binary(data):
            return self._known_offsets(data)
        if not self._may_hit(data):
            return []  # what the passes below would find: nothing
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


class _Reader:
    """A buffer one thread reads file after file into: no allocation per file."""

    def __init__(self, size: int) -> None:
        self.buffer = bytearray(size)
        self.view = memoryview(self.buffer)

    def is_binary(self, start: int, end: int) -> bool:
        """Whether the file in buffer[start:end] has a NUL early on."""
        return self.buffer.find(b"\0", start, min(end, start + _BINARY_SNIFF)) != -1

    def fill(self, fd: int, start: int) -> int:
        """Read fd into the buffer from start until it is full or the file ends; the end."""
        view, end = self.view, start
        while end < len(view):
            more = os.readv(fd, [view[end:] if end else view])
            if not more:
                break
            end += more
        return end


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


# --- the tree ------------------------------------------------------------------------

# What a region's scan finds: the hits of some of its files, by their index.
_Hits = list[tuple[int, list[SecretHit]]]


def scan_tree(
    scanner: SecretScanner,
    root: Path,
    rel_paths: Iterable[str],
    *,
    workers: int | None = None,
    progress: Callable[[int, list[SecretHit]], None] | None = None,
) -> list[SecretHit]:
    """Scan the regular files among rel_paths under root; hits in the order of the paths.

    Symbolic links are not followed (they go up as links, not as their targets);
    anything that is not a regular file, or no longer exists, is skipped.  This
    thread reads the files; up to ``workers - 1`` more (default: one per CPU,
    at most 4 in all) scan what it read.  Raises SyncError when a file cannot be
    read, since an unscanned file must not be uploaded (the first such file in
    the order given).

    ``progress(n, hits)``, if given, hears that the first n paths are scanned and
    their hits so far (all of them, in order), so that those files may go up
    before the scan ends: n only grows, calls never overlap, at most about one
    per region handed over, and the last, before this returns, has every path.
    Nothing is told of a file that could not be read, nor of any after it.
    """
    rels = list(rel_paths)
    workers = min(workers or os.cpu_count() or 1, _MAX_WORKERS)
    if workers <= 1 or len(rels) < _FEW_FILES:
        return _TreeScan(scanner, os.fspath(root), rels, _now, regions=1, progress=progress).run()
    with ThreadPoolExecutor(workers - 1, thread_name_prefix="secret-scan") as pool:
        scan = _TreeScan(
            scanner, os.fspath(root), rels, pool.submit, regions=workers, progress=progress
        )
        return scan.run()


def _now(scan: Callable[[], None]) -> Future[None]:
    """Run the scan here and now: the single-threaded way to hand one over."""
    scan()
    done: Future[None] = Future()
    done.set_result(None)
    return done


class _Frontier:
    """How many paths from the start are scanned, told to a callback each time it moves.

    A path is scanned once the reader is past it and the item handed over for it,
    if any, is done.  The reader says how far it is (``passed``); each handed
    item is ``open`` under its first path until a worker says it is ``done``.
    The callback runs under the lock: calls come in order and never overlap.
    """

    def __init__(
        self, found: list[list[SecretHit]], tell: Callable[[int, list[SecretHit]], None]
    ) -> None:
        self.found, self.tell = found, tell
        self.lock = threading.Lock()
        self.reader_at = 0
        self.open: set[int] = set()
        self.told = 0
        self.hits: list[SecretHit] = []

    def handing(self, first: int) -> None:
        """An item whose first path is first is about to go to a worker."""
        with self.lock:
            self.open.add(first)

    def done(self, first: int) -> None:
        """The item whose first path is first is scanned, its hits in found."""
        with self.lock:
            self.open.discard(first)
            self._move()

    def passed(self, index: int) -> None:
        """The reader has scanned or handed over every path before index."""
        with self.lock:
            self.reader_at = index
            self._move()

    def finish(self) -> None:
        """Every path is scanned: the last call, which an empty scan makes too."""
        with self.lock:
            self.reader_at = len(self.found)
            if not self._move() and not self.found:  # nothing to move past, yet it is done
                self.tell(0, [])

    def _move(self) -> bool:
        """Tell the callback if the frontier moved; whether it did."""
        to = min([self.reader_at, *self.open])
        if to <= self.told:
            return False
        for hits in self.found[self.told : to]:
            self.hits.extend(hits)
        self.told = to
        self.tell(to, list(self.hits))
        return True


class _Region:
    """A buffer of text files read one behind the other, to be gated at once."""

    def __init__(self) -> None:
        self.reader = _Reader(_REGION_BUFFER)
        self.files: list[tuple[int, str, int, int]] = []  # index in rels, rel, start, end

    @property
    def end(self) -> int:
        """Where its files end in the buffer."""
        return self.files[-1][3] if self.files else 0

    def scan(self, scanner: SecretScanner) -> _Hits:
        """The hits of its files: the gate over all of them, then file by file if it opens."""
        buffer = self.reader.buffer
        if not scanner._may_hit(cast("bytes", self.reader.view[: self.end])):  # noqa: SLF001
            return []
        scanned = [(i, scanner._scan_read(buffer, s, e, rel)) for i, rel, s, e in self.files]  # noqa: SLF001
        return [(index, hits) for index, hits in scanned if hits]


class _TreeScan:
    """Reads the files in order, in this thread; hands regions of text to ``submit``.

    Text files are read one behind the other into a region's buffer; the gate
    runs once over the region, and only a region where something may match is
    gated again file by file (a match in a file is a match in the region; one
    that spans two files only costs that second look). Binary files are checked
    for the run's values as they are read; files too large for a region are
    handed over on their own, those past the window scanned here in windows.
    Each handed item puts its hits in ``found`` itself, then tells the frontier.
    """

    def __init__(
        self,
        scanner: SecretScanner,
        top: str,
        rels: list[str],
        submit: Callable[[Callable[[], None]], Future[None]],
        *,
        regions: int,
        progress: Callable[[int, list[SecretHit]], None] | None = None,
    ) -> None:
        self.scanner, self.top, self.rels, self.submit = scanner, top, rels, submit
        self.found: list[list[SecretHit]] = [[] for _ in rels]
        self.handed: list[Future[None]] = []
        self.free: queue.SimpleQueue[_Region] = queue.SimpleQueue()
        for _ in range(regions):
            self.free.put(_Region())
        self.region = self.free.get()
        self.large = _Reader(_WINDOW)
        # Large files copied out and waiting for a worker: as many as there are regions.
        self.room = threading.BoundedSemaphore(regions)
        self.frontier = None if progress is None else _Frontier(self.found, progress)
        self.unreported = 0  # bytes this thread scanned since it last told the frontier

    def run(self) -> list[SecretHit]:
        """Every hit, in the order of the files."""
        for index, rel in enumerate(self.rels):
            self._take(index, rel)
        self._hand_over()
        self._passed(len(self.rels) - 1)
        for future in self.handed:
            future.result()
        if self.frontier is not None:
            self.frontier.finish()
        return [hit for hits in self.found for hit in hits]

    def _take(self, index: int, rel: str) -> None:
        reader, start = self.region.reader, self.region.end
        opened = _open_and_read(f"{self.top}/{rel}", rel, reader, start)
        if opened is None:
            return
        fd, end = opened
        try:
            if end == len(reader.buffer):  # it does not fit in the region
                self._take_large(index, rel, fd, bytes(reader.view[start:end]))
            elif reader.is_binary(start, end):
                self.found[index] = self.scanner._scan_read(reader.buffer, start, end, rel)  # noqa: SLF001
                self._scanned_here(index, end - start)
            else:
                self.region.files.append((index, rel, start, end))
                if end >= _REGION:
                    self._hand_over()
                    self._passed(index)
        except OSError as exc:
            raise _unreadable(rel, exc) from exc
        finally:
            os.close(fd)

    def _take_large(self, index: int, rel: str, fd: int, head: bytes) -> None:
        self.large.buffer[: len(head)] = head
        end = self.large.fill(fd, len(head))
        if end == len(self.large.buffer):  # past the window: in windows, here
            self.found[index] = self.scanner._scan_filled(fd, rel, self.large, end)  # noqa: SLF001
            self._scanned_here(index, end)
            return
        self.room.acquire()
        data = bytes(self.large.view[:end])
        self._handing(index)
        self.handed.append(self.submit(lambda: self._scan_large(index, rel, data)))
        self._passed(index)

    def _hand_over(self) -> None:
        region = self.region
        if not region.files:
            return
        self._handing(region.files[0][0])
        self.handed.append(self.submit(lambda: self._scan_region(region)))
        self.region = self.free.get()  # waits while every region is being scanned

    def _scan_large(self, index: int, rel: str, data: bytes) -> None:
        try:
            self.found[index] = self.scanner.scan_bytes(data, rel)
        finally:
            self.room.release()
        self._done(index)

    def _scan_region(self, region: _Region) -> None:
        first = region.files[0][0]
        try:
            for index, hits in region.scan(self.scanner):
                self.found[index] = hits
        finally:
            region.files.clear()
            self.free.put(region)
        self._done(first)

    # The frontier, when there is a progress callback: every call is a no-op without.

    def _handing(self, first: int) -> None:
        if self.frontier is not None:
            self.frontier.handing(first)

    def _done(self, first: int) -> None:
        if self.frontier is not None:
            self.frontier.done(first)

    def _passed(self, index: int) -> None:
        """Tell the frontier this thread is past index, short of its open region's files."""
        if self.frontier is not None:
            files = self.region.files
            self.frontier.passed(files[0][0] if files else index + 1)
        self.unreported = 0

    def _scanned_here(self, index: int, size: int) -> None:
        """Count a file scanned in this thread: tell the frontier about one region's worth."""
        self.unreported += size
        if self.unreported >= _REGION:
            self._passed(index)


def _open_and_read(path: str, rel: str, reader: _Reader, start: int) -> tuple[int, int] | None:
    """The open file and where its bytes end in reader's buffer; None: not a regular file."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        return None  # gone since it was listed: it will not be uploaded either
    except OSError as exc:  # ELOOP: a symlink; ENXIO: a socket; or unreadable
        if _not_regular(path):
            return None
        raise _unreadable(rel, exc) from exc
    try:
        return fd, reader.fill(fd, start)
    except OSError as exc:  # EISDIR: a directory; or unreadable
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
        os.close(fd)
        if not regular:
            return None
        raise _unreadable(rel, exc) from exc


def _not_regular(path: str) -> bool:
    """Whether path is gone or not a regular file, by lstat (only after a failed open)."""
    try:
        return not stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return True
    except OSError:
        return False


def _unreadable(rel: str, exc: OSError) -> SyncError:
    return SyncError(
        f"cannot read {rel} to scan it for secrets: {exc.strerror}",
        hint="make the file readable, or exclude it from the upload",
    )
