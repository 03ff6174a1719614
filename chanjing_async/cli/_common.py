"""What every ``chanjing`` command shares: credentials, the client, errors and exit codes.

Credentials come from the command line first, then the environment (``CHANJING_APP_ID``,
``CHANJING_SECRET_KEY``, ``CHANJING_BASE_URL``), then ``~/.chanjing/config.json`` (the file
Chanjing's own SDK reads: ``{"app_id": ..., "secret_key": ..., "base_url": ...}``; the
camel-case names ``appId`` / ``secretKey`` / ``baseUrl`` are read too). ``--secret-key -``
reads the key from standard input; ``_secrets`` tells why and warns about the unsafe ways.

Exit codes, for every command: 0 done; 1 the service or the network refused or failed (an
unknown task, a server that cannot be reached, a batch row that failed, a wrong secret key
outside a batch run); 2 bad input or configuration, found before anything was sent (and a
batch run whose credentials the API refused, every row left for the re-run); 130 and 143
interrupted by Ctrl-C (SIGINT) or SIGTERM, after a clean stop. No user mistake ends in a
traceback.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import anyio
import typer
from rich.console import Console

from ..client._client import AsyncChanjingClient
from ..client._config import ENV_APP_ID, ENV_BASE_URL, ENV_SECRET_KEY, Timeouts
from ..errors import ChanjingError, ConfigurationError, InvalidInputError
from ..limits import RateLimits
from ..scaleout import RedisRateLimiter
from ..scaleout._redis import check_url, redacted
from ..scaleout._window import DEFAULT_LEASE
from ._secrets import FROM_STDIN, config_file_warning, read_secret_key
from ._signals import signal_name, sigterm_as_interrupt

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

T = TypeVar("T")

logger = logging.getLogger("chanjing_async")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)  # one line per message

# OS errors that a user's path or machine explains (a folder that is a file, a full disk...):
# `run` shows them as one line. Any other OSError is a bug of ours and keeps its traceback.
_USER_ERRNOS = frozenset(
    {
        errno.EACCES,
        errno.EPERM,
        errno.EEXIST,
        errno.EISDIR,
        errno.ENOTDIR,
        errno.ENOENT,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.ENAMETOOLONG,
        errno.ELOOP,
    }
)
_resume_hint: list[str] = []  # set by the running command through on_interrupt()

CONFIG_FILE = Path("~/.chanjing/config.json")
_CONFIG_NAMES = {
    "app_id": ("app_id", "appId"),
    "secret_key": ("secret_key", "secretKey"),
    "base_url": ("base_url", "baseUrl"),
}


@dataclass(frozen=True)
class Settings:
    """The root options of ``chanjing``, as given on the command line (None: not given)."""

    app_id: str | None = None
    secret_key: str | None = None
    base_url: str | None = None
    time_scale: float = 1.0
    redis_url: str | None = None

    def __repr__(self) -> str:  # the secret key and a Redis password never show
        secret = "***" if self.secret_key else None
        redis = redacted(self.redis_url) if self.redis_url else None
        return (
            f"Settings(app_id={self.app_id!r}, secret_key={secret!r}, "
            f"base_url={self.base_url!r}, time_scale={self.time_scale!r}, redis_url={redis!r})"
        )


def settings_of(ctx: typer.Context) -> Settings:
    """The root options of the running command."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Settings) else Settings()


def _config_file() -> dict[str, str]:
    """The values of ``~/.chanjing/config.json``; {} when there is none.

    A file that group or others may read or change is used, with a warning on stderr.
    """
    path = CONFIG_FILE.expanduser()
    try:
        with path.open(encoding="utf-8") as file:
            warning = config_file_warning(path, os.fstat(file.fileno()).st_mode)
            data, problem = _json(file.read())  # no frame keeps the text: it holds the key
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:  # a UnicodeDecodeError holds the bytes read
        warning, data, problem = None, None, f"cannot be read ({type(exc).__name__})"
    if warning is not None:
        err_console.print(warning, markup=False)
    if problem is None and not isinstance(data, dict):
        data, problem = None, "must hold a JSON object"
    if problem is not None:
        raise ConfigurationError(f"{path}: {problem}")  # outside the except: nothing chained
    assert isinstance(data, dict)
    found: dict[str, str] = {}
    for name, keys in _CONFIG_NAMES.items():
        for key in keys:
            value = data.get(key)
            if isinstance(value, str) and value:
                found[name] = value
                break
    return found


