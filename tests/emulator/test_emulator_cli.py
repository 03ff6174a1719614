"""The emulator and the demo as a user meets them, through the real ``chanjing`` command.

``chanjing emulator`` says which credentials it accepts and how to point the command line and
the SDK at it, refuses an address it cannot listen on in one line, and refuses unknown voices
and over-long texts; ``chanjing demo`` leaves the current folder alone and says its results
are placeholders. ``python -m chanjing_async.emulator`` turns its arguments into settings
(a bad one exits 2 with the setting's message) and serves until Ctrl-C.

The ``chanjing`` runs are slow (a subprocess each); the argument checks run in process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import select
import shlex
import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import anyio
import pytest

from chanjing_async import AsyncChanjingClient, RateLimits
from chanjing_async.emulator import EmulatorSettings
from chanjing_async.emulator.__main__ import build_parser, main, settings_from_args
from tests.support import VOICE, EmulatorProcess, start_emulator_process

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.anyio


CHANJING = [sys.executable, "-m", "chanjing_async"]
BANNER_END = b"Ctrl-C stops it.\n"


def chanjing(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the ``chanjing`` command to its end."""
    return subprocess.run(
        [*CHANJING, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=60
    )


def read_banner(process: subprocess.Popen[bytes], timeout: float = 10.0) -> str:
    """What the emulator prints once it listens (up to its last line), within ``timeout``."""
    assert process.stdout is not None
    fd, data, deadline = process.stdout.fileno(), b"", time.monotonic() + timeout
    while not data.endswith(BANNER_END):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return data.decode()


@pytest.fixture
def default_emulator() -> Iterator[str]:
    """``chanjing emulator`` with its built-in credentials at time scale 60: its banner."""
    process = subprocess.Popen(
        [*CHANJING, "emulator", "--port", "0", "--time-scale", "60"], stdout=subprocess.PIPE
    )
    try:
        yield read_banner(process)
    finally:
        process.terminate()
        process.wait(timeout=10)
        assert process.stdout is not None
        process.stdout.close()


@pytest.mark.slow
def test_the_banner_says_how_to_point_the_cli_and_the_sdk_at_it(
    default_emulator: str, tmp_path: Path
) -> None:
    banner = default_emulator
    assert banner.endswith(BANNER_END.decode()), banner
    assert "app id 'emulator-app' and secret key 'emulator-secret'" in banner
    # The export line, pasted into a shell, points the command line at this emulator.
    (export,) = [line for line in banner.splitlines() if line.startswith("  export ")]
    exported = dict(word.split("=", 1) for word in shlex.split(export)[1:])
    assert exported["CHANJING_TIME_SCALE"] == "60"
    env = {**os.environ, "HOME": str(tmp_path), **exported}
    run = chanjing("voices", "--json", env=env)
    assert run.returncode == 0, run.stderr
    assert VOICE in run.stdout
    # The SDK line, run as printed, gets an answer too.
    (line,) = [line.strip() for line in banner.splitlines() if "AsyncChanjingClient(" in line]
    client = eval(line, {"AsyncChanjingClient": AsyncChanjingClient, "RateLimits": RateLimits})

    async def voices() -> list[str]:
        async with client:
            return [voice.id for voice in (await client.voices.list(size=50)).items]

    assert VOICE in asyncio.run(voices())


@pytest.mark.slow
def test_help_shows_the_built_in_credentials_and_defaults() -> None:
    run = chanjing("emulator", "--help")
    assert run.returncode == 0, run.stderr
    text = " ".join(run.stdout.split())  # argparse wraps at the terminal's width
    for default in ("(default: emulator-app)", "(default: emulator-secret)", "(default: 8080)"):
        assert default in text


@pytest.mark.slow
def test_a_busy_port_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = chanjing("emulator", "--port", str(port))
    assert run.returncode == 2
    assert run.stderr == (
        f"chanjing emulator: error: port {port} is in use: "
        "choose another with --port (0 picks a free one)\n"
    )
    assert run.stdout == ""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--port", "70000"], "'70000' is no port: use 0 to 65535"),
        (["--port", "eighty"], "'eighty' is no port"),
        (["--host", "nowhere.invalid", "--port", "0"], "cannot listen on nowhere.invalid:0"),
        (["--time-scale", "0"], "time_scale must be positive"),
        (["--fail-rate", "2"], "fail_rate must be between 0 and 1"),
        (["--voice", " "], "extra_voices must hold non-empty strings"),
        (["--colour"], "unrecognized arguments: --colour"),
    ],
)
def test_bad_flags_exit_2_without_a_traceback(args: list[str], expected: str) -> None:
    run = chanjing("emulator", *args)
    assert run.returncode == 2
    assert expected in run.stderr
    assert "Traceback" not in run.stderr


