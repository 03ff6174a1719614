"""On-demand faults: business codes, gateway pages (some outlived by the origin), delays, drops."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Literal, get_args

Endpoint = Literal[
    "access_token",
    "create_upload_url",
    "upload",
    "file_detail",
    "create",
    "detail",
    "list",
    "voices",
]
ENDPOINTS: tuple[Endpoint, ...] = get_args(Endpoint)
FaultKind = Literal["code", "gateway", "gateway_late", "latency", "drop_before", "drop_after"]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
# The kinds that wait ``seconds`` (or a draw up to ``seconds_max``) before the request is handled.
DELAYED_KINDS: frozenset[str] = frozenset({"latency", "drop_after", "gateway_late"})
# Groups of endpoints a FaultRate may name instead of listing them: every endpoint, the
# ``/open/v1`` endpoints (all but the signed-URL PUT), and the two task reads.
ENDPOINT_GROUPS: dict[str, tuple[Endpoint, ...]] = {
    "*": ENDPOINTS,
    "api": tuple(name for name in ENDPOINTS if name != "upload"),
    "reads": ("detail", "list"),
}

# Gateway failures (HTML bodies) client code has met in front of the API, with the reason
# phrase a proxy would send; 524 is Cloudflare's origin timeout, unknown to http.HTTPStatus.
GATEWAY_REASONS: dict[int, str] = {
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
    524: "A Timeout Occurred",
}
_NGINX_PAGE = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_CLOUDFLARE_PAGE = (
    '<!DOCTYPE html>\n<html lang="en-US">\n<head><title>open-api.chanjing.cc | {status}: '
    '{reason}</title></head>\n<body><div id="cf-error-details"><h1>{reason}</h1>'
    "<span>Error code {status}</span><p>The origin web server timed out responding to this "
    "request.</p><p>Cloudflare Ray ID: emulator</p></div></body>\n</html>\n"
)


@dataclass(frozen=True)
class Fault:
    """A failure to apply to the next ``count`` requests of an endpoint.

    Attributes:
        endpoint: An endpoint name (see ``ENDPOINTS``) or ``"*"`` for every endpoint.
        kind: ``"code"`` answers the envelope with ``code``/``msg``; ``"gateway"`` answers HTTP
            ``status`` with an HTML proxy page and the request is never handled;
            ``"gateway_late"`` answers the same page at once while the origin goes on: it
            handles the request in the background after the delay (token check, rate-limit
            admission and the handler, all at that later moment, so a create made this way is
            counted by the limiter, may itself be refused with 40001, and has its
            ``create_time`` then); ``"latency"`` sleeps the delay then handles the request;
            ``"drop_before"`` closes the connection without handling the request;
            ``"drop_after"`` sleeps the delay, handles the request (state changes happen) and
            closes the connection instead of answering.
        code: Business code of a ``"code"`` fault.
        msg: Message of a ``"code"`` fault.
        status: HTTP status of a ``"gateway"`` or ``"gateway_late"`` fault: 502, 503, 504 or
            524.
        seconds: The delay, in wall seconds (not scaled), of ``"latency"``, ``"drop_after"``
            and ``"gateway_late"`` faults, counted from the request's arrival (after its
            inbound network trip). The request is handled even if its client gave up meanwhile.
        count: How many matching requests the fault applies to; None until cleared.
        seconds_max: None (the default): every delay is ``seconds``. A number (>= ``seconds``):
            each request draws its delay uniformly from ``[seconds, seconds_max]``, from the
            emulator's seeded fault generator, so a seeded run repeats its delays while
            concurrent requests still overtake one another as on a loaded server.
    """

    endpoint: Endpoint | Literal["*"]
    kind: FaultKind
    code: int = 50000
    msg: str = "系统内部错误"
    status: int = 502
    seconds: float = 0.0
    count: int | None = 1
    seconds_max: float | None = None

    def __post_init__(self) -> None:
        if self.endpoint != "*" and self.endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be '*' or one of {', '.join(ENDPOINTS)}")
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
        if not _is_int(self.code):
            raise ValueError("code must be an integer")
        if not isinstance(self.msg, str):
            raise ValueError("msg must be a string")
        if self.status not in GATEWAY_REASONS:
            raise ValueError(f"status must be one of {', '.join(map(str, GATEWAY_REASONS))}")
        seconds = self.seconds
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise ValueError("seconds must be a number")
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError("seconds must be finite and not negative")
        high = self.seconds_max
        if high is not None:
            if isinstance(high, bool) or not isinstance(high, (int, float)):
                raise ValueError(f"seconds_max must be None or a number, got {high!r}")
            if not math.isfinite(high) or high < seconds:
                raise ValueError(
                    f"seconds_max must be finite and not less than seconds ({seconds!r}), "
                    f"got {high!r}"
                )
        if self.count is not None and not (_is_int(self.count) and self.count >= 1):
            raise ValueError("count must be a positive integer or None")

    @classmethod
    def from_json(cls, body: object) -> Fault:
        """Build a fault from the JSON object of ``POST /_emulator/faults``.

        Args:
            body: The decoded JSON body; keys are the field names.

        Returns:
            The validated fault.

        Raises:
            ValueError: The body is not an object, has unknown keys or invalid values.
        """
        if not isinstance(body, Mapping):
            raise ValueError("body must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(body) - known)
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(map(str, unknown))}")
        try:
            return cls(**body)
        except TypeError as exc:  # a required field is missing
            raise ValueError(str(exc)) from exc


@dataclass(frozen=True)
class FaultRate:
    """A random fault: each request at one of ``endpoints`` suffers it with ``probability``.

    Unlike a :class:`Fault`, which applies to the next ``count`` requests, a rate applies for the
    emulator's whole life (it is a setting, ``EmulatorSettings.fault_rates``). A pending
    ``Fault`` goes first; only a request that met none draws. Each request then takes one
    uniform draw from a generator of its own (seeded from ``seed``, salted, so task fates and
    the list order never shift), and the rates of its endpoint share the unit interval in
    settings order: rates of 0.1 and 0.05 on ``detail`` answer 10 % and 5 % of detail calls.

    Attributes:
        endpoints: An endpoint name, a tuple of them, or a group: ``"*"`` (every endpoint),
            ``"api"`` (every ``/open/v1`` endpoint: all but ``upload``) or ``"reads"``
            (``detail`` and ``list``). Stored as a tuple of endpoint names.
        kind: As for :class:`Fault`.
        probability: Chance, 0 to 1, that a request at a matching endpoint suffers the fault.
        code: Business code of a ``"code"`` fault.
        msg: Message of a ``"code"`` fault.
        status: HTTP status of a ``"gateway"`` or ``"gateway_late"`` fault: 502, 503, 504 or
            524.
        seconds: Wall seconds before handling, for ``"latency"``, ``"drop_after"`` and
            ``"gateway_late"``.
        seconds_max: As for :class:`Fault`: when set, each request that meets the fault draws
            its delay uniformly from ``[seconds, seconds_max]``.
    """

    endpoints: str | tuple[str, ...]
    kind: FaultKind
    probability: float
    code: int = 50000
    msg: str = "系统内部错误"
    status: int = 502
    seconds: float = 0.0
    seconds_max: float | None = None
    fault: Fault = field(init=False, repr=False, compare=False)
    """The fault a request that draws this rate suffers (built from the fields above)."""

    def __post_init__(self) -> None:
        names: object = self.endpoints
        if isinstance(names, str):
            names = ENDPOINT_GROUPS.get(names, (names,))
        if not isinstance(names, (tuple, list)) or not names:
            raise ValueError("endpoints must be an endpoint name, a group or a non-empty tuple")
        for name in names:
            if name not in ENDPOINTS:
                groups = ", ".join(repr(group) for group in ENDPOINT_GROUPS)
                raise ValueError(
                    f"endpoints must name endpoints ({', '.join(ENDPOINTS)}) or a group "
                    f"({groups}), got {name!r}"
                )
        if len(set(names)) != len(names):
            raise ValueError(f"endpoints must not repeat a name, got {tuple(names)!r}")
        object.__setattr__(self, "endpoints", tuple(names))
        p: object = self.probability
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p):
            raise ValueError(f"probability must be a finite number, got {p!r}")
        if not 0 <= p <= 1:
            raise ValueError(f"probability must be between 0 and 1, got {p!r}")
        # Fault validates kind, code, msg, status, seconds and seconds_max.
        fault = Fault(
            "*", self.kind, self.code, self.msg, self.status, self.seconds, None, self.seconds_max
        )
        object.__setattr__(self, "fault", fault)


class FaultDice:
    """Draws the random faults of ``FaultRate`` settings, one uniform draw per request."""

    def __init__(self, rates: tuple[FaultRate, ...], rng: random.Random) -> None:
        self._rng = rng
        # Per endpoint: (cumulative upper bound, fault), in settings order.
        self._bounds: dict[str, list[tuple[float, Fault]]] = {}
        for rate in rates:
            fault = rate.fault
            for name in rate.endpoints:
                bounds = self._bounds.setdefault(name, [])
                total = bounds[-1][0] if bounds else 0.0
                bounds.append((total + rate.probability, fault))

    def roll(self, endpoint: str) -> Fault | None:
        """The fault a request at ``endpoint`` suffers, or None; no draw without rates."""
        bounds = self._bounds.get(endpoint)
        if not bounds:
            return None
        draw = self._rng.random()
        for bound, fault in bounds:
            if draw < bound:
                return fault
        return None


def _is_int(value: object) -> bool:
    # JSON-born faults may carry anything; True must not pass for 1.
    return type(value) is int


def gateway_page(status: int) -> str:
    """The HTML error page a proxy in front of the API sends with ``status``."""
    template = _CLOUDFLARE_PAGE if status == 524 else _NGINX_PAGE
    return template.format(status=status, reason=GATEWAY_REASONS[status])


class FaultQueue:
    """Pending faults in injection order; each request consumes the first one that matches."""

    def __init__(self) -> None:
        # [fault, remaining uses or None]; a plain list keeps injection order and stays tiny.
        self._pending: list[tuple[Fault, int | None]] = []

    def add(self, fault: Fault) -> None:
        """Queue ``fault`` behind the faults already pending."""
        self._pending.append((fault, fault.count))

    def clear(self) -> None:
        """Forget every pending fault."""
        self._pending.clear()

    def take(self, endpoint: str) -> Fault | None:
        """Consume one use of the first pending fault matching ``endpoint``.

        Args:
            endpoint: The name of the endpoint a request arrived at.

        Returns:
            The fault to apply, or None when no pending fault matches.
        """
        for index, (fault, remaining) in enumerate(self._pending):
            if fault.endpoint not in ("*", endpoint):
                continue
            if remaining is None:
                return fault
            if remaining == 1:
                del self._pending[index]
            else:
                self._pending[index] = (fault, remaining - 1)
            return fault
        return None

    @property
    def pending(self) -> list[Fault]:
        """The faults still pending, in injection order."""
        return [fault for fault, _ in self._pending]


class FaultBook:
    """Decides the fault each request meets, draws its delay and counts what was applied.

    A pending injected fault goes first, then the random ``fault_rates``. Both share one
    generator, seeded from the settings seed (salted), for the rate draws and for the delays of
    faults with ``seconds_max``: requests never shift task fates or list orders, and a seeded run
    meets the same faults with the same delays in the same request order. A fault without
    ``seconds_max`` takes no delay draw, so it leaves the rate draws as they were.

    Attributes:
        queue: The injected faults still pending.
        applied: Faults applied, by endpoint then label (see :meth:`label`).
    """

    def __init__(self, rates: tuple[FaultRate, ...], seed: int | None) -> None:
        """Create an empty book.

        Args:
            rates: The random faults, ``EmulatorSettings.fault_rates``.
            seed: The settings seed; None for entropy.
        """
        self._rng = random.Random(None if seed is None else f"faults:{seed}")
        self._dice = FaultDice(rates, self._rng)
        self.queue = FaultQueue()
        self.applied: dict[str, dict[str, int]] = {}

    @staticmethod
    def label(fault: Fault) -> str:
        """How ``fault`` is counted in ``applied`` (and ``stats()["faults_applied"]``).

        ``"code 50000"``, ``"gateway 502"``, ``"gateway_late 524"``, or the kind alone
        (``"latency"``, ``"drop_before"``, ``"drop_after"``).
        """
        if fault.kind == "code":
            return f"code {fault.code}"
        if fault.kind in ("gateway", "gateway_late"):
            return f"{fault.kind} {fault.status}"
        return fault.kind

    def take(self, endpoint: str) -> Fault | None:
        """The fault a request at ``endpoint`` meets now, if any, counted as applied.

        Returns:
            The fault with this request's delay in ``seconds`` (drawn from
            ``[seconds, seconds_max]`` when ``seconds_max`` is set, which is then cleared), or
            None.
        """
        fault = self.queue.take(endpoint)
        if fault is None:
            fault = self._dice.roll(endpoint)
        if fault is None:
            return None
        kinds = self.applied.setdefault(endpoint, {})
        label = self.label(fault)
        kinds[label] = kinds.get(label, 0) + 1
        if fault.seconds_max is not None and fault.kind in DELAYED_KINDS:
            drawn = self._rng.uniform(fault.seconds, fault.seconds_max)
            # uniform() may round a hair past either bound; the promise is the closed range.
            drawn = min(max(drawn, fault.seconds), fault.seconds_max)
            fault = replace(fault, seconds=drawn, seconds_max=None)
        return fault
