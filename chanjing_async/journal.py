"""Kept for imports written before the layout of subpackages: see :mod:`chanjing_async.stores`."""

from __future__ import annotations

from .stores import Journal as Journal
from .stores import JournalRow as JournalRow

__all__ = ["Journal", "JournalRow"]
