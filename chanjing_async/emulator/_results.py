"""Result files: their URLs, signed with an expiry when ``result_url_ttl_seconds`` is set."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from typing import TYPE_CHECKING, Any

from ._clock import server_time
from ._protocol import UploadDenied

if TYPE_CHECKING:
    from .settings import EmulatorSettings

RESULT_EXTENSIONS = ("mp4", "jpg")  # video_url, preview_url


def result_path(task_id: str, ext: str) -> str:
    """The path of a result file on the emulator: ``/_emulator/results/<id>.<ext>``."""
    return f"/_emulator/results/{task_id}.{ext}"


class ResultLinks:
    """Mints and checks result URLs, as the object storage behind the live API would.

    Without a TTL the URLs are plain and never expire. With one, every task object served
    carries URLs signed at that read: ``?Expires=<Unix seconds>&Signature=<HMAC-SHA256 hex>``,
    ``Expires`` written and checked on the server's clock (``clock_offset_seconds``), as object
    storage checks its own clock, never the client's.
    ``Expires`` keeps three decimals because a scaled TTL can be a fraction of a second; the
    signature covers the path and ``Expires``, so nothing is stored per URL and a URL for one
    file opens no other.
    """

    def __init__(self, settings: EmulatorSettings) -> None:
        """Create the minter with a fresh signing key.

        Args:
            settings: Supplies ``result_url_ttl_seconds`` and the time scale.
        """
        self._settings = settings
        ttl = settings.result_url_ttl_seconds
        self.ttl: float | None = None if ttl is None else settings.scaled(ttl)
        self._key = secrets.token_bytes(32)

    def sign(self, task: dict[str, Any]) -> dict[str, Any]:
        """Return ``task`` (a task object) with its non-empty result URLs signed as of now.

        The object is changed in place and returned; without a TTL it is left as it is.
        """
        if self.ttl is None:
            return task
        expires = f"{server_time(self._settings) + self.ttl:.3f}"
        for field, ext in zip(("video_url", "preview_url"), RESULT_EXTENSIONS, strict=True):
            if task[field]:
                signature = self._signature(result_path(task["id"], ext), expires)
                task[field] = f"{task[field]}?Expires={expires}&Signature={signature}"
        return task

    def check(self, path: str, expires: str | None, signature: str | None) -> None:
        """Accept a result download, or refuse it as object storage would.

        Args:
            path: The request path.
            expires: The ``Expires`` query value, or None.
            signature: The ``Signature`` query value, or None.

        Raises:
            UploadDenied: A missing query (AccessDenied), a signature that does not match the
                path and ``Expires`` (SignatureDoesNotMatch), or a passed ``Expires``
                (AccessDenied: Request has expired). Never raised without a TTL.
        """
        if self.ttl is None:
            return
        if not expires or not signature:
            raise UploadDenied("AccessDenied", "Anonymous access is forbidden for this object.")
        expected = self._signature(path, expires)
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            raise UploadDenied("SignatureDoesNotMatch", "The request signature does not match.")
        # The signature vouches for ``expires``: it is a number this minter wrote.
        deadline = float(expires)
        if not math.isfinite(deadline) or server_time(self._settings) >= deadline:
            raise UploadDenied("AccessDenied", "Request has expired.")

    def _signature(self, path: str, expires: str) -> str:
        message = f"GET\n{path}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()
