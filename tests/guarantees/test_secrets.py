"""Secrets: with DEBUG logging on, the secret key and the access tokens show up nowhere.

A full job (uploads of local files, a create cut off after the server handled it and then
reconciled, a refused token, gateway pages, a callback, downloads) and failing ones (wrong
secret, a task that fails, a create refused with 40000, an upload refused by the storage) run
with every logger at DEBUG, a file handler included. Then the secret key and every access
token the emulator issued must be absent from:

* every log record (message and formatted exception) and the DEBUG log file;
* the ``repr`` of the client, its token provider and transport, the manager, the journal, the
  handles and the callback receiver;
* every error raised: ``str``, ``repr`` and the printed traceback, the whole ``__cause__`` /
  ``__context__`` chain included (suppressed contexts too);
* every file written under the test folder: the journal with its ``-wal``, ``-shm`` and
  ``.lock``, the downloaded results, the log file;
* the CLI's stdout and stderr (``chanjing lipsync list`` and ``chanjing batch run``).

The signatures of the signed upload URLs, of the result URLs and of the callback URL are
checked against the logs of the SDK side, the shown errors and the files.

**No credential file is written**: the SDK and the CLI only *read* ``~/.chanjing/config.json``
(``cli._common._config_file``); nothing is written under ``$HOME``, checked below. The journal
and its companions are created 0600.
"""

from __future__ import annotations

import csv
import logging
import stat
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest

from chanjing_async import (
    AsyncChanjingClient,
    AuthenticationError,
    ChanjingError,
    CreateOutcomeUnknown,
    HTTPStatusError,
    JobFailedError,
    LipSyncJob,
    LipSyncRequest,
    TransportError,
)
from chanjing_async.batch import download_results
from chanjing_async.callbacks import CallbackReceiver
from chanjing_async.cli import main
from chanjing_async.emulator import EmulatorServer, Fault
from chanjing_async.emulator.state import EmulatorState
from tests.support import APP_ID, TIME_SCALE, VOICE, emulator_settings, job_manager, make_client
from tests.support import start_emulator_process as start_process

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from chanjing_async.models import AccessToken
    from tests.support import EmulatorProcess

SECRET = "S3cr3t-k3y-7f1e9c2a-never-shown"
WRONG_SECRET = "Wr0ng-S3cr3t-5b8d0e44-never-shown"
CALLBACK_SECRET = b"callback-hmac-key-0123456789abcdef"
JOURNAL_PARTS = ("", "-wal", "-shm", ".lock")
# The access log of the aiohttp servers in this process: only the emulator keeps one (the
# callback receiver logs no access), so its lines are the server side of the exchange.
SERVER_LOG = "aiohttp.access"
DEBUG_LOGGERS = ("", "chanjing_async", "aiohttp", "aiohttp.client", "aiohttp.access", "asyncio")


