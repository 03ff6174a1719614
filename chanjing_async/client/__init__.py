"""The client core: AsyncChanjingClient, its configuration, auth, transport and resources."""

from __future__ import annotations

from ._client import AsyncChanjingClient as AsyncChanjingClient

__all__ = ["AsyncChanjingClient"]
