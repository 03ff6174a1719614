"""Pydantic v2 models of every request and response of the lip-sync Open API.

``_statuses`` holds the task and file status codes, ``_responses`` the API's answers,
``_requests`` the create request, checked before anything is sent, and ``_paging`` the check of
list paging. ``_fields`` is the one table of a job's fields (manifest column, CLI flag, request
field, check, default, help) that the request models, the manifest and the CLI read; ``_rules``
holds the checks it names.
"""

from __future__ import annotations

from ._paging import MAX_PAGE_SIZE as MAX_PAGE_SIZE
from ._paging import check_page as check_page
from ._requests import LipSyncRequest as LipSyncRequest
from ._requests import TtsConfig as TtsConfig
from ._responses import AccessToken as AccessToken
from ._responses import Envelope as Envelope
from ._responses import FileDetail as FileDetail
from ._responses import LipSyncTask as LipSyncTask
from ._responses import Page as Page
from ._responses import PageInfo as PageInfo
from ._responses import UploadUrl as UploadUrl
from ._responses import Voice as Voice
from ._rules import MAX_TEXT_CHARS as MAX_TEXT_CHARS
from ._statuses import FileStatus as FileStatus
from ._statuses import TaskStatus as TaskStatus

__all__ = [
    "AccessToken",
    "Envelope",
    "FileDetail",
    "FileStatus",
    "LipSyncRequest",
    "LipSyncTask",
    "Page",
    "PageInfo",
    "TaskStatus",
    "TtsConfig",
    "UploadUrl",
    "Voice",
    "check_page",
]
