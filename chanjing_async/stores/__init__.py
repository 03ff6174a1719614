"""Persistence: the SQLite journal a manager's jobs survive a crash in."""

from __future__ import annotations

from ._journal import Journal as Journal
from ._journal import JournalRow as JournalRow

__all__ = ["Journal", "JournalRow"]