# -- voices and texts ---------------------------------------------------------------------------


@pytest.fixture
def voiced_emulator() -> Iterator[EmulatorProcess]:
    """A test emulator that also accepts the customised voice ``C-mine``."""
    running = start_emulator_process("--voice", "C-mine")
    try:
        yield running
    finally:
        running.stop()


def create(
    emulator: EmulatorProcess, folder: Path, voice: str, text: str = "你好"
) -> subprocess.CompletedProcess[str]:
    """``chanjing lipsync create`` of a text-driven task."""
    video = folder / "talk.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(256))
    env = emulator.env(HOME=str(folder))
    args = ["lipsync", "create", "--video", str(video), "--text", text, "--voice", voice]
    return chanjing(*args, env=env)


def creates(emulator: EmulatorProcess) -> int:
    accepted: int = emulator.stats()["tasks_created"]
    return accepted


@pytest.mark.slow
@pytest.mark.parametrize(
    ("voice", "expected"),
    [
        ("C-doesnotexist", "没有找到对应的声音ID 'C-doesnotexist'"),
        ("晓晓", "'晓晓' is a voice name, its id is c52ba7f8141cd5221b965edf83525f20"),
    ],
)
def test_an_unknown_voice_is_refused_and_nothing_is_created(
    voiced_emulator: EmulatorProcess, tmp_path: Path, voice: str, expected: str
) -> None:
    run = create(voiced_emulator, tmp_path, voice)
    assert run.returncode != 0
    assert "tts_config.audio_man_id" in run.stderr
    assert expected in run.stderr
    assert creates(voiced_emulator) == 0


@pytest.mark.slow
def test_known_voices_are_accepted(voiced_emulator: EmulatorProcess, tmp_path: Path) -> None:
    for voice in (VOICE, "c52ba7f8141cd5221b965edf83525f20", "C-mine"):  # 晓晓's id; --voice
        run = create(voiced_emulator, tmp_path, voice)
        assert run.returncode == 0, run.stderr
    assert creates(voiced_emulator) == 3


@pytest.mark.slow
def test_an_over_long_text_is_refused(voiced_emulator: EmulatorProcess, tmp_path: Path) -> None:
    run = create(voiced_emulator, tmp_path, VOICE, text="长" * 4000)
    assert run.returncode != 0
    assert "tts_config.text" in run.stderr
    assert "3999 characters" in run.stderr or "3,999 characters" in run.stderr
    assert creates(voiced_emulator) == 0


# -- the demo -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_demo_leaves_the_current_folder_alone(tmp_path: Path) -> None:
    cwd, temp = tmp_path / "checkout", tmp_path / "tmp"
    cwd.mkdir()
    temp.mkdir()
    env = {**os.environ, "HOME": str(tmp_path), "TMPDIR": str(temp)}
    run = chanjing("demo", env=env, cwd=cwd)
    assert run.returncode == 0, run.stdout + run.stderr
    assert list(cwd.iterdir()) == []
    (folder,) = temp.iterdir()
    assert folder.name.startswith("chanjing-demo-")
    results = sorted(path.name for path in (folder / "results" / "text").iterdir())
    assert results[:2] == ["clip-01.jpg", "clip-01.mp4"]
    output = " ".join((run.stdout + run.stderr).split())
    assert f"demo folder: {folder}" in output  # printed at the start and at the end
    assert output.count(str(folder)) >= 2
    assert "placeholder files of a few bytes, not real videos" in output
    assert "--retry-failed" not in output  # the row fails on purpose; a demo starts afresh


@pytest.mark.slow
def test_the_demo_refuses_a_file_as_its_folder(tmp_path: Path) -> None:
    taken = tmp_path / "notes.txt"
    taken.write_text("mine", encoding="utf-8")
    run = chanjing("demo", "--out", str(taken), env={**os.environ, "HOME": str(tmp_path)})
    assert run.returncode == 2
    assert run.stderr == f"error: --out={str(taken)!r}: is a file: give a folder\n"
    assert taken.read_text(encoding="utf-8") == "mine"


