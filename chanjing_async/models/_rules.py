"""The checks a request field's value goes through: ranges, choices, ids, texts and URLs.

Each returns the value, or raises ``ValueError`` whose message is what is allowed (the request
models turn it into :class:`~chanjing_async.errors.InvalidInputError`, naming the field).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "MAX_TEXT_CHARS",
    "between",
    "http_url",
    "non_empty",
    "one_of",
    "positive",
    "text_list",
    "texts",
]

# The create page sets no text limit; the TTS page does: "文本长度限制为4000字以下" (under 4,000
# characters). The emulator refuses longer texts alike (40000), counting the parts joined.
MAX_TEXT_CHARS = 3999


def between(low: float, high: float) -> Callable[[float], float]:
    """A check that a number lies in ``low..high``."""

    def check(value: float) -> float:
        if not low <= value <= high:
            raise ValueError(f"must be between {low:g} and {high:g}")
        return value

    return check


def one_of(*allowed: Any, meaning: str = "") -> Callable[[Any], Any]:
    """A check that a value is one of ``allowed``; ``meaning`` explains them."""

    def check(value: Any) -> Any:
        if value not in allowed:
            choices = " or ".join(repr(a) for a in allowed)
            raise ValueError(f"must be {choices}{f' ({meaning})' if meaning else ''}")
        return value

    return check


def positive(value: int) -> int:
    """An integer > 0."""
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def non_empty(value: str) -> str:
    """A string with something besides whitespace."""
    if not value.strip():
        raise ValueError("must be a non-empty string")
    return value


def text_list(value: Any) -> Any:
    """One string as a list of one: the table types ``text`` as array[string] while the
    page's example sends a string, and the vendor's own script sends a list."""
    return [value] if isinstance(value, str) else value


def texts(value: list[str]) -> list[str]:
    """A non-empty list of non-empty parts, at most ``MAX_TEXT_CHARS`` in all."""
    if not value or any(not part.strip() for part in value):
        raise ValueError("must be a non-empty string or a non-empty list of non-empty strings")
    length = sum(len(part) for part in value)
    if length > MAX_TEXT_CHARS:
        # The value shown is the length: the text itself would fill the message.
        raise InvalidInputError(
            "tts_config.text",
            f"{length:,} characters",
            f"must be at most {MAX_TEXT_CHARS:,} characters in all (the TTS limit: under 4,000)",
        )
    return value


def http_url(value: str) -> str:
    """An ``http://`` or ``https://`` URL with a host."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return value
