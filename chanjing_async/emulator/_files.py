"""Uploaded files: signed PUT URLs, readiness on the scaled clock, forced statuses."""

from __future__ import annotations

import hashlib
import hmac
import mimetypes
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ._clock import server_time
from ._protocol import CODE_INTERNAL, CODE_PARAM, ApiError, UploadDenied

if TYPE_CHECKING:
    import builtins

    from .settings import EmulatorSettings

VIDEO_SERVICE = "lip_sync_video"
AUDIO_SERVICE = "lip_sync_audio"
FILE_READY = (1, 2)  # 2 is the historic "ready" some clients still accept
# Failed statuses: file_detail says "文件<reason>", create "视频文件<reason>".
FILE_FAILURES = {98: "内容安全检测失败", 99: "已删除", 100: "已清理"}
# Status 2 read as failed (``file_status_two="failed"``: "0 上传中, 1 已完成, 2 失败").
STATUS_TWO_FAILURE = "上传失败"

# The start of an upload is kept for the decode check; the rest is only counted.
HEAD_BYTES = 16
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"  # WebM (a Matroska profile) starts with an EBML header

# Built-in tables only (no /etc/mime.types), so answers do not depend on the machine; .m4a is
# missing from older Python tables and is a documented lip-sync audio format (mp3, m4a, wav).
_MIME_TYPES = mimetypes.MimeTypes()
_MIME_TYPES.add_type("audio/mp4", ".m4a")


@dataclass
class FileRecord:
    """A file announced by ``create_upload_url``.

    Attributes:
        id: The file id (32 hex).
        service: The usage bucket it was announced under.
        name: The original file name.
        mime_type: The Content-Type the PUT must carry.
        create_time: Unix seconds of the announcement, on the server's clock.
        base_url: Origin the announcement was made on, for URLs.
        url_expires: Unix seconds in the signed URL's ``Expires``, on the server's clock (the
            refusal itself goes by ``url_deadline``).
        url_deadline: Monotonic time after which the signed URL is refused.
        bytes: Size of the uploaded body (0 before the PUT).
        head: The first ``HEAD_BYTES`` bytes of the uploaded body (empty before the PUT).
        uploaded_at: Monotonic time of the PUT, None before it.
        forced_status: A status set by ``set_status``; wins over the clock.
    """

    id: str
    service: str
    name: str
    mime_type: str
    create_time: int
    base_url: str
    url_expires: int
    url_deadline: float
    bytes: int = 0
    head: builtins.bytes = b""  # the field ``bytes`` shadows the type in this class
    uploaded_at: float | None = None
    forced_status: int | None = None

    @property
    def key(self) -> str:
        """The storage key: ``<service>/<file id>/<name>``."""
        return f"{self.service}/{self.id}/{self.name}"

    @property
    def full_path(self) -> str:
        """The public URL of the object."""
        return f"{self.base_url}/_emulator/files/{self.id}/{quote(self.name)}"


