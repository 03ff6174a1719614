"""chanjing-async: asyncio SDK, CLI and local emulator for the Chanjing lip-sync Open API."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .callbacks import CallbackReceiver as CallbackReceiver
from .client import AsyncChanjingClient as AsyncChanjingClient
from .client import DownloadPolicy as DownloadPolicy
from .client import DownloadRefusedError as DownloadRefusedError
from .client import DownloadTooLargeError as DownloadTooLargeError
from .client import RetryPolicy as RetryPolicy
from .client import Timeouts as Timeouts
from .errors import APIError as APIError
from .errors import AuthenticationError as AuthenticationError
from .errors import ChanjingError as ChanjingError
from .errors import ConfigurationError as ConfigurationError
from .errors import CreateOutcomeUnknown as CreateOutcomeUnknown
from .errors import FileNotReadyError as FileNotReadyError
from .errors import HTTPStatusError as HTTPStatusError
from .errors import InsufficientBalanceError as InsufficientBalanceError
from .errors import InvalidInputError as InvalidInputError
from .errors import InvalidRequestError as InvalidRequestError
from .errors import JobCancelledError as JobCancelledError
from .errors import JobError as JobError
from .errors import JobFailedError as JobFailedError
from .errors import JobTimeoutError as JobTimeoutError
from .errors import JournalError as JournalError
from .errors import RateLimitError as RateLimitError
from .errors import RedirectError as RedirectError
from .errors import RequestTimeoutError as RequestTimeoutError
from .errors import ResponseValidationError as ResponseValidationError
from .errors import ServerError as ServerError
from .errors import TaskNotFoundError as TaskNotFoundError
from .errors import TransportError as TransportError
from .errors import UploadError as UploadError
from .jobs import Job as Job
from .jobs import JobEvent as JobEvent
from .jobs import JobHandle as JobHandle
from .jobs import JobManager as JobManager
from .jobs import JobManagerStats as JobManagerStats
from .jobs import JobStage as JobStage
from .jobs import LipSyncJob as LipSyncJob
from .jobs import PollPolicy as PollPolicy
from .limits import Rate as Rate
from .limits import RateLimiter as RateLimiter
from .limits import RateLimits as RateLimits
from .limits import SlidingWindowLimiter as SlidingWindowLimiter
from .limits import TokenBucketLimiter as TokenBucketLimiter
from .models import FileDetail as FileDetail
from .models import FileStatus as FileStatus
from .models import LipSyncRequest as LipSyncRequest
from .models import LipSyncTask as LipSyncTask
from .models import Page as Page
from .models import PageInfo as PageInfo
from .models import TaskStatus as TaskStatus
from .models import TtsConfig as TtsConfig
from .models import Voice as Voice
from .scaleout import RedisRateLimiter as RedisRateLimiter
from .scaleout import RedisSlidingWindowLimiter as RedisSlidingWindowLimiter

try:
    __version__ = version("chanjing-async")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = [
    "APIError",
    "AsyncChanjingClient",
    "AuthenticationError",
    "CallbackReceiver",
    "ChanjingError",
    "ConfigurationError",
    "CreateOutcomeUnknown",
    "DownloadPolicy",
    "DownloadRefusedError",
    "DownloadTooLargeError",
    "FileDetail",
    "FileNotReadyError",
    "FileStatus",
    "HTTPStatusError",
    "InsufficientBalanceError",
    "InvalidInputError",
    "InvalidRequestError",
    "Job",
    "JobCancelledError",
    "JobError",
    "JobEvent",
    "JobFailedError",
    "JobHandle",
    "JobManager",
    "JobManagerStats",
    "JobStage",
    "JobTimeoutError",
    "JournalError",
    "LipSyncJob",
    "LipSyncRequest",
    "LipSyncTask",
    "Page",
    "PageInfo",
    "PollPolicy",
    "Rate",
    "RateLimitError",
    "RateLimiter",
    "RateLimits",
    "RedirectError",
    "RedisRateLimiter",
    "RedisSlidingWindowLimiter",
    "RequestTimeoutError",
    "ResponseValidationError",
    "RetryPolicy",
    "ServerError",
    "SlidingWindowLimiter",
    "TaskNotFoundError",
    "TaskStatus",
    "Timeouts",
    "TokenBucketLimiter",
    "TransportError",
    "TtsConfig",
    "UploadError",
    "Voice",
    "__version__",
]
