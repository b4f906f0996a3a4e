"""Fake secrets for the scanner's tests, generated at run time from each format.

Nothing here is a literal token: each is built from its format with a seeded
random generator, and prefixes are split ("gh" + "p_"), so the repository itself
never trips push protection or another scanner.

POSITIVES: rule -> generators of (key name, value, context kinds);
NEGATIVES: near-misses the scanner must leave alone;
FILLER: ordinary source lines (hashes, UUIDs, URLs, base64) to bury them in;
write_tree: a tree of files of many kinds with them planted;
reference_*: the scan as it was before the gate and the threads (commit 7e18cd2),
which the scan of today must equal.
"""

from __future__ import annotations

import base64
import json
import random
import stat
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from claude_e2b.sync.secrets import SecretHit, SecretScanner, _to_hits

B62 = string.ascii_letters + string.digits
B64 = B62 + "+/"
B64URL = B62 + "-_"
HEX = "0123456789abcdef"
UPPER_DIGITS = string.ascii_uppercase + string.digits

SINGLE_LINE = ("json", "yaml", "env", "python", "shell")
MULTI_LINE = ("raw", "json", "yaml", "python")


@dataclass(frozen=True)
class Example:
    """One fake secret: the variable it is assigned to and where it may appear."""

    rule: str
    key: str
    value: str
    contexts: tuple[str, ...] = SINGLE_LINE


def rand(rng: random.Random, alphabet: str, n: int) -> str:
    """n random characters that, for mixed alphabets, include upper, lower and digit."""
    while True:
        out = "".join(rng.choice(alphabet) for _ in range(n))
        wants = [
            cls
            for cls in (string.ascii_uppercase, string.ascii_lowercase, string.digits)
            if set(cls) & set(alphabet)
        ]
        if n < 12 or all(set(out) & set(cls) for cls in wants):
            return out


def b64url_json(obj: object) -> str:
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def pem_block(rng: random.Random, label: str, headers: str = "") -> str:
    body = base64.b64encode(rng.randbytes(600)).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n{headers}" + "\n".join(lines) + f"\n-----END {label}-----"


def jwt(rng: random.Random) -> str:
    head = b64url_json({"alg": "HS256", "typ": "JWT"})
    body = b64url_json({"sub": str(rng.randrange(10**6)), "exp": rng.randrange(2 * 10**9)})
    return f"{head}.{body}.{rand(rng, B64URL, 43)}"


def gcp_service_account(rng: random.Random) -> str:
    key = pem_block(rng, "PRIVATE" + " KEY")
    doc = {
        "type": "service_account",
        "project_id": "demo-" + rand(rng, string.ascii_lowercase, 6),
        "private_key_id": rand(rng, HEX, 40),
        "private_key": key + "\n",
        "client_email": "svc@demo.iam.gserviceaccount.com",
    }
    return json.dumps(doc, indent=2)


Gen = Callable[[random.Random], Example]


def _tok(
    rule: str, prefix: str, alphabet: str, n: int, *, suffix: str = "", key: str = "token"
) -> Gen:
    return lambda rng: Example(rule, key, prefix + rand(rng, alphabet, n) + suffix)


def _assigned(rule: str, key: str, make: Callable[[random.Random], str]) -> Gen:
    return lambda rng: Example(rule, key, make(rng))


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128)))


