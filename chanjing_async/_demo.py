"""The README's main job: upload, create, wait and download against an in-process emulator.

It joins the emulator and the client the way a user's own test would, makes its sample media,
and reports each step through a callback so that the CLI can render it.
"""

from __future__ import annotations

import math
import struct
import wave
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from .client import AsyncChanjingClient
from .emulator import EmulatorServer, EmulatorSettings
from .limits import RateLimits
from .models import LipSyncRequest, LipSyncTask

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

DEMO_VOICE = "C-f2429d07554749839849497589199916"  # the create page's example voice id
DEMO_TEXT = "君不见黄河之水天上来,奔流到海不复回。"  # the create page's own example (reference S1)


@dataclass(frozen=True)
class DemoResult:
    """One finished demo task and where its result was saved."""

    label: str
    task: LipSyncTask
    video: Path | None
    preview: Path | None


def write_sample_media(folder: Path) -> tuple[Path, Path]:
    """Write a placeholder video and a real one-second WAV tone; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    video = folder / "presenter.mp4"
    # The emulator stores bytes without decoding them; a real account needs a real video.
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(2048))
    audio = folder / "speech.wav"
    rate = 16000
    with wave.open(str(audio), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        tone = (int(8000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(rate))
        out.writeframes(b"".join(struct.pack("<h", sample) for sample in tone))
    return video, audio


async def run_demo(
    out_dir: Path, *, time_scale: float = 60.0, report: Callable[[str], None] = lambda _: None
) -> list[DemoResult]:
    """Run the end-to-end demo and return the finished tasks.

    Args:
        out_dir: where the sample media and the results are written.
        time_scale: how much faster than real time the emulator runs (60: a minute is a second).
        report: receives one line per step.
    """
    settings = EmulatorSettings(
        app_id="demo-app", secret_key="demo-secret", time_scale=time_scale, seed=7
    )
    async with EmulatorServer(settings) as emulator:
        report(f"emulator listening on {emulator.base_url} (time scale {time_scale:g})")
        video_path, audio_path = write_sample_media(out_dir / "media")
        async with AsyncChanjingClient(
            settings.app_id,
            settings.secret_key,
            base_url=emulator.base_url,
            limits=RateLimits().scaled(time_scale),
        ) as client:
            video = await client.files.upload(
                video_path, service="lip_sync_video", poll_interval=0.05
            )
            audio = await client.files.upload(
                audio_path, service="lip_sync_audio", poll_interval=0.05
            )
            report(f"uploaded {video_path.name} -> {video.id}, {audio_path.name} -> {audio.id}")
            requests = {
                "text-driven": LipSyncRequest.tts(
                    video.id, text=DEMO_TEXT, audio_man_id=DEMO_VOICE
                ),
                "audio-driven": LipSyncRequest.audio(video.id, audio_file_id=audio.id),
            }
            results: list[DemoResult] = []

            async def one(label: str, request: LipSyncRequest) -> None:
                task_id = await client.lip_sync.create(request)
                report(f"{label}: created task {task_id}")
                task = await client.lip_sync.wait(task_id, timeout=600, poll_interval=0.1)
                video_out = preview_out = None
                if task.succeeded:
                    results_dir = out_dir / "results"
                    results_dir.mkdir(parents=True, exist_ok=True)
                    video_out = await client.lip_sync.download(task, results_dir / f"{label}.mp4")
                    preview_out = await client.lip_sync.download(
                        task, results_dir / f"{label}.jpg", preview=True
                    )
                    report(f"{label}: succeeded, saved {video_out}")
                else:
                    report(f"{label}: failed: {task.msg}")
                results.append(DemoResult(label, task, video_out, preview_out))

            async with anyio.create_task_group() as group:
                for label, request in requests.items():
                    group.start_soon(one, label, request)
    return sorted(results, key=lambda result: result.label)
