"""What a failed call means: worth a retry, a refused token, or a create of unknown outcome.

A create is retried only when it provably created nothing: the connection was never made, or
the API answered a code that means "not created" (40001, 10400, 50000 about a file). A
timeout, a disconnect after sending, a gateway page, 50000/51000 ("系统内部错误") or a code 0
without a task id leave its outcome unknown: :class:`~chanjing_async.errors.CreateOutcomeUnknown`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..errors import (
    APIError,
    AuthenticationError,
    ChanjingError,
    CreateOutcomeUnknown,
    FileNotReadyError,
    HTTPStatusError,
    RateLimitError,
    ResponseValidationError,
    ServerError,
    TransportError,
    error_for_code,
)
from ._wire import redact_url

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..models import Envelope
    from ._endpoints import Endpoint

__all__ = [
    "AUTH_CODES",
    "UNKNOWN_CODES",
    "data_of",
    "refused_in_front",
    "refused_token",
    "retryable",
    "unknown",
]

# Codes of a refused or expired access token.
AUTH_CODES = frozenset({10400, 10401})
# Codes on a create that do not prove nothing was created ("系统内部错误").
UNKNOWN_CODES = frozenset({50000, 51000})


def retryable(error: ChanjingError) -> bool:
    """Worth another attempt: a transport failure, a gateway page, or a code that means
    "nothing was done, try again later"."""
    if isinstance(error, HTTPStatusError):
        return error.is_gateway
    if isinstance(error, APIError):
        return isinstance(error, (RateLimitError, ServerError)) and not isinstance(
            error, FileNotReadyError
        )
    return isinstance(error, TransportError)


def refused_token(error: APIError) -> AuthenticationError:
    """A token refused again after one refresh, or refused while sending in a caller's slot."""
    return AuthenticationError(
        error.code, error.msg, trace_id=error.trace_id, endpoint=error.endpoint
    )


def refused_in_front(error: ChanjingError) -> bool:
    """A page without an envelope that refused the request before the API saw it: a redirect
    (never followed) or a 4xx."""
    return isinstance(error, HTTPStatusError) and 300 <= error.status < 500


def unknown(
    cause: Exception, endpoint: Endpoint, sent_at: float, request: dict[str, Any] | None
) -> CreateOutcomeUnknown:
    return CreateOutcomeUnknown(
        str(cause),
        endpoint=endpoint.path,
        sent_at=sent_at,
        gave_up_at=time.time(),
        request=_redacted(request or {}),
    )


def _redacted(request: dict[str, Any]) -> dict[str, Any]:
    """A copy of a create body safe to show: a callback URL may carry a signature."""
    shown = dict(request)
    if isinstance(shown.get("callback"), str):
        shown["callback"] = redact_url(shown["callback"])
    return shown


def data_of(
    envelope: Envelope,
    endpoint: Endpoint,
    sent_at: float,
    request: dict[str, Any] | None,
    *,
    penalize: Callable[[], None],
) -> Any:
    """The ``data`` of an answered call, or its code's typed error (``penalize`` is called for
    a 40001: the limiter then holds every request back)."""
    create = endpoint.kind == "create"
    if envelope.code != 0:
        error = error_for_code(
            envelope.code, envelope.msg, trace_id=envelope.trace_id, endpoint=endpoint.path
        )
        if isinstance(error, RateLimitError):
            penalize()
        if create and type(error) is ServerError:
            # "系统内部错误" does not prove that nothing was created: reconcile, never resend.
            raise unknown(error, endpoint, sent_at, request)
        raise error
    if create and (not isinstance(envelope.data, str) or not envelope.data):
        # Success without a task id: the task exists but we cannot name it.
        raise unknown(
            ResponseValidationError(endpoint.path, "code 0 without a task id"),
            endpoint,
            sent_at,
            request,
        )
    return envelope.data
