"""The emulator tests' fixture: a logged-in raw client (helpers are in tests/support)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.support.emulator_helpers import Api, running

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    """A logged-in ``Api`` on a fresh emulator with the ``BASE`` settings."""
    async with running() as client:
        yield client
