"""The test kit users get: the opt-in pytest plugin's factories, the pacing, ``eventually``."""

from __future__ import annotations

import itertools
import math
import re
import subprocess
import sys
import time
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

import anyio
import pytest

from chanjing_async import AsyncChanjingClient, ConfigurationError, LipSyncRequest
from chanjing_async.emulator import EmulatorServer
from chanjing_async.testing import emulator_settings, eventually, paced_client, paced_jobs
from tests.support import VOICE

if TYPE_CHECKING:
    from pathlib import Path

pytest_plugins = ["pytester"]

# Any warning fails the inner run; pytest-benchmark, installed here, warns under xdist.
INNER_ARGS = ("-p", "no:cacheprovider", "-p", "no:benchmark", "-W", "error")

# What a user writes: the README's "Testing your code" test, then a test that what the
# factories made is closed once the first test has ended.
USER_TESTS = """
import pytest
from chanjing_async import LipSyncJob

pytestmark = pytest.mark.anyio
MADE = []

async def test_a_job_succeeds(chanjing_emulator, chanjing_client, chanjing_jobs, tmp_path):
    video = tmp_path / "face.mp4"
    video.write_bytes(b"\\x00\\x00\\x00\\x18ftypmp42" + bytes(512))
    emulator = await chanjing_emulator(task_seconds=60)  # one second at the default scale
    client = await chanjing_client(emulator)
    jobs = await chanjing_jobs(client)
    handle = await jobs.submit(LipSyncJob.tts(video, text="你好", audio_man_id="{voice}"))
    task = await handle.wait()
    assert task.video_url.endswith(f"/{{handle.task_id}}.mp4")
    MADE.extend([emulator, client, jobs])

async def test_the_factories_closed_what_they_made():
    emulator, client, jobs = MADE
    with pytest.raises(RuntimeError, match="not running"):
        emulator.base_url
    assert repr(client).endswith(" closed>")
    with pytest.raises(RuntimeError, match="JobManager is closed"):
        await jobs.submit(LipSyncJob.tts(video_file_id="v", text="x", audio_man_id="a"))
"""


def test_a_users_test_with_the_plugin_passes_and_teardown_closes(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest('pytest_plugins = ["chanjing_async.testing.pytest_plugin"]')
    pytester.makepyfile(test_user=USER_TESTS.format(voice=VOICE))
    result = pytester.runpytest(*INNER_ARGS)
    result.assert_outcomes(passed=2)


def test_the_plugin_is_opt_in(pytester: pytest.Pytester) -> None:
    registered = [ep.value for ep in entry_points(group="pytest11")]
    assert not [value for value in registered if value.startswith("chanjing_async")]
    pytester.makepyfile("async def test_x(chanjing_emulator): pass")
    result = pytester.runpytest(*INNER_ARGS)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'chanjing_emulator' not found*"])


def test_the_kit_imports_no_pytest() -> None:
    # pytest is no runtime dependency: only the plugin module imports it.
    code = "import sys, chanjing_async.testing; print('pytest' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.anyio
async def test_a_paced_client_makes_11_creates_in_one_scaled_window_without_40001(
    media: tuple[Path, Path],
) -> None:
    # 10 creates per 60 s, at time scale 60: ten at once, the eleventh one window (1 s) later.
    # An unpaced client would wait 60 s for the eleventh, or meet 40001 without limits.
    async with EmulatorServer(emulator_settings(time_scale=60)) as emulator:
        async with paced_client(emulator) as client:
            video = await client.files.upload(media[0], service="lip_sync_video")
            start = time.monotonic()
            async with anyio.create_task_group() as group:
                for n in range(11):
                    request = LipSyncRequest.tts(video.id, text=f"job {n}", audio_man_id=VOICE)
                    group.start_soon(client.lip_sync.create, request)
            elapsed = time.monotonic() - start
        stats = emulator.state.stats()
    assert stats["endpoints"]["create"]["rejected_40001"] == 0
    assert stats["tasks_created"] == 11
    assert 1.0 <= elapsed < 2.0


@pytest.mark.anyio
async def test_eventually_fails_naming_what_it_awaited() -> None:
    checks = itertools.count()
    start = time.monotonic()
    with pytest.raises(AssertionError) as caught:
        await eventually(lambda: next(checks) > 10_000, timeout=0.1)
    assert time.monotonic() - start >= 0.1
    message = str(caught.value)
    assert message.startswith("not true within 0.1 s: ")
    assert "lambda: next(checks) > 10_000" in message
    assert f"({next(checks)} checks, the last returned False)" in message
    with pytest.raises(AssertionError, match=r"^not true within 0\.05 s: the tasks are done"):
        await eventually(lambda: False, 0.05, what="the tasks are done")


@pytest.mark.anyio
async def test_eventually_awaits_an_async_check_until_it_holds() -> None:
    calls: list[int] = []

    async def third_call() -> bool:
        calls.append(1)
        return len(calls) == 3

    await eventually(third_call, timeout=1.0)
    assert len(calls) == 3


@pytest.mark.parametrize("scale", [0, -1.0, math.inf])
def test_a_bad_time_scale_is_refused_naming_it(scale: float) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(f"time_scale={scale!r}")):
        paced_client("http://127.0.0.1:9", time_scale=scale)


def test_an_emulator_brings_its_own_time_scale() -> None:
    emulator = EmulatorServer(emulator_settings(time_scale=600))
    with pytest.raises(ConfigurationError, match=r"time_scale=60: the emulator's own .*\(600\)"):
        paced_client(emulator, time_scale=60)


def test_paced_jobs_needs_a_time_scale_for_a_client_it_did_not_pace() -> None:
    client = AsyncChanjingClient("app", "secret", base_url="http://127.0.0.1:9")
    with pytest.raises(ConfigurationError, match=r"time_scale=None: .* not made by paced_client"):
        paced_jobs(client)
    assert paced_jobs(client, time_scale=60) is not None
