"""The paging of list calls: the largest page and the check made before a list is sent."""

from __future__ import annotations

from ..errors import InvalidInputError

__all__ = ["MAX_PAGE_SIZE", "check_page"]

MAX_PAGE_SIZE = 100
"""Largest ``page_size``/``size`` we send. The API documents no maximum; the emulator agrees."""


def check_page(page: int, page_size: int, *, size_field: str = "page_size") -> None:
    """Validate list paging before sending: ``page`` >= 1, size 1..MAX_PAGE_SIZE."""
    # type() rather than isinstance(): True is an int, but page=True is a bug.
    if type(page) is not int or page < 1:
        raise InvalidInputError("page", page, "must be an integer >= 1")
    if type(page_size) is not int:
        raise InvalidInputError(size_field, page_size, f"must be an integer 1..{MAX_PAGE_SIZE}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInputError(size_field, page_size, f"must be between 1 and {MAX_PAGE_SIZE}")
