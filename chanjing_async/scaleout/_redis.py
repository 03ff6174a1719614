"""Connecting to Redis (the optional ``redis`` extra), shared by the limiter and the relay.

redis-py is imported only when a Redis URL is actually used, so the SDK works without it. A
URL may carry a password: it is never logged or shown, only :func:`redacted` forms are. It may
be given as a :class:`~pydantic.SecretStr` (the rate limiter keeps it so), revealed only in the
call expression that hands it to redis-py. No error raised here chains a redis-py exception:
redis-py's frames hold the password while it authenticates (``auth_args``), and the arguments of
a command (the shared token in its SET). Every redis-py await of the SDK goes through
:func:`redis_call`, which keeps those frames out of a caller's cancellation too.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

from pydantic import SecretStr

from ..errors import ConfigurationError, raise_unchained

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from redis.asyncio import Redis

__all__ = [
    "OutageLog",
    "Outages",
    "check_url",
    "connect",
    "ping",
    "redacted",
    "redis_call",
    "redis_errors",
    "refusal_errors",
    "refused",
]

logger = logging.getLogger("chanjing_async")

_SCHEMES = ("redis", "rediss", "unix")
_CREDENTIALS = ("password", "username")

# Seconds: a Redis that does not answer is treated as down rather than waited on.
SOCKET_TIMEOUT = 5.0

_T = TypeVar("_T")


async def redis_call(pending: Awaitable[_T]) -> _T:
    """Await one redis-py call (``pending``, made in the call expression).

    A caller's deadline or cancel goes on without the frames of redis-py it crossed, which
    hold the command's arguments or the password (``auth_args``): the CancelledError is raised
    again with its traceback cut, as the transport does for aiohttp's.
    """
    try:
        return await pending
    except asyncio.CancelledError as exc:
        raise exc.with_traceback(None)  # noqa: B904 - the same exception, nothing chained


def check_url(url: object, *, field: str) -> None:
    """Raise ConfigurationError naming ``field`` if ``url`` (a str or a SecretStr) is no Redis
    URL. The message shows it :func:`redacted`."""
    problem = _url_problem(url, field)  # the plain URL lives in that finished frame only
    if problem is not None:
        raise ConfigurationError(problem)


def _url_problem(url: object, field: str) -> str | None:
    if isinstance(url, SecretStr):
        url = url.get_secret_value()
    if not isinstance(url, str):
        return f"{field}: must be a Redis URL such as redis://host:6379/0, not {type(url).__name__}"
    try:
        parts = urlsplit(url)
    except ValueError:  # its message quotes the authority, password included
        return f"{field}: not a valid Redis URL"
    if parts.scheme not in _SCHEMES or not (parts.netloc or parts.path):
        return f"{field}={redacted(url)!r}: must be a redis://, rediss:// or unix:// URL"
    return None


def redacted(url: str | SecretStr) -> str:
    """``url`` without its credentials: user and password, and a ``password=`` query value.

    A URL that does not parse (``redis://:pw@[::1``) is shown as no part of it.
    """
    try:
        parts = urlsplit(url.get_secret_value() if isinstance(url, SecretStr) else url)
    except ValueError:  # its message quotes the authority, password included
        return "<not a valid URL>"
    if "@" in parts.netloc:
        parts = parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1])
    if parts.query:
        query = [
            (name, "***" if name.lower() in _CREDENTIALS else value)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        ]
        parts = parts._replace(query=urlencode(query, safe="*"))
    return parts.geturl()


def _module() -> object:
    try:
        return importlib.import_module("redis.asyncio")
    except ImportError:
        raise ConfigurationError(
            "a Redis URL needs redis-py: pip install 'chanjing-async[redis]'"
        ) from None


def connect(url: str | SecretStr) -> Redis:
    """A redis-py asyncio client for ``url`` (connects lazily, on its first command).

    Raises:
        ConfigurationError: redis-py is not installed, or redis-py refuses the URL.
    """
    module = _module()
    hidden = url if isinstance(url, SecretStr) else SecretStr(url)
    del url  # only the hidden form stays in this frame
    try:
        client: Redis = module.Redis.from_url(  # type: ignore[attr-defined]
            hidden.get_secret_value(),
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=SOCKET_TIMEOUT,
        )
    except ValueError as exc:
        # redis-py's message names the option it refused, never the password.
        problem = f"redis url {redacted(hidden)!r}: {exc}"
    else:
        return client
    raise ConfigurationError(problem)


def redis_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "Redis is unreachable for now": wait and try again.

    A lost connection, a timeout, a Redis still loading, a replica answering READONLY during a
    failover: each heals without us, and waiting loses no job. Other refusals (a key of the
    wrong type, a missing permission) never heal; see :func:`refused`.
    """
    _module()
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import ReadOnlyError, TryAgainError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return (RedisConnectionError, RedisTimeoutError, ReadOnlyError, TryAgainError, OSError)


def refusal_errors() -> tuple[type[BaseException], ...]:
    """Every redis-py error; catch :func:`redis_errors` first, the rest are refusals."""
    _module()
    from redis.exceptions import RedisError

    return (RedisError,)


def refused(exc: BaseException) -> ConfigurationError:
    """A Redis refusal that will not heal (e.g. WRONGTYPE, NOPERM) as a ConfigurationError."""
    return ConfigurationError(f"Redis refused: {type(exc).__name__}: {exc}")


class Outages:
    """What a Redis user does with a failed call: wait out an outage, warned once, or raise.

    ``catch`` is every redis-py error; :meth:`failed` raises :func:`refused` for those that
    never heal and logs one WARNING per outage for the others (until :meth:`ok`).
    """

    def __init__(self, what: str) -> None:
        self._what = what
        self._healing = redis_errors()
        self.catch = refusal_errors() + self._healing
        self._warned = False

    def failed(self, exc: BaseException) -> None:
        if not isinstance(exc, self._healing):
            raise_unchained(refused(exc))
        if not self._warned:
            logger.warning("%s: Redis unreachable (%s)", self._what, type(exc).__name__)
            self._warned = True

    def ok(self) -> None:
        self._warned = False


async def ping(redis: Redis, shown: str, *, field: str) -> None:
    """Check that Redis answers, so a wrong URL or password fails at once, not as a stall.

    Args:
        redis: the client.
        shown: where it points, as the message may show it (:func:`redacted`).
        field: the setting's name.

    Raises:
        ConfigurationError: Redis is unreachable or refuses us (names ``field``, never a
            password); redis-py's error is not chained.
    """
    try:
        await redis_call(redis.ping())
    except redis_errors() + refusal_errors() as exc:
        problem = f"{field}={shown!r}: Redis did not answer PING ({type(exc).__name__})"
    else:
        return
    raise ConfigurationError(problem)


class OutageLog:
    """One WARNING when Redis stops answering, one when it answers again.

    Args:
        who: what is affected, first in each message (``"create limiter"``).
        waiting: what happens meanwhile, for the first message.
    """

    def __init__(self, who: str, waiting: str) -> None:
        self._who = who
        self._waiting = waiting
        self._out = False

    def down(self, exc: BaseException) -> None:
        """A call failed as Redis was unreachable (logged once per outage)."""
        if not self._out:
            self._out = True
            logger.warning(
                "%s: Redis unreachable (%s); %s", self._who, type(exc).__name__, self._waiting
            )

    def up(self) -> None:
        """A call succeeded (logged if it ends an outage)."""
        if self._out:
            self._out = False
            logger.warning("%s: Redis reachable again", self._who)
