"""The wire protocol of the Open API: the response envelope, business codes and their errors."""

from __future__ import annotations

import uuid
from typing import Any

# The documented business codes.
CODE_OK = 0
CODE_BAD_FORMAT = 400
CODE_AUTH = 10400
CODE_PARAM = 40000
CODE_RATE = 40001
CODE_INTERNAL = 50000


def envelope(data: Any, code: int = CODE_OK, msg: str = "success") -> dict[str, Any]:
    """The body of every ``/open/v1`` answer and of callbacks.

    Args:
        data: The payload; None on errors (the docs show no error payload: a choice).
        code: The business code, 0 for success.
        msg: ``"success"`` or the failure message.

    Returns:
        ``{"trace_id": <32 hex>, "code", "msg", "data"}``.
    """
    return {"trace_id": uuid.uuid4().hex, "code": code, "msg": msg, "data": data}


class ApiError(Exception):
    """A business failure, answered as HTTP 200 with ``code``/``msg`` and ``data: null``."""

    def __init__(self, code: int, msg: str) -> None:
        """Create the error.

        Args:
            code: The envelope ``code``.
            msg: The envelope ``msg``.
        """
        super().__init__(code, msg)
        self.code = code
        self.msg = msg


def param_error(field: str, reason: str) -> ApiError:
    """A 40000 naming the offending field, e.g. ``参数错误: tts_config.speed: must be ...``."""
    return ApiError(CODE_PARAM, f"参数错误: {field}: {reason}")


class UploadDenied(Exception):
    """An object-storage refusal, answered as HTTP 403 with an OSS-style XML body.

    Raised for a signed upload PUT and, when result URLs expire, for a result download.
    """

    def __init__(self, oss_code: str, message: str) -> None:
        """Create the refusal.

        Args:
            oss_code: The OSS error code, e.g. ``SignatureDoesNotMatch``.
            message: The human-readable message.
        """
        super().__init__(oss_code, message)
        self.oss_code = oss_code
        self.message = message
