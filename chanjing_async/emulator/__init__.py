"""A local emulator of the Chanjing lip-sync Open API, for tests, demos and benchmarks.

It is an independent reading of the API reference and imports nothing from the SDK. Durations
are divided by ``EmulatorSettings.time_scale``, so a documented minute can last one second.

Example:
    >>> settings = EmulatorSettings(app_id="app", secret_key="secret", time_scale=60)
    >>> async with EmulatorServer(settings) as emu:  # doctest: +SKIP
    ...     emu.inject(Fault(endpoint="create", kind="drop_after"))
    ...     ...  # point a client at emu.base_url
"""

from __future__ import annotations

from ._faults import Fault as Fault
from ._faults import FaultRate as FaultRate
from ._pipeline import STATE_KEY as STATE_KEY
from .app import create_app as create_app
from .server import EmulatorServer as EmulatorServer
from .server import serve as serve
from .settings import EmulatorSettings as EmulatorSettings
from .state import EmulatorState as EmulatorState

__all__ = [
    "STATE_KEY",
    "EmulatorServer",
    "EmulatorSettings",
    "EmulatorState",
    "Fault",
    "FaultRate",
    "create_app",
    "serve",
]
