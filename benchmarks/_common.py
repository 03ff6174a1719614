"""What every scenario shares: options, the figure it reports, the emulator and client it uses."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from chanjing_async import AsyncChanjingClient, RetryPolicy
from chanjing_async.testing import APP_ID, SECRET_KEY, paced_client
from chanjing_async.testing import emulator_settings as kit_settings

if TYPE_CHECKING:
    from chanjing_async.emulator import EmulatorSettings

__all__ = [
    "APP_ID",
    "LATENCY",
    "SECRET_KEY",
    "Figure",
    "Options",
    "emulator_settings",
    "make_client",
    "percentile",
]

# One-way network latency at real scale (issue 5): 50 ms + exponential(150 ms), and 5 % of
# requests take a tail of 0.5-3 s; the emulator divides it by the time scale like the windows.
LATENCY: dict[str, Any] = {
    "latency_base_seconds": 0.05,
    "latency_mean_seconds": 0.15,
    "latency_tail_rate": 0.05,
    "latency_tail_seconds": (0.5, 3.0),
}


@dataclass(frozen=True)
class Options:
    """How a run goes.

    Attributes:
        smoke: tiny sizes, to check quickly that every scenario still works (CI).
        seed: seed of the emulator's random latency and task fates.
    """

    smoke: bool = False
    seed: int = 1


@dataclass
class Figure:
    """One measured figure: ours against a baseline measured in the same run.

    Attributes:
        scenario: e.g. ``create limiter``.
        case: what was run, e.g. ``100 creates, sliding-window server``.
        metric: what ``ours`` and ``baseline`` measure, e.g. ``last create / ideal``.
        ours: the SDK's value.
        baseline_name: what it is compared with, e.g. ``AsyncLimiter(10, 60)``.
        baseline: the baseline's value (None when the comparison is to a bound).
        ratio: the headline ratio, as the scenario defines it (see ``ratio_label``).
        ratio_label: how ``ratio`` reads, e.g. ``baseline / ours``.
        goal: the goal in words, e.g. ``<= 1.05 and 0 x 40001``.
        met: whether the goal was met.
        extra: further numbers worth keeping (counts, percentiles ...).
    """

    scenario: str
    case: str
    metric: str
    ours: float
    baseline_name: str
    baseline: float | None
    ratio: float | None
    ratio_label: str
    goal: str
    met: bool
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("ours", "baseline", "ratio"):
            value = data[name]
            if isinstance(value, float) and not math.isfinite(value):
                data[name] = None
        return data


def emulator_settings(
    time_scale: float, seed: int, *, latency: bool = True, **overrides: Any
) -> EmulatorSettings:
    """The test kit's emulator settings at ``time_scale``, seeded, with random latency."""
    values: dict[str, Any] = {"time_scale": time_scale, "seed": seed}
    values.update(LATENCY if latency else {})
    values.update(overrides)
    return kit_settings(**values)


def make_client(base_url: str, time_scale: float, **overrides: Any) -> AsyncChanjingClient:
    """The test kit's client paced for an emulator running ``time_scale`` times faster.

    Its limits and its processing horizon (``Timeouts.create_horizon``, 300 s) are scaled: a
    create whose answer is lost keeps its limiter slot for 300 real-scale seconds, not 300
    wall seconds (minutes of a run). The request timeouts keep their wall defaults: a loopback
    round trip does not shrink with the scale, and a timeout is a fault only the late-creates
    scenario injects (with its own scaled ``Timeouts``). Up to five quick retries.
    """
    options: dict[str, Any] = {"retry": RetryPolicy(max_retries=5, initial=0.01, maximum=0.1)}
    options.update(overrides)
    return paced_client(base_url, time_scale=time_scale, **options)


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values``, nearest rank."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]
