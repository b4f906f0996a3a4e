import random

import httpx
import pytest
from e2b.exceptions import (
    NotEnoughSpaceException,
    RateLimitException,
    SandboxException,
    SandboxNotRunningException,
)

from claude_e2b.errors import (
    SandboxError,
    SandboxFileError,
    SandboxGoneError,
    SandboxTimeoutError,
    SandboxTransientError,
)
from claude_e2b.sandbox.session import (
    RetryPolicy,
    SandboxSpec,
    _network_opts,
    http_status,
    mapped_errors,
    retrying,
)


def test_no_network_options_by_default():
    """Without an allow list or rules the SDK's defaults stand."""
    assert _network_opts(SandboxSpec()) is None


def test_allow_list_denies_everything_else_and_rules_pass_through():
    """An allow list comes with deny-all; egress rules are handed to the SDK as they are."""
    rules = {"api.anthropic.com": [{"transform": {"headers": {"x-api-key": "k"}}}]}
    opts = _network_opts(SandboxSpec(allow_out=("pypi.org",), network_rules=rules))
    assert opts == {"allow_out": ["pypi.org"], "deny_out": ["0.0.0.0/0"], "rules": rules}


# --- retries -------------------------------------------------------------------------

TINY = RetryPolicy(attempts=4, base_s=0.001, cap_s=0.002, deadline_s=5.0)


def test_full_jitter_stays_under_the_capped_exponential():
    """Each wait is in [0, min(cap, base * 2**(n-1))]: doubling, then capped."""
    random.seed(7)
    policy = RetryPolicy(base_s=0.5, cap_s=8.0)
    for failed, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 8.0)]:
        waits = [policy.delay(failed) for _ in range(200)]
        assert all(0.0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling * 0.8


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (SandboxException("500: injected upload failure"), 500),
        (SandboxException("503: Service Unavailable"), 503),
        (SandboxException("no status here"), 0),
        (RateLimitException("slow down"), 429),
        (SandboxException("x", status_code=502), 502),
    ],
)
def test_http_status_of_sdk_errors(error, status):
    """The status comes from status_code, else from the SDK's "<status>: message" wording."""
    assert http_status(error) == status


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (SandboxException("500: boom"), SandboxTransientError),
        (SandboxException("503: busy"), SandboxTransientError),
        (SandboxException("409: conflict"), SandboxError),
        (httpx.ReadTimeout("read timed out"), SandboxTransientError),
        (httpx.RemoteProtocolError("peer closed"), SandboxTransientError),
        (SandboxNotRunningException("gone"), SandboxGoneError),
        (NotEnoughSpaceException("not enough disk space available"), SandboxFileError),
    ],
)
def test_sdk_errors_are_mapped(raised, expected):
    """mapped_errors turns each SDK or transport error into the matching error of ours."""
    with pytest.raises(expected) as caught, mapped_errors("read /x"):
        raise raised
    assert type(caught.value) is expected


def test_a_full_disk_says_so_and_what_to_do():
    """507 from envd: the message names the full disk and the hint how to get space."""
    with pytest.raises(SandboxFileError) as caught, mapped_errors("write /home/user/big"):
        raise NotEnoughSpaceException("not enough disk space available")
    assert "the sandbox's disk is full" in str(caught.value)
    assert "free space in the sandbox" in str(caught.value)


def test_retrying_succeeds_after_transient_failures():
    """Two 503s, then an answer: the answer is returned."""
    answers = [SandboxException("503: busy"), SandboxException("503: busy"), "ok"]

    def call() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert retrying("stat /x", call, policy=TINY) == "ok"
    assert answers == []


def test_retrying_gives_up_after_its_attempts():
    """A call that keeps failing: tried `attempts` times, then a clear error of the same kind."""
    calls: list[int] = []

    def call() -> None:
        calls.append(1)
        raise httpx.ReadTimeout("read timed out")

    with pytest.raises(SandboxTransientError, match=r"gave up after 4 attempts") as caught:
        retrying("read /x", call, policy=TINY)
    assert len(calls) == 4
    assert "read timed out" in str(caught.value)


def test_retrying_respects_the_deadline():
    """No attempt starts once the deadline would pass: far fewer than `attempts`."""
    calls: list[int] = []

    def call() -> None:
        calls.append(1)
        raise SandboxException("500: boom")

    policy = RetryPolicy(attempts=100, base_s=0.05, cap_s=0.05, deadline_s=0.2)
    with pytest.raises(SandboxTransientError, match="gave up"):
        retrying("read /x", call, policy=policy)
    assert 2 <= len(calls) < 100


@pytest.mark.parametrize(
    ("error", "mapped"),
    [
        (SandboxException("404: no"), SandboxError),
        (SandboxNotRunningException("gone"), SandboxGoneError),
    ],
)
def test_retrying_does_not_retry_what_a_retry_cannot_cure(error, mapped):
    """Not found or a gone sandbox: raised at the first attempt."""
    calls: list[int] = []

    def call() -> None:
        calls.append(1)
        raise error

    with pytest.raises(mapped):
        retrying("read /x", call, policy=TINY)
    assert len(calls) == 1


def test_a_gone_sandbox_stops_the_retries():
    """When the sandbox is known to be gone, the transient failure is SandboxGoneError."""
    with pytest.raises(SandboxGoneError, match="the sandbox is gone"):
        retrying("read /x", _raise_500, policy=TINY, gone=lambda: True)


def test_commands_retry_only_transient_failures():
    """A command's own timeout is not retried (retry_on without SandboxTimeoutError)."""
    calls: list[int] = []

    def call() -> None:
        calls.append(1)
        raise SandboxTimeoutError("command timed out")

    with pytest.raises(SandboxTimeoutError):
        retrying("command", call, policy=TINY, retry_on=(SandboxTransientError,))
    assert len(calls) == 1


def _raise_500() -> None:
    raise SandboxException("500: boom")
