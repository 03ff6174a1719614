"""A test kit: an emulator in this process, and a client and a job manager paced to it.

The emulator divides every duration by its time scale (60 here: a documented minute lasts one
second); ``paced_client`` and ``paced_jobs`` divide the client's and the manager's alike
(``Pace``), so a test runs at the limits, never answered 40001, and waits no real minutes::

    async with EmulatorServer(emulator_settings()) as emulator:
        async with paced_client(emulator) as client, paced_jobs(client) as jobs:
            handle = await jobs.submit(LipSyncRequest.tts(video_id, text="hi",
                                                          audio_man_id="C-..."))
            await handle.wait()
        await eventually(lambda: emulator.state.stats()["callbacks_sent"] == 1)

With pytest, the opt-in plugin ``chanjing_async.testing.pytest_plugin`` offers the same as
factory fixtures that close what they made. Nothing here imports pytest.
"""

from __future__ import annotations

from ._eventually import eventually as eventually
from ._kit import APP_ID as APP_ID
from ._kit import SECRET_KEY as SECRET_KEY
from ._kit import emulator_settings as emulator_settings
from ._kit import paced_client as paced_client
from ._kit import paced_jobs as paced_jobs
from ._pace import DEFAULT_TIME_SCALE as DEFAULT_TIME_SCALE
from ._pace import Pace as Pace

__all__ = [
    "APP_ID",
    "DEFAULT_TIME_SCALE",
    "SECRET_KEY",
    "Pace",
    "emulator_settings",
    "eventually",
    "paced_client",
    "paced_jobs",
]