class FileStore:
    """The files announced so far, with the object-storage side of their upload."""

    def __init__(self, settings: EmulatorSettings) -> None:
        """Create an empty store.

        Args:
            settings: Supplies the URL lifetime and readiness delay.
        """
        self.settings = settings
        self.records: dict[str, FileRecord] = {}
        self._signing_key = secrets.token_bytes(32)

    def announce(self, service: str, name: str, base_url: str) -> FileRecord:
        """Register a file for upload, as ``create_upload_url`` does."""
        ttl = self.settings.scaled(self.settings.upload_url_ttl_seconds)
        now = server_time(self.settings)
        record = FileRecord(
            id=uuid.uuid4().hex,
            service=service,
            name=name,
            mime_type=_MIME_TYPES.guess_type(name)[0] or "application/octet-stream",
            create_time=int(now),
            base_url=base_url,
            url_expires=int(now + ttl),
            url_deadline=time.monotonic() + ttl,
        )
        self.records[record.id] = record
        return record

    def sign_url(self, record: FileRecord) -> str:
        """The OSS-style signed PUT URL of ``record``."""
        signature = self._signature(record.id, str(record.url_expires))
        return (
            f"{record.base_url}/_emulator/upload/{record.id}?OSSAccessKeyId=emulator"
            f"&Expires={record.url_expires}&Signature={signature}"
        )

    def accept_upload(
        self, file_id: str, expires: str, signature: str, content_type: str | None
    ) -> FileRecord:
        """Check a PUT against its signed URL, as object storage would.

        Raises:
            UploadDenied: Bad signature, expired URL or a Content-Type other than ``mime_type``
                (OSS signs the Content-Type, so a mismatch is a signature mismatch).
        """
        record = self.records.get(file_id)
        expected = self._signature(file_id, expires)
        if record is None or not hmac.compare_digest(signature.encode(), expected.encode()):
            raise UploadDenied("SignatureDoesNotMatch", "The request signature does not match.")
        if time.monotonic() >= record.url_deadline:
            raise UploadDenied("AccessDenied", "Request has expired.")
        if content_type != record.mime_type:
            raise UploadDenied("SignatureDoesNotMatch", f"Content-Type must be {record.mime_type}.")
        return record

    def store_upload(self, record: FileRecord, size: int, head: bytes = b"") -> None:
        """Record a completed PUT of ``size`` bytes starting with ``head``; readiness starts now."""
        record.bytes = size
        record.head = head[:HEAD_BYTES]
        record.uploaded_at = time.monotonic()

    def status(self, record: FileRecord) -> int:
        """0 until the PUT plus the readiness delay has passed, then 1, unless forced.

        With ``file_status_two`` set, processing ends in 2 instead of 1: a ready file under
        ``"ready"``, a failed one under ``"failed"``.
        """
        if record.forced_status is not None:
            return record.forced_status
        if record.uploaded_at is None:
            return 0
        ready_at = record.uploaded_at + self.settings.scaled(self.settings.file_ready_seconds)
        if time.monotonic() < ready_at:
            return 0
        return 1 if self.settings.file_status_two is None else 2

    def failure(self, status: int) -> str | None:
        """Why a file in ``status`` can never be used (``"已删除"`` ...), None if it may be.

        Status 2 is a failure only under ``file_status_two="failed"``; otherwise it is the
        historic "ready" that older clients still accept.
        """
        if status == 2 and self.settings.file_status_two == "failed":
            return STATUS_TWO_FAILURE
        return FILE_FAILURES.get(status)

    def view(self, file_id: str) -> dict[str, Any]:
        """The ``file_detail`` data of ``file_id``.

        Raises:
            ApiError: 40000 文件不存在 for an unknown id.
        """
        record = self.records.get(file_id)
        if record is None:
            raise ApiError(CODE_PARAM, "文件不存在")
        status = self.status(record)
        failure = self.failure(status)
        return {
            "id": record.id,
            "service": record.service,
            "name": record.name,
            "bytes": record.bytes,
            "create_time": record.create_time,
            "file_path": record.full_path,
            "status": status,
            "msg": "" if failure is None else f"文件{failure}",
        }

    def ready(self, file_id: str, service: str) -> FileRecord:
        """The file a create refers to, which must be ready in the lip-sync ``service`` bucket.

        Raises:
            ApiError: 50000 naming the video or audio file as not uploaded, or as failed
                (``视频文件已删除``; ``视频文件上传失败`` for status 2 read as failed): a
                refusal that proves nothing was created, as a careful server would give.
        """
        label = "视频" if service == VIDEO_SERVICE else "音频"
        record = self.records.get(file_id)
        # A file in another bucket is as good as absent for lip-sync create.
        status = None if record is None or record.service != service else self.status(record)
        failure = None if status is None else self.failure(status)
        if failure is not None:
            raise ApiError(CODE_INTERNAL, f"{label}文件{failure}")
        if record is None or status not in FILE_READY:
            # Seen live as 50000 "...文件还未完成上传" on another create (inferred for lip-sync).
            raise ApiError(CODE_INTERNAL, f"{label}文件还未完成上传")
        return record

    def _signature(self, file_id: str, expires: str) -> str:
        message = f"PUT\n{file_id}\n{expires}".encode()
        return hmac.new(self._signing_key, message, hashlib.sha256).hexdigest()


def looks_decodable(head: bytes) -> bool:
    """Whether an upload starting with ``head`` looks like a video the service can decode.

    MP4 and MOV (ISO base media) files open with a box whose type, at bytes 4..8, is ``ftyp``;
    WebM, the third documented video format, opens with the EBML magic. A sniff of
    the container only, as a decoder's first step would be; the content is not checked.
    """
    return head[4:8] == b"ftyp" or head.startswith(_EBML_MAGIC)
