"""No user mistake makes ``chanjing`` print a traceback (issue 16, item 7).

Every bad input the suite tries (the table of ``test_bad_input``, and the cases of the CLI
tests) and more (paths that are files or folders where the other is needed, an unknown task,
a wrong secret, a server or Redis that cannot be reached...) runs through the real command
in a subprocess. Each must end with one readable message and its exit code, no traceback:

* 2: bad input or configuration, found before anything was sent;
* 1: the service (or the network) refused or failed: a wrong secret key (a batch run stops
  at once, every row left for the re-run), an unknown task id, a server that cannot be
  reached.

The commands run concurrently against one emulator process (each takes about a second, most
of it Python starting), once for the module; each case is then checked on its own.
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from tests.cli.test_batch_cli import command, write_manifest
from tests.cli.test_cli_runs import closed_port
from tests.guarantees.test_bad_input import AUDIO_BYTES, CASES, VIDEO_BYTES, Case
from tests.support import VOICE, start_emulator_process

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support import EmulatorProcess


pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Mistake:
    """A command that a user may get wrong.

    Attributes:
        argv: the arguments, with the places of ``test_bad_input`` (``{dir}``, ``{video}``,
            ``{audio}``, ``{clip}``, ``{notes}``, ``{missing}``) and ``{file}`` (a text file),
            ``{folder}`` (an empty folder), ``{manifest}`` (a valid 2-row manifest),
            ``{closed}`` (a port nothing listens on), ``{busy}`` (the emulator's port).
        code: the exit code expected.
        files: files to write below the case's folder (name -> content).
        env: environment overrides; None removes the variable.
    """

    argv: tuple[str, ...]
    code: int = 2
    files: dict[str, str | bytes] = field(default_factory=dict)
    env: dict[str, str | None] = field(default_factory=dict)


BATCH = ("batch", "run", "{manifest}")
UNKNOWN_TASK = "0123456789abcdef0123456789abcdef"

MISTAKES = [
    pytest.param(Mistake(("bogus",)), id="unknown-command"),
    pytest.param(Mistake(("--bogus", "voices")), id="unknown-option"),
    pytest.param(Mistake(("--log-level", "loud", "voices")), id="log-level-unknown"),
    pytest.param(Mistake(("--time-scale", "-3", "voices")), id="time-scale-negative"),
    pytest.param(Mistake(("voices", "--size", "0")), id="voices-size-zero"),
    pytest.param(Mistake(("lipsync", "list", "--page", "0")), id="list-page-zero"),
    # ---- batch run: the manifest, the journal, the output folder
    pytest.param(Mistake(("batch", "run", "{dir}/missing.csv")), id="manifest-missing"),
    pytest.param(
        Mistake(("batch", "run", "{dir}/folder.csv"), files={"folder.csv/x": "x"}),
        id="manifest-a-folder",
    ),
    pytest.param(
        Mistake(("batch", "run", "{dir}/noise.csv"), files={"noise.csv": bytes(range(256)) * 4}),
        id="manifest-binary",
    ),
    pytest.param(Mistake((*BATCH, "--encoding", "klingon")), id="manifest-encoding-unknown"),
    pytest.param(Mistake((*BATCH, "--out", "{file}")), id="out-a-file"),
    pytest.param(Mistake((*BATCH, "--out", "{file}/results")), id="out-below-a-file"),
    pytest.param(Mistake((*BATCH, "--journal", "{folder}")), id="journal-a-folder"),
    pytest.param(Mistake((*BATCH, "--journal", "{file}/jobs.sqlite")), id="journal-below-a-file"),
    pytest.param(Mistake((*BATCH, "--journal", "{manifest}")), id="journal-not-a-journal"),
    pytest.param(Mistake(("batch", "status", "{folder}")), id="status-of-a-folder"),
    pytest.param(Mistake(("batch", "status", "{file}")), id="status-of-a-text-file"),
    # ---- tasks and files
    pytest.param(Mistake(("lipsync", "get", UNKNOWN_TASK), code=1), id="get-unknown-task"),
    pytest.param(
        Mistake(("lipsync", "wait", UNKNOWN_TASK, "--timeout", "5"), code=1),
        id="wait-unknown-task",
    ),
    pytest.param(
        Mistake(("lipsync", "download", UNKNOWN_TASK, "{dir}/x.mp4"), code=1),
        id="download-unknown-task",
    ),
    pytest.param(
        Mistake(("lipsync", "download", UNKNOWN_TASK, "{file}/x.mp4")), id="download-below-a-file"
    ),
    pytest.param(
        Mistake(("files", "upload", "{dir}/folder.mp4"), files={"folder.mp4/x": "x"}),
        id="upload-a-folder",
    ),
    pytest.param(Mistake(("files", "upload", "{missing}")), id="upload-missing"),
    pytest.param(
        Mistake(("lipsync", "create", "--video", "{folder}", "--text", "hi", "--voice", VOICE)),
        id="create-video-a-folder",
    ),
    # ---- credentials, servers
    pytest.param(
        Mistake(("voices",), env={"CHANJING_APP_ID": None, "CHANJING_SECRET_KEY": None}),
        id="credentials-missing",
    ),
    pytest.param(
        Mistake(
            ("voices",),
            files={"home/.chanjing/config.json/x": "x"},
            env={"CHANJING_SECRET_KEY": None},
        ),
        id="config-file-a-folder",
    ),
    pytest.param(Mistake(("--secret-key", "-", "voices")), id="secret-key-stdin-empty"),
    pytest.param(
        Mistake(("voices",), code=1, env={"CHANJING_SECRET_KEY": "wrong"}), id="secret-wrong"
    ),
    pytest.param(
        Mistake(("voices",), code=1, env={"CHANJING_BASE_URL": "http://127.0.0.1:{closed}"}),
        id="server-unreachable",
    ),
    pytest.param(
        Mistake((*BATCH, "--journal", "{dir}/j.sqlite"), code=1, env={"CHANJING_SECRET_KEY": "no"}),
        id="batch-secret-wrong",
    ),
    pytest.param(
        Mistake(("--redis-url", "redis://127.0.0.1:{closed}/0", "voices")), id="redis-unreachable"
    ),
    # ---- the emulator and the demo
    pytest.param(Mistake(("emulator", "--port", "{busy}")), id="emulator-port-busy"),
    pytest.param(Mistake(("emulator", "--port", "http")), id="emulator-port-not-a-number"),
    pytest.param(Mistake(("emulator", "--time-scale", "0")), id="emulator-time-scale-zero"),
    pytest.param(Mistake(("demo", "--out", "{file}")), id="demo-out-a-file"),
]


def _from_table(param: object) -> tuple[str, Mistake]:
    """A case of ``test_bad_input``'s table (bad input: exit 2)."""
    name, case = getattr(param, "id", None), getattr(param, "values", (None,))[0]
    assert isinstance(name, str)
    assert isinstance(case, Case)
    return f"bad-input-{name}", Mistake(case.argv, 2, case.files, case.env)


def _own(param: object) -> tuple[str, Mistake]:
    name, mistake = getattr(param, "id", None), getattr(param, "values", (None,))[0]
    assert isinstance(name, str)
    assert isinstance(mistake, Mistake)
    return name, mistake


BY_ID = dict([*map(_from_table, CASES), *map(_own, MISTAKES)])
ALL = [pytest.param(mistake, id=name) for name, mistake in BY_ID.items()]


# The files every case finds in its folder (the places of Mistake.argv).
PLACED_FILES: dict[str, str | bytes] = {
    "media/face.mp4": VIDEO_BYTES,
    "media/speech.wav": AUDIO_BYTES,
    "media/clip.mp4": VIDEO_BYTES,
    "media/notes.txt": "not a video",
    "afile": "a file, not a folder",
}


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


def _run(emulator: EmulatorProcess, folder: Path, mistake: Mistake) -> Outcome:
    write_manifest(folder / "good", 2)  # makes the folders
    (folder / "folder").mkdir()
    for name, content in {**PLACED_FILES, **mistake.files}.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    places = {
        "dir": folder,
        "video": folder / "media" / "face.mp4",
        "audio": folder / "media" / "speech.wav",
        "clip": folder / "media" / "clip.mp4",
        "notes": folder / "media" / "notes.txt",
        "missing": folder / "media" / "missing.mp4",
        "file": folder / "afile",
        "folder": folder / "folder",
        "manifest": folder / "good" / "manifest.csv",
        "closed": closed_port(),
        "busy": emulator.base_url.rsplit(":", 1)[1],
    }
    env = emulator.env(HOME=str(folder / "home"))
    for name, value in mistake.env.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value.format(**places)
    result = subprocess.run(
        command(*(arg.format(**places) for arg in mistake.argv)),
        env=env,
        cwd=folder,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Outcome(result.returncode, result.stdout, result.stderr)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Outcome]]:
    """Every case run once, four at a time, against one emulator process."""
    emulator = start_emulator_process()
    root = tmp_path_factory.mktemp("mistakes")
    try:
        with ThreadPoolExecutor(max_workers=min(4, (os.cpu_count() or 1) * 2)) as pool:
            futures = {
                name: pool.submit(_run, emulator, root / name, mistake)
                for name, mistake in BY_ID.items()
            }
            yield {name: future.result() for name, future in futures.items()}
    finally:
        emulator.stop()


# The first case waits for all of them: about a minute on two idle cores, more when busy.
@pytest.mark.timeout(600)
@pytest.mark.parametrize("mistake", ALL)
def test_a_mistake_gets_one_message_and_its_exit_code_never_a_traceback(
    outcomes: dict[str, Outcome], request: pytest.FixtureRequest, mistake: Mistake
) -> None:
    outcome = outcomes[request.node.callspec.id]
    shown = outcome.out + outcome.err
    assert "Traceback" not in shown, shown[-3000:]
    assert "╭─ Traceback" not in shown
    assert outcome.code == mistake.code, shown[-3000:]
    assert outcome.err.strip(), "no message on stderr"


def test_the_cases_cover_the_suite_and_more() -> None:
    assert len(BY_ID) == len(CASES) + len(MISTAKES) >= len(CASES) + 30  # no id twice
