"""The job manager: JobManager, JobHandle, job specs, submission, reconciliation, polling."""

from __future__ import annotations

from ._manager import Job as Job
from ._manager import JobManager as JobManager
from ._manager import JobManagerStats as JobManagerStats

__all__ = ["Job", "JobManager", "JobManagerStats"]