@dataclass
class Evidence:
    """Everything a secret could leak into, by where it was found."""

    texts: list[tuple[str, str]] = field(default_factory=list)
    hidden: list[tuple[str, str]] = field(default_factory=list)  # suppressed error contexts
    server_logs: list[tuple[str, str]] = field(default_factory=list)  # the emulator's access log

    def add(self, where: str, text: str) -> None:
        self.texts.append((where, text))

    def error(self, where: str, exc: BaseException) -> None:
        """The error as shown (traceback, str, repr) and every error chained to it."""
        self.add(f"{where}: traceback", "".join(traceback.format_exception(exc)))
        seen: set[int] = set()
        todo: list[tuple[BaseException, bool]] = [(exc, True)]
        while todo:
            current, shown = todo.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            bucket = self.texts if shown else self.hidden
            bucket.append((f"{where}: {type(current).__name__}", f"{current!s}\n{current!r}"))
            if current.__cause__ is not None:
                todo.append((current.__cause__, shown))
            if current.__context__ is not None:
                todo.append((current.__context__, shown and not current.__suppress_context__))
            inner: tuple[BaseException, ...] = getattr(current, "exceptions", ())  # a group
            todo.extend((exc, shown) for exc in inner)

    def records(self, records: list[logging.LogRecord]) -> None:
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        for record in records:
            text = f"{record.getMessage()}\n{formatter.format(record)}"
            target = self.server_logs if record.name == SERVER_LOG else self.texts
            target.append((f"log {record.name}", text))

    def files(self, folder: Path) -> None:
        for path in sorted(folder.rglob("*")):
            if not path.is_file():
                continue
            where, text = f"file {path.relative_to(folder)}", path.read_bytes().decode("latin-1")
            if path.suffix != ".log":
                self.add(where, text)
                continue
            for line in text.splitlines():  # a log file: the emulator's access lines apart
                server = line.startswith(f"{SERVER_LOG}|")
                (self.server_logs if server else self.texts).append((where, line))

    def leaks(self, secrets: list[str], *, hidden: bool = True, server: bool = True) -> list[str]:
        """Where any of ``secrets`` was found (empty: nowhere)."""
        places = [
            *self.texts,
            *(self.hidden if hidden else []),
            *(self.server_logs if server else []),
        ]
        return [
            f"{where} holds {secret[:6]}..."
            for where, text in places
            for secret in secrets
            if secret and secret in text
        ]


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> Iterator[Path]:
    """Every logger at DEBUG into caplog and into a log file; yields the file."""
    for name in DEBUG_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name or None)
    log_file = tmp_path / "debug.log"
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s|%(levelname)s|%(asctime)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield log_file
    finally:
        root.removeHandler(handler)
        handler.close()


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every access token issued in this test, as the emulator minted it and as clients got it."""
    issued: list[str] = []
    issue = EmulatorState.issue_token
    fetch = AsyncChanjingClient._fetch_token

    def recording_issue(self: EmulatorState, app_id: str, secret_key: str) -> tuple[str, int]:
        token, expire_in = issue(self, app_id, secret_key)
        issued.append(token)
        return token, expire_in

    async def recording_fetch(self: AsyncChanjingClient) -> AccessToken:
        token = await fetch(self)
        issued.append(token.access_token.get_secret_value())
        return token

    monkeypatch.setattr(EmulatorState, "issue_token", recording_issue)
    monkeypatch.setattr(AsyncChanjingClient, "_fetch_token", recording_fetch)
    return issued


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def journal_modes(journal: Path) -> dict[str, int]:
    """The permission bits of the journal and of those of its companions that exist."""
    parts = (journal.with_name(journal.name + suffix) for suffix in JOURNAL_PARTS)
    return {part.name: mode(part) for part in parts if part.exists()}


def logged_to(log_file: Path) -> bool:
    return log_file.stat().st_size > 0


def files_in_home(tmp_path: Path) -> list[Path]:
    """Files under the test's $HOME (conftest points it at ``tmp_path/home``): none is written."""
    home = tmp_path / "home"
    return [path for path in home.rglob("*") if path.is_file()] if home.exists() else []


def query_value(url: str, name: str) -> str:
    values = parse_qs(urlsplit(url).query).get(name, [""])
    return values[0]


def secret_client(base_url: str, secret: str = SECRET) -> AsyncChanjingClient:
    client = make_client(base_url)
    return AsyncChanjingClient(
        APP_ID,
        secret,
        base_url=base_url,
        limits=client.limits,
        retry=client.retry,
        timeouts=client.timeouts,
    )


