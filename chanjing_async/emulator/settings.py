"""Settings of the local Chanjing emulator: credentials, time scale, durations, limits, failures."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from ._faults import FaultRate

__all__ = [
    "FILE_STATUS_TWO",
    "LIST_ORDERS",
    "RATE_WINDOWS",
    "EmulatorSettings",
    "FileStatusTwo",
    "ListOrder",
    "RateWindow",
]

RateWindow = Literal["sliding", "fixed"]
RATE_WINDOWS: tuple[RateWindow, ...] = ("sliding", "fixed")
ListOrder = Literal["newest", "oldest", "random"]
LIST_ORDERS: tuple[ListOrder, ...] = ("newest", "oldest", "random")
FileStatusTwo = Literal["ready", "failed"]
FILE_STATUS_TWO: tuple[FileStatusTwo, ...] = ("ready", "failed")


@dataclass(frozen=True)
class EmulatorSettings:
    """Immutable configuration of one emulator instance.

    Every duration is given in real-scale seconds (what the live API would take) and divided by
    ``time_scale`` K when used, so K = 60 makes a documented minute last one second. The only
    exceptions are fault delays (``Fault.seconds``) and ``clock_offset_seconds``, which are
    wall seconds.

    Attributes:
        app_id: The accepted app id.
        secret_key: The accepted secret key (kept out of ``repr``).
        time_scale: K, how many times faster than real time the emulator runs.
        task_seconds: Time from create to a terminal status: queued for the first 10 %, then
            generating with progress rising linearly from 0 to 99.
        file_ready_seconds: Delay between the upload PUT and ``file_detail`` reporting status 1.
        file_status_two: How the emulator reads file status 2, on which the evidence
            disagrees: the vendor's scripts accept 1 or 2 as ready (2 "kept for an older
            definition"), third-party code quoting the OpenAPI file reads
            "0 uploading, 1 done, 2 failed". None (the default): processing ends in 1, and a
            2 forced with ``set_file_status`` counts as ready. ``"ready"``: processing ends in
            2, and a create accepts it. ``"failed"``: processing ends in 2 with ``msg``
            "文件上传失败", and a create naming the file is refused with 50000
            "视频文件上传失败" (or 音频...), as it is for a file in 98, 99 or 100.
        extra_voices: Voice ids a TTS create may name besides the catalogue of
            ``list_common_audio`` (e.g. your account's customised voices, which the live service
            lists elsewhere); not listed. Any other ``audio_man_id`` is refused with 40000
            "没有找到对应的声音ID".
        token_ttl_seconds: Lifetime of an access token (documented: about one day).
        upload_url_ttl_seconds: Validity of a signed upload URL (documented: 15 minutes).
        result_url_ttl_seconds: Validity of a result URL (``video_url``, ``preview_url``),
            counted from the read that served it; the docs only say result URLs are
            time-limited. None (the default): plain URLs that never expire.
            A number: every served task object carries freshly signed URLs,
            ``...<id>.mp4?Expires=<Unix seconds, 3 decimals>&Signature=<hex>``, and the result
            route answers 403 with an OSS-style XML body once ``Expires`` has passed or when
            the signature is missing or wrong.
        fail_rate: Fraction of tasks ending in status 30 with a generic generation failure.
        billing_fail_rate: Fraction of tasks ending in status 30 with "扣费失败: 蝉豆不足".
        decode_check: Fail every task whose video upload does not start like an MP4/MOV
            (``ftyp`` at bytes 4..8) or a WebM (EBML magic): status 30 with
            "视频解析失败: video could not be decoded", a fifth of the way through the task,
            whatever the seed and the fail rates. False: any bytes make a video.
        rate_window: ``"sliding"`` (exact log over the last window) or ``"fixed"`` (calendar
            buckets of one window each).
        count_rejected: Whether a 40001-rejected arrival still counts in the window. The docs
            are silent; True is the harsher reading, so it is the default.
        create_limit: Creates admitted per ``create_window`` (documented: RPM 10/min).
        create_window: Window of the create limit, in seconds.
        read_limit: Admitted detail calls, and separately list calls, per ``read_window``
            (documented: QPS 10/s on each endpoint).
        read_window: Window of the read limits, in seconds.
        latency_seconds: Extra delay before handling each ``/open/v1`` request.
        latency_base_seconds: Fixed part of the random one-way network latency. Every request to
            ``/open/v1``, the upload PUT and the result downloads takes one independent trip in
            (before faults, auth and rate limiting see it) and another out (before the response
            is sent).
        latency_mean_seconds: Mean of an exponential draw added to the base on each trip.
        latency_tail_rate: Probability (0 to 1) that a trip takes a tail delay instead of
            base + exponential.
        latency_tail_seconds: ``(low, high)``, the uniform range of a tail delay.
        callbacks: Deliver task callbacks; False drops them all (counted as dropped).
        list_order: Order of the task list endpoint, which the docs leave open:
            ``"newest"`` is newest first, the console order and the default;
            ``"oldest"`` is creation order; ``"random"`` is a fresh shuffle on every list call,
            so pages may overlap and miss tasks, as a list that shifts between calls would.
            Lets tests check that SDK code never relies on the list order.
        fault_rates: Faults drawn at random on every request (see ``FaultRate``): e.g.
            ``FaultRate("reads", "code", 0.1)`` answers 10 % of detail and list calls with
            50000. The rates naming one endpoint must add up to at most 1. Empty (the default):
            no random faults; faults injected with ``EmulatorState.inject`` go first anyway.
        seed: Seed of the random generators that decide task failures and the ``"random"``
            list order, the network latency, and the random faults with the fault delays drawn
            up to ``seconds_max`` (separate generators, so list calls, trips and fault draws
            never change task fates); None for entropy.
        clock_offset_seconds: The server's wall clock minus the real one, in wall seconds (not
            divided by ``time_scale``; may be negative). Every Unix time the server emits uses
            the shifted clock: task and file ``create_time``, the token's ``expire_in``, the
            ``Expires`` of signed URLs, callback bodies and the HTTP ``Date`` header of every
            response (and of callback POSTs). Lets tests check that client code never takes the
            server's clock for its own (reconciling creates by ``create_time``, refreshing
            tokens by ``expire_in``). Durations, limits and arrival logs run on the monotonic
            clock and are unaffected.
    """

    app_id: str = "emulator-app"
    secret_key: str = field(default="emulator-secret", repr=False)
    time_scale: float = 1.0
    task_seconds: float = 30.0
    file_ready_seconds: float = 3.0
    file_status_two: FileStatusTwo | None = None
    extra_voices: tuple[str, ...] = ()
    token_ttl_seconds: float = 86400.0
    upload_url_ttl_seconds: float = 900.0
    result_url_ttl_seconds: float | None = None
    fail_rate: float = 0.0
    billing_fail_rate: float = 0.0
    decode_check: bool = True
    rate_window: RateWindow = "sliding"
    count_rejected: bool = True
    create_limit: int = 10
    create_window: float = 60.0
    read_limit: int = 10
    read_window: float = 1.0
    latency_seconds: float = 0.0
    latency_base_seconds: float = 0.0
    latency_mean_seconds: float = 0.0
    latency_tail_rate: float = 0.0
    latency_tail_seconds: tuple[float, float] = (0.5, 3.0)
    callbacks: bool = True
    list_order: ListOrder = "newest"
    fault_rates: tuple[FaultRate, ...] = ()
    seed: int | None = None
    clock_offset_seconds: float = 0.0

    def __post_init__(self) -> None:
        for name in ("app_id", "secret_key"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string")
        self._check_voices()
        _check_number("time_scale", self.time_scale, positive=True)
        durations = ("task_seconds", "file_ready_seconds", "latency_seconds")
        for name in (*durations, "latency_base_seconds", "latency_mean_seconds"):
            _check_number(name, getattr(self, name), positive=False)
        self._check_tail()
        for name in ("token_ttl_seconds", "upload_url_ttl_seconds", "create_window", "read_window"):
            _check_number(name, getattr(self, name), positive=True)
        ttl = self.result_url_ttl_seconds
        if ttl is not None:
            try:
                _check_number("result_url_ttl_seconds", ttl, positive=True)
            except ValueError:
                raise ValueError(
                    f"result_url_ttl_seconds must be None or a positive finite number, got {ttl!r}"
                ) from None
        for name in ("fail_rate", "billing_fail_rate"):
            rate = getattr(self, name)
            _check_number(name, rate, positive=False)
            if rate > 1:
                raise ValueError(f"{name} must be between 0 and 1, got {rate!r}")
        # One uniform draw decides a task's fate (see EmulatorState), so the two fractions share
        # the unit interval.
        if self.fail_rate + self.billing_fail_rate > 1:
            raise ValueError("fail_rate + billing_fail_rate must not exceed 1")
        if self.rate_window not in RATE_WINDOWS:
            raise ValueError(f"rate_window must be 'sliding' or 'fixed', got {self.rate_window!r}")
        two = self.file_status_two
        if two is not None and two not in FILE_STATUS_TWO:
            raise ValueError(f"file_status_two must be None, 'ready' or 'failed', got {two!r}")
        if self.list_order not in LIST_ORDERS:
            allowed = ", ".join(repr(order) for order in LIST_ORDERS)
            raise ValueError(f"list_order must be one of {allowed}, got {self.list_order!r}")
        for name in ("create_limit", "read_limit"):
            limit = getattr(self, name)
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ValueError(f"{name} must be a positive integer, got {limit!r}")
        self._check_fault_rates()
        seed = self.seed
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed must be an integer or None, got {self.seed!r}")
        # Any sign: a server clock may run behind the client's as well as ahead of it.
        _check_number("clock_offset_seconds", self.clock_offset_seconds, positive=None)

    def _check_voices(self) -> None:
        """Validate the extra voices; a list (as from JSON) is stored as a tuple."""
        voices: object = self.extra_voices
        if isinstance(voices, str) or not isinstance(voices, (tuple, list)):
            raise ValueError(f"extra_voices must be a tuple of voice ids, got {voices!r}")
        for voice in voices:
            if not isinstance(voice, str) or not voice.strip():
                raise ValueError(f"extra_voices must hold non-empty strings, got {voice!r}")
        object.__setattr__(self, "extra_voices", tuple(voices))

    def _check_tail(self) -> None:
        """Validate the latency tail; a list pair (as from JSON) is stored as a tuple."""
        rate = self.latency_tail_rate
        _check_number("latency_tail_rate", rate, positive=False)
        if rate > 1:
            raise ValueError(f"latency_tail_rate must be between 0 and 1, got {rate!r}")
        tail: object = self.latency_tail_seconds
        if not isinstance(tail, (tuple, list)) or len(tail) != 2:
            raise ValueError(f"latency_tail_seconds must be a (low, high) pair, got {tail!r}")
        for bound in tail:
            _check_number("latency_tail_seconds", bound, positive=False)
        if tail[0] > tail[1]:
            raise ValueError(f"latency_tail_seconds must have low <= high, got {tail!r}")
        object.__setattr__(self, "latency_tail_seconds", tuple(tail))

    def _check_fault_rates(self) -> None:
        """Validate the random faults; a list (as from JSON) is stored as a tuple."""
        rates: object = self.fault_rates
        if not isinstance(rates, (tuple, list)) or not all(
            isinstance(rate, FaultRate) for rate in rates
        ):
            raise ValueError(f"fault_rates must be a tuple of FaultRate, got {rates!r}")
        totals: dict[str, float] = {}
        for rate in rates:
            for name in rate.endpoints:
                totals[name] = totals.get(name, 0.0) + rate.probability
        # One uniform draw per request picks at most one fault, so an endpoint's rates share
        # the unit interval (a little float slack for rates like 0.7 + 0.2 + 0.1).
        over = sorted(name for name, total in totals.items() if total > 1 + 1e-9)
        if over:
            raise ValueError(
                f"fault_rates on {', '.join(over)} add up to more than 1 "
                f"({max(totals[name] for name in over):g})"
            )
        object.__setattr__(self, "fault_rates", tuple(rates))

    def scaled(self, seconds: float) -> float:
        """Convert a real-scale duration into emulator seconds.

        Args:
            seconds: A duration as the live API would take it.

        Returns:
            ``seconds / time_scale``.
        """
        return seconds / self.time_scale


def _check_number(name: str, value: object, *, positive: bool | None) -> None:
    """Raise ValueError unless ``value`` is a finite real number, > 0 or >= 0 as asked.

    ``positive=None`` accepts any sign.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    if positive is False and value < 0:
        raise ValueError(f"{name} must not be negative, got {value!r}")
