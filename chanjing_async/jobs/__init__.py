"""The job manager: JobManager, JobHandle, job specs, submission, reconciliation, polling."""

from __future__ import annotations

from ._handle import JobEvent as JobEvent
from ._handle import JobHandle as JobHandle
from ._handle import JobStage as JobStage
from ._jobspec import LipSyncJob as LipSyncJob
from ._manager import Job as Job
from ._manager import JobManager as JobManager
from ._manager import JobManagerStats as JobManagerStats
from ._poll_policy import PollPolicy as PollPolicy

__all__ = [
    "Job",
    "JobEvent",
    "JobHandle",
    "JobManager",
    "JobManagerStats",
    "JobStage",
    "LipSyncJob",
    "PollPolicy",
]
