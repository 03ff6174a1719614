"""A process that uploads one large file through a JobManager and reports its memory.

Run by ``tests/jobs/test_uploads.py`` from the repository root::

    python -m tests.support.upload_rss_worker <file>

The emulator runs in this process too, so its upload handler's memory counts. After a warm-up
job on a small file (imports, sessions, token), the peak resident size is reset; then one job
hashes and uploads ``<file>`` and waits for its task. It prints one JSON line: the resident
size before (``before``), the peak during the job (``peak``), the bytes the emulator received
(``received``), and the longest the event loop went without running a 10 ms ticker
(``loop_lag``, seconds).
"""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path

import anyio

from benchmarks import _rss
from chanjing_async import LipSyncJob, Timeouts
from chanjing_async.emulator import EmulatorServer
from tests.support import VOICE, emulator_settings, job_manager, make_client


async def main(big: Path) -> None:
    small = big.with_name("warm-up.mp4")
    small.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(4096))
    timeouts = Timeouts(total=60.0, connect=2.0, upload=600.0, create_horizon=5.0)
    async with (
        EmulatorServer(emulator_settings(file_ready_seconds=0.0)) as emulator,
        make_client(emulator.base_url, timeouts=timeouts) as client,
        job_manager(client) as jobs,
    ):
        warm = await jobs.submit(LipSyncJob.tts(small, text="warm", audio_man_id=VOICE))
        await warm.wait(timeout=30)
        gc.collect()
        _rss.reset_peak()
        before = _rss.current()
        lag = 0.0
        async with anyio.create_task_group() as group:

            async def ticker() -> None:
                nonlocal lag
                while True:
                    started = time.monotonic()
                    await anyio.sleep(0.01)
                    lag = max(lag, time.monotonic() - started - 0.01)

            group.start_soon(ticker)
            handle = await jobs.submit(LipSyncJob.tts(big, text="big", audio_man_id=VOICE))
            task = await handle.wait(timeout=300)
            group.cancel_scope.cancel()
        peak = _rss.peak()
        video_id = emulator.state.tasks[task.id].request["video_file_id"]
        received = emulator.state.files[video_id].bytes
    report = {"before": before, "peak": peak, "received": received, "loop_lag": lag}
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    anyio.run(main, Path(sys.argv[1]))
