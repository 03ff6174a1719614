"""The exception tree of chanjing-async.

::

    ChanjingError(Exception)
    ├── ConfigurationError(ChanjingError, ValueError)    bad or missing settings
    ├── InvalidInputError(ChanjingError, ValueError)     a request field out of range, never sent
    ├── TransportError                                   aiohttp failure, wrapped
    │   └── RequestTimeoutError(TransportError, TimeoutError)
    ├── HTTPStatusError                                  non-2xx from a gateway (HTML 502/524 ...)
    │   └── RedirectError                                a 3xx: API calls never follow redirects
    ├── DownloadRefusedError (in ``_downloads``)         a result download the policy refused
    │   └── DownloadTooLargeError                        over ``DownloadPolicy.max_bytes``
    ├── APIError                                         envelope code != 0 (code, msg, trace_id)
    │   ├── AuthenticationError                          10400/10401 after one forced refresh,
    │   │                                                or credentials refused by the token call
    │   ├── InvalidRequestError                          400 / 40000
    │   ├── RateLimitError                               40001
    │   ├── FileNotReadyError                            create refused: file not uploaded/ready
    │   └── ServerError                                  50000 / 51000
    ├── CreateOutcomeUnknown                             create sent, outcome unknown; not resent
    ├── UploadError                                      file status 98/99/100 or not ready in time
    ├── JournalError                                     a journal write failed; nothing was sent
    ├── ResponseValidationError                          a success body we could not parse
    └── JobError                                         a managed job did not succeed (job key)
        ├── JobFailedError                               a failure status: 30, 40, 41, 50, 1101
        │   └── InsufficientBalanceError                 status 30 for billing (蝉豆不足 ...)
        ├── JobTimeoutError(JobError, TimeoutError)      a wait or the job deadline passed
        ├── JobCancelledError                            cancelled, or its manager closed
        └── TaskNotFoundError                            the server no longer knows the task

Messages show code, msg and trace_id and never a secret (app secret, token, signed URL).
No error raised by the SDK chains a third-party exception (aiohttp's quote request headers),
and none is raised inside the ``except`` block of its cause: ``__context__`` stays empty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from .models import LipSyncTask

__all__ = [
    "APIError",
    "AuthenticationError",
    "ChanjingError",
    "ConfigurationError",
    "CreateOutcomeUnknown",
    "FileNotReadyError",
    "HTTPStatusError",
    "InsufficientBalanceError",
    "InvalidInputError",
    "InvalidRequestError",
    "JobCancelledError",
    "JobError",
    "JobFailedError",
    "JobTimeoutError",
    "JournalError",
    "RateLimitError",
    "RedirectError",
    "RequestTimeoutError",
    "ResponseValidationError",
    "ServerError",
    "TaskNotFoundError",
    "TransportError",
    "UploadError",
    "error_for_code",
    "job_failure",
]


class ChanjingError(Exception):
    """Base class of every error raised by chanjing-async."""


class ConfigurationError(ChanjingError, ValueError):
    """A setting is missing or invalid (credentials, base URL, limits)."""


class InvalidInputError(ChanjingError, ValueError):
    """A request field is invalid; raised before anything is sent.

    Attributes:
        field: dotted wire name of the field, e.g. ``tts_config.speed``.
        value: the rejected value.
        allowed: what the field accepts.
    """

    def __init__(self, field: str, value: Any, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field}={value!r}: {allowed}")


class TransportError(ChanjingError):
    """The HTTP exchange failed (connection refused, reset, bad payload).

    Attributes:
        endpoint: the API path, e.g. ``/open/v1/video_lip_sync/detail``.
        sent: False only when the request provably never left (connection not established).
    """

    def __init__(self, message: str, *, endpoint: str, sent: bool) -> None:
        self.endpoint = endpoint
        self.sent = sent
        super().__init__(f"{endpoint}: {message}")


class RequestTimeoutError(TransportError, TimeoutError):
    """One HTTP request exceeded its timeout (not a job deadline)."""


class HTTPStatusError(ChanjingError):
    """A non-2xx HTTP answer, typically an HTML gateway page (502/503/504/524).

    Attributes:
        status: the HTTP status.
        endpoint: the API path.
        body_excerpt: the first characters of the body, for diagnosis.
    """

    def __init__(self, status: int, *, endpoint: str, body_excerpt: str = "") -> None:
        self.status = status
        self.endpoint = endpoint
        self.body_excerpt = body_excerpt
        super().__init__(f"{endpoint}: HTTP {status} {body_excerpt[:80]!r}")

    @property
    def is_gateway(self) -> bool:
        """True for proxy pages worth retrying for reads: 502/503/504 and Cloudflare's 520-524."""
        return self.status in {502, 503, 504, 520, 521, 522, 523, 524}


