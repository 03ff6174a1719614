"""``Pace``: the client and job-manager settings for a server whose clock runs faster.

An emulator at time scale K divides every duration it keeps by K: rate windows, task and file
processing, token lifetimes. A client and a manager facing it must divide theirs alike, or they
either wait K times too long (polling, backoff) or break the server's limits (a create window
of 60 wall seconds against a server counting 1). Everything that measures the *server's* time
is scaled here; request timeouts are not: a loopback round trip does not get faster with K.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from .._checks import check_setting
from ..client import AsyncChanjingClient
from ..client._config import RetryPolicy, Timeouts
from ..jobs import JobManager
from ..jobs._poll_policy import PollPolicy
from ..limits import RateLimits

DEFAULT_TIME_SCALE = 60.0  # a documented minute lasts one second


def _defaults(callable_: Any) -> dict[str, Any]:
    """The default values of a callable's keyword parameters (one source for each number)."""
    parameters = inspect.signature(callable_).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


_CLIENT = _defaults(AsyncChanjingClient)
_MANAGER = _defaults(JobManager)


@dataclass(frozen=True)
class Pace:
    """Settings for a client and a job manager facing a server ``time_scale`` times faster.

    Example::

        pace = Pace(60)
        client = AsyncChanjingClient(app_id, key, base_url=url, **pace.client_options())
        deadline = pace.seconds(120)        # two documented minutes: 2 s

    Attributes:
        time_scale: K, how many times faster than real time the server runs (> 0).

    Raises:
        ConfigurationError: (a ValueError) ``time_scale`` is not a finite number > 0.
    """

    time_scale: float = DEFAULT_TIME_SCALE

    def __post_init__(self) -> None:
        check_setting("time_scale", self.time_scale, above=True)

    def seconds(self, real: float) -> float:
        """Wall seconds that ``real`` seconds of the server's clock last."""
        return real / self.time_scale

    @property
    def limits(self) -> RateLimits:
        """The documented limits, their windows and margins scaled."""
        return RateLimits().scaled(self.time_scale)

    @property
    def poll(self) -> PollPolicy:
        """The default polling policy, its intervals scaled."""
        return PollPolicy().scaled(self.time_scale)

    @property
    def timeouts(self) -> Timeouts:
        """Default request timeouts; the processing horizon (how long the server may still
        handle a create whose answer was lost) scaled."""
        return Timeouts(create_horizon=self.seconds(Timeouts().create_horizon))

    @property
    def retry(self) -> RetryPolicy:
        """The default number of retries, their backoff scaled."""
        default = RetryPolicy()
        return RetryPolicy(
            max_retries=default.max_retries,
            initial=self.seconds(default.initial),
            maximum=self.seconds(default.maximum),
        )

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments of ``AsyncChanjingClient``: limits, timeouts, retry, token renewal."""
        return {
            "limits": self.limits,
            "timeouts": self.timeouts,
            "retry": self.retry,
            "token_refresh_early": self.seconds(_CLIENT["token_refresh_early"]),
        }

    def manager_options(self) -> dict[str, Any]:
        """Keyword arguments of ``JobManager``: polling, job timeout, reconciliation pace.

        ``reconcile_margin`` is the least the manager accepts (1 s): it is slack on the
        server's ``create_time``, whole seconds of a wall clock that no time scale shortens.
        """
        return {
            "poll": self.poll,
            "job_timeout": self.seconds(_MANAGER["job_timeout"]),
            "reconcile_settle": self.seconds(_MANAGER["reconcile_settle"]),
            "reconcile_margin": 1.0,
        }
