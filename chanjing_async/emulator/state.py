"""Everything the emulator remembers: token, files, tasks, arrival logs, faults and counters."""

from __future__ import annotations

import hmac
import random
import secrets
import string
import time
import uuid
from dataclasses import asdict, dataclass
from itertools import islice
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from ._clock import server_time
from ._faults import ENDPOINTS, Fault, FaultBook
from ._files import AUDIO_SERVICE, VIDEO_SERVICE, FileRecord, FileStore, looks_decodable
from ._network import NetworkLatency
from ._protocol import CODE_AUTH, CODE_PARAM, CODE_RATE, ApiError
from ._ratelimit import Arrival, ArrivalLog, WindowLimiter
from ._results import ResultLinks
from ._task_controls import TaskControls
from ._tasks import TaskRecord

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from ._validation import CreateRequest
    from .settings import EmulatorSettings

__all__ = ["CallbackOutcome", "EmulatorState", "EndpointStats"]

GENERIC_FAILURE = "视频生成失败: 素材人脸检测失败"
BILLING_FAILURE = "扣费失败: 蝉豆不足"
DECODE_FAILURE = "视频解析失败: video could not be decoded"
# An undecodable video fails this far into the task: queued for the first 10 %, then a little
# progress (about 11) before decoding gives up.
DECODE_FAILS_AT = 0.2
CallbackOutcome = Literal["sent", "failed", "dropped"]
_ALNUM = string.ascii_letters + string.digits


@dataclass
class EndpointStats:
    """Request counters of one endpoint; requests that met an injected fault count too.

    Attributes:
        requests: Every request that reached the endpoint.
        rejected_40001: Requests answered with 40001.
        errors: Requests that got any other failure: a non-zero code, an HTTP error status
            (gateway fault, refused upload) or a dropped connection.
        handled_late: Requests answered by a ``"gateway_late"`` fault that the origin then
            handled in the background, counted when that handling ends, whatever its outcome.
            Such a request counts once in ``errors`` (the gateway page its client got) and, if
            the limiter refused it at its handling, in ``rejected_40001`` at that moment too.
    """

    requests: int = 0
    rejected_40001: int = 0
    errors: int = 0
    handled_late: int = 0


@dataclass
class _Token:
    value: str
    deadline: float  # monotonic


