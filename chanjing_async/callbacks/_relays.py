"""The relay between replicas behind one callback URL, as the receiver sees it.

Any replica may receive the callback of a job another one submitted. A valid callback naming a
job the local manager does not know is published on the relay for the others, and every
receiver with a relay hands the messages of the others to its own manager, as if received
itself (still only a hint, confirmed through ``detail``). The receiver defines what it needs,
:class:`RelayLink`; the implementation (Redis pub/sub) lives in :mod:`chanjing_async.scaleout`,
which registers it here when imported. The package root imports it, so ``relay="redis://..."``
always works, and the receiver never imports the layer above it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from anyio.abc import TaskStatus
    from pydantic import SecretStr

    from ..models import LipSyncTask

__all__ = ["RelayBackend", "RelayLink", "register_relay", "relay_backend"]


class RelayLink(Protocol):
    """One receiver's side of the relay."""

    where: str
    """Where the relay is, as a message may show it (no password)."""

    async def publish(self, key: str, task: LipSyncTask) -> bool:
        """Publish the callback of job ``key`` for the other replicas; False if unreachable."""

    async def listen(
        self,
        take: Callable[[str, LipSyncTask], Awaitable[None]],
        *,
        task_status: TaskStatus[None] = ...,
    ) -> None:
        """Hand every callback the other replicas relay to ``take`` until cancelled."""

    async def close(self) -> None:
        """Close the connections (the relay connects again if the receiver is reopened)."""


@dataclass(frozen=True)
class RelayBackend:
    """How a relay URL becomes a :class:`RelayLink`.

    Attributes:
        check_url: raises ConfigurationError naming the setting (``field``) for a URL the
            backend cannot use; the message shows it without a password.
        connect: the link for a checked URL, a channel and the receiver's ``note`` (told of
            each message dropped: ``relay_bad`` or ``relay_error`` with its exception).
    """

    check_url: Callable[[SecretStr, str], None]
    connect: Callable[[SecretStr, str, Callable[[str, Exception | None], None]], RelayLink]


_registered: list[RelayBackend] = []


def register_relay(backend: RelayBackend) -> None:
    """Make ``backend`` the one a receiver's ``relay`` URL is made into."""
    _registered[:] = [backend]


def relay_backend() -> RelayBackend:
    """The registered relay backend.

    Raises:
        ConfigurationError: none is registered (``chanjing_async.scaleout`` not imported).
    """
    if not _registered:
        raise ConfigurationError("relay: a relay URL needs chanjing_async.scaleout imported")
    return _registered[0]