POSITIVES: dict[str, list[Gen]] = {
    "aws-access-key-id": [
        _tok("aws-access-key-id", "AK" + "IA", string.ascii_uppercase + "234567", 16),
        _tok("aws-access-key-id", "AS" + "IA", string.ascii_uppercase + "234567", 16),
        _tok("aws-access-key-id", "AB" + "IA", string.ascii_uppercase + "234567", 16),
    ],
    "aws-secret-access-key": [
        _assigned("aws-secret-access-key", "aws_secret_access_key", lambda r: rand(r, B64, 40)),
        _assigned("aws-secret-access-key", "AWS_SECRET_ACCESS_KEY", lambda r: rand(r, B64, 40)),
        _assigned("aws-secret-access-key", "SecretAccessKey", lambda r: rand(r, B64, 40)),
    ],
    "gcp-service-account-key": [
        lambda r: Example("gcp-service-account-key", "", gcp_service_account(r), ("raw",)),
    ]
    * 3,
    "gcp-api-key": [_tok("gcp-api-key", "AI" + "za", B64URL, 35)] * 3,
    "google-oauth-client-secret": [_tok("google-oauth-client-secret", "GOC" + "SPX-", B64URL, 28)]
    * 3,
    "google-oauth-refresh-token": [_tok("google-oauth-refresh-token", "1//" + "0", B64URL, 60)] * 3,
    "google-oauth-access-token": [_tok("google-oauth-access-token", "ya" + "29.", B64URL, 120)] * 3,
    "azure-storage-connection-string": [
        lambda r: Example(
            "azure-storage-connection-string",
            "AZURE_STORAGE_CONNECTION_STRING",
            "DefaultEndpointsProtocol=https;AccountName=acct"
            + rand(r, string.digits, 4)
            + ";Account"
            + "Key="
            + rand(r, B64, 86)
            + "==;EndpointSuffix=core.windows.net",
        ),
    ]
    * 3,
    "azure-ad-client-secret": [
        lambda r: Example(
            "azure-ad-client-secret",
            "AZURE_CLIENT_SECRET",
            rand(r, B62, 3) + rand(r, string.digits, 1) + "Q" + "~" + rand(r, B62 + "_~.-", 34),
        ),
    ]
    * 3,
    "alibaba-access-key-id": [_tok("alibaba-access-key-id", "LT" + "AI", B62, 20)] * 3,
    "digitalocean-token": [
        _tok("digitalocean-token", "do" + "p_v1_", HEX, 64),
        _tok("digitalocean-token", "do" + "o_v1_", HEX, 64),
        _tok("digitalocean-token", "do" + "r_v1_", HEX, 64),
    ],
    "heroku-api-key": [
        _tok("heroku-api-key", "HR" + "KU-", B64URL, 60),
        _assigned("heroku-api-key", "HEROKU_API_KEY", _uuid),
        _assigned("heroku-api-key", "heroku_token", _uuid),
    ],
    "databricks-token": [
        _tok("databricks-token", "da" + "pi", HEX, 32),
        _tok("databricks-token", "da" + "pi", HEX, 32, suffix="-2"),
        _tok("databricks-token", "da" + "pi", HEX, 32),
    ],
    "fly-io-token": [_tok("fly-io-token", "fm" + "2_", B64, 160)] * 3,
    "render-api-key": [_tok("render-api-key", "rn" + "d_", B62, 32)] * 3,
    "supabase-token": [_tok("supabase-token", "sb" + "p_", HEX, 40)] * 3,
    "planetscale-token": [
        _tok("planetscale-token", "pscale" + "_tkn_", B62 + "_", 43),
        _tok("planetscale-token", "pscale" + "_pw_", B62 + "_", 43),
        _tok("planetscale-token", "pscale" + "_oauth_", B62 + "_", 43),
    ],
    "tailscale-key": [
        lambda r: Example(
            "tailscale-key",
            "TS_AUTHKEY",
            "tskey" + "-auth-" + rand(r, B62, 14) + "-" + rand(r, B62, 32),
        ),
    ]
    * 3,
    "vault-token": [_tok("vault-token", "hv" + "s.", B64URL, 95)] * 3,
    "doppler-token": [_tok("doppler-token", "dp" + ".pt.", B62, 43)] * 3,
    "pulumi-token": [_tok("pulumi-token", "pu" + "l-", HEX, 40)] * 3,
    "terraform-cloud-token": [
        lambda r: Example(
            "terraform-cloud-token",
            "TFE_TOKEN",
            rand(r, B62, 14) + ".atlas" + "v1." + rand(r, B64URL, 67),
        ),
    ]
    * 3,
    "github-token": [
        _tok("github-token", "gh" + "p_", B62, 36),
        _tok("github-token", "gh" + "o_", B62, 36),
        _tok("github-token", "gh" + "s_", B62, 36),
        _tok("github-token", "gh" + "u_", B62, 36),
        _tok("github-token", "gh" + "r_", B62, 36),
    ],
    "github-fine-grained-pat": [
        lambda r: Example(
            "github-fine-grained-pat",
            "GH_TOKEN",
            "github" + "_pat_" + rand(r, B62, 22) + "_" + rand(r, B62, 59),
        ),
    ]
    * 3,
    "gitlab-token": [
        _tok("gitlab-token", "gl" + "pat-", B64URL, 20),
        _tok("gitlab-token", "gl" + "rt-", B64URL, 20),
        _tok("gitlab-token", "gl" + "dt-", B64URL, 20),
    ],
    "bitbucket-token": [_tok("bitbucket-token", "AT" + "BB", B62, 32, suffix="E3B1C2A0")] * 3,
    "atlassian-api-token": [
        _tok("atlassian-api-token", "ATA" + "TT3", B64URL, 180, suffix="=0A1B2C3D")
    ]
    * 3,
    "npm-token": [_tok("npm-token", "np" + "m_", B62, 36)] * 3,
    "pypi-token": [_tok("pypi-token", "pypi-" + "AgEIcHlwaS5vcmc", B64URL, 140)] * 3,
    "rubygems-token": [_tok("rubygems-token", "rubygems" + "_", HEX, 48)] * 3,
    "nuget-api-key": [_tok("nuget-api-key", "oy" + "2", string.ascii_lowercase + string.digits, 43)]
    * 3,
    "docker-hub-token": [_tok("docker-hub-token", "dckr" + "_pat_", B64URL, 27)] * 3,
    "buildkite-token": [_tok("buildkite-token", "bk" + "ua_", HEX, 40)] * 3,
    "postman-api-key": [
        lambda r: Example(
            "postman-api-key",
            "POSTMAN_API_KEY",
            "PM" + "AK-" + rand(r, HEX, 24) + "-" + rand(r, HEX, 34),
        )
    ]
    * 3,
    "figma-token": [_tok("figma-token", "fi" + "gd_", B64URL, 40)] * 3,
    "prefect-api-key": [_tok("prefect-api-key", "pn" + "u_", B62, 36)] * 3,
    "contentful-token": [_tok("contentful-token", "CF" + "PAT-", B62, 43)] * 3,
    "anthropic-api-key": [
        _tok(
            "anthropic-api-key",
            "sk-" + "ant-api03-",
            B64URL,
            93,
            suffix="AA",
            key="ANTHROPIC_API_KEY",
        ),
        _tok(
            "anthropic-api-key",
            "sk-" + "ant-oat01-",
            B64URL,
            93,
            suffix="AA",
            key="CLAUDE_CODE_OAUTH_TOKEN",
        ),
        _tok("anthropic-api-key", "sk-" + "ant-admin01-", B64URL, 93, suffix="AA"),
    ],
    "openai-api-key": [
        _tok("openai-api-key", "sk-" + "proj-", B64URL, 156, key="OPENAI_API_KEY"),
        _tok("openai-api-key", "sk-" + "svcacct-", B64URL, 156),
        lambda r: Example(
            "openai-api-key",
            "openai_key",
            "sk-" + rand(r, B62, 20) + "T3Blbk" + "FJ" + rand(r, B62, 20),
        ),
    ],
    "openrouter-api-key": [_tok("openrouter-api-key", "sk-" + "or-v1-", HEX, 64)] * 3,
    "e2b-api-key": [
        _tok("e2b-api-key", "e2" + "b_", HEX, 40, key="E2B_API_KEY"),
        _tok("e2b-api-key", "sk_" + "e2" + "b_", HEX, 40, key="E2B_ACCESS_TOKEN"),
        _tok("e2b-api-key", "e2" + "b_", HEX, 40),
    ],
    "huggingface-token": [
        _tok("huggingface-token", "h" + "f_", string.ascii_letters, 34, key="HF_TOKEN"),
        _tok("huggingface-token", "h" + "f_", string.ascii_letters, 34),
        _tok("huggingface-token", "api" + "_org_", string.ascii_letters, 34),
    ],
    "replicate-token": [_tok("replicate-token", "r" + "8_", B62, 37)] * 3,
    "groq-api-key": [_tok("groq-api-key", "gs" + "k_", B62, 52)] * 3,
    "perplexity-api-key": [_tok("perplexity-api-key", "pp" + "lx-", B62, 48)] * 3,
    "xai-api-key": [_tok("xai-api-key", "xa" + "i-", B62, 80)] * 3,
    "langsmith-api-key": [
        lambda r: Example(
            "langsmith-api-key",
            "LANGSMITH_API_KEY",
            "lsv2" + "_pt_" + rand(r, HEX, 32) + "_" + rand(r, HEX, 10),
        )
    ]
    * 3,
    "slack-token": [
        lambda r: Example(
            "slack-token",
            "SLACK_BOT_TOKEN",
            "xo"
            "xb-"
            + rand(r, string.digits, 12)
            + "-"
            + rand(r, string.digits, 13)
            + "-"
            + rand(r, B62, 24),
        ),
        lambda r: Example(
            "slack-token",
            "SLACK_USER_TOKEN",
            "xo"
            "xp-" + "-".join(rand(r, string.digits, 12) for _ in range(3)) + "-" + rand(r, HEX, 32),
        ),
        lambda r: Example(
            "slack-token",
            "token",
            "xo" + "xe.xo" + "xp-1-" + rand(r, B62, 120),
        ),
    ],
    "slack-app-token": [
        lambda r: Example(
            "slack-app-token",
            "SLACK_APP_TOKEN",
            "xa"
            "pp-1-A"
            + rand(r, UPPER_DIGITS, 10)
            + "-"
            + rand(r, string.digits, 13)
            + "-"
            + rand(r, HEX, 64),
        )
    ]
    * 3,
    "slack-webhook-url": [
        lambda r: Example(
            "slack-webhook-url",
            "SLACK_WEBHOOK_URL",
            "https://hooks."
            "slack.com/services/T"
            + rand(r, UPPER_DIGITS, 10)
            + "/B"
            + rand(r, UPPER_DIGITS, 10)
            + "/"
            + rand(r, B62, 24),
        )
    ]
    * 3,
    "discord-bot-token": [
        lambda r: Example(
            "discord-bot-token",
            "DISCORD_TOKEN",
            "M" + rand(r, B62, 25) + "." + rand(r, B64URL, 6) + "." + rand(r, B64URL, 38),
        ),
        lambda r: Example(
            "discord-bot-token",
            "discord_bot_token",
            "N" + rand(r, B62, 23) + "." + rand(r, B64URL, 6) + "." + rand(r, B64URL, 27),
        ),
        lambda r: Example(
            "discord-bot-token",
            "DiscordToken",
            "O" + rand(r, B62, 25) + "." + rand(r, B64URL, 6) + "." + rand(r, B64URL, 38),
        ),
    ],
    "discord-webhook-url": [
        lambda r: Example(
            "discord-webhook-url",
            "webhook",
            "https://discord"
            ".com/api/webhooks/" + rand(r, string.digits, 19) + "/" + rand(r, B64URL, 68),
        )
    ]
    * 3,
    "telegram-bot-token": [
        lambda r: Example(
            "telegram-bot-token",
            "TELEGRAM_BOT_TOKEN",
            rand(r, string.digits, 10) + ":A" + "A" + rand(r, B64URL, 33),
        )
    ]
    * 3,
    "twilio-api-key": [_tok("twilio-api-key", "S" + "K", HEX, 32)] * 3,
    "twilio-auth-token": [
        _assigned("twilio-auth-token", "TWILIO_AUTH_TOKEN", lambda r: rand(r, HEX, 32)),
        _assigned("twilio-auth-token", "twilio_auth_token", lambda r: rand(r, HEX, 32)),
        _assigned("twilio-auth-token", "TwilioAuthToken", lambda r: rand(r, HEX, 32)),
    ],
    "sendgrid-api-key": [
        lambda r: Example(
            "sendgrid-api-key",
            "SENDGRID_API_KEY",
            "S" + "G." + rand(r, B64URL, 22) + "." + rand(r, B64URL, 43),
        )
    ]
    * 3,
    "mailgun-api-key": [_tok("mailgun-api-key", "ke" + "y-", HEX, 32, key="MAILGUN_API_KEY")] * 3,
    "stripe-secret-key": [
        _tok("stripe-secret-key", "sk" + "_live_", B62, 99),
        _tok("stripe-secret-key", "rk" + "_live_", B62, 99),
        _tok("stripe-secret-key", "sk" + "_live_", B62, 24),
    ],
    "stripe-webhook-secret": [_tok("stripe-webhook-secret", "wh" + "sec_", B62, 32)] * 3,
    "square-token": [
        _tok("square-token", "sq0" + "atp-", B64URL, 22),
        _tok("square-token", "sq0" + "csp-", B64URL, 43),
        _tok("square-token", "EA" + "AA", B64URL, 60),
    ],
    "shopify-token": [
        _tok("shopify-token", "sh" + "pat_", HEX, 32),
        _tok("shopify-token", "sh" + "pss_", HEX, 32),
        _tok("shopify-token", "sh" + "pca_", HEX, 32),
    ],
    "linear-api-key": [_tok("linear-api-key", "lin" + "_api_", B62, 40)] * 3,
    "notion-token": [
        lambda r: Example(
            "notion-token",
            "NOTION_TOKEN",
            "nt" + "n_" + rand(r, string.digits, 11) + rand(r, B62, 35),
        ),
        _tok("notion-token", "sec" + "ret_", B62, 43, key="NOTION_KEY"),
        _tok("notion-token", "sec" + "ret_", B62, 43),
    ],
    "newrelic-api-key": [_tok("newrelic-api-key", "NR" + "AK-", UPPER_DIGITS, 27)] * 3,
    "dynatrace-token": [
        lambda r: Example(
            "dynatrace-token",
            "DT_API_TOKEN",
            "dt0" + "c01." + rand(r, UPPER_DIGITS, 24) + "." + rand(r, UPPER_DIGITS, 64),
        )
    ]
    * 3,
    "grafana-token": [
        _tok("grafana-token", "gl" + "c_", B64, 120, suffix="=="),
        lambda r: Example(
            "grafana-token",
            "GRAFANA_SA_TOKEN",
            "gl" + "sa_" + rand(r, B62, 32) + "_" + rand(r, HEX, 8),
        ),
        _tok("grafana-token", "gl" + "c_", B64, 80),
    ],
    "sentry-token": [
        _tok("sentry-token", "sn" + "tryu_", HEX, 64),
        _tok("sentry-token", "sn" + "trys_", B64URL, 120),
        _tok("sentry-token", "sn" + "tryu_", HEX, 64),
    ],
    "firebase-cloud-messaging-key": [
        lambda r: Example(
            "firebase-cloud-messaging-key",
            "FCM_SERVER_KEY",
            "AAAA" + rand(r, B64URL, 7) + ":APA" + "91b" + rand(r, B64URL, 134),
        )
    ]
    * 3,
    "mapbox-secret-token": [
        lambda r: Example(
            "mapbox-secret-token",
            "MAPBOX_SECRET",
            "sk" + ".eyJ1Ijoi" + rand(r, B64URL, 60) + "." + rand(r, B64URL, 22),
        )
    ]
    * 3,
    "private-key": [
        lambda r: Example("private-key", "key", pem_block(r, "RSA PRIVATE" + " KEY"), MULTI_LINE),
        lambda r: Example("private-key", "key", pem_block(r, "EC PRIVATE" + " KEY"), MULTI_LINE),
        lambda r: Example(
            "private-key", "key", pem_block(r, "OPENSSH PRIVATE" + " KEY"), MULTI_LINE
        ),
        lambda r: Example("private-key", "key", pem_block(r, "PRIVATE" + " KEY"), MULTI_LINE),
        lambda r: Example(
            "private-key", "key", pem_block(r, "ENCRYPTED PRIVATE" + " KEY"), MULTI_LINE
        ),
        lambda r: Example(
            "private-key",
            "key",
            pem_block(r, "PGP PRIVATE" + " KEY BLOCK", "Version: GnuPG v2\n\n"),
            MULTI_LINE,
        ),
        lambda r: Example(
            "private-key",
            "key",
            pem_block(
                r,
                "RSA PRIVATE" + " KEY",
                "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,"
                + rand(r, "0123456789ABCDEF", 32)
                + "\n\n",
            ),
            MULTI_LINE,
        ),
    ],
    "age-secret-key": [
        _tok("age-secret-key", "AGE-SECRET" + "-KEY-1", "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58)
    ]
    * 3,
    "jwt": [lambda r: Example("jwt", "id_token", jwt(r))] * 3,
    "url-credentials": [
        lambda r: Example(
            "url-credentials",
            "DATABASE_URL",
            "postgres://app:" + rand(r, B62, 18) + "@db.internal:5432/app",
        ),
        lambda r: Example(
            "url-credentials",
            "REDIS_URL",
            "redis://:" + rand(r, B62, 24) + "@cache.internal:6379/0",
        ),
        lambda r: Example(
            "url-credentials",
            "MONGO_URI",
            "mongodb+srv://svc:"
            + rand(r, B62, 12)
            + "%40"
            + rand(r, B62, 6)
            + "@cluster0.ab1cd.mongodb.net/db",
        ),
        lambda r: Example(
            "url-credentials",
            "remote",
            "https://deploy:" + rand(r, B62, 20) + "@git.corp.net/org/repo.git",
        ),
    ],
}


def negatives(rng: random.Random) -> list[str]:
    """Near-misses: placeholders, doc examples, templates, public values, hashes."""
    aws_doc_secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY"
    azurite = (
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
    )
    return [
        'ANTHROPIC_API_KEY="sk-' + 'ant-xxxx"',
        "api_key = 'sk-" + "ant-api03-...'",
        "ANTHROPIC_API_KEY=sk-" + "ant-api03-" + "x" * 95,
        "aws_access_key_id = AK" + "IA" + "X" * 16,
        "aws_access_key_id = AK" + "IAIOSFODNN7" + "EXAMPLE",
        "aws_secret_access_key = " + aws_doc_secret,
        "aws_secret_access_key = os.environ['AWS_SECRET_ACCESS_KEY']",
        "SecretAccessKey: !Ref SecretAccessKeyParameterForTheProductionStack",
        "password: ${PASSWORD}",
        "DATABASE_URL=postgres://user:${DB_PASSWORD}@localhost:5432/app",
        "url = 'https://user:@host/path'",
        "url = 'https://user:pass@host/path'",
        "url = 'https://username:password@example.com/'",
        "TEST_DB=postgres://postgres:postgres@localhost:5432/test",
        "BROKER=amqp://guest:guest@localhost:5672//",
        'dsn = "%s://%s:%s@%s/%s" % (scheme, user, password, host, db)',
        'dsn = f"{scheme}://{user}:{password}@{host}/{db}"',
        "git clone https://<user>:<token>@github.com/org/repo.git",
        "mysql://root:****@db:3306/app",
        "http://user:$PASSWORD@proxy:3128",
        "ssh://git@github.com:22/org/repo.git",
        "http://[::1]:8080/health and https://host:8443/x?a=b:c@d",
        "see https://docs.python.org/3/library/re.html#re.compile for details",
        'token = "gh' + 'p_" + "x" * 36',
        "GITHUB_TOKEN=gh" + "p_" + "x" * 36,
        "GITHUB_TOKEN=gh" + "p_" + "1234567890abcdefghijklmnopqrstuvwxyz",
        "if token.startswith(('gh" + "p_', 'gh" + "s_', 'github" + "_pat_')):",
        "SLACK_TOKEN=xo" + "xb-your-token-here",
        "SLACK_TOKEN=xo" + "xb-0000000000-0000000000-" + "x" * 24,
        "https://hooks." + "slack.com/services/T00000000/B00000000/" + "X" * 24,
        'if line.startswith("-----BEGIN RSA PRIVATE' + ' KEY-----"):',
        "-----BEGIN OPENSSH PRIVATE" + " KEY-----\n...\n-----END OPENSSH PRIVATE" + " KEY-----",
        "-----BEGIN RSA PRIVATE" + " KEY-----\nMIIE...\n-----END RSA PRIVATE" + " KEY-----",
        pem_block(rng, "CERTIFICATE"),
        pem_block(rng, "PUBLIC KEY"),
        "ssh-rsa AAAAB3NzaC1yc2E" + rand(rng, B64, 300) + " user@host",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMjM0NTY3ODkwIn0.",
        "header = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9'",
        "STRIPE_KEY=sk" + "_test_" + rand(rng, B62, 24),
        "STRIPE_PUBLISHABLE=pk" + "_live_" + rand(rng, B62, 24),
        "stripe.api_key = 'sk" + "_live_...'",
        "npm_config_cache=/tmp/npm and process.env.npm_package_version",
        "from huggingface_hub import hf_hub_download; HF_TOKEN=hf" + "_xxx",
        "GOOGLE_API_KEY=AI" + "zaSyDummyKey",
        "TWILIO_ACCOUNT_SID=AC" + rand(rng, HEX, 32),
        "twilio_auth_token = os.environ['TWILIO_AUTH_TOKEN']",
        "SHOPIFY_TOKEN=sh" + "pat_" + "x" * 32,
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;Account" + "Key=" + azurite,
        "sha1 " + rand(rng, HEX, 40) + " sha256 " + rand(rng, HEX, 64),
        "commit " + rand(rng, HEX, 40) + "\nAuthor: A U Thor <a@example.com>",
        "id: " + str(uuid.UUID(int=rng.getrandbits(128))),
        '"integrity": "sha512-' + base64.b64encode(rng.randbytes(64)).decode() + '",',
        '"resolved": "https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz",',
        base64.b64encode(rng.randbytes(3000)).decode(),
        "  ".join(base64.b64encode(rng.randbytes(57)).decode() for _ in range(20)),
        "cache_key = 'key-' + hashlib.md5(data).hexdigest()",
        "const MASK = 0xFFFF; const TASK_ID = 'task-' + id;",
        "x = 1//0  # ZeroDivisionError on purpose",
        "lookup = {'secret_key': settings.SECRET_KEY, 'secret_name': 'prod'}",
        "DISCORD_TOKEN=your-discord-bot-token-here",
        "heroku_api_key = os.environ.get('HEROKU_API_KEY')",
        "mapbox public: pk.eyJ1IjoiZXhhbXBsZSIsImEiOiJjazEifQ." + rand(rng, B64URL, 22),
    ]


FILLER = (
    "import os",
    "from pathlib import Path",
    "def handler(event, context):",
    "    return {'statusCode': 200, 'body': json.dumps(event)}",
    "# TODO: retry on 5xx with exponential backoff",
    "const url = `${base}/api/v1/items?page=${page}`;",
    "  - name: actions/checkout@v4",
    'version = "1.2.3"',
    "[tool.ruff]",
    'export PATH="$HOME/.local/bin:$PATH"',
    "SELECT id, name FROM users WHERE email = %s;",
    '<a href="https://example.com/docs">docs</a>',
    "",
)


def filler_line(rng: random.Random) -> str:
    """An ordinary line, sometimes carrying a hash, UUID or base64 blob."""
    kind = rng.randrange(6)
    if kind == 0:
        return f"digest = '{rand(rng, HEX, 64)}'"
    if kind == 1:
        return f'"id": "{uuid.UUID(int=rng.getrandbits(128))}",'
    if kind == 2:
        return base64.b64encode(rng.randbytes(48)).decode()
    return rng.choice(FILLER)


# --- trees of files, and the scan as it was before the gate --------------------------

RUN_SECRET = "run-secret-" + "value-for-the-trees-0042"


def _as_line(ex: Example, kind: str) -> str:
    """The example as it would sit in a file of this kind (multi-line values as they are)."""
    key = ex.key or "secret"
    if "\n" in ex.value or kind in {".md", ".txt", ".pem.txt"}:
        return ex.value
    return {
        ".py": f"{key} = {ex.value!r}",
        ".json": f'  "{key}": {json.dumps(ex.value)},',
        ".yaml": f"{key}: {ex.value}",
        ".env.example": f"{key}={ex.value}",
        ".sh": f"export {key}='{ex.value}'",
    }.get(kind, ex.value)


def _text_file(rng: random.Random, kind: str, planted: list[str]) -> bytes:
    lines = [filler_line(rng) for _ in range(rng.randrange(0, 60))]
    for snippet in planted:
        lines.insert(rng.randrange(len(lines) + 1), snippet)
    newline = "\r\n" if rng.random() < 0.15 else "\n"
    return (newline.join(lines) + newline).encode()


def _binary_file(rng: random.Random, planted: list[str]) -> bytes:
    body = rng.randbytes(rng.randrange(50, 4000))
    return b"\x7fELF\0\0" + body + "\n".join(planted).encode() + rng.randbytes(100)


def _planted(rng: random.Random, kind: str, near_misses: list[str]) -> list[str]:
    """Nothing, a token of a random rule, a near miss, the run's own secret, or several."""
    choice = rng.randrange(8)
    if choice < 3:
        return []
    rule = rng.choice(sorted(POSITIVES))
    token = _as_line(rng.choice(POSITIVES[rule])(rng), kind)
    near_miss = rng.choice(near_misses)
    return [[token], [near_miss], [f"key: {RUN_SECRET}"], [token, near_miss, token]][choice % 4]


def write_tree(root: Path, rng: random.Random, files: int) -> list[str]:
    """Files of many kinds under root, most holding a planted secret or a near miss.

    Text of every kind (some with Windows line ends), binaries (a NUL up front)
    with tokens and run secrets inside, empty files. Returns their paths.
    """
    kinds = (".py", ".json", ".yaml", ".env.example", ".sh", ".md", ".txt", ".bin", ".empty")
    rels, near_misses = [], negatives(rng)
    for n in range(files):
        kind = rng.choice(kinds)
        rel = f"d{n % 7}/sub{n % 3}/file_{n}{kind}"
        planted = _planted(rng, kind, near_misses)
        if kind == ".bin":
            data = _binary_file(rng, planted)
        else:
            data = b"" if kind == ".empty" else _text_file(rng, kind, planted)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        rels.append(rel)
    return rels


def reference_hits(
    scanner: SecretScanner,
    path: str,
    data: bytes,
    *,
    binary: bool | None = None,
    line_base: int = 0,
) -> list[SecretHit]:
    """The hits of scan_bytes as it was before the gate: every anchor of every text checked."""
    if binary if binary is not None else b"\0" in data[:8192]:
        offsets = scanner._known_offsets(data)
    else:
        offsets = scanner._anchored(data) + scanner._searched(data)
    return _to_hits(path, data, offsets, line_base)


def reference_scan_file(
    scanner: SecretScanner, path: Path, rel: str, max_bytes: int
) -> list[SecretHit]:
    """scan_file as it was: read max_bytes, then windows overlapping by 16 KiB."""
    with path.open("rb") as stream:
        window = stream.read(max_bytes)
        if len(window) < max_bytes:
            return reference_hits(scanner, rel, window)
        overlap = min(16 * 1024, max_bytes // 2)
        binary = b"\0" in window[:8192]
        hits: set[SecretHit] = set()
        line_base = 0
        while True:
            hits.update(reference_hits(scanner, rel, window, binary=binary, line_base=line_base))
            more = stream.read(max_bytes - overlap)
            if not more:
                return sorted(hits, key=lambda h: (h.line, h.rule))
            line_base += window.count(b"\n", 0, len(window) - overlap)
            window = window[len(window) - overlap :] + more


def reference_scan_tree(
    scanner: SecretScanner, root: Path, rels: list[str], max_bytes: int = 10 * 2**20
) -> list[SecretHit]:
    """scan_tree as it was: one thread, pathlib, an lstat per file, regular files only."""
    hits: list[SecretHit] = []
    for rel in rels:
        path = root / rel
        try:
            if stat.S_ISREG(path.lstat().st_mode):
                hits.extend(reference_scan_file(scanner, path, rel, max_bytes))
        except FileNotFoundError:
            continue
    return hits