# -- python -m chanjing_async.emulator --------------------------------------------------------


def test_cli_arguments_become_settings() -> None:
    argv = (
        "--app-id a --secret-key s --time-scale 60 --task-seconds 5 --file-ready-seconds 1"
        " --fail-rate 0.1 --billing-fail-rate 0.2 --rate-window fixed --no-callbacks --seed 7"
        " --port 0"
    )
    ns = build_parser().parse_args(argv.split())
    settings = settings_from_args(ns)
    assert settings == dataclasses.replace(
        EmulatorSettings(),
        app_id="a",
        secret_key="s",
        time_scale=60.0,
        task_seconds=5.0,
        file_ready_seconds=1.0,
        fail_rate=0.1,
        billing_fail_rate=0.2,
        rate_window="fixed",
        callbacks=False,
        seed=7,
    )
    assert (ns.host, ns.port) == ("127.0.0.1", 0)
    assert settings_from_args(build_parser().parse_args([])) == EmulatorSettings()


def test_cli_rejects_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--time-scale", "0"])
    assert exit_info.value.code == 2
    assert "time_scale must be positive" in capsys.readouterr().err


async def test_cli_serves_until_interrupted() -> None:
    command = [sys.executable, "-m", "chanjing_async.emulator", "--port", "0"]
    command += ["--secret-key", "do-not-print-me", "--time-scale", "60"]
    async with await anyio.open_process(command) as process:
        assert process.stdout is not None
        banner = ""
        with anyio.fail_after(10):
            while not banner.endswith("Ctrl-C stops it.\n"):
                banner += (await process.stdout.receive()).decode()
        process.send_signal(signal.SIGINT)
        try:
            with anyio.fail_after(10):
                assert await process.wait() == 0
        finally:
            if process.returncode is None:
                process.kill()  # a failure, not a hang on exit
        assert re.match(
            r"Chanjing emulator listening on http://127\.0\.0\.1:\d+ "
            r"\(app_id=emulator-app, time scale 60\)\n",
            banner,
        )
        assert "do-not-print-me" not in banner
        assert "CHANJING_SECRET_KEY='<the --secret-key you gave>'" in banner


def test_cli_list_order_option() -> None:
    for order in ("newest", "oldest", "random"):
        ns = build_parser().parse_args(["--list-order", order])
        assert settings_from_args(ns).list_order == order
    assert build_parser().parse_args([]).list_order == "newest"


def test_cli_rejects_an_unknown_list_order(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--list-order", "sorted"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'sorted'" in capsys.readouterr().err


def test_cli_result_url_ttl_and_decode_check_options(capsys: pytest.CaptureFixture[str]) -> None:
    ns = build_parser().parse_args(["--result-url-ttl", "120", "--no-decode-check"])
    settings = settings_from_args(ns)
    assert (settings.result_url_ttl_seconds, settings.decode_check) == (120.0, False)
    defaults = settings_from_args(build_parser().parse_args([]))
    assert (defaults.result_url_ttl_seconds, defaults.decode_check) == (None, True)
    with pytest.raises(SystemExit) as exit_info:
        main(["--result-url-ttl", "0"])
    assert exit_info.value.code == 2
    assert "result_url_ttl_seconds must be None or a positive" in capsys.readouterr().err


def test_cli_latency_options(capsys: pytest.CaptureFixture[str]) -> None:
    argv = "--latency-base 0.05 --latency-mean 0.15 --latency-tail-rate 0.05 --latency-tail 0.5 3"
    settings = settings_from_args(build_parser().parse_args(argv.split()))
    assert (
        settings.latency_base_seconds,
        settings.latency_mean_seconds,
        settings.latency_tail_rate,
        settings.latency_tail_seconds,
    ) == (0.05, 0.15, 0.05, (0.5, 3.0))
    assert "--latency-tail LO HI" in build_parser().format_help()
    with pytest.raises(SystemExit) as exit_info:
        main(["--latency-tail", "3", "1"])
    assert exit_info.value.code == 2
    assert "latency_tail_seconds must have low <= high" in capsys.readouterr().err
