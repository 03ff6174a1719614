"""The server clock estimate: bounds that always hold the true offset, Date headers as a
fallback only, clock steps noticed."""

from __future__ import annotations

import math
import random
from email.utils import formatdate

from chanjing_async.client._clock import DATE_SLACK, ServerClock

MONOTONIC_ZERO = 1_000.0


def trip(rng: random.Random, offset: float, start: float) -> tuple[int, float, float]:
    """A request sent at monotonic ``start``, read by a server whose clock is ``offset`` ahead."""
    sent = start
    read = sent + rng.uniform(0.0, 0.5)
    answered = read + rng.uniform(0.0, 0.5)
    return math.floor(read + offset), sent, answered


def date(reading: int) -> str:
    return formatdate(reading, usegmt=True)


def test_nothing_said_means_unbounded() -> None:
    clock = ServerClock()
    assert clock.offset() == (-math.inf, math.inf)
    assert not clock.bounded
    assert clock.skew() == 0.0
    clock.observe_date(None, 1.0, 2.0)
    clock.observe_date("not a date", 1.0, 2.0)
    assert not clock.bounded


def test_create_time_bounds_hold_the_true_offset_and_narrow() -> None:
    rng = random.Random(7)
    for offset in (-600.0, -5.0, 0.3, 9.0, 600.0):
        clock = ServerClock()
        widths = []
        for index in range(40):
            reading, sent, answered = trip(rng, offset, MONOTONIC_ZERO + index * 1.37)
            clock.observe_task(reading, sent, answered)
            low, high = clock.offset()
            assert low <= offset < high, (offset, low, high)
            widths.append(high - low)
        assert widths[-1] < widths[0]
        assert widths[-1] < 1.0


def test_date_alone_is_widened_by_the_slack() -> None:
    clock = ServerClock()
    reading, sent, answered = trip(random.Random(1), 600.0, MONOTONIC_ZERO)
    clock.observe_date(date(reading), sent, answered)
    low, high = clock.offset()
    assert clock.bounded
    assert low == reading - answered - DATE_SLACK
    assert high == reading + 1 - sent + DATE_SLACK
    # A proxy whose clock is 1.5 s off still leaves the origin's offset inside the bounds.
    proxy = ServerClock()
    proxy.observe_date(date(math.floor(reading - 1.5)), sent, answered)
    low, high = proxy.offset()
    assert low <= 600.0 < high


def test_create_time_wins_over_a_proxy_date() -> None:
    rng = random.Random(3)
    clock = ServerClock()
    for index in range(20):
        start = MONOTONIC_ZERO + index
        reading, sent, answered = trip(rng, 10.0, start)
        clock.observe_task(reading, sent, answered)
        # A proxy 5 s behind the origin, the same 5 s on every answer: no step.
        proxy_reading, sent, answered = trip(rng, 5.0, start + 0.5)
        clock.observe_date(date(proxy_reading), sent, answered)
        low, high = clock.offset()
        assert low <= 10.0 < high
    assert clock.steps == 0


def test_a_stepped_server_clock_is_noticed_and_followed() -> None:
    rng = random.Random(5)
    clock = ServerClock()
    for index in range(10):
        reading, sent, answered = trip(rng, 0.0, MONOTONIC_ZERO + index * 1.37)
        clock.observe_task(reading, sent, answered)
        reading, sent, answered = trip(rng, 0.0, MONOTONIC_ZERO + index * 1.37 + 0.5)
        clock.observe_date(date(reading), sent, answered)
    assert clock.offset()[1] - clock.offset()[0] < 1.1
    # The server's clock is stepped 120 s ahead: its next Date contradicts the old create_time.
    reading, sent, answered = trip(rng, 120.0, MONOTONIC_ZERO + 20)
    clock.observe_date(date(reading), sent, answered)
    assert clock.steps == 1
    low, high = clock.offset()
    assert low <= 120.0 < high  # from the Date, widened, until a create_time comes again
    reading, sent, answered = trip(rng, 120.0, MONOTONIC_ZERO + 21)
    clock.observe_task(reading, sent, answered)
    low, high = clock.offset()
    assert low <= 120.0 < high
    assert high - low <= 2.0  # one create_time: its second and the trip, no Date slack


def test_the_newest_consistent_create_times_win() -> None:
    rng = random.Random(9)
    clock = ServerClock()
    for index in range(10):
        clock.observe_task(*trip(rng, -30.0, MONOTONIC_ZERO + index))
    for index in range(3):
        clock.observe_task(*trip(rng, 45.0, MONOTONIC_ZERO + 20 + index))
    low, high = clock.offset()
    assert low <= 45.0 < high
    earliest, latest = clock.to_server(MONOTONIC_ZERO)
    assert (earliest, latest) == (MONOTONIC_ZERO + low, MONOTONIC_ZERO + high)
