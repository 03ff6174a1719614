"""Random one-way network latency: one independent draw per trip, inbound and outbound."""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .settings import EmulatorSettings


class NetworkLatency:
    """Draws and sleeps the one-way trips between a client and the emulator.

    A trip takes ``latency_base_seconds`` plus an exponential draw of mean
    ``latency_mean_seconds``, except that with probability ``latency_tail_rate`` it takes a
    uniform draw from ``latency_tail_seconds`` instead; all real-scale, divided by the time
    scale. The draws come from their own generator, seeded from the settings seed (salted), so
    they never shift task fates or list orders and a seeded run draws the same sequence.

    Attributes:
        enabled: Whether any trip can take time; when False, trips neither draw nor sleep.
    """

    def __init__(self, settings: EmulatorSettings) -> None:
        """Create the generator.

        Args:
            settings: The emulator settings.
        """
        self._settings = settings
        self._random = random.Random(None if settings.seed is None else f"latency:{settings.seed}")
        self.enabled = bool(
            settings.latency_base_seconds
            or settings.latency_mean_seconds
            or (settings.latency_tail_rate and any(settings.latency_tail_seconds))
        )

    def draw(self) -> float:
        """One independent one-way delay, in emulator seconds."""
        settings = self._settings
        rng = self._random
        if rng.random() < settings.latency_tail_rate:
            low, high = settings.latency_tail_seconds
            seconds = rng.uniform(low, high)
        else:
            seconds = settings.latency_base_seconds
            if settings.latency_mean_seconds:
                seconds += rng.expovariate(1 / settings.latency_mean_seconds)
        return settings.scaled(seconds)

    async def trip(self) -> None:
        """Sleep one one-way trip; returns at once when the latency is off."""
        if self.enabled:
            await asyncio.sleep(self.draw())