class EmulatorState(TaskControls):
    """The mutable state of one emulator; handlers change it, tests inspect it.

    Methods are synchronous and run on the event loop thread, so no locking is needed.

    Attributes:
        settings: The emulator settings.
        uploads: The announced files and their upload side.
        results: Mints and checks result URLs (signed when they expire).
        network: Draws and sleeps the random one-way network trips.
    """

    def __init__(self, settings: EmulatorSettings) -> None:
        """Create an empty state.

        Args:
            settings: The emulator settings.
        """
        self.settings = settings
        self.uploads = FileStore(settings)
        self.results = ResultLinks(settings)
        self.network = NetworkLatency(settings)
        # Only task fates draw from the seeded generator, so the n-th task's fate depends on the
        # seed alone, not on how many ids or tokens were made before it.
        self._fate = random.Random(settings.seed)
        # The "random" list order shuffles with its own generator, so list calls never shift
        # task fates; it is seeded from the same seed (salted) to keep seeded runs repeatable.
        self._shuffle = random.Random(None if settings.seed is None else f"list:{settings.seed}")
        # Faults (injected or drawn) and their delays draw from a generator of their own.
        self._faults = FaultBook(settings.fault_rates, settings.seed)
        self._token: _Token | None = None
        self._tasks: dict[str, TaskRecord] = {}
        self._tokens_revoked = 0
        self._endpoints: dict[str, EndpointStats] = {name: EndpointStats() for name in ENDPOINTS}
        self._tasks_created = self._tokens_issued = 0
        self._callbacks: dict[CallbackOutcome, int] = {"sent": 0, "failed": 0, "dropped": 0}
        self._result_downloads = self._result_downloads_refused = 0
        # Detail and list are limited separately, as each page documents its own QPS.
        windows = {
            "create": (settings.create_limit, settings.scaled(settings.create_window)),
            "detail": (settings.read_limit, settings.scaled(settings.read_window)),
            "list": (settings.read_limit, settings.scaled(settings.read_window)),
        }
        self._logs: dict[str, ArrivalLog] = {name: ArrivalLog(None) for name in ENDPOINTS}
        for name, (limit, window) in windows.items():
            self._logs[name].limiter = WindowLimiter(
                limit, window, mode=settings.rate_window, count_rejected=settings.count_rejected
            )

    # -- inspection -------------------------------------------------------------------------

    @property
    def tasks(self) -> Mapping[str, TaskRecord]:
        """Read-only view of the tasks by id, in creation order."""
        return MappingProxyType(self._tasks)

    @property
    def files(self) -> Mapping[str, FileRecord]:
        """Read-only view of the announced files by id."""
        return MappingProxyType(self.uploads.records)

    def arrivals(self, endpoint: str) -> list[Arrival]:
        """The arrivals logged at ``endpoint`` (after faults and auth), oldest first."""
        return list(self._logs[endpoint].arrivals)

    def stats(self) -> dict[str, Any]:
        """Counters as served by ``GET /_emulator/stats``.

        ``result_downloads`` counts result files served; ``result_downloads_refused`` counts
        result GETs answered 403 (missing, wrong or expired signature) or 404 (no such result).
        ``faults_applied`` counts the faults requests met, injected or drawn from
        ``fault_rates``, by endpoint then kind (``"code 50000"``, ``"gateway 502"``,
        ``"gateway_late 524"``, ``"latency"``, ``"drop_before"``, ``"drop_after"``), when the
        request meets it; ``tokens_revoked`` counts the calls of :meth:`revoke_tokens` that
        revoked a token.
        """
        return {
            "endpoints": {name: asdict(stats) for name, stats in self._endpoints.items()},
            "tasks_created": self._tasks_created,
            "tokens_issued": self._tokens_issued,
            "callbacks_sent": self._callbacks["sent"],
            "callbacks_failed": self._callbacks["failed"],
            "callbacks_dropped": self._callbacks["dropped"],
            "result_downloads": self._result_downloads,
            "result_downloads_refused": self._result_downloads_refused,
            "faults_applied": {name: dict(kinds) for name, kinds in self._faults.applied.items()},
            "tokens_revoked": self._tokens_revoked,
        }

    def server_time(self) -> float:
        """The server's wall clock, Unix seconds: the real one plus ``clock_offset_seconds``.

        The one source of every Unix time the emulator emits (see ``_clock``).
        """
        return server_time(self.settings)

    def current_token(self) -> str | None:
        """The token the emulator accepts now, or None when none was issued or it expired."""
        token = self._token
        if token is None or time.monotonic() >= token.deadline:
            return None
        return token.value

    def endpoint_stats(self, endpoint: str) -> EndpointStats:
        """The live counters of ``endpoint``, for the request pipeline to update."""
        return self._endpoints[endpoint]

    def count_callback(self, outcome: CallbackOutcome) -> None:
        """Count one callback as sent, failed or dropped."""
        self._callbacks[outcome] += 1

    def count_result_download(self, *, served: bool) -> None:
        """Count one GET of a result file: served, or refused (403) or not found (404)."""
        if served:
            self._result_downloads += 1
        else:
            self._result_downloads_refused += 1

    # -- faults -----------------------------------------------------------------------------

    @property
    def faults(self) -> list[Fault]:
        """Pending faults in injection order."""
        return self._faults.queue.pending

    def inject(self, fault: Fault) -> None:
        """Apply ``fault`` to the next matching requests, after the faults already pending."""
        self._faults.queue.add(fault)

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        self._faults.queue.clear()

    def take_fault(self, endpoint: str) -> Fault | None:
        """The fault the next request at ``endpoint`` must suffer, if any, and count it.

        A pending injected fault goes first (one use of it is consumed); otherwise the request
        draws from ``settings.fault_rates``. The fault returned carries this request's delay in
        ``seconds``: drawn from ``[seconds, seconds_max]`` (seeded) when ``seconds_max`` is set.
        """
        return self._faults.take(endpoint)

    # -- auth and limits --------------------------------------------------------------------

    def issue_token(self, app_id: str, secret_key: str) -> tuple[str, int]:
        """Issue a new token, invalidating the previous one (as the live API does).

        Args:
            app_id: The presented app id.
            secret_key: The presented secret key.

        Returns:
            The token and its absolute expiry in Unix seconds (not a TTL).

        Raises:
            ApiError: 40000 on wrong credentials.
        """
        settings = self.settings
        good_id = hmac.compare_digest(app_id.encode(), settings.app_id.encode())
        good_key = hmac.compare_digest(secret_key.encode(), settings.secret_key.encode())
        if not (good_id and good_key):
            raise ApiError(CODE_PARAM, "参数错误: app_id 或 secret_key 错误")
        ttl = settings.scaled(settings.token_ttl_seconds)
        value = "".join(secrets.choice(_ALNUM) for _ in range(64))
        self._token = _Token(value, time.monotonic() + ttl)
        self._tokens_issued += 1
        # Truncated to whole seconds, the advertised expiry never outlives the real one (on the
        # server's clock, which is the client's only if clock_offset_seconds is 0).
        return value, int(self.server_time() + ttl)

    def revoke_tokens(self) -> bool:
        """Revoke the current token, as a new login elsewhere or a server-side reset would.

        The next call presenting it gets 10400 until the client fetches a new token.

        Returns:
            True if a valid token was revoked, False if there was none.
        """
        revoked = self.current_token() is not None
        self._token = None
        self._tokens_revoked += revoked
        return revoked

    def check_token(self, presented: str | None) -> None:
        """Accept only the latest unexpired token.

        Raises:
            ApiError: 10400 for a missing, unknown, superseded or expired token.
        """
        current = self.current_token()
        if (
            presented is None
            or current is None
            or not hmac.compare_digest(presented.encode(), current.encode())
        ):
            raise ApiError(CODE_AUTH, "AccessToken验证失败")

    def admit(self, endpoint: str) -> None:
        """Log an arrival at ``endpoint`` and enforce its window limit, if it has one.

        Raises:
            ApiError: 40001 when over the limit (create counts per minute, reads per second).
        """
        if not self._logs[endpoint].record(time.monotonic()):
            kind = "RPM" if endpoint == "create" else "QPS"
            raise ApiError(CODE_RATE, f"超出{kind}限制")

    # -- files and tasks --------------------------------------------------------------------

    def set_file_status(self, file_id: str, status: int) -> None:
        """Force the status of a file, e.g. 98 (content check failed), 99 or 100.

        Raises:
            KeyError: Unknown file id.
        """
        self.uploads.records[file_id].forced_status = status

    def create_task(
        self, request: CreateRequest, body: Mapping[str, Any], base_url: str
    ) -> TaskRecord:
        """Create a task from a validated request once its files are ready.

        Args:
            request: The validated request.
            body: The raw body, kept on the record for inspection.
            base_url: Origin of the request, for result URLs.

        Returns:
            The new task.

        A video whose upload does not look like MP4/MOV/WebM (``decode_check``) makes a task
        that fails early with ``DECODE_FAILURE``, whatever its draw.

        Raises:
            ApiError: 50000 when a file is missing, in the wrong bucket, not ready or failed.
        """
        video = self.uploads.ready(request.video_file_id, VIDEO_SERVICE)
        if request.audio_file_id is None:
            duration = 300 * len(request.text)  # about 0.3 s of speech per character
        else:
            audio = self.uploads.ready(request.audio_file_id, AUDIO_SERVICE)
            duration = audio.bytes // 16  # milliseconds of 128 kbit/s audio
        # Billing is checked after creation: create succeeds, the task fails.
        # One draw per task keeps each fraction exact.
        draw = self._fate.random()
        billing, generic = self.settings.billing_fail_rate, self.settings.fail_rate
        failure = None
        if draw < billing:
            failure = BILLING_FAILURE
        elif draw < billing + generic:
            failure = GENERIC_FAILURE
        now = time.monotonic()
        ends_at = now + self.settings.scaled(self.settings.task_seconds)
        generation_end = None
        # Decided after the draw, so every task still takes one and later fates do not shift.
        if self.settings.decode_check and not looks_decodable(video.head):
            failure, generation_end = DECODE_FAILURE, ends_at
            ends_at = now + DECODE_FAILS_AT * (ends_at - now)
        task = TaskRecord(
            id=uuid.uuid4().hex,
            request=body,
            base_url=base_url,
            callback=request.callback,
            create_time=int(self.server_time()),
            created_at=now,
            ends_at=ends_at,
            duration=max(1000, duration),
            failure=failure,
            generation_end=generation_end,
        )
        self._tasks[task.id] = task
        self._tasks_created += 1
        return task

    def task_object(self, task_id: str) -> dict[str, Any]:
        """The detail data of ``task_id`` as of now.

        Raises:
            ApiError: 40000 任务不存在 for an unknown id (undocumented: a choice).
        """
        task = self._tasks.get(task_id)
        if task is None:
            raise ApiError(CODE_PARAM, "任务不存在")
        return self.task_view(task)

    def task_view(self, task: TaskRecord, now: float | None = None) -> dict[str, Any]:
        """The task object of ``task`` as served now (detail, list item or callback).

        Result URLs are signed at this call when ``result_url_ttl_seconds`` is set.

        Args:
            task: The task.
            now: Monotonic time of the state to show; now when None.
        """
        return self.results.sign(task.to_object(time.monotonic() if now is None else now))

    def task_page(self, page: int, size: int) -> tuple[list[dict[str, Any]], int]:
        """One page of task objects in the configured list order, and the total number of tasks.

        Ordering is undocumented. ``"newest"`` (newest first) is the usual
        console order; ``"oldest"`` is creation order; ``"random"`` reshuffles every task on
        each call, so consecutive pages may overlap and miss tasks.
        """
        now = time.monotonic()
        start = (page - 1) * size
        tasks = self._tasks.values()
        order = self.settings.list_order
        chosen: Iterable[TaskRecord]
        if order == "newest":
            chosen = islice(reversed(tasks), start, start + size)
        elif order == "oldest":
            chosen = islice(tasks, start, start + size)
        else:
            shuffled = list(tasks)
            self._shuffle.shuffle(shuffled)
            chosen = shuffled[start : start + size]
        return [self.task_view(task, now) for task in chosen], len(self._tasks)

    def succeeded(self, task_id: str) -> bool:
        """Whether ``task_id`` exists and has ended in status 20."""
        task = self._tasks.get(task_id)
        return task is not None and task.succeeded_by(time.monotonic())