class RedirectError(HTTPStatusError):
    """An API call or a signed-URL upload was answered with a redirect, which is not followed.

    The API answers every call itself: a redirect comes from something in front of it (a
    proxy, a captive portal, a wrong ``base_url``), and following it would send the access
    token or the secret key to the host it names. Not retried; a create answered so created
    nothing.

    Attributes:
        location: where it pointed, without its query string (``""`` if it named nowhere).
    """

    def __init__(self, status: int, *, endpoint: str, location: str) -> None:
        super().__init__(status, endpoint=endpoint)
        self.location = location
        self.args = (
            f"{endpoint}: HTTP {status} redirect to {location or '(no Location)'} not followed:"
            " API calls never follow redirects (check base_url and any proxy in between)",
        )


class APIError(ChanjingError):
    """The API answered HTTP 200 with a non-zero envelope code.

    Attributes:
        code: the envelope code (e.g. 40000).
        msg: the server's message, verbatim.
        trace_id: the server's trace id, for support requests.
        endpoint: the API path.
    """

    def __init__(self, code: int, msg: str, *, trace_id: str = "", endpoint: str = "") -> None:
        self.code = code
        self.msg = msg
        self.trace_id = trace_id
        self.endpoint = endpoint
        super().__init__(f"{endpoint}: code {code}: {msg} (trace_id={trace_id or '-'})")


class AuthenticationError(APIError):
    """The credentials or the token were refused (10400/10401 after one refresh)."""


class InvalidRequestError(APIError):
    """The server rejected the parameters (400 / 40000)."""


class RateLimitError(APIError):
    """The server answered 40001 (over RPM/QPS); our limiters should make this rare."""


class FileNotReadyError(APIError):
    """Create was refused because an input file is not uploaded, not ready or in another bucket."""


class ServerError(APIError):
    """An internal server error (50000 / 51000)."""


class CreateOutcomeUnknown(ChanjingError):
    """A create request may or may not have created a task; it was deliberately not resent.

    Reconcile it through ``client.lip_sync.list`` (tasks whose ``create_time`` falls in
    ``[sent_at - 1, gave_up_at + 1]`` and that no other job owns) before sending it again.

    Attributes:
        endpoint: the API path.
        sent_at: wall-clock Unix time just before the request was sent.
        gave_up_at: wall-clock Unix time when the client stopped waiting for the answer.
        request: the request body that was sent (a callback URL shown without its query).
        candidates: ids of unowned tasks created in that window, when a JobManager's
            reconciliation found more than it could attribute (empty otherwise).
        attempt: the attempt's number in ``client.lip_sync.ledger`` (None if not recorded).
    """

    def __init__(
        self,
        reason: str,
        *,
        endpoint: str,
        sent_at: float,
        gave_up_at: float,
        request: dict[str, Any],
        candidates: tuple[str, ...] = (),
    ) -> None:
        self.reason = reason
        self.endpoint = endpoint
        self.sent_at = sent_at
        self.gave_up_at = gave_up_at
        self.request = request
        self.candidates = candidates
        self.attempt: int | None = None
        found = f"; candidate tasks: {', '.join(candidates)}" if candidates else ""
        super().__init__(
            f"{endpoint}: outcome unknown ({reason}); sent at {sent_at:.3f}, "
            f"gave up at {gave_up_at:.3f}; not resent - reconcile through the task list{found}"
        )


class UploadError(ChanjingError):
    """An uploaded file failed: content check (98), deleted (99/100), or not ready in time.

    Attributes:
        file_id: the file id.
        status: the last file status seen (None if never read).
    """

    def __init__(self, file_id: str, status: int | None, reason: str) -> None:
        self.file_id = file_id
        self.status = status
        super().__init__(f"file {file_id}: {reason} (status={status})")


