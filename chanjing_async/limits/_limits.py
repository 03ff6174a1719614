"""Client-side rate limits that keep every request within the Chanjing limits.

The API allows 10 creates per minute and 10 detail/list calls per second, and answers
``code 40001`` beyond that. :class:`RateLimits` holds the rate of each endpoint group and
builds one limiter per group: the default :class:`~chanjing_async.limits.SlidingWindowLimiter`
is never rejected; :class:`~chanjing_async.limits.TokenBucketLimiter` is the classic
aiolimiter option, strict only with ``burst=1``.

Example::

    limiters = RateLimits().build()
    async with limiters.create.slot() as slot:
        try:
            task_id = await send_create(request)
        except TimeoutError:
            slot.hold(60.0)  # the create may still reach the server late
            raise
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, get_args

from .._checks import check_setting
from ..errors import ConfigurationError
from ._base import RateLimiter, check_rate
from ._sliding import SlidingWindowLimiter
from ._token_bucket import TokenBucketLimiter

__all__ = ["LimiterKind", "Limiters", "Rate", "RateLimits"]

LimiterKind = Literal["sliding", "token_bucket"]


@dataclass(frozen=True)
class Rate:
    """A limit of ``limit`` requests per ``window`` seconds, plus a safety ``margin``.

    Raises:
        ConfigurationError: (a ValueError) if limit < 1, window <= 0 or margin < 0.
    """

    limit: int
    window: float
    margin: float = 0.0

    def __post_init__(self) -> None:
        check_rate(self.limit, self.window, self.margin)


@dataclass(frozen=True)
class Limiters:
    """One limiter per endpoint group, as made by :meth:`RateLimits.build`."""

    create: RateLimiter
    read: RateLimiter
    other: RateLimiter


@dataclass(frozen=True)
class RateLimits:
    """Rates per endpoint group and the limiter kind that enforces them.

    Attributes:
        create: ``video_lip_sync/create``; documented 10 per minute, 1 s margin for the
            server's whole-second ``create_time``.
        read: ``detail`` and ``list``; documented 10 per second each. Whether they share a
            budget is undocumented, so one shared budget is the conservative default.
        other: undocumented endpoints (token, upload URL, file detail, voices).
        kind: ``"sliding"`` (default, never rejected) or ``"token_bucket"`` (burst 1).

    Raises:
        ConfigurationError: (a ValueError) if ``kind`` is unknown.
    """

    create: Rate = Rate(10, 60.0, 1.0)
    read: Rate = Rate(10, 1.0, 0.05)
    other: Rate = Rate(10, 1.0, 0.05)
    kind: LimiterKind = "sliding"

    def __post_init__(self) -> None:
        if self.kind not in get_args(LimiterKind):
            raise ConfigurationError(f"kind={self.kind!r}: must be 'sliding' or 'token_bucket'")

    def scaled(self, time_scale: float) -> RateLimits:
        """The same limits on a clock running ``time_scale`` times faster (for emulator tests).

        Raises:
            ConfigurationError: if ``time_scale`` is not a finite number > 0.
        """
        check_setting("time_scale", time_scale, above=True)

        def shrink(rate: Rate) -> Rate:
            return Rate(rate.limit, rate.window / time_scale, rate.margin / time_scale)

        return replace(
            self, create=shrink(self.create), read=shrink(self.read), other=shrink(self.other)
        )

    def build(self) -> Limiters:
        """Fresh limiters of the configured kind: one set per client, shared by its requests."""
        return Limiters(
            create=self._make("create", self.create),
            read=self._make("read", self.read),
            other=self._make("other", self.other),
        )

    def _make(self, name: str, rate: Rate) -> RateLimiter:
        if self.kind == "token_bucket":
            # No completion anchoring to add the margin to: widen the spacing instead,
            # one request every (window + margin) / limit.
            return TokenBucketLimiter(rate.limit, rate.window + rate.margin, name=name)
        return SlidingWindowLimiter(rate.limit, rate.window, margin=rate.margin, name=name)
