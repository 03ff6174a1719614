"""The README's main job: sample media and a 12-row manifest for ``chanjing demo``.

The CLI runs the manifest through ``batch run`` against an embedded emulator: eight
text-driven rows, three audio-driven rows and one whose video cannot be decoded, which fails
on purpose. The results are the emulator's placeholder files, not real videos.
"""

from __future__ import annotations

import csv
import math
import struct
import wave
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

# The create page's example voice id, listed first in the emulator's catalogue (示例声音).
DEMO_VOICE = "C-f2429d07554749839849497589199916"
DEMO_TEXTS = (  # the first is the create page's own example (reference S1)
    "君不见黄河之水天上来,奔流到海不复回。",
    "大家好,欢迎来到今天的直播间。",
    "本周新品上架,限时八折。",
    "感谢您的耐心等待。",
    "今天我们来聊一聊人工智能。",
    "点击下方链接,立即报名。",
    "祝您生活愉快,再见!",
    "Hello from the Chanjing lip-sync demo.",
)
FAILING_ROW = "broken-video"


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


def write_demo_manifest(folder: Path) -> Path:
    """Write the sample media and ``manifest.csv`` (12 rows) into ``folder``; return its path."""
    write_sample_media(folder / "media")
    broken = folder / "media" / "broken.mp4"
    broken.write_bytes(b"this is not a video" * 64)  # no MP4 header: the task fails
    rows = [
        {
            "output": f"text/clip-{n + 1:02d}",
            "video": "media/presenter.mp4",
            "text": text,
            "voice": DEMO_VOICE,
        }
        for n, text in enumerate(DEMO_TEXTS)
    ]
    rows += [
        {
            "output": f"audio/clip-{n + 1:02d}",
            "video": "media/presenter.mp4",
            "audio": "media/speech.wav",
            "volume": str(volume),
        }
        for n, volume in enumerate((100, 80, 60))
    ]
    rows.append(
        {
            "output": FAILING_ROW,
            "video": "media/broken.mp4",
            "text": DEMO_TEXTS[0],
            "voice": DEMO_VOICE,
        }
    )
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, ["output", "video", "text", "voice", "audio", "volume"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest
