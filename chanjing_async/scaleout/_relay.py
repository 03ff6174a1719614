"""The Redis relay between replicas behind one callback URL (see ``callbacks``).

A receiver with a relay PUBLISHes each valid callback of a job its own manager does not know
on the relay channel, as ``{"origin", "key", "task"}`` (the receiver's random id, the job key,
the task object; no signature, no secret), and hands the messages of the other receivers to
its manager as if received itself. Pub/sub keeps nothing: a message sent while a replica is
reconnecting is lost, and that job ends by polling.
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import TYPE_CHECKING

import anyio
from pydantic import ValidationError

from .._bounded_log import BoundedLog
from ..callbacks import MAX_KEY, MAX_TASK_ID
from ..models import LipSyncTask
from . import _redis

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from anyio.abc import TaskStatus
    from pydantic import SecretStr
    from redis.asyncio.client import PubSub

__all__ = ["Relay", "relayed"]

logger = logging.getLogger("chanjing_async")

# Seconds between attempts to subscribe again while Redis is down: doubling up to the cap.
_RELAY_BACKOFF = 0.1
_RELAY_BACKOFF_CAP = 5.0
# Seconds one read of the subscription waits for a message. Short reads, not a blocking one:
# some redis-py versions bound a blocking read by the socket timeout (5 s), which would end
# every idle subscription as an error.
_RELAY_READ = 1.0
# Bytes of a relay message read at most: a callback body is capped at 64 KiB by default (the
# receiver's max_body), and a message is one task object with a key and an origin.
_RELAY_MAX_BYTES = 256 * 1024


def relayed(data: bytes) -> tuple[str, str, LipSyncTask] | None:
    """The origin, job key and task of a relay message; None if it is not one (anything over
    ``_RELAY_MAX_BYTES`` is dropped unread, and so are keys and task ids no callback has)."""
    if len(data) > _RELAY_MAX_BYTES:
        return None
    try:
        message = json.loads(data)
        origin, key = message["origin"], message["key"]
        task = LipSyncTask.model_validate(message["task"])
    except (ValueError, TypeError, KeyError, ValidationError, RecursionError):
        # RecursionError: JSON nested deeper than the parser's stack (b'[' * 100_000).
        return None
    if not isinstance(origin, str) or not isinstance(key, str):
        return None
    if len(key) > MAX_KEY or len(task.id) > MAX_TASK_ID:
        return None
    return origin, key, task


class Relay:
    """The Redis side of a receiver: publishes callbacks for the other replicas, hears theirs.

    Args:
        url: the Redis URL (checked); its password stays in the redis-py client only.
        channel: the pub/sub channel shared by the replicas.
        note: told of each message dropped: ``relay_bad`` (no relayed callback) or
            ``relay_error`` (``take`` raised it; with the exception).

    Raises:
        ConfigurationError: redis-py is missing or refuses the URL.
    """

    def __init__(
        self, url: SecretStr, channel: str, note: Callable[[str, Exception | None], None]
    ) -> None:
        self._client = _redis.connect(url)
        self._note = note
        self._errors = _redis.redis_errors()
        self._channel = channel
        self._down = False
        self._log = BoundedLog(logger)  # anyone who can publish can make Redis drop us
        self.where = _redis.redacted(url)
        self.origin = secrets.token_hex(8)
        """This receiver's id in its messages, so it skips its own."""

    async def publish(self, key: str, task: LipSyncTask) -> bool:
        """Publish the callback of job ``key`` for the other replicas; False if Redis is down.

        Tried twice: a connection pooled before a Redis restart fails once, and is replaced.
        """
        task_json = task.model_dump(mode="json", by_alias=True)
        message = json.dumps({"origin": self.origin, "key": key, "task": task_json})
        return await self._publish(message) or await self._publish(message)

    async def _publish(self, message: str) -> bool:
        try:
            await _redis.redis_call(self._client.publish(self._channel, message))
        except self._errors:
            return False
        return True

    async def listen(
        self,
        take: Callable[[str, LipSyncTask], Awaitable[None]],
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Hand the job key and task of every relayed callback of the other receivers to
        ``take`` until cancelled, across Redis outages.

        Any other message, and one whose ``take`` raises, costs that message only: it is
        reported to ``note`` and the subscription reads on.

        Started once the first subscription is made or has failed; after a failure or a lost
        connection, subscribes again with a backoff doubling up to ``_RELAY_BACKOFF_CAP``.
        """
        pubsub = await self._subscribe()
        task_status.started()
        backoff = _RELAY_BACKOFF
        while True:
            if pubsub is None:
                await anyio.sleep(backoff)
                backoff = min(2 * backoff, _RELAY_BACKOFF_CAP)
            else:
                backoff = _RELAY_BACKOFF
                await self._pump(pubsub, take)
            pubsub = await self._subscribe()

    async def close(self) -> None:
        """Close the connections (the client connects again if the receiver is reopened)."""
        await _redis.redis_call(self._client.aclose())

    async def _subscribe(self) -> PubSub | None:
        """A subscription to the channel, or None if Redis is unreachable."""
        pubsub = self._client.pubsub()
        try:
            await _redis.redis_call(pubsub.subscribe(self._channel))
        except self._errors as exc:
            await _close(pubsub)
            self._lost(exc)
            return None
        if self._down:
            self._down = False
            self._log.note(
                "back",
                logging.INFO,
                "callback relay: Redis %s is back, subscribed again",
                self.where,
            )
        return pubsub

    async def _pump(
        self, pubsub: PubSub, take: Callable[[str, LipSyncTask], Awaitable[None]]
    ) -> None:
        """Hand messages to ``take`` until the connection fails, then close ``pubsub``."""
        try:
            while True:
                message = await _redis.redis_call(
                    pubsub.get_message(ignore_subscribe_messages=True, timeout=_RELAY_READ)
                )
                if message is not None and message["type"] == "message":
                    await self._hand(message["data"], take)
        except self._errors as exc:
            self._lost(exc)
        finally:
            await _close(pubsub)

    async def _hand(self, data: bytes, take: Callable[[str, LipSyncTask], Awaitable[None]]) -> None:
        """Hand one message to ``take``: whatever it holds, or raises, it costs only itself."""
        try:
            message = relayed(data)
            if message is None:
                self._note("relay_bad", None)
                return
            origin, key, task = message
            if origin != self.origin:
                await take(key, task)
        except Exception as exc:  # a bug: the next message is read all the same
            self._note("relay_error", exc)

    def _lost(self, exc: BaseException) -> None:
        """Log the start of an outage (once: not every failed attempt to end it)."""
        if not self._down:
            self._down = True
            self._log.note(
                "lost",
                logging.WARNING,
                "callback relay: Redis %s unreachable (%s); callbacks of other replicas' jobs"
                " are lost until it is back, polling still ends those jobs",
                self.where,
                exc,
            )


async def _close(pubsub: PubSub) -> None:
    """Close a subscription, even while its task is being cancelled."""
    with anyio.CancelScope(shield=True):
        await _redis.redis_call(pubsub.aclose())  # type: ignore[no-untyped-call,unused-ignore]