@pytest.mark.anyio
async def test_no_secret_in_logs_reprs_errors_or_files(
    tmp_path: Path,
    media: tuple[Path, Path],
    debug_logs: Path,
    tokens: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    evidence = Evidence()
    signatures: list[str] = []
    journal = tmp_path / "jobs.sqlite"
    out = tmp_path / "out"
    settings = emulator_settings(secret_key=SECRET, result_url_ttl_seconds=600.0)
    # -- (a) a full job, through a journaled manager, with faults that make the SDK talk ----
    async with (
        EmulatorServer(settings) as emulator,
        secret_client(emulator.base_url) as client,
    ):
        receiver = CallbackReceiver(secret=CALLBACK_SECRET)  # started by the manager
        emulator.inject(Fault("file_detail", "gateway", status=502))  # a retry, logged
        emulator.inject(Fault("upload", "gateway", status=503))  # the PUT is retried
        emulator.inject(Fault("create", "drop_after"))  # created, unanswered: reconciled
        emulator.inject(Fault("list", "code", code=10400, msg="AccessToken验证失败"))
        async with job_manager(client, journal=journal, callbacks=receiver) as jobs:
            handles = [
                await jobs.submit(
                    LipSyncJob.tts(media[0], text="你好", audio_man_id=VOICE), key="tts"
                ),
                await jobs.submit(LipSyncJob.audio(media[0], audio=media[1]), key="audio"),
            ]
            with anyio.fail_after(15):
                results = [await handle.wait() for handle in handles]
            for handle, task in zip(handles, results, strict=True):
                saved = await download_results(
                    client, task, out / f"{handle.key}.mp4", out / f"{handle.key}.jpg"
                )
                assert [path.stat().st_size > 0 for path in saved] == [True, True]
                fresh = await client.lip_sync.get(task.id)
                signatures += [
                    query_value(fresh.video_url, "Signature"),
                    query_value(fresh.preview_url, "Signature"),
                    query_value(receiver.url_for(handle.key), "sig"),
                ]
            assert jobs.journal is not None
            await jobs.journal.flush()
            evidence.files(tmp_path)  # the journal as it stands while open, -wal included
            open_modes = journal_modes(journal)
            api = client._api
            assert api is not None
            assert api.auth._token is not None
            token_now = api.auth._token.get_secret_value()
            for shown in (client, api.auth, api.transport, jobs, jobs.journal, receiver, *handles):
                evidence.add(f"repr {type(shown).__name__}", repr(shown))
        signatures += [
            query_value(emulator.state.uploads.sign_url(record), "Signature")
            for record in emulator.state.files.values()
        ]
        stats = emulator.state.stats()
        assert stats["tokens_issued"] >= 2  # the refused token was replaced
        assert token_now in tokens
        assert receiver.outcomes["accepted"] >= 1
        evidence.add("repr client (closed)", repr(client))

        # -- (b) failures -----------------------------------------------------------------------
        async with secret_client(emulator.base_url, WRONG_SECRET) as wrong:
            with pytest.raises(AuthenticationError) as refused:
                await wrong.lip_sync.list()
            evidence.error("wrong secret", refused.value)
            async with job_manager(wrong, journal=tmp_path / "wrong.sqlite") as jobs:
                handle = await jobs.submit(LipSyncJob.audio(media[0], audio=media[1]))
                with anyio.fail_after(10), pytest.raises(ChanjingError) as failed:
                    await handle.wait()
                evidence.error("wrong secret job", failed.value)
                evidence.add("repr wrong handle", repr(handle))
            evidence.add("repr wrong client", repr(wrong))

        async with secret_client(emulator.base_url) as client:
            emulator.inject(Fault("upload", "code", msg="storage refused"))
            with pytest.raises(HTTPStatusError) as put_refused:
                await client.files.upload(media[1], service="lip_sync_audio", poll_interval=0.02)
            evidence.error("upload refused", put_refused.value)
            emulator.inject(Fault("upload", "drop_before", count=None))
            with pytest.raises(TransportError) as put_dropped:
                await client.files.upload(media[1], service="lip_sync_audio", poll_interval=0.02)
            evidence.error("upload dropped", put_dropped.value)
            emulator.clear_faults()
            video = await client.files.upload(
                media[0], service="lip_sync_video", poll_interval=0.02
            )
            emulator.inject(Fault("create", "drop_after"))
            with pytest.raises(CreateOutcomeUnknown) as unknown:
                await client.lip_sync.create(LipSyncRequest.audio(video.id, audio_file_id="x"))
            evidence.error("create unknown", unknown.value)
            emulator.inject(Fault("create", "code", code=40000, msg="参数错误"))
            async with job_manager(client, journal=journal) as jobs:
                handle = await jobs.submit(LipSyncJob.audio(media[0], audio=media[1]), key="bad")
                with anyio.fail_after(10), pytest.raises(ChanjingError) as create_refused:
                    await handle.wait()
                evidence.error("create refused", create_refused.value)
        signatures += [
            query_value(emulator.state.uploads.sign_url(record), "Signature")
            for record in emulator.state.files.values()
        ]
        evidence.add("repr emulator", repr(emulator))

    failing = emulator_settings(secret_key=SECRET, fail_rate=1.0)
    async with EmulatorServer(failing) as emulator, secret_client(emulator.base_url) as client:
        async with job_manager(client, journal=tmp_path / "failing.sqlite") as jobs:
            handle = await jobs.submit(LipSyncJob.tts(media[0], text="失败", audio_man_id=VOICE))
            with anyio.fail_after(10), pytest.raises(JobFailedError) as task_failed:
                await handle.wait()
            evidence.error("task failed", task_failed.value)
            evidence.add("repr failed handle", repr(handle))

    # -- what was collected ---------------------------------------------------------------------
    evidence.records(caplog.records)
    evidence.files(tmp_path)  # after close: journals, results, the log file
    assert logged_to(debug_logs)
    assert any(record.name == "chanjing_async" for record in caplog.records)
    assert len(set(tokens)) >= 3  # two emulators, one refreshed token
    assert all(len(token) >= 32 for token in tokens)
    secrets = [SECRET, WRONG_SECRET, *tokens]
    assert evidence.leaks(secrets) == []
    # Signed-URL signatures: not in what the SDK logs, shows or writes. The emulator's own
    # access log (aiohttp.access, server side) does record the URLs it was asked for.
    assert len(signatures) >= 8
    assert all(signatures)
    assert evidence.leaks(signatures, server=False) == []

    # -- file modes; no credential file ---------------------------------------------------------
    assert set(open_modes) >= {
        "jobs.sqlite",
        "jobs.sqlite-wal",
        "jobs.sqlite-shm",
        "jobs.sqlite.lock",
    }
    assert set(open_modes.values()) == {0o600}
    for name in ("jobs.sqlite", "wrong.sqlite", "failing.sqlite"):
        modes = journal_modes(tmp_path / name)
        assert set(modes.values()) == {0o600}, modes
    assert files_in_home(tmp_path) == []


# --------------------------------------------------------------------------------------------
# The command line


@pytest.fixture
def secret_process() -> Iterator[EmulatorProcess]:
    """The test emulator in its own process, accepting :data:`SECRET` (the last flag wins)."""
    running = start_process(f"--secret-key={SECRET}")
    try:
        yield running
    finally:
        running.stop()


def write_manifest(folder: Path, video: Path, broken: Path) -> Path:
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["output", "video", "text", "voice"])
        writer.writeheader()
        writer.writerow({"output": "good", "video": str(video), "text": "你好", "voice": VOICE})
        # An undecodable video: created, then the task fails.
        writer.writerow({"output": "bad", "video": str(broken), "text": "坏", "voice": VOICE})
    return manifest


