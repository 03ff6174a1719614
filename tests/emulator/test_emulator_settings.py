"""The emulator's settings: each bad value refused with its name and what is allowed."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from chanjing_async.emulator import Fault, FaultRate
from tests.support import SECRET_KEY
from tests.support.emulator_helpers import BASE

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"time_scale": 0}, "time_scale must be positive"),
        ({"time_scale": math.inf}, "time_scale must be a finite number"),
        ({"task_seconds": -1}, "task_seconds must not be negative"),
        ({"fail_rate": 1.5}, "fail_rate must be between 0 and 1"),
        ({"fail_rate": 0.6, "billing_fail_rate": 0.6}, "must not exceed 1"),
        ({"rate_window": "leaky"}, "rate_window must be"),
        ({"create_limit": 0}, "create_limit must be a positive integer"),
        ({"read_limit": True}, "read_limit must be a positive integer"),
        ({"secret_key": ""}, "secret_key must be a non-empty string"),
        ({"seed": 1.5}, "seed must be an integer"),
    ],
)
def test_settings_reject_bad_values(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(BASE, **overrides)


def test_settings_repr_hides_the_secret() -> None:
    assert SECRET_KEY not in repr(BASE)
    assert BASE.scaled(60) == 1


def test_settings_reject_an_unknown_list_order() -> None:
    unknown: Any = "sorted"
    with pytest.raises(ValueError, match="list_order must be one of 'newest', 'oldest', 'random'"):
        dataclasses.replace(BASE, list_order=unknown)
    assert BASE.list_order == "newest"


@pytest.mark.parametrize("ttl", [0, -5, math.inf, math.nan, True, "60"])
def test_settings_reject_a_bad_result_url_ttl(ttl: Any) -> None:
    message = "result_url_ttl_seconds must be None or a positive finite number"
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(BASE, result_url_ttl_seconds=ttl)


def test_result_url_ttl_defaults_to_never_and_accepts_a_positive_number() -> None:
    assert BASE.result_url_ttl_seconds is None
    for ttl in (0.5, 60):
        assert dataclasses.replace(BASE, result_url_ttl_seconds=ttl).result_url_ttl_seconds == ttl


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"latency_base_seconds": -1}, "latency_base_seconds must not be negative"),
        ({"latency_mean_seconds": math.inf}, "latency_mean_seconds must be a finite number"),
        ({"latency_tail_rate": 1.5}, "latency_tail_rate must be between 0 and 1"),
        ({"latency_tail_rate": -0.1}, "latency_tail_rate must not be negative"),
        ({"latency_tail_seconds": (3.0, 1.0)}, "latency_tail_seconds must have low <= high"),
        ({"latency_tail_seconds": (1.0,)}, "latency_tail_seconds must be a \\(low, high\\) pair"),
        ({"latency_tail_seconds": "ab"}, "latency_tail_seconds must be a \\(low, high\\) pair"),
        ({"latency_tail_seconds": (-1.0, 1.0)}, "latency_tail_seconds must not be negative"),
        ({"latency_tail_seconds": (0.0, math.nan)}, "latency_tail_seconds must be a finite"),
    ],
)
def test_settings_reject_bad_latency(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(BASE, **overrides)


def test_a_latency_tail_given_as_a_list_is_stored_as_a_tuple() -> None:
    settings = dataclasses.replace(BASE, latency_tail_seconds=[1, 2.5])  # type: ignore[arg-type]
    tail: object = settings.latency_tail_seconds
    assert isinstance(tail, tuple)
    assert tail == (1, 2.5)


def test_settings_reject_fault_rates_over_one_per_endpoint() -> None:
    rates = (FaultRate("reads", "code", 0.6), FaultRate("detail", "gateway", 0.5))
    with pytest.raises(ValueError, match="fault_rates on detail add up to more than 1"):
        dataclasses.replace(BASE, fault_rates=rates)
    fault: Any = (Fault(endpoint="detail", kind="code"),)
    with pytest.raises(ValueError, match="fault_rates must be a tuple of FaultRate"):
        dataclasses.replace(BASE, fault_rates=fault)
    as_list: Any = [FaultRate("list", "code", 0.7)]
    listed = dataclasses.replace(BASE, fault_rates=as_list)
    assert isinstance(listed.fault_rates, tuple)
    assert BASE.fault_rates == ()
