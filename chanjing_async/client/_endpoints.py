"""The endpoints of the Chanjing Open API the client calls.

An endpoint's kind selects its rate limiter and its retry rule: ``create`` (10 per 60 s, never
retried blindly), ``read`` (detail and list, 10 per second) and ``other``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ACCESS_TOKEN",
    "FILE_DETAIL",
    "LIP_SYNC_CREATE",
    "LIP_SYNC_DETAIL",
    "LIP_SYNC_LIST",
    "UPLOAD_URL",
    "VOICES",
    "Endpoint",
    "EndpointKind",
]

EndpointKind = Literal["create", "read", "other"]


@dataclass(frozen=True)
class Endpoint:
    """One API endpoint: method, path and the kind that selects its limiter and retry rule."""

    method: Literal["GET", "POST"]
    path: str
    kind: EndpointKind


ACCESS_TOKEN = Endpoint("POST", "/open/v1/access_token", "other")
UPLOAD_URL = Endpoint("GET", "/open/v1/common/create_upload_url", "other")
FILE_DETAIL = Endpoint("GET", "/open/v1/common/file_detail", "other")
LIP_SYNC_CREATE = Endpoint("POST", "/open/v1/video_lip_sync/create", "create")
LIP_SYNC_DETAIL = Endpoint("GET", "/open/v1/video_lip_sync/detail", "read")
LIP_SYNC_LIST = Endpoint("POST", "/open/v1/video_lip_sync/list", "read")
VOICES = Endpoint("GET", "/open/v1/list_common_audio", "other")
