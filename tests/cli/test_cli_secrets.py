"""Secrets given to `chanjing` (issue 15, findings 7 and 11): warned about on the command line,
read from standard input with `--secret-key -`, the config file's mode checked.

Run in-process through `main(argv)` (and once in a pseudo-terminal) against an emulator in its
own process.
"""

from __future__ import annotations

import io
import json
import os
import select
import sys
import time
from pathlib import Path

import pytest

from chanjing_async.cli import main
from tests.support import APP_ID, SECRET_KEY, TIME_SCALE, EmulatorProcess

pytestmark = pytest.mark.slow


REDIS_PASSWORD = "redis-pass-9f3a"
REDIS_URL = f"redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0"


def root(emulator: EmulatorProcess) -> list[str]:
    """The root options for ``emulator``, without the secret key."""
    return ["--app-id", APP_ID, "--base-url", emulator.base_url, "--time-scale", f"{TIME_SCALE:g}"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    assert SECRET_KEY not in captured.out + captured.err
    assert REDIS_PASSWORD not in captured.out + captured.err
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def warnings_in(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning:")]


def tokens_issued(emulator: EmulatorProcess) -> int:
    issued: int = emulator.stats()["tokens_issued"]
    return issued


# --------------------------------------------------------------------------------------------
# --secret-key on the command line, and from standard input


def test_a_secret_key_on_the_command_line_works_with_one_warning_naming_the_safer_ways(
    emulator_process: EmulatorProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, *root(emulator_process), "--secret-key", SECRET_KEY, "voices", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["list"]
    (warning,) = warnings_in(err)
    assert "--secret-key on the command line is visible to other users (ps)" in warning
    for safer in ("CHANJING_SECRET_KEY", "~/.chanjing/config.json (chmod 600)", "--secret-key -"):
        assert safer in warning


def test_secret_key_dash_reads_the_first_line_of_standard_input(
    emulator_process: EmulatorProcess,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"  {SECRET_KEY}\nnot read\n"))
    code, out, err = run(capsys, *root(emulator_process), "--secret-key", "-", "voices", "--json")
    assert code == 0, err
    assert json.loads(out)["list"]
    assert warnings_in(err) == []
    assert sys.stdin.read() == "not read\n"  # one line only
    assert tokens_issued(emulator_process) == 1


@pytest.mark.parametrize("given", ["", "\n", "   \nsecond line\n"])
def test_secret_key_dash_with_nothing_on_standard_input_is_a_usage_error(
    emulator_process: EmulatorProcess,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    given: str,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(given))
    code, out, err = run(capsys, *root(emulator_process), "--secret-key", "-", "lipsync", "list")
    assert code == 2
    assert out == ""
    assert "--secret-key -: standard input gave no secret key" in err
    assert tokens_issued(emulator_process) == 0


def test_the_environment_gives_the_secret_key_without_a_warning(
    emulator_process: EmulatorProcess,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHANJING_SECRET_KEY", SECRET_KEY)
    code, _, err = run(capsys, *root(emulator_process), "voices")
    assert code == 0, err
    assert warnings_in(err) == []


def test_missing_credentials_name_the_safe_ways(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--app-id", APP_ID, "lipsync", "list")
    assert code == 2
    for way in ("CHANJING_SECRET_KEY", "chmod 600", "--secret-key -"):
        assert way in err


_PTY_SCRIPT = "from chanjing_async.cli import main; raise SystemExit(main())"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs a pseudo-terminal")
def test_secret_key_dash_on_a_terminal_prompts_without_echo(
    emulator_process: EmulatorProcess,
) -> None:
    import pty

    argv = [sys.executable, "-c", _PTY_SCRIPT, *root(emulator_process), "--secret-key", "-"]
    pid, terminal = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pseudo-terminal
        try:
            os.execv(sys.executable, [*argv, "voices", "--json"])
        finally:
            os._exit(127)  # never go on running the tests in the child
    transcript = b""
    deadline = time.monotonic() + 30
    answered = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([terminal], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        transcript += chunk
        if not answered and b"secret key: " in transcript:
            os.write(terminal, f"{SECRET_KEY}\n".encode())
            answered = True
    os.close(terminal)
    _, status = os.waitpid(pid, 0)
    text = transcript.decode(errors="replace")
    assert answered, text
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert SECRET_KEY not in text  # the terminal did not echo it
    assert '"list"' in text
    assert "warning:" not in text


# --------------------------------------------------------------------------------------------
# --redis-url holding a password


def test_a_redis_password_on_the_command_line_is_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "--redis-url", REDIS_URL, "batch", "status", str(tmp_path / "no"))
    assert code == 2  # the journal does not exist; the warning came first
    (warning,) = warnings_in(err)
    assert "--redis-url holds credentials" in warning
    assert "CHANJING_REDIS_URL" in warning


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "unix:///run/redis.sock?db=2"], ids=["plain", "unix"]
)
def test_a_redis_url_without_credentials_or_from_the_environment_is_not_warned_about(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    url: str,
) -> None:
    journal = tmp_path / "no"
    assert warnings_in(run(capsys, "--redis-url", url, "batch", "status", str(journal))[2]) == []
    monkeypatch.setenv("CHANJING_REDIS_URL", REDIS_URL)
    assert warnings_in(run(capsys, "batch", "status", str(journal))[2]) == []


def test_a_redis_password_in_the_query_is_warned_about_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"redis://127.0.0.1:6379/0?password={REDIS_PASSWORD}"
    _, _, err = run(capsys, "--redis-url", url, "batch", "status", str(tmp_path / "no"))
    assert len(warnings_in(err)) == 1


# --------------------------------------------------------------------------------------------
# ~/.chanjing/config.json open to group or others


def write_config(emulator: EmulatorProcess, mode: int) -> Path:
    """``~/.chanjing/config.json`` (HOME is the test's own) with credentials for ``emulator``."""
    config = Path(os.environ["HOME"]) / ".chanjing" / "config.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    values = {"app_id": APP_ID, "secret_key": SECRET_KEY, "base_url": emulator.base_url}
    config.write_text(json.dumps(values), encoding="utf-8")
    config.chmod(mode)
    return config


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660], ids=lambda mode: f"{mode:04o}")
def test_a_config_file_open_to_group_or_others_is_used_with_a_warning(
    emulator_process: EmulatorProcess, capsys: pytest.CaptureFixture[str], mode: int
) -> None:
    config = write_config(emulator_process, mode)
    code, out, err = run(capsys, "--time-scale", f"{TIME_SCALE:g}", "voices", "--json")
    assert code == 0, err
    assert json.loads(out)["list"]
    (warning,) = warnings_in(err)
    assert str(config) in warning
    assert f"mode {mode:04o}" in warning
    assert f"chmod 600 {config}" in warning


def test_a_config_file_for_its_owner_only_gives_no_warning(
    emulator_process: EmulatorProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(emulator_process, 0o600)
    code, _, err = run(capsys, "--time-scale", f"{TIME_SCALE:g}", "voices")
    assert code == 0, err
    assert warnings_in(err) == []


def test_a_config_file_is_not_read_when_the_environment_has_everything(
    emulator_process: EmulatorProcess,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_config(emulator_process, 0o644)
    for name, value in emulator_process.env().items():
        if name.startswith("CHANJING_"):
            monkeypatch.setenv(name, value)
    code, _, err = run(capsys, "voices")
    assert code == 0, err
    assert warnings_in(err) == []
