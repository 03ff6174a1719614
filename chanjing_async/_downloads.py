"""Result downloads: where they may go and how much they may bring (stub, being written)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DownloadPolicy"]


@dataclass(frozen=True)
class DownloadPolicy:
    """Limits of a result download (see the module docstring)."""

    max_bytes: int = 4 * 1024**3
    max_redirects: int = 3
    allow_loopback: bool | None = None
    allow_private: bool = False