def test_the_cli_shows_no_secret(
    tmp_path: Path,
    media: tuple[Path, Path],
    secret_process: EmulatorProcess,
    debug_logs: Path,
    tokens: list[str],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    evidence = Evidence()
    root = [
        "--app-id",
        APP_ID,
        "--base-url",
        secret_process.base_url,
        "--time-scale",
        f"{TIME_SCALE:g}",
    ]

    def cli(*argv: str) -> int:
        code = main([*root, *argv])
        captured = capsys.readouterr()
        evidence.add(f"stdout of {argv[:2]}", captured.out)
        evidence.add(f"stderr of {argv[:2]}", captured.err)
        return code

    assert cli("--secret-key", SECRET, "lipsync", "list", "--json") == 0
    assert cli("--secret-key", WRONG_SECRET, "lipsync", "list") == 1
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 40)
    manifest = write_manifest(tmp_path, media[0], broken)
    journal = tmp_path / "batch.sqlite"
    monkeypatch.setenv("CHANJING_SECRET_KEY", SECRET)  # this time from the environment
    code = cli(
        "batch", "run", str(manifest), "--journal", str(journal), "--out", str(tmp_path / "out")
    )
    assert code == 1  # one row failed
    assert cli("batch", "status", str(journal), "--json") == 0
    assert cli("--secret-key", SECRET, "lipsync", "list") == 0

    evidence.records(caplog.records)
    evidence.files(tmp_path)
    assert (tmp_path / "out" / "good.mp4").exists()
    assert len(set(tokens)) >= 2
    assert evidence.leaks([SECRET, WRONG_SECRET, *tokens]) == []
    assert set(journal_modes(journal).values()) == {0o600}
    assert files_in_home(tmp_path) == []
