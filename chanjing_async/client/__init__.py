"""The client core: AsyncChanjingClient, its configuration, auth, transport and resources.

Besides the client, what an implementation of shared state in another package needs: the
:class:`SharedState` protocol and :func:`register_backend` (``_shared``).
"""

from __future__ import annotations

from ._client import AsyncChanjingClient as AsyncChanjingClient
from ._shared import SharedBackend as SharedBackend
from ._shared import SharedState as SharedState
from ._shared import register_backend as register_backend

__all__ = ["AsyncChanjingClient", "SharedBackend", "SharedState", "register_backend"]
