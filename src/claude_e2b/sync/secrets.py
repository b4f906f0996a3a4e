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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO, Final

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

# Left and right edges of a token: not glued to more token characters, so a
# substring of a longer identifier or base64 blob is not taken for a token.
_L = r"(?<![A-Za-z0-9_])"
_LB64 = r"(?<![A-Za-z0-9+/_-])"
_R = r"(?![A-Za-z0-9_])"
_RDASH = r"(?![A-Za-z0-9_-])"
# "key = value" in every syntax we meet: .env, YAML, JSON, Python, TOML, shell, Ruby.
_ASSIGN = r"""[\w.-]*["'\]]{0,3}\s*(?::=|=>|[:=])\s*["']?"""


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


def _spec(name: str, anchors: str, pattern: str, need: str = "") -> _RuleSpec:
    return _RuleSpec(name, tuple(anchors.split()), pattern, need)


_HEX32 = r"[0-9a-f]{32}"
_B62 = "[A-Za-z0-9]"

_SPECS: Final[tuple[_RuleSpec, ...]] = (
    # --- cloud providers ---
    _spec(
        "aws-access-key-id",
        "AKIA ASIA ABIA ACCA",
        r"(?<![A-Za-z0-9])(?P<s>(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})(?![A-Za-z0-9])",
    ),
    _spec(
        "aws-secret-access-key",
        "secret_access_key SECRET_ACCESS_KEY SecretAccessKey secretAccessKey "
        "secret-access-key aws_secret_key AWS_SECRET_KEY",
        rf"(?i:secret[_-]?access[_-]?key|aws_secret_key){_ASSIGN}"
        r"(?P<s>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
        need="Aa0",
    ),
    _spec(
        "gcp-service-account-key",
        '"private_key"',
        r'"private_key"\s*:\s*"-----BEGIN PRIVATE KEY-----\\n(?P<s>[A-Za-z0-9+/]{40})',
    ),
    _spec("gcp-api-key", "AIza", rf"{_L}AIza(?P<s>[0-9A-Za-z_-]{{35}}){_RDASH}"),
    _spec(
        "google-oauth-client-secret", "GOCSPX-", rf"{_L}GOCSPX-(?P<s>[A-Za-z0-9_-]{{28}}){_RDASH}"
    ),
    _spec("google-oauth-refresh-token", "1//0", r"(?<![\w/])1//0(?P<s>[A-Za-z0-9_-]{40,})"),
    _spec("google-oauth-access-token", "ya29.", rf"{_L}ya29\.(?P<s>[A-Za-z0-9_-]{{50,}})"),
    _spec(
        "azure-storage-connection-string",
        "AccountKey=",
        r"AccountKey=(?P<s>[A-Za-z0-9+/]{86}==)",
    ),
    _spec(
        "azure-ad-client-secret",
        "Q~",
        r"(?<=[A-Za-z0-9_~.]{3}[0-9])(?<![A-Za-z0-9_~.-][A-Za-z0-9_~.]{3}[0-9])"
        r"Q~(?P<s>[A-Za-z0-9_~.-]{31,34})(?![A-Za-z0-9_~.-])",
        need="Aa0",
    ),
    _spec("alibaba-access-key-id", "LTAI", rf"{_LB64}LTAI(?P<s>{_B62}{{20}}){_R}", need="Aa0"),
    _spec(
        "digitalocean-token",
        "dop_v1_ doo_v1_ dor_v1_",
        rf"{_L}do[opr]_v1_(?P<s>[0-9a-f]{{64}}){_R}",
    ),
    _spec("heroku-api-key", "HRKU-", rf"{_L}HRKU-(?P<s>[A-Za-z0-9_-]{{40,}})"),
    _spec(
        "heroku-api-key",
        "heroku HEROKU Heroku",
        rf"(?i:heroku)[\w.-]{{0,20}}?(?i:key|token|secret){_ASSIGN}"
        r"(?P<s>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?![0-9a-f])",
    ),
    _spec("databricks-token", "dapi", rf"{_L}dapi(?P<s>{_HEX32})(?:-[0-9])?{_R}"),
    _spec("fly-io-token", "fm1_ fm2_", rf"{_L}fm[12]_(?P<s>[A-Za-z0-9+/]{{100,}})"),
    _spec("render-api-key", "rnd_", rf"{_L}rnd_(?P<s>{_B62}{{32}}){_R}", need="Aa0"),
    _spec("supabase-token", "sbp_", rf"{_L}sbp_(?P<s>[0-9a-f]{{40}}){_R}"),
    _spec(
        "planetscale-token",
        "pscale_tkn_ pscale_pw_ pscale_oauth_",
        rf"{_L}pscale_(?:tkn|pw|oauth)_(?P<s>[A-Za-z0-9_.-]{{32,64}})",
    ),
    _spec(
        "tailscale-key",
        "tskey-",
        rf"{_L}tskey-(?:auth|api|client|scim|webhook)-(?P<s>{_B62}{{10,}}-{_B62}{{20,}})",
    ),
    _spec("vault-token", "hvs. hvb.", rf"{_L}hv[sb]\.(?P<s>[A-Za-z0-9_-]{{90,}})"),
    _spec("doppler-token", "dp.", rf"{_L}dp\.(?:pt|st|sa|ct)\.(?P<s>{_B62}{{40,44}}){_R}"),
    _spec("pulumi-token", "pul-", rf"{_L}pul-(?P<s>[0-9a-f]{{40}}){_R}"),
    _spec(
        "terraform-cloud-token",
        ".atlasv1.",
        r"(?<=[A-Za-z0-9]{14})\.atlasv1\.(?P<s>[A-Za-z0-9_=-]{60,70})",
    ),
    # --- code hosting, CI and package registries ---
    _spec(
        "github-token",
        "ghp_ gho_ ghu_ ghs_ ghr_",
        rf"{_L}gh[pousr]_(?P<s>{_B62}{{36}}){_R}",
    ),
    _spec(
        "github-fine-grained-pat",
        "github_pat_",
        rf"{_L}github_pat_(?P<s>{_B62}{{22}}_{_B62}{{59}}){_R}",
    ),
    _spec(
        "gitlab-token",
        "glpat- gldt- glrt- glptt- glft- glcbt- glsoat- glimt-",
        rf"{_L}gl(?:pat|dt|rt|ptt|ft|cbt|soat|imt)-(?P<s>[A-Za-z0-9_-]{{20,}})",
    ),
    _spec("bitbucket-token", "ATBB", rf"{_LB64}ATBB(?P<s>[A-Za-z0-9_=.-]{{32,}})", need="Aa0"),
    _spec("atlassian-api-token", "ATATT3", rf"{_LB64}ATATT3(?P<s>[A-Za-z0-9_=-]{{60,}})"),
    _spec("npm-token", "npm_", rf"{_L}npm_(?P<s>{_B62}{{36}}){_R}", need="Aa0"),
    _spec(
        "pypi-token",
        "pypi-AgE",
        r"pypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)(?P<s>[A-Za-z0-9_-]{50,})",
    ),
    _spec("rubygems-token", "rubygems_", rf"{_L}rubygems_(?P<s>[0-9a-f]{{48}}){_R}"),
    _spec("nuget-api-key", "oy2", rf"{_L}oy2(?P<s>[a-z0-9]{{43}}){_R}", need="a0"),
    _spec("docker-hub-token", "dckr_pat_", rf"{_L}dckr_pat_(?P<s>[A-Za-z0-9_-]{{27,}})"),
    _spec("buildkite-token", "bkua_", rf"{_L}bkua_(?P<s>[0-9a-f]{{40}}){_R}"),
    _spec("postman-api-key", "PMAK-", rf"{_L}PMAK-(?P<s>[0-9a-f]{{24}}-[0-9a-f]{{34}}){_R}"),
    _spec("figma-token", "figd_", rf"{_L}figd_(?P<s>[A-Za-z0-9_-]{{40,}})"),
    _spec("prefect-api-key", "pnu_", rf"{_L}pnu_(?P<s>{_B62}{{36}}){_R}", need="Aa0"),
    _spec("contentful-token", "CFPAT-", rf"{_L}CFPAT-(?P<s>[A-Za-z0-9_-]{{43}}){_RDASH}"),
    # --- AI services ---
    _spec(
        "anthropic-api-key",
        "sk-ant-",
        rf"{_L}sk-ant-(?:api|oat|admin|ort|sid)[0-9]{{2}}-(?P<s>[A-Za-z0-9_-]{{32,}})",
    ),
    _spec(
        "openai-api-key",
        "sk-proj- sk-svcacct- sk-admin- sk-None-",
        rf"{_L}sk-(?:proj|svcacct|admin|None)-(?P<s>[A-Za-z0-9_-]{{32,}})",
    ),
    # Legacy keys are sk- + 48 characters with "OpenAI" in base64 in the middle.
    _spec(
        "openai-api-key",
        "T3BlbkFJ",
        r"(?<=sk-[A-Za-z0-9]{20})(?<![A-Za-z0-9_-]sk-[A-Za-z0-9]{20}T)"
        r"T3BlbkFJ(?P<s>[A-Za-z0-9]{20})(?![A-Za-z0-9])",
    ),
    _spec("openrouter-api-key", "sk-or-v1-", rf"{_L}sk-or-v1-(?P<s>[0-9a-f]{{64}}){_R}"),
    _spec("e2b-api-key", "e2b_", r"(?<![A-Za-z0-9])e2b_(?P<s>[0-9a-f]{32,})(?![A-Za-z0-9])"),
    _spec("huggingface-token", "hf_", rf"{_L}hf_(?P<s>{_B62}{{34,}}){_R}", need="Aa"),
    _spec(
        "huggingface-token",
        "api_org_",
        rf"{_L}api_org_(?P<s>{_B62}{{34}}){_R}",
        need="Aa",
    ),
    _spec("replicate-token", "r8_", rf"{_L}r8_(?P<s>{_B62}{{37}}){_R}", need="Aa0"),
    _spec("groq-api-key", "gsk_", rf"{_L}gsk_(?P<s>{_B62}{{52}}){_R}", need="Aa0"),
    _spec("perplexity-api-key", "pplx-", rf"{_L}pplx-(?P<s>{_B62}{{48}}){_R}", need="Aa0"),
    _spec("xai-api-key", "xai-", rf"{_L}xai-(?P<s>{_B62}{{80}}){_R}", need="Aa0"),
    _spec(
        "langsmith-api-key",
        "lsv2_pt_ lsv2_sk_",
        rf"{_L}lsv2_(?:pt|sk)_(?P<s>{_HEX32}_[0-9a-f]{{10}}){_R}",
    ),
    # --- messaging, payments, SaaS ---
    _spec(
        "slack-token",
        "xoxb- xoxp- xoxa- xoxr- xoxs- xoxe- xoxo-",
        rf"{_L}xox[abeoprs]-(?P<s>[0-9]+-[0-9A-Za-z-]{{20,}})",
    ),
    _spec(
        "slack-app-token",
        "xapp-",
        rf"{_L}xapp-[0-9]-(?P<s>[A-Z0-9]{{9,}}-[0-9]{{10,}}-[0-9a-f]{{32,}})",
    ),
    _spec(
        "slack-webhook-url",
        "hooks.slack.com/",
        r"hooks\.slack\.com/(?:services|workflows|triggers)/"
        r"(?P<s>[A-Za-z0-9]{8,}/[A-Za-z0-9]{8,}/[A-Za-z0-9]{16,})",
    ),
    _spec(
        "discord-bot-token",
        "discord Discord DISCORD",
        r"(?i:discord)[^\n]{0,64}?(?<![A-Za-z0-9_-])"
        r"(?P<s>[MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,40})"
        r"(?![A-Za-z0-9_-])",
        need="Aa",
    ),
    _spec(
        "discord-webhook-url",
        "discord.com/api/webhooks/ discordapp.com/api/webhooks/",
        r"discord(?:app)?\.com/api/webhooks/[0-9]{17,20}/(?P<s>[A-Za-z0-9_-]{60,70})",
    ),
    _spec(
        "telegram-bot-token",
        ":AA",
        r"(?<=[0-9]{8}):AA(?P<s>[A-Za-z0-9_-]{33})(?![A-Za-z0-9_-])",
        need="Aa",
    ),
    _spec(
        "twilio-api-key",
        "SK",
        r"(?<![A-Za-z0-9])SK(?P<s>[0-9a-f]{32})(?![A-Za-z0-9])",
        need="a0",
    ),
    _spec(
        "twilio-auth-token",
        "twilio TWILIO Twilio",
        rf"(?i:twilio)[\w.-]{{0,20}}?(?i:auth|token|secret){_ASSIGN}"
        r"(?P<s>[0-9a-f]{32})(?![0-9A-Za-z])",
        need="a0",
    ),
    _spec(
        "sendgrid-api-key",
        "SG.",
        rf"{_L}SG\.(?P<s>[A-Za-z0-9_-]{{22}}\.[A-Za-z0-9_-]{{43}}){_RDASH}",
    ),
    _spec("mailgun-api-key", "key-", rf"(?<![\w-])key-(?P<s>{_HEX32}){_R}", need="a0"),
    _spec("stripe-secret-key", "sk_live_ rk_live_", rf"{_L}[sr]k_live_(?P<s>{_B62}{{20,}}){_R}"),
    _spec("stripe-webhook-secret", "whsec_", rf"{_L}whsec_(?P<s>[A-Za-z0-9+/=]{{32,}})"),
    _spec(
        "square-token",
        "sq0atp- sq0csp-",
        rf"{_L}sq0(?:atp-(?P<s>[A-Za-z0-9_-]{{22}})|csp-[A-Za-z0-9_-]{{43}}){_RDASH}",
    ),
    _spec("square-token", "EAAA", rf"{_LB64}EAAA(?P<s>[A-Za-z0-9_-]{{60}}){_RDASH}", need="Aa0"),
    _spec(
        "shopify-token",
        "shpat_ shpca_ shppa_ shpss_",
        rf"{_L}shp(?:at|ca|pa|ss)_(?P<s>[0-9a-fA-F]{{32}}){_R}",
    ),
    _spec("linear-api-key", "lin_api_", rf"{_L}lin_api_(?P<s>{_B62}{{40}}){_R}", need="Aa0"),
    _spec("notion-token", "ntn_", rf"{_L}ntn_(?P<s>[0-9]{{11}}{_B62}{{35}}){_R}"),
    _spec("notion-token", "secret_", rf"{_L}secret_(?P<s>{_B62}{{43}}){_R}", need="Aa0"),
    _spec("newrelic-api-key", "NRAK-", rf"{_L}NRAK-(?P<s>[A-Z0-9]{{27}}){_R}", need="A0"),
    _spec(
        "dynatrace-token",
        "dt0c01.",
        rf"{_L}dt0c01\.(?P<s>[A-Z0-9]{{24}}\.[A-Z0-9]{{64}}){_R}",
    ),
    _spec(
        "grafana-token",
        "glc_ glsa_",
        rf"{_L}gl(?:c_(?P<s>[A-Za-z0-9+/]{{32,}}={{0,2}})|sa_{_B62}{{32}}_[0-9a-fA-F]{{8}})",
    ),
    _spec(
        "sentry-token",
        "sntrys_ sntryu_",
        rf"{_L}sntry[su]_(?P<s>[A-Za-z0-9+/=_-]{{40,}})",
    ),
    _spec(
        "firebase-cloud-messaging-key",
        ":APA91b",
        r"(?<=AAAA[A-Za-z0-9_-]{7}):APA91b(?P<s>[A-Za-z0-9_-]{100,})",
    ),
    _spec(
        "mapbox-secret-token",
        "sk.eyJ",
        rf"{_L}sk\.eyJ[A-Za-z0-9_-]{{40,}}\.(?P<s>[A-Za-z0-9_-]{{20,}})",
    ),
    # --- generic but unambiguous shapes ---
    _spec(
        "private-key",
        "-----BEGIN",
        r"-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----"
        r"(?:\s|\\[rn]|(?:Proc-Type|DEK-Info|Version|Comment|Hash|Charset): [^\r\n\\]*)+"
        r"(?P<s>[A-Za-z0-9+/]{40})",
    ),
    _spec(
        "age-secret-key",
        "AGE-SECRET-KEY-1",
        r"AGE-SECRET-KEY-1(?P<s>[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58})",
    ),
    _spec(
        "jwt",
        "eyJ",
        r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\."
        r"(?P<s>[A-Za-z0-9_-]{16,})",
    ),
    _spec(
        "url-credentials",
        "://",
        r"(?<=[A-Za-z0-9])://(?P<u>[^\s:/?#@'\"`<>{}\[\]()\\$%,;=|]{0,64})"
        r":(?P<s>(?:[^\s:/?#@'\"`<>{}\[\]()\\$%,;|*]|%[0-9A-Fa-f]{2}){4,128})"
        r"@(?=[A-Za-z0-9\[])",
    ),
)

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
