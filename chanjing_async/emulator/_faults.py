"""On-demand faults: business codes, gateway pages, latency and dropped connections."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
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
FaultKind = Literal["code", "gateway", "latency", "drop_before", "drop_after"]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)

# Gateway failures client code has met in front of the API (reference §1), with the reason
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
            ``status`` with an HTML proxy page; ``"latency"`` sleeps ``seconds`` then handles the
            request; ``"drop_before"`` closes the connection without handling the request;
            ``"drop_after"`` handles it (state changes happen) and closes the connection instead
            of answering.
        code: Business code of a ``"code"`` fault.
        msg: Message of a ``"code"`` fault.
        status: HTTP status of a ``"gateway"`` fault: 502, 503, 504 or 524.
        seconds: Wall seconds (not scaled) slept before handling, for ``"latency"`` and
            ``"drop_after"`` faults. The request is handled even if its client gave up meanwhile.
        count: How many matching requests the fault applies to; None until cleared.
    """

    endpoint: Endpoint | Literal["*"]
    kind: FaultKind
    code: int = 50000
    msg: str = "系统内部错误"
    status: int = 502
    seconds: float = 0.0
    count: int | None = 1

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
