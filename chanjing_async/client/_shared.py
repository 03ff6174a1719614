"""What a client shares with the other processes of its app id, and where a URL finds it.

Processes of one app id must share three things or they get in each other's way: the rate
limits (the server counts the account, not a process), the access token (a new one invalidates
the previous) and the create attempts (none may adopt a task another created). A
:class:`SharedState` keeps all three; the client defines it and knows no implementation.

``AsyncChanjingClient(rate_limiter=<URL>)`` finds the implementation in a registry of one
backend: :mod:`chanjing_async.scaleout` registers its Redis one when it is imported, and the
package root imports it, so a Redis URL always works. The registry keeps the dependency one
way (scaleout implements what the client defines) without making a user build the backend
for the common case of a URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pydantic import SecretStr

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..limits import Limiters, RateLimits
    from ._attempts import AttemptStore
    from ._auth import TokenStore

__all__ = ["SharedBackend", "SharedState", "register_backend", "shared_kind", "shared_state"]


@runtime_checkable
class SharedState(Protocol):
    """The limits, the token and the create attempts of one app id, shared between processes.

    One instance serves one open client at a time: :meth:`open` when it opens, :meth:`aclose`
    when it closes.
    """

    async def open(self, limits: RateLimits, app_id: str) -> Limiters:
        """Limiters for ``app_id`` with the rates of ``limits``, shared with every process."""

    def token_store(self, app_id: str) -> TokenStore:
        """Where the processes of ``app_id`` share its access token (after :meth:`open`)."""

    def attempt_store(self, app_id: str) -> AttemptStore:
        """Where the processes of ``app_id`` share their create attempts (after :meth:`open`)."""

    async def aclose(self) -> None:
        """Write what is pending and close what :meth:`open` opened."""


@dataclass(frozen=True)
class SharedBackend:
    """The implementation a URL setting is made into.

    Attributes:
        kind: the class a user may also pass built (named in the error for a wrong type).
        from_url: makes one from a URL, checking it (ConfigurationError naming the setting).
    """

    kind: type[SharedState]
    from_url: Callable[[SecretStr], SharedState]


_registered: list[SharedBackend] = []


def register_backend(backend: SharedBackend) -> None:
    """Make ``backend`` the one a URL given as ``rate_limiter`` is made into."""
    _registered[:] = [backend]


def shared_kind() -> type[SharedState]:
    """The class a ``rate_limiter`` setting may be besides a URL (for :func:`~.conceal`)."""
    return _registered[0].kind if _registered else SharedState


def shared_state(setting: SecretStr | SharedState | None) -> SharedState | None:
    """The concealed ``rate_limiter`` setting as a :class:`SharedState` (None: nothing shared).

    Raises:
        ConfigurationError: a URL the backend refuses (the message shows it redacted).
    """
    if not isinstance(setting, SecretStr):
        return setting
    if not _registered:
        raise ConfigurationError(
            "rate_limiter: a URL needs a shared backend: import chanjing_async.scaleout"
        )
    return _registered[0].from_url(setting)
