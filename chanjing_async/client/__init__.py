"""The client core: AsyncChanjingClient, its configuration, auth, transport and resources.

Besides the client and its settings, what an implementation of shared state in another
package needs: the :class:`SharedState` protocol and :func:`register_backend` (``_shared``).
"""

from __future__ import annotations

from ._client import AsyncChanjingClient as AsyncChanjingClient
from ._config import RetryPolicy as RetryPolicy
from ._config import Timeouts as Timeouts
from ._downloads import DownloadPolicy as DownloadPolicy
from ._downloads import DownloadRefusedError as DownloadRefusedError
from ._downloads import DownloadTooLargeError as DownloadTooLargeError
from ._shared import SharedBackend as SharedBackend
from ._shared import SharedState as SharedState
from ._shared import register_backend as register_backend

__all__ = [
    "AsyncChanjingClient",
    "DownloadPolicy",
    "DownloadRefusedError",
    "DownloadTooLargeError",
    "RetryPolicy",
    "SharedBackend",
    "SharedState",
    "Timeouts",
    "register_backend",
]
