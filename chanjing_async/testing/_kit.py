"""An emulator for tests, and a client and a job manager paced to its time scale.

A client made here remembers its pace, so ``paced_jobs(client)`` needs no time scale again.
"""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

from ..client import AsyncChanjingClient
from ..emulator import EmulatorServer, EmulatorSettings
from ..errors import ConfigurationError
from ..jobs import JobManager
from ._pace import DEFAULT_TIME_SCALE, Pace

APP_ID = "test-app"
SECRET_KEY = "test-secret-key"

_PACES: WeakKeyDictionary[AsyncChanjingClient, Pace] = WeakKeyDictionary()


def emulator_settings(**overrides: Any) -> EmulatorSettings:
    """Settings of a test emulator: the kit's credentials, a minute lasting one second, seed 1.

    Args:
        overrides: any ``EmulatorSettings`` field, e.g. ``task_seconds=120`` or
            ``time_scale=600``.
    """
    values: dict[str, Any] = {
        "app_id": APP_ID,
        "secret_key": SECRET_KEY,
        "time_scale": DEFAULT_TIME_SCALE,
        "seed": 1,
    }
    values.update(overrides)
    return EmulatorSettings(**values)


def paced_client(
    emulator: EmulatorServer | str, *, time_scale: float | None = None, **options: Any
) -> AsyncChanjingClient:
    """A client (not yet open) for an emulator, paced to its time scale (``Pace``).

    Args:
        emulator: a running ``EmulatorServer`` (its URL, credentials and time scale are used),
            or the base URL of an emulator started with the kit's credentials.
        time_scale: the emulator's time scale; for a URL only (default 60).
        options: ``AsyncChanjingClient`` keyword arguments, over the paced ones (e.g.
            ``base_url=`` a proxy in front of the emulator, ``limits=...``).

    Raises:
        ConfigurationError: ``time_scale`` given with an ``EmulatorServer`` (it has its own).
    """
    if isinstance(emulator, EmulatorServer):
        if time_scale is not None:
            raise ConfigurationError(
                f"time_scale={time_scale!r}: the emulator's own time scale "
                f"({emulator.settings.time_scale:g}) applies; give it in its settings"
            )
        settings = emulator.settings
        credentials = {"app_id": settings.app_id, "secret_key": settings.secret_key}
        pace, base_url = Pace(settings.time_scale), emulator.base_url
    else:
        credentials = {"app_id": APP_ID, "secret_key": SECRET_KEY}
        pace = Pace(DEFAULT_TIME_SCALE if time_scale is None else time_scale)
        base_url = emulator
    values = {**credentials, "base_url": base_url, **pace.client_options(), **options}
    client = AsyncChanjingClient(**values)
    _PACES[client] = pace
    return client


def paced_jobs(
    client: AsyncChanjingClient, *, time_scale: float | None = None, **options: Any
) -> JobManager:
    """A job manager (not yet open) on ``client``, paced to the emulator's time scale.

    Args:
        client: a client; one from ``paced_client`` brings its time scale.
        time_scale: the emulator's time scale, for a client not made by ``paced_client``.
        options: ``JobManager`` keyword arguments, over the paced ones (e.g. ``journal=``).

    Raises:
        ConfigurationError: no ``time_scale`` for a client ``paced_client`` did not make.
    """
    pace = Pace(time_scale) if time_scale is not None else _PACES.get(client)
    if pace is None:
        raise ConfigurationError(
            f"time_scale=None: {client!r} was not made by paced_client; give the time scale "
            "of its server (e.g. time_scale=60)"
        )
    return JobManager(client, **{**pace.manager_options(), **options})
