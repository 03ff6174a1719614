"""Bad input, kind by kind: exit 2, one clear message, and not one request sent.

Every case runs the CLI in-process (``main(argv)``) against an emulator process of its own, with
valid credentials in the environment unless the case is about credentials. Each must end with
exit code 2, a message on stderr naming the field or flag and what is allowed, nothing on
stdout, and an emulator that received no request at all and issued no token.

A wrong secret key is different: only the server can tell, so it is a request (refused) and
exit 1; it has a test of its own below the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from chanjing_async.cli import main
from tests.support import APP_ID, SECRET_KEY, VOICE

if TYPE_CHECKING:
    from pathlib import Path

    from tests.support import EmulatorProcess

pytestmark = pytest.mark.slow


VIDEO_BYTES = b"\x00\x00\x00\x18ftypmp42" + bytes(512)
AUDIO_BYTES = b"RIFF" + bytes(512)

# The text-driven create every create case starts from; each case breaks one thing.
TTS = ("lipsync", "create", "--video", "{video}", "--text", "你好", "--voice", VOICE)
AUDIO = ("lipsync", "create", "--video", "{video}", "--audio", "{audio}")
BATCH = ("batch", "run", "{dir}/manifest.csv", "--journal", "{dir}/j.sqlite", "--out", "{dir}/out")
BATCH_JSONL = (
    *("batch", "run", "{dir}/manifest.jsonl"),
    *("--journal", "{dir}/j.sqlite", "--out", "{dir}/out"),
)

HEADER = "output,video,text,voice,speed\n"
GOOD_ROW = f"clip-1,media/face.mp4,你好,{VOICE},1\n"
NOT_SUBMITTED = "nothing was submitted"
# Click's own messages (flags it parses itself) changed wording across releases: any of these.
NOT_A_NUMBER = ("is not a valid float", "should be a valid number")


@dataclass(frozen=True)
class Case:
    """One kind of bad input.

    Attributes:
        argv: the command, with ``{video}`` and ``{clip}`` (.mp4 files), ``{audio}`` (a .wav),
            ``{notes}`` (a .txt), ``{missing}`` (a .mp4 that does not exist) and ``{dir}`` (the
            case's folder, where ``files`` are written and media/ holds the others).
        expected: fragments stderr must hold (whitespace ignored: rich wraps long lines); a
            tuple is a choice of wordings, one of which must be there.
        files: files to write below the case's folder first (name -> content).
        env: environment overrides; None removes the variable.
    """

    argv: tuple[str, ...]
    expected: tuple[str | tuple[str, ...], ...]
    files: dict[str, str | bytes] = field(default_factory=dict)
    env: dict[str, str | None] = field(default_factory=dict)


def csv_manifest(*rows: str, header: str = HEADER) -> dict[str, str | bytes]:
    return {"manifest.csv": header + "".join(rows)}


CASES = [
    # ---- every range and enum of the create request
    pytest.param(
        Case((*TTS, "--screen-width", "0"), ("--screen-width=0", "must be a positive integer")),
        id="screen_width-zero",
    ),
    pytest.param(
        Case((*TTS, "--screen-height", "-1"), ("--screen-height=-1", "must be a positive integer")),
        id="screen_height-negative",
    ),
    pytest.param(
        Case((*TTS, "--backway", "3"), ("--backway=3", "must be 1 or 2", "1 forward, 2 reverse")),
        id="backway-3",
    ),
    pytest.param(
        Case(
            (*TTS, "--drive-mode", "shuffle"), ("--drive-mode='shuffle'", "must be '' or 'random'")
        ),
        id="drive_mode-unknown",
    ),
    pytest.param(
        Case(
            (*TTS, "--model", "5"),
            ("--model=5", "must be 0 or 1 or 2", "0 basic, 1 high quality, 2 cartoon"),
        ),
        id="model-5",
    ),
    pytest.param(
        Case((*AUDIO, "--volume", "0"), ("--volume=0", "must be between 1 and 100")),
        id="volume-0",
    ),
    pytest.param(
        Case((*AUDIO, "--volume", "101"), ("--volume=101", "must be between 1 and 100")),
        id="volume-101",
    ),
    pytest.param(
        Case(
            (*TTS, "--speed", "0.4"),
            ("--speed=0.4", "tts_config.speed", "must be between 0.5 and 2"),
        ),
        id="speed-0.4",
    ),
    pytest.param(
        Case(
            (*TTS, "--speed", "2.1"),
            ("--speed=2.1", "tts_config.speed", "must be between 0.5 and 2"),
        ),
        id="speed-2.1",
    ),
    pytest.param(
        Case(
            (*TTS, "--pitch", "0"),
            ("--pitch=0.0", "tts_config.pitch", "must be between 0.1 and 3"),
        ),
        id="pitch-0",
    ),
    pytest.param(
        Case(
            (*TTS, "--pitch", "3.5"),
            ("--pitch=3.5", "tts_config.pitch", "must be between 0.1 and 3"),
        ),
        id="pitch-3.5",
    ),
    pytest.param(
        Case(
            ("lipsync", "create", "--video", "{video}", "--text", "", "--voice", VOICE),
            ("--text=['']", "tts_config.text", "non-empty string"),
        ),
        id="text-empty",
    ),
    pytest.param(
        Case(
            (*TTS, "--text", "   "),
            ("--text=['你好', '   ']", "tts_config.text", "non-empty list of non-empty strings"),
        ),
        id="text-list-with-a-blank-segment",
    ),
    pytest.param(
        Case(
            ("lipsync", "create", "--video", "{video}", "--text", "hi", "--voice", ""),
            ("--voice=''", "tts_config.audio_man_id", "must be a non-empty string"),
        ),
        id="voice-empty",
    ),
    pytest.param(
        Case(
            ("lipsync", "create", "--video-file-id", " ", "--audio-file-id", "a"),
            ("--video-file-id=' '", "must be a non-empty string"),
        ),
        id="video_file_id-blank",
    ),
    pytest.param(
        Case((*AUDIO, "--callback", "ftp://x"), ("--callback='ftp://x'", "http:// or https://")),
        id="callback-not-http",
    ),
    pytest.param(
        Case(
            (*TTS, "--model", "basic"),
            ("Invalid value for '--model'", "valid integer"),
        ),
        id="model-not-a-number",
    ),
    # ---- files: wrong extensions, missing files, unknown bucket
    pytest.param(
        Case(
            ("lipsync", "create", "--video", "{notes}", "--text", "hi", "--voice", VOICE),
            ("--video=", "notes.txt", "must be a .mov, .mp4, .webm file"),
        ),
        id="video-extension-txt",
    ),
    pytest.param(
        Case(
            ("lipsync", "create", "--video", "{video}", "--audio", "{clip}"),
            ("--audio=", "clip.mp4", "must be a .m4a, .mp3, .wav file"),
        ),
        id="audio-extension-mp4",
    ),
    pytest.param(
        Case(
            ("lipsync", "create", "--video", "{missing}", "--text", "hi", "--voice", VOICE),
            ("--video=", "missing.mp4", "must be an existing file"),
        ),
        id="video-missing-file",
    ),
    pytest.param(
        Case(
            ("files", "upload", "{missing}", "--service", "lip_sync_video"),
            ("path=", "missing.mp4", "must be an existing file"),
        ),
        id="upload-missing-file",
    ),
    pytest.param(
        Case(
            ("files", "upload", "{audio}", "--service", "lip_sync_video"),
            ("path=", "speech.wav", "lip_sync_video accepts .mov, .mp4, .webm"),
        ),
        id="upload-extension-for-another-bucket",
    ),
    pytest.param(
        Case(
            ("files", "upload", "{video}", "--service", "nope"),
            ("--service", "'nope' is not one of", "'lip_sync_video'", "'lip_sync_audio'"),
        ),
        id="upload-unknown-service",
    ),
    pytest.param(
        Case(("files", "upload", "{notes}"), ("not a lip-sync video or audio file",)),
        id="upload-extension-decides-no-service",
    ),
    pytest.param(
        Case(("lipsync", "download", "abc", "{notes}/x.mp4"), ("cannot be made",)),
        id="download-into-a-file",
    ),
    # ---- manifests: bad rows, and files that are no manifest
    pytest.param(
        Case(
            BATCH,
            ("row 2 (line 3): speed='9'", "must be between 0.5 and 2", NOT_SUBMITTED),
            files=csv_manifest(GOOD_ROW, f"clip-2,media/face.mp4,hi,{VOICE},9\n"),
        ),
        id="manifest-speed-out-of-range",
    ),
    pytest.param(
        Case(
            BATCH,
            ("row 1 (line 2): output='../escape'", "inside the output folder", NOT_SUBMITTED),
            files=csv_manifest(f"../escape,media/face.mp4,hi,{VOICE},\n"),
        ),
        id="manifest-output-traversal",
    ),
    pytest.param(
        Case(
            BATCH,
            ("row 2 (line 3): output='CLIP-1'", "duplicates the output of row 1", NOT_SUBMITTED),
            files=csv_manifest(GOOD_ROW, f"CLIP-1,media/face.mp4,hi,{VOICE},\n"),
        ),
        id="manifest-duplicate-output",
    ),
    pytest.param(
        Case(
            BATCH,
            (
                "manifest=",
                "has unknown column(s) in its header (line 1): 'colour'",
                "allowed: output, video",
                NOT_SUBMITTED,
            ),
            files=csv_manifest(
                f"clip-1,media/face.mp4,hi,{VOICE},1,red\n",
                header="output,video,text,voice,speed,colour\n",
            ),
        ),
        id="manifest-unknown-column",
    ),
    pytest.param(
        Case(
            BATCH,
            ("row 1 (line 2): model='7'", "must be 0 or 1 or 2", NOT_SUBMITTED),
            files=csv_manifest(
                f"clip-1,media/face.mp4,hi,{VOICE},7\n", header="output,video,text,voice,model\n"
            ),
        ),
        id="manifest-model-out-of-range",
    ),
    pytest.param(
        Case(
            BATCH,
            ("row 1 (line 2): video=", "missing.mp4", "must be an existing file", NOT_SUBMITTED),
            files=csv_manifest(f"clip-1,media/missing.mp4,hi,{VOICE},\n"),
        ),
        id="manifest-missing-file",
    ),
    pytest.param(
        Case(
            BATCH_JSONL,
            ("row 1: text", "non-empty list of non-empty strings", NOT_SUBMITTED),
            files={
                "manifest.jsonl": (
                    '{"output": "a", "video": "media/face.mp4", "text": ["hi", ""], '
                    f'"voice": "{VOICE}"}}\n'
                )
            },
        ),
        id="manifest-text-list-with-an-empty-string",
    ),
    pytest.param(
        Case(
            BATCH,
            (
                "manifest=",
                "manifest.csv",
                "is neither UTF-8 nor GB18030 text (line 2 is not UTF-8",
                NOT_SUBMITTED,
            ),
            files={
                "manifest.csv": HEADER.encode()
                + b"clip-1,media/face.mp4,\xff\xfe,"
                + VOICE.encode()
                + b",\n"
            },
        ),
        id="manifest-in-no-known-encoding",
    ),
    pytest.param(
        Case(
            (*BATCH, "--encoding", "nope"),
            ("--encoding 'nope'", "is no text encoding Python knows"),
            files=csv_manifest(GOOD_ROW),
        ),
        id="manifest-unknown-encoding",
    ),
    pytest.param(
        Case(
            (*BATCH, "--encoding", "utf-16"),
            ("manifest=", "is not utf-16 text (--encoding): line 1", NOT_SUBMITTED),
            files=csv_manifest(GOOD_ROW),  # UTF-8: as UTF-16 it has no byte-order mark
        ),
        id="manifest-forced-encoding-without-its-mark",
    ),
    pytest.param(
        Case(("batch", "run", ""), ("MANIFEST=", "give a .csv, .txt, .tsv or .jsonl file")),
        id="manifest-empty-name",
    ),
    pytest.param(
        Case(
            ("--base-url", "http://127.0.0.1:99999", "voices"),
            ("base_url='http://127.0.0.1:99999'", "(port out of range 0-65535)"),
        ),
        id="base-url-port-out-of-range",
    ),
    pytest.param(
        Case(
            ("batch", "run", "{dir}/manifest.xlsx"),
            ("manifest=", "manifest.xlsx", "must be a .csv, .jsonl or .ndjson file"),
            files={"manifest.xlsx": "output\nclip\n"},
        ),
        id="manifest-extension",
    ),
    pytest.param(
        Case(
            ("batch", "run", "{dir}/none.csv"),
            ("manifest=", "none.csv", "cannot be read"),
        ),
        id="manifest-missing",
    ),
    # ---- credentials and root settings
    pytest.param(
        Case(
            ("lipsync", "get", "abc"),
            ("missing credentials", "CHANJING_APP_ID", "--app-id"),
            env={"CHANJING_APP_ID": None},
        ),
        id="credentials-missing-app-id",
    ),
    pytest.param(
        Case(
            ("lipsync", "list"),
            ("missing credentials", "CHANJING_SECRET_KEY", "--secret-key"),
            env={"CHANJING_SECRET_KEY": None},
        ),
        id="credentials-missing-secret-key",
    ),
    pytest.param(
        Case(
            ("lipsync", "list"),
            (".chanjing/config.json", "cannot be read", "UnicodeDecodeError"),
            files={"home/.chanjing/config.json": '{"app_id": "应用"}'.encode("gbk")},
            env={"CHANJING_APP_ID": None},
        ),
        id="config-file-not-utf8",
    ),
    pytest.param(
        Case(
            ("lipsync", "list"),
            (".chanjing/config.json", "not valid JSON (line 1)"),
            files={"home/.chanjing/config.json": "{app_id: x}"},
            env={"CHANJING_APP_ID": None},
        ),
        id="config-file-not-json",
    ),
    pytest.param(
        Case(
            ("--base-url", "ftp://x", "voices"),
            ("base_url='ftp://x'", "must be an http:// or https:// URL"),
        ),
        id="base-url-ftp",
    ),
    pytest.param(
        Case(
            ("voices",),
            ("base_url='not a url'", "must be an http:// or https:// URL"),
            env={"CHANJING_BASE_URL": "not a url"},
        ),
        id="base-url-not-a-url",
    ),
    pytest.param(
        Case(
            ("--time-scale", "fast", "voices"),
            ("Invalid value for '--time-scale'", NOT_A_NUMBER),
        ),
        id="time-scale-not-a-number",
    ),
    pytest.param(
        Case(
            ("--time-scale", "0", "voices"),
            ("Invalid value for '--time-scale'", ("x>=1e-09", "greater than or equal to")),
        ),
        id="time-scale-zero",
    ),
    pytest.param(
        Case(
            ("voices",),
            ("Invalid value for '--time-scale'", "CHANJING_TIME_SCALE", NOT_A_NUMBER),
            env={"CHANJING_TIME_SCALE": "-1x"},
        ),
        id="time-scale-env-malformed",
    ),
    pytest.param(
        Case(
            ("--redis-url", "http://user:hunter2@cache:6379", "voices"),
            ("--redis-url='http://***@cache:6379'", "must be a redis://, rediss:// or unix:// URL"),
        ),
        id="redis-url-not-redis",
    ),
    pytest.param(
        Case(
            ("voices",),
            ("--redis-url='localhost:6379'", "must be a redis://, rediss:// or unix:// URL"),
            env={"CHANJING_REDIS_URL": "localhost:6379"},
        ),
        id="redis-url-env-without-scheme",
    ),
]


def squeeze(text: str) -> str:
    """``text`` without whitespace (rich wraps at 80 columns off a terminal) or box borders."""
    return "".join(ch for ch in text if not ch.isspace() and ch not in "│╭╮╰╯─")


@pytest.mark.parametrize("case", CASES)
def test_bad_input_exits_2_naming_the_field_and_sends_nothing(
    emulator_process: EmulatorProcess,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: Case,
) -> None:
    for name, value in emulator_process.env().items():
        monkeypatch.setenv(name, value)
    for name, override in case.env.items():
        if override is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, override)
    media = tmp_path / "media"
    media.mkdir()
    (media / "face.mp4").write_bytes(VIDEO_BYTES)
    (media / "speech.wav").write_bytes(AUDIO_BYTES)
    (media / "clip.mp4").write_bytes(VIDEO_BYTES)
    (media / "notes.txt").write_text("not a video", encoding="utf-8")
    for name, content in case.files.items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    places = {
        "video": media / "face.mp4",
        "audio": media / "speech.wav",
        "clip": media / "clip.mp4",
        "notes": media / "notes.txt",
        "missing": media / "missing.mp4",
        "dir": tmp_path,
    }

    code = main([arg.format(**places) for arg in case.argv])

    captured = capsys.readouterr()
    assert SECRET_KEY not in captured.out + captured.err
    assert code == 2, captured.err
    shown = squeeze(captured.err)
    for fragment in case.expected:
        choices = (fragment,) if isinstance(fragment, str) else fragment
        assert any(squeeze(choice) in shown for choice in choices), (fragment, captured.err)
    assert captured.out == ""
    stats = emulator_process.stats()
    assert sum(e["requests"] for e in stats["endpoints"].values()) == 0, stats
    assert stats["tokens_issued"] == 0
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "j.sqlite").exists()


def test_the_table_covers_at_least_25_kinds() -> None:
    ids = [param.id for param in CASES]
    assert len(ids) >= 25
    assert len(set(ids)) == len(ids)


def test_a_wrong_secret_key_is_refused_by_the_server_with_exit_1(
    emulator_process: EmulatorProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only the server can tell a wrong secret: one token request, refused, exit 1."""
    wrong = "not-the-secret-key"
    root = ("--app-id", APP_ID, "--secret-key", wrong, "--base-url", emulator_process.base_url)
    code = main([*root, "lipsync", "get", "abc"])
    captured = capsys.readouterr()
    assert code == 1
    assert "access_token" in captured.err
    assert wrong not in captured.out + captured.err
    stats = emulator_process.stats()
    assert stats["tokens_issued"] == 0
    assert stats["endpoints"]["access_token"]["requests"] >= 1
    assert (
        sum(e["requests"] for name, e in stats["endpoints"].items() if name != "access_token") == 0
    )
