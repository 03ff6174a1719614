"""Imports written against the flat layout of earlier releases keep working.

Each public module path and the names its ``__all__`` listed before the subpackages (issue 17)
are importable from the same path, as the same objects the package root exports.
"""

from __future__ import annotations

import importlib

import pytest

import chanjing_async

EARLIER: dict[str, list[str]] = {
    "chanjing_async.client": ["AsyncChanjingClient"],
    "chanjing_async.jobs": ["Job", "JobManager", "JobManagerStats"],
    "chanjing_async.limits": [
        "LimiterKind",
        "Limiters",
        "Rate",
        "RateLimiter",
        "RateLimits",
        "SlidingWindowLimiter",
        "Slot",
        "TokenBucketLimiter",
    ],
    "chanjing_async.callbacks": ["CallbackReceiver", "Verdict"],
    "chanjing_async.journal": ["Journal", "JournalRow"],
    "chanjing_async.batch": [
        "BatchProgress",
        "BatchReport",
        "RowOutcome",
        "download_results",
        "journal_summary",
        "run_batch",
    ],
    "chanjing_async.redis_limits": ["RedisRateLimiter", "RedisSlidingWindowLimiter"],
    "chanjing_async.cli": ["app", "main"],
    "chanjing_async.errors": [
        "APIError",
        "AuthenticationError",
        "ChanjingError",
        "ConfigurationError",
        "CreateOutcomeUnknown",
        "FileNotReadyError",
        "HTTPStatusError",
        "InsufficientBalanceError",
        "InvalidInputError",
        "InvalidRequestError",
        "JobCancelledError",
        "JobError",
        "JobFailedError",
        "JobTimeoutError",
        "JournalError",
        "RateLimitError",
        "RedirectError",
        "RequestTimeoutError",
        "ResponseValidationError",
        "ServerError",
        "TaskNotFoundError",
        "TransportError",
        "UploadError",
        "error_for_code",
        "job_failure",
    ],
    "chanjing_async.models": [
        "AccessToken",
        "Envelope",
        "FileDetail",
        "FileStatus",
        "LipSyncRequest",
        "LipSyncTask",
        "Page",
        "PageInfo",
        "TaskStatus",
        "TtsConfig",
        "UploadUrl",
        "Voice",
        "check_page",
    ],
}


@pytest.mark.parametrize("path", sorted(EARLIER))
def test_an_earlier_public_path_still_exports_its_names(path: str) -> None:
    module = importlib.import_module(path)
    for name in EARLIER[path]:
        assert name in module.__all__, f"{path}.{name}"
        value = getattr(module, name)
        # The same object as the package root's, where the root exports it too.
        assert getattr(chanjing_async, name, value) is value, f"{path}.{name}"


def test_the_entry_point_is_where_it_was() -> None:
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "chanjing"]
    assert script.value == "chanjing_async.cli:main"
    assert script.load() is importlib.import_module("chanjing_async.cli").main
