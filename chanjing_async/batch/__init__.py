"""Batches: manifests (streamed, checked row by row), the runner and result delivery."""

from __future__ import annotations

from ._runner import BatchProgress as BatchProgress
from ._runner import BatchReport as BatchReport
from ._runner import RowOutcome as RowOutcome
from ._runner import download_results as download_results
from ._runner import journal_summary as journal_summary
from ._runner import run_batch as run_batch

__all__ = [
    "BatchProgress",
    "BatchReport",
    "RowOutcome",
    "download_results",
    "journal_summary",
    "run_batch",
]