class JournalError(ChanjingError):
    """A journal write failed (a full disk, a read-only file, a lost lock).

    The job it was for was not submitted and nothing was sent for it: the same call may be
    made again once the cause is fixed. The message names the journal file and the cause's
    type and text (SQLite's, which never holds a secret).

    Attributes:
        path: the journal file.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        super().__init__(f"journal {path}: {reason}")


class ResponseValidationError(ChanjingError):
    """A response did not match the documented shape.

    The message names the fields and the rules, never the values: a token or a signed URL
    may be among them.

    Attributes:
        endpoint: the API path.
    """

    def __init__(self, endpoint: str, detail: str) -> None:
        self.endpoint = endpoint
        super().__init__(f"{endpoint}: unexpected response: {detail}")


class JobError(ChanjingError):
    """A job of a JobManager did not succeed.

    Attributes:
        job_key: the manager's key of the job (known before the task is created).
        task_id: the task id, or None if no task was created.
    """

    def __init__(self, message: str, *, job_key: str, task_id: str | None) -> None:
        self.job_key = job_key
        self.task_id = task_id
        super().__init__(f"job {job_key} (task {task_id or '-'}): {message}")


class JobFailedError(JobError):
    """The task ended in a failure status (30, 40, 41, 50 or 1101); ``msg`` is the server's
    reason and ``task.status`` the status.

    Attributes:
        msg: the server's failure message, verbatim.
        task: the final task object.
    """

    def __init__(self, task: LipSyncTask, *, job_key: str) -> None:
        self.msg = task.msg
        self.task = task
        super().__init__(
            f"failed (status {task.status}): {task.msg or '(no reason given)'}",
            job_key=job_key,
            task_id=task.id,
        )


class InsufficientBalanceError(JobFailedError):
    """The task failed for billing: 扣费失败, 余额不足 or 蝉豆不足 (checked after create)."""


class JobTimeoutError(JobError, TimeoutError):
    """A wait ran out, or the job's deadline passed; the task may still finish on the server.

    Attributes:
        tracked: True if the manager still tracks the job (only the wait ran out).
    """

    def __init__(self, message: str, *, job_key: str, task_id: str | None, tracked: bool) -> None:
        self.tracked = tracked
        super().__init__(message, job_key=job_key, task_id=task_id)


class TaskNotFoundError(JobError):
    """The server says it does not know the job's task (``40000 任务不存在`` on ``detail``,
    absent from the list), confirmed on several reads: it will never end there."""


class JobCancelledError(JobError):
    """The job was cancelled, or its manager closed, before it finished.

    A task already created keeps running on the server; ``task_id`` names it, and
    ``JobManager.attach`` can track it again.
    """


def raise_unchained(error: BaseException) -> NoReturn:
    """Raise ``error`` chained to nothing, even from inside an ``except`` block.

    ``raise`` makes the exception being handled the new one's ``__context__`` (``from None``
    only hides it): a third-party exception, its frames and their locals would then reach an
    error tracker. This clears it as ``error`` leaves. Outside an ``except`` block, a plain
    ``raise`` after the block is the simpler way.
    """
    try:
        raise error
    finally:
        error.__context__ = None


# Reference §5.1: billing is checked after creation, and a task refused for it ends in status 30
# with one of these in its msg.
_BILLING_MARKERS = ("扣费失败", "余额不足", "蝉豆不足")


def job_failure(task: LipSyncTask, *, job_key: str) -> JobFailedError:
    """The error of a task that ended in status 30: billing failures get their own class."""
    if any(marker in task.msg for marker in _BILLING_MARKERS):
        return InsufficientBalanceError(task, job_key=job_key)
    return JobFailedError(task, job_key=job_key)


_CODE_TO_ERROR: dict[int, type[APIError]] = {
    400: InvalidRequestError,
    10400: AuthenticationError,
    10401: AuthenticationError,
    40000: InvalidRequestError,
    40001: RateLimitError,
    50000: ServerError,
    51000: ServerError,
}

# "视频文件还未完成上传" / "音频文件还未完成上传" (the create page's error table): the server
# reports a file that is not uploaded, not ready, failed, deleted or purged, or in another
# bucket as 50000; it is the caller's input, not an outage, and proves nothing was created.
_FILE_NOT_READY_MARKERS = (
    "还未完成上传",
    "文件不存在",
    "文件上传失败",
    "文件内容安全检测失败",
    "文件已删除",
    "文件已清理",
)


# "没有找到对应的声音ID" / "声音ID对应的audio_man不存在或被禁用": the TTS page answers an unknown or
# disabled voice with 50000. The caller's input: nothing was created. The emulator answers it
# with 40000, as every other parameter error.
_UNKNOWN_VOICE_MARKER = "声音ID"


def error_for_code(code: int, msg: str, *, trace_id: str, endpoint: str) -> APIError:
    """Build the typed error for a non-zero envelope code; unknown codes give plain APIError."""
    if code == 50000 and any(marker in msg for marker in _FILE_NOT_READY_MARKERS):
        return FileNotReadyError(code, msg, trace_id=trace_id, endpoint=endpoint)
    if code == 50000 and _UNKNOWN_VOICE_MARKER in msg:
        return InvalidRequestError(code, msg, trace_id=trace_id, endpoint=endpoint)
    cls = _CODE_TO_ERROR.get(code, APIError)
    return cls(code, msg, trace_id=trace_id, endpoint=endpoint)
