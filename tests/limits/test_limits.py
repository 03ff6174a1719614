"""Rate limiters: admission decisions on a fake clock, then real waits with short windows."""

from __future__ import annotations

import math
import random
import re
import time
from contextlib import AsyncExitStack
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from chanjing_async.errors import ConfigurationError
from chanjing_async.limits import (
    Rate,
    RateLimiter,
    RateLimits,
    SlidingWindowLimiter,
    TokenBucketLimiter,
)

if TYPE_CHECKING:
    from anyio.abc import TaskStatus

pytestmark = pytest.mark.anyio


class FakeClock:
    """A clock that only moves when the test sets ``now``."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def record_admission(limiter: RateLimiter, admitted: list[float]) -> None:
    """Take one slot and record when it was granted."""
    async with limiter.slot() as slot:
        admitted.append(slot.admitted_at)


def fake_limiter(
    limit: int = 2, window: float = 10.0, margin: float = 1.0
) -> tuple[SlidingWindowLimiter, FakeClock]:
    clock = FakeClock()
    return SlidingWindowLimiter(limit, window, margin=margin, clock=clock), clock


# --- Decisions on a fake clock ---------------------------------------------------------------


async def test_first_limit_requests_are_admitted_at_once() -> None:
    limiter, _ = fake_limiter(limit=3)
    async with AsyncExitStack() as stack:
        slots = [await stack.enter_async_context(limiter.slot()) for _ in range(3)]
        assert [slot.admitted_at for slot in slots] == [0.0, 0.0, 0.0]
        assert limiter.in_flight == 3
        assert limiter.next_free() == math.inf  # only a release can free a slot
    assert limiter.in_flight == 0


async def test_next_request_waits_for_release_plus_window_and_margin() -> None:
    limiter, clock = fake_limiter(limit=2, window=10.0, margin=1.0)
    async with limiter.slot():
        pass  # released at 0
    clock.now = 2.0
    async with limiter.slot():
        pass  # released at 2
    clock.now = 5.0
    assert limiter.next_free() == 11.0  # the older release + window + margin
    clock.now = 11.0
    assert limiter.next_free() == 11.0
    async with limiter.slot() as slot:
        assert slot.admitted_at == 11.0
        # One in flight leaves room for one more: the latest release must age now.
        assert limiter.next_free() == 13.0


async def test_in_flight_request_blocks_until_it_exits() -> None:
    limiter, clock = fake_limiter(limit=1)
    async with limiter.slot():
        clock.now = 100.0  # a slow response: the window counts from its arrival
        assert limiter.next_free() == math.inf
    assert limiter.next_free() == 111.0


async def test_hold_keeps_the_slot_counted_after_exit() -> None:
    limiter, clock = fake_limiter(limit=1)
    async with limiter.slot() as slot:
        clock.now = 1.0
        slot.hold(5.0)
        slot.hold(2.0)  # the longest hold wins
        assert slot.held == 5.0
        with pytest.raises(ValueError, match=re.escape("seconds=-1.0: must be a finite")):
            slot.hold(-1.0)
    assert limiter.next_free() == 1.0 + 5.0 + 11.0


async def test_penalize_blocks_admission_and_never_shortens_a_block() -> None:
    limiter, clock = fake_limiter(limit=5)
    clock.now = 3.0
    limiter.penalize()
    assert limiter.next_free() == 14.0  # now + window + margin
    limiter.penalize(until=8.0)
    assert limiter.next_free() == 14.0
    limiter.penalize(until=20.0)
    assert limiter.next_free() == 20.0
    with pytest.raises(ValueError, match=re.escape("until=nan")):
        limiter.penalize(until=math.nan)
    clock.now = 20.0
    async with limiter.slot() as slot:
        assert slot.admitted_at == 20.0


def test_seed_preloads_the_latest_releases() -> None:
    limiter, clock = fake_limiter(limit=2, window=10.0, margin=0.0)
    limiter.seed([5.0, -3.0, 1.0])  # only the two latest can matter
    assert limiter.next_free() == 11.0
    with pytest.raises(ValueError, match="must be finite"):
        limiter.seed([12.0, math.inf])
    assert limiter.next_free() == 11.0  # a rejected seed records nothing
    clock.now = 11.0
    assert limiter.next_free() == 11.0


async def test_waiter_is_admitted_when_the_injected_clock_allows() -> None:
    # The window doubles as the real sleep between re-checks of the fake clock.
    limiter, clock = fake_limiter(limit=1, window=0.04, margin=0.0)
    async with limiter.slot():
        pass  # released at 0
    admitted: list[float] = []

    with anyio.fail_after(2):
        async with anyio.create_task_group() as tg:
            tg.start_soon(record_admission, limiter, admitted)
            await anyio.sleep(0.1)
            assert (admitted, limiter.queue_depth) == ([], 1)
            clock.now = 0.039
            await anyio.sleep(0.05)
            assert admitted == []
            clock.now = 0.04
    assert admitted == [0.04]
    assert limiter.queue_depth == 0


BAD_RATES: list[tuple[dict[str, Any], str]] = [
    ({"limit": 0}, "limit=0: must be an integer >= 1"),
    ({"limit": 2.5}, "limit=2.5: must be an integer >= 1"),
    ({"limit": True}, "limit=True: must be an integer >= 1"),
    ({"window": 0}, "window=0: must be a finite number > 0"),
    ({"window": -1.0}, "window=-1.0: must be a finite number > 0"),
    ({"window": math.inf}, "window=inf: must be a finite number > 0"),
    ({"margin": -0.5}, "margin=-0.5: must be a finite number >= 0"),
    ({"margin": math.nan}, "margin=nan: must be a finite number >= 0"),
]


@pytest.mark.parametrize(("override", "message"), BAD_RATES)
def test_bad_arguments_are_rejected_with_a_clear_message(
    override: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {"limit": 10, "window": 1.0, "margin": 0.0, **override}
    with pytest.raises(ConfigurationError, match=re.escape(message)) as info:
        SlidingWindowLimiter(args["limit"], args["window"], margin=args["margin"])
    assert isinstance(info.value, ValueError)
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        Rate(**args)


def test_token_bucket_rejects_bad_burst() -> None:
    with pytest.raises(ConfigurationError, match=re.escape("burst=0: must be an integer >= 1")):
        TokenBucketLimiter(10, 60.0, burst=0)


async def test_repr_shows_live_state() -> None:
    limiter, clock = fake_limiter(limit=3)
    limiter.seed([0.0])
    async with limiter.slot():
        limiter.penalize(until=5.0)
        text = repr(limiter)
    assert text.startswith("<SlidingWindowLimiter '' limit=3 window=10.0 margin=1.0")
    assert "in_flight=1 recent_releases=1 queue_depth=0 blocked_until=5.0" in text
    clock.now = 20.0
    assert "in_flight=0 recent_releases=0 queue_depth=0 blocked_until=None" in repr(limiter)


# --- Real waits, short windows ---------------------------------------------------------------


async def test_waiters_are_admitted_in_fifo_order() -> None:
    limiter = SlidingWindowLimiter(2, 0.03)
    go = anyio.Event()
    order: list[int] = []

    async def request(i: int, *, task_status: TaskStatus[None]) -> None:
        task_status.started()
        async with limiter.slot():
            order.append(i)
            await go.wait()

    with anyio.fail_after(3):
        async with anyio.create_task_group() as tg:
            for i in range(12):
                await tg.start(request, i)  # returns once request i is queued or admitted
            assert limiter.queue_depth == 10
            go.set()
    assert order == list(range(12))
    assert (limiter.queue_depth, limiter.in_flight) == (0, 0)


async def test_a_newcomer_never_overtakes_a_queued_waiter() -> None:
    limiter, clock = fake_limiter(limit=1, window=0.04, margin=0.0)
    async with limiter.slot():
        pass  # released at 0
    order: list[str] = []

    async def request(name: str, *, task_status: TaskStatus[None]) -> None:
        task_status.started()
        async with limiter.slot():
            order.append(name)

    with anyio.fail_after(2):
        async with anyio.create_task_group() as tg:
            await tg.start(request, "early")
            clock.now = 0.04  # the log has room, but "early" has not re-checked yet
            await tg.start(request, "late")
            assert (order, limiter.queue_depth) == ([], 2)
            await anyio.sleep(0.1)  # "early" re-checks 0.04 s after it queued
            assert order == ["early"]
            clock.now = 1.0  # "late" needs early's release + window
    assert order == ["early", "late"]


@pytest.mark.parametrize("released_first", [False, True], ids=["all-in-flight", "timed-wait"])
async def test_cancelled_waiter_does_not_stall_the_queue(released_first: bool) -> None:
    window = 0.05
    limiter = SlidingWindowLimiter(1, window)
    done = anyio.Event()
    admitted: dict[str, float] = {}
    released: list[float] = []
    scopes = {"b": anyio.CancelScope(), "c": anyio.CancelScope()}

    async def holder(*, task_status: TaskStatus[None]) -> None:
        async with limiter.slot():
            task_status.started()
            await done.wait()
            released.append(time.monotonic())  # never later than the recorded release

    async def request(name: str, *, task_status: TaskStatus[None]) -> None:
        with scopes[name]:
            task_status.started()
            async with limiter.slot() as slot:
                admitted[name] = slot.admitted_at

    with anyio.fail_after(2):
        async with anyio.create_task_group() as tg:
            await tg.start(holder)
            await tg.start(request, "b")
            await tg.start(request, "c")
            assert limiter.queue_depth == 2
            if released_first:
                done.set()
                await anyio.sleep(0.01)  # b, now head, sleeps until the window has passed
            scopes["b"].cancel()
            await anyio.sleep(0.01)
            assert limiter.queue_depth == 1
            done.set()
    assert list(admitted) == ["c"]
    assert scopes["b"].cancelled_caught
    assert window <= admitted["c"] - released[0] < window + 0.1
    assert (limiter.queue_depth, limiter.in_flight) == (0, 0)


async def test_release_is_recorded_on_exception_and_on_cancellation() -> None:
    limiter, clock = fake_limiter(limit=1)

    async def fail_in_flight() -> None:
        async with limiter.slot():
            clock.now = 1.0
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail_in_flight()
    assert (limiter.in_flight, limiter.next_free()) == (0, 12.0)

    clock.now = 12.0
    with anyio.CancelScope() as scope:
        async with limiter.slot():
            clock.now = 13.0
            scope.cancel()
            await anyio.sleep(1)  # cancelled at once: the request may have gone out
    assert scope.cancelled_caught
    assert (limiter.in_flight, limiter.next_free()) == (0, 24.0)


async def test_greedy_schedule_is_as_early_as_the_rule_allows_and_never_earlier() -> None:
    limit, window, count = 10, 0.15, 25
    limiter = SlidingWindowLimiter(limit, window)
    rng = random.Random(7)
    records: list[tuple[float, float]] = []  # (admitted, released) on the limiter's clock

    async def request(hold: float) -> None:
        async with limiter.slot() as slot:
            await anyio.sleep(hold)
            # Read before the limiter records its release: never later than the real one.
            records.append((slot.admitted_at, time.monotonic()))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(count):
                tg.start_soon(request, rng.uniform(0.0, 0.01))

    admitted = sorted(a for a, _ in records)
    assert len(admitted) == count
    # At most `limit` admissions in any window of length `window`.
    assert all(admitted[k + limit] - admitted[k] >= window for k in range(count - limit))
    # Completion anchoring: at each admission fewer than `limit` others were in flight or
    # released within the last window.
    for a_k, r_k in records:
        recent = [a for a, r in records if (a, r) != (a_k, r_k) and a <= a_k and r > a_k - window]
        assert len(recent) < limit
    # Job k goes out at floor((k - 1) / limit) * window, plus the holds.
    span = admitted[-1] - admitted[0]
    assert 2 * window <= span < 2 * window + 0.1


async def test_token_bucket_burst_1_spaces_requests_evenly() -> None:
    limiter = TokenBucketLimiter(4, 0.2)  # one every 0.05 s
    admitted: list[float] = []
    with anyio.fail_after(2):
        for _ in range(5):
            async with limiter.slot() as slot:
                admitted.append(slot.admitted_at)
                assert limiter.next_free() == pytest.approx(slot.admitted_at + 0.05, abs=1e-6)
    gaps = [b - a for a, b in pairwise(admitted)]
    assert all(0.049 <= gap < 0.09 for gap in gaps), gaps


async def test_token_bucket_with_burst_admits_burst_plus_limit_minus_one_per_window() -> None:
    limiter = TokenBucketLimiter(3, 0.3, burst=3)  # refills one token every 0.1 s
    admitted: list[float] = []
    with anyio.fail_after(2):
        for _ in range(6):
            async with limiter.slot() as slot:
                admitted.append(slot.admitted_at)
    assert admitted[2] - admitted[0] < 0.02  # the burst goes at once
    in_first_window = [a for a in admitted if a - admitted[0] < 0.28]
    assert len(in_first_window) == 3 + 3 - 1  # not strict: 5 in one 0.3 s window


async def test_token_bucket_honours_penalize() -> None:
    limiter = TokenBucketLimiter(10, 1.0)
    limiter.penalize()
    assert limiter.next_free() == pytest.approx(time.monotonic() + 1.0, abs=0.01)

    limiter = TokenBucketLimiter(10, 1.0)
    until = time.monotonic() + 0.1
    limiter.penalize(until=until)
    assert limiter.next_free() >= until
    admitted: list[float] = []

    with anyio.fail_after(2):
        async with anyio.create_task_group() as tg:
            tg.start_soon(record_admission, limiter, admitted)
            await anyio.sleep(0.02)
            assert limiter.queue_depth == 1
    assert admitted[0] >= until
    assert limiter.queue_depth == 0


async def test_token_bucket_penalty_reaches_a_waiter_already_in_the_bucket() -> None:
    limiter = TokenBucketLimiter(1, 0.1)
    async with limiter.slot():
        pass  # the next token comes 0.1 s later
    admitted: list[float] = []

    with anyio.fail_after(2):
        async with anyio.create_task_group() as tg:
            tg.start_soon(record_admission, limiter, admitted)
            await anyio.sleep(0.02)
            until = time.monotonic() + 0.2
            limiter.penalize(until=until)
    assert admitted[0] >= until


async def test_token_bucket_hold_is_recorded_but_delays_nothing() -> None:
    limiter = TokenBucketLimiter(10, 1.0)
    async with limiter.slot() as slot:
        slot.hold(5.0)
    assert slot.held == 5.0
    assert limiter.next_free() < slot.admitted_at + 1.0


def test_token_bucket_keeps_its_spacing_on_a_new_event_loop() -> None:
    limiter = TokenBucketLimiter(10, 1.0)  # one every 0.1 s

    async def one() -> float:
        async with limiter.slot() as slot:
            return slot.admitted_at

    first = anyio.run(one, backend="asyncio")
    second = anyio.run(one, backend="asyncio")  # a new loop: no reuse warning, no new burst
    assert second - first >= 0.099


# --- Configuration ---------------------------------------------------------------------------


def test_rate_limits_defaults_follow_the_documented_limits() -> None:
    limits = RateLimits()
    assert limits.create == Rate(10, 60.0, 1.0)
    assert limits.read == Rate(10, 1.0, 0.05)
    assert limits.other == Rate(10, 1.0, 0.05)
    assert limits.kind == "sliding"


def test_scaled_divides_every_window_and_margin() -> None:
    limits = RateLimits(kind="token_bucket").scaled(60.0)
    assert limits.create.limit == 10
    assert limits.create.window == pytest.approx(1.0)
    assert limits.create.margin == pytest.approx(1.0 / 60)
    assert limits.read.window == pytest.approx(1.0 / 60)
    assert limits.other.margin == pytest.approx(0.05 / 60)
    assert limits.kind == "token_bucket"
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(ConfigurationError, match=re.escape(f"time_scale={bad!r}")):
            RateLimits().scaled(bad)


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match=re.escape("kind='fixed': must be 'sliding'")):
        RateLimits(kind="fixed")  # type: ignore[arg-type]


def test_build_makes_fresh_limiters_of_the_chosen_kind() -> None:
    sliding = RateLimits().build()
    assert isinstance(sliding.create, SlidingWindowLimiter)
    assert (sliding.create.limit, sliding.create.window, sliding.create.margin) == (10, 60.0, 1.0)
    assert isinstance(sliding.read, SlidingWindowLimiter)
    assert sliding.read is not sliding.other
    assert RateLimits().build().create is not sliding.create
    assert "'create'" in repr(sliding.create)

    buckets = RateLimits(kind="token_bucket").build()
    assert isinstance(buckets.create, TokenBucketLimiter)
    assert buckets.create.burst == 1
    assert buckets.create.window == 61.0  # the margin widens the spacing to 6.1 s
    for limiter in (*vars(sliding).values(), *vars(buckets).values()):
        assert isinstance(limiter, RateLimiter)
