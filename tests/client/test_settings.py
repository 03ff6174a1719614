"""Settings are checked when they are made (issue 14, defect 5).

Every numeric setting goes through one check (``_checks.check_setting``): a bool, a string,
NaN, an infinity or a number out of range is refused at once with a ConfigurationError that
names the field, the value and what is allowed, never later as a TypeError, an OverflowError
or a retry that sleeps forever.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pytest

from chanjing_async import (
    AsyncChanjingClient,
    CallbackReceiver,
    ConfigurationError,
    JobManager,
    RetryPolicy,
    Timeouts,
)

if TYPE_CHECKING:
    from collections.abc import Callable

SECONDS = "must be a finite number of seconds"


def client(**options: Any) -> AsyncChanjingClient:
    return AsyncChanjingClient("app", "secret", **options)


def manager(**options: Any) -> JobManager:
    return JobManager(client(), **options)


# (what is made, the field as named, the value, what the message says is allowed)
BAD: list[tuple[Callable[[Any], object], str, object, str]] = [
    (lambda v: Timeouts(total=v), "Timeouts.total", math.inf, f"{SECONDS} > 0"),
    (lambda v: Timeouts(total=v), "Timeouts.total", "5", f"{SECONDS} > 0"),
    (lambda v: Timeouts(total=v), "Timeouts.total", True, f"{SECONDS} > 0"),
    (lambda v: Timeouts(connect=v), "Timeouts.connect", math.nan, f"{SECONDS} > 0"),
    (lambda v: Timeouts(upload=v), "Timeouts.upload", -1, f"{SECONDS} > 0"),
    (lambda v: Timeouts(create_horizon=v), "Timeouts.create_horizon", 0, f"{SECONDS} > 0"),
    (lambda v: RetryPolicy(max_retries=v), "RetryPolicy.max_retries", "2", "an integer >= 0"),
    (lambda v: RetryPolicy(max_retries=v), "RetryPolicy.max_retries", True, "an integer >= 0"),
    (lambda v: RetryPolicy(max_retries=v), "RetryPolicy.max_retries", 2.5, "an integer >= 0"),
    (lambda v: RetryPolicy(max_retries=v), "RetryPolicy.max_retries", -1, "an integer >= 0"),
    (lambda v: RetryPolicy(initial=v, maximum=v), "RetryPolicy.initial", math.inf, SECONDS),
    (lambda v: RetryPolicy(initial=v), "RetryPolicy.initial", 0, f"{SECONDS} > 0"),
    (lambda v: RetryPolicy(maximum=v), "RetryPolicy.maximum", 0.1, f"{SECONDS} >= 0.5"),
    (lambda v: RetryPolicy(maximum=v), "RetryPolicy.maximum", math.inf, f"{SECONDS} >= 0.5"),
    (lambda v: client(token_refresh_early=v), "token_refresh_early", math.inf, SECONDS),
    (lambda v: client(token_refresh_early=v), "token_refresh_early", -1, f"{SECONDS} >= 0"),
    (lambda v: client(token_refresh_early=v), "token_refresh_early", "300", SECONDS),
    (lambda v: client(timeouts=v), "timeouts", {"total": 5}, "a Timeouts, or None"),
    (lambda v: client(retry=v), "retry", 2, "a RetryPolicy, or None"),
    (lambda v: client(limits=v), "limits", "10/60", "a RateLimits, or None"),
    (lambda v: client(allow_insecure_http=v), "allow_insecure_http", "yes", "a bool, or None"),
    (lambda v: manager(job_timeout=v), "job_timeout", math.inf, f"{SECONDS} > 0"),
    (lambda v: manager(job_timeout=v), "job_timeout", True, f"{SECONDS} > 0"),
    (lambda v: manager(reconcile_settle=v), "reconcile_settle", math.nan, f"{SECONDS} >= 0"),
    (lambda v: manager(reconcile_margin=v), "reconcile_margin", 0.5, f"{SECONDS} >= 1"),
    (lambda v: manager(upload_concurrency=v), "upload_concurrency", 0, "an integer >= 1"),
    (lambda v: manager(max_create_attempts=v), "max_create_attempts", 3.0, "an integer >= 1"),
    (lambda v: manager(poll=v), "poll", {"first": 1}, "a PollPolicy, or None"),
    (lambda v: manager(journal=v), "journal", 7, "a Journal or str or PathLike, or None"),
    (lambda v: manager(retry_failed=v), "retry_failed", "yes", "a bool"),
    (lambda v: CallbackReceiver(port=v), "port", True, "an integer >= 0 and <= 65535"),
    (lambda v: CallbackReceiver(max_body=v), "max_body", 1e6, "an integer >= 1024"),
]


@pytest.mark.parametrize(
    ("make", "name", "value", "allowed"),
    BAD,
    ids=[f"{name}={value!r}" for _, name, value, _ in BAD],
)
def test_a_bad_setting_is_refused_when_made(
    make: Callable[[Any], object], name: str, value: object, allowed: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        make(value)
    message = str(caught.value)
    assert message.startswith(f"{name}={value!r}: must be ")
    assert allowed in message
    assert caught.value.__context__ is None


def test_good_settings_of_every_kind_are_taken() -> None:
    assert Timeouts(total=1, connect=0.5, upload=10**6).total == 1  # ints are numbers too
    assert RetryPolicy(max_retries=0, initial=2, maximum=2).maximum == 2
    assert client(token_refresh_early=0, retry=None, timeouts=None) is not None
    assert manager(reconcile_settle=0, reconcile_margin=1, job_timeout=10**9) is not None
    assert CallbackReceiver(port=0, max_body=1024) is not None


def test_a_retry_far_down_the_line_waits_the_maximum_not_an_overflow() -> None:
    # 2.0 ** 1024 overflows: a manager whose creates keep failing to connect reaches it.
    policy = RetryPolicy(max_retries=10_000, initial=0.5, maximum=8)
    assert policy.delay(5_000, 0.0) == 4.0
    assert policy.delay(5_000, 0.999) < 8.0


# -- plain http:// only to loopback (issue 15, finding 11) -----------------------------------

LOOPBACK = [
    "http://127.0.0.1:8080",
    "http://127.4.5.6",
    "http://localhost:9000/",
    "http://LOCALHOST",
    "http://[::1]:8080",
]
NOT_LOOPBACK = [
    "http://open-api.chanjing.cc",
    "http://10.0.0.7:8080",
    "http://[fe80::1]",
    "http://127.0.0.1.nip.io",
    "http://localhost.example.com",
    "http://0.0.0.0:8080",
]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:99999", "(port out of range 0-65535)"),
        ("http://127.0.0.1:abc", "(port could not be cast to integer value as 'abc')"),
        ("http://[::1", "(invalid ipv6 url)"),
        ("http://127.0.0.1:0", "(port 0 is no port to connect to)"),
        ("https://", "(names no host)"),
        ("ftp://example.com", "URL"),
    ],
)
def test_a_base_url_no_connection_can_use_is_a_configuration_error(url: str, why: str) -> None:
    """Such URLs failed deep in aiohttp with a ValueError (a traceback on the command line)."""
    with pytest.raises(ConfigurationError) as caught:
        client(base_url=url)
    message = str(caught.value)
    assert message.startswith(f"base_url={url.rstrip('/')!r}: must be an http:// or https:// URL")
    assert message.endswith(why)
    assert caught.value.__context__ is None


@pytest.mark.parametrize("url", NOT_LOOPBACK)
def test_plain_http_to_a_host_that_is_not_loopback_is_refused(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHANJING_ALLOW_INSECURE_HTTP", raising=False)
    with pytest.raises(ConfigurationError) as caught:
        client(base_url=url)
    message = str(caught.value)
    assert message.startswith(f"base_url={url!r}: plain http://")
    assert "allow_insecure_http=True" in message
    assert "CHANJING_ALLOW_INSECURE_HTTP=1" in message
    assert "https://" in message
    assert caught.value.__context__ is None


@pytest.mark.parametrize("url", LOOPBACK)
def test_plain_http_to_loopback_is_taken(url: str) -> None:
    assert client(base_url=url).base_url == url.rstrip("/")


def test_plain_http_elsewhere_is_taken_when_allowed_explicitly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CHANJING_ALLOW_INSECURE_HTTP", raising=False)
    url = "http://api.internal:8080"
    assert client(base_url=url, allow_insecure_http=True).base_url == url
    assert client(base_url="https://api.example.com").base_url == "https://api.example.com"
    monkeypatch.setenv("CHANJING_BASE_URL", url)
    with pytest.raises(ConfigurationError, match="plain http://"):
        client()  # from the environment too
    monkeypatch.setenv("CHANJING_ALLOW_INSECURE_HTTP", "1")
    assert client().base_url == url
    # An explicit False wins over the environment.
    with pytest.raises(ConfigurationError, match="plain http://"):
        client(allow_insecure_http=False)
