"""Per-job capability URLs: ``<public_url>/<job key>?sig=<HMAC-SHA256(secret, job key)>``.

Chanjing POSTs the task object to a task's ``callback`` URL when it ends, unsigned and with no
documented retry, so the URL itself carries the proof, minted before the create is sent. The
key is percent-encoded whole in the URL (``/``, ``?``, ``#``, spaces, non-ASCII) and decoded on
receipt; the signature is over the key itself. Only ``.`` and ``..`` cannot be carried (HTTP
clients resolve such path segments away, escaped or not): a manager with callbacks refuses them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import quote

from pydantic import SecretBytes

from ..errors import InvalidInputError
from ._repeats import MAX_KEY

__all__ = ["UrlSigner", "check_key", "strong"]

# Keys no URL path segment can carry: HTTP clients resolve them away, even escaped (%2E).
_DOT_SEGMENTS = frozenset({".", ".."})


def check_key(key: str) -> None:
    """Refuse a job key that no callback URL can carry (a manager checks it at submit).

    Raises:
        InvalidInputError: ``.`` or ``..``: HTTP clients resolve such path segments away
            (``%2E`` too), so the callback would reach another path; or longer than
            ``MAX_KEY`` (512) characters: its URL would not fit in a request line.
    """
    if len(key) > MAX_KEY:
        raise InvalidInputError(
            "key",
            f"{key[:40]}... ({len(key)} characters)",
            f"must be at most {MAX_KEY} characters with callbacks (the callback URL carries"
            " it, and must fit in a request line)",
        )
    if key in _DOT_SEGMENTS:
        raise InvalidInputError(
            "key",
            key,
            "cannot be '.' or '..' with callbacks (URL path segments that HTTP clients "
            "resolve away): choose another key",
        )


def strong(secret: object) -> bool:
    """Whether ``secret`` can key the HMAC: bytes (or SecretBytes), at least 16 of them."""
    value = secret.get_secret_value() if isinstance(secret, SecretBytes) else secret
    return isinstance(value, bytes) and len(value) >= 16


class UrlSigner:
    """Mints and checks the signatures of job URLs.

    Args:
        secret: the HMAC key (checked by :func:`strong`); None draws 32 random bytes.
    """

    def __init__(self, secret: SecretBytes | None) -> None:
        self._secret = SecretBytes(secrets.token_bytes(32)) if secret is None else secret

    def url(self, public_url: str, key: str) -> str:
        """The callback URL of the job ``key`` under ``public_url`` (the key checked first).

        Raises:
            InvalidInputError: a key no URL can carry (:func:`check_key`).
        """
        check_key(key)
        return f"{public_url}/{quote(key, safe='')}?sig={self._sign(key)}"

    def verify(self, key: str, sig: str) -> bool:
        """Whether ``sig`` is the signature of ``key``, in constant time."""
        # Bytes, not str: compare_digest refuses non-ASCII str, which anyone could send.
        return hmac.compare_digest(self._sign(key).encode(), sig.encode("utf-8", "replace"))

    def _sign(self, key: str) -> str:
        # surrogatepass: a key decoded from a hostile URL may hold lone surrogates; their bytes
        # are no strict UTF-8, so they never sign like a real key (which is valid text).
        return hmac.new(
            self._secret.get_secret_value(), key.encode("utf-8", "surrogatepass"), hashlib.sha256
        ).hexdigest()