def _json(text: str) -> tuple[object, str | None]:
    """The value ``text`` holds, or None and what is wrong with it. The parse error is not
    kept: its ``doc`` is the whole text."""
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON (line {exc.lineno})"


def make_client(settings: Settings) -> AsyncChanjingClient:
    """A client from the command line (``--secret-key -``: standard input), then the
    environment, then the config file.

    Raises:
        ConfigurationError: no credentials anywhere, an empty standard input for
            ``--secret-key -``, or an invalid base URL.
    """
    secret_key = settings.secret_key
    if secret_key == FROM_STDIN:
        secret_key = read_secret_key()
    explicit = {
        "app_id": settings.app_id or os.environ.get(ENV_APP_ID),
        "secret_key": secret_key or os.environ.get(ENV_SECRET_KEY),
        "base_url": settings.base_url or os.environ.get(ENV_BASE_URL),
    }
    if not all(explicit.values()):
        stored = _config_file()
        explicit = {name: value or stored.get(name) for name, value in explicit.items()}
    shared = None
    if settings.redis_url is not None:
        check_url(settings.redis_url, field="--redis-url")
        # The lease is paced like the limits, so a test emulator's crashed holders expire fast.
        shared = RedisRateLimiter(settings.redis_url, lease=DEFAULT_LEASE / settings.time_scale)
    try:
        return AsyncChanjingClient(
            explicit["app_id"],
            explicit["secret_key"],
            base_url=explicit["base_url"],
            limits=RateLimits().scaled(settings.time_scale),
            timeouts=Timeouts(create_horizon=Timeouts().create_horizon / settings.time_scale),
            rate_limiter=shared,
        )
    except ConfigurationError as exc:
        if not str(exc).startswith("missing credentials"):
            raise
        raise ConfigurationError(
            f"{str(exc).split(';')[0]}; set the environment variables, write them to "
            f"{CONFIG_FILE} (chmod 600), or give --app-id and --secret-key - (reads the key "
            "from standard input)"
        ) from None


def say(line: str) -> None:
    """Print ``line`` on stderr as it is: no markup, emoji codes or highlighting."""
    err_console.print(line, markup=False, emoji=False, highlight=False)


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print one line on stderr and end the command with ``code``."""
    say(f"error: {message}")
    raise typer.Exit(code)


def exit_code_of(error: ChanjingError) -> int:
    """2 for bad input or configuration (nothing was sent), 1 for anything else."""
    return EXIT_USAGE if isinstance(error, (InvalidInputError, ConfigurationError)) else EXIT_FAILED


def on_interrupt(hint: str) -> None:
    """Have ``run`` tell ``hint`` (how to resume) if the running command is interrupted."""
    _resume_hint[:] = [hint]


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run an async command; an SDK error ends it with one readable line and its exit code.

    Ctrl-C and SIGTERM stop it cleanly: the command is cancelled, so every ``async with``
    unwinds (a job manager closes its journal, a progress display shows the cursor again);
    then one line says so, with the hint given to ``on_interrupt``, and the exit code is
    130 (SIGINT) or 143 (SIGTERM). A second signal stops it at once.
    """
    _resume_hint.clear()
    with sigterm_as_interrupt() as received:
        try:
            return anyio.run(main)
        except ChanjingError as exc:
            fail(str(exc), exit_code_of(exc))
        except (KeyboardInterrupt, asyncio.CancelledError):
            pass
        except OSError as exc:
            if exc.errno not in _USER_ERRNOS:
                raise  # a bug of ours: the traceback shows where
            logger.debug("%s", exc, exc_info=True)
            where = f"{exc.filename}: " if exc.filename else ""
            fail(f"{where}{exc.strerror or type(exc).__name__} (--log-level debug shows where)")
    signum = received[0] if received else signal.SIGINT
    hint = "".join(f"; {text}" for text in _resume_hint)
    say(f"interrupted ({signal_name(signum)}){hint}")
    raise typer.Exit(128 + signum)


def dump_json(value: Any) -> None:
    """Print ``value`` as JSON on stdout (for scripts)."""
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))
