"""Opt-in pytest plugin: factory fixtures for an emulator, clients and job managers.

Enable it in a ``conftest.py`` (it is not registered on its own)::

    pytest_plugins = ["chanjing_async.testing.pytest_plugin"]

Each fixture is a factory, called from an async test as often as needed; whatever it made is
closed when the test ends, in reverse order: managers, then clients, then emulators. Async
tests run under anyio's pytest plugin (installed with anyio): mark them ``pytest.mark.anyio``.
The SDK runs on asyncio (aiohttp), so ``anyio_backend`` is ``"asyncio"`` here, not every
backend installed; a conftest that defines ``anyio_backend`` takes precedence.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from ..emulator import EmulatorServer
from . import emulator_settings, paced_client, paced_jobs

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ..client import AsyncChanjingClient
    from ..jobs import JobManager

__all__ = [
    "ClientFactory",
    "EmulatorFactory",
    "JobsFactory",
    "anyio_backend",
    "chanjing_client",
    "chanjing_emulator",
    "chanjing_jobs",
]


class EmulatorFactory(Protocol):
    """``await chanjing_emulator(**settings)``: a running emulator (``emulator_settings``)."""

    async def __call__(self, **settings: Any) -> EmulatorServer: ...


class ClientFactory(Protocol):
    """``await chanjing_client(emulator, **options)``: an open client paced to the emulator."""

    async def __call__(
        self, emulator: EmulatorServer | str, **options: Any
    ) -> AsyncChanjingClient: ...


class JobsFactory(Protocol):
    """``await chanjing_jobs(client, **options)``: an open job manager paced like the client."""

    async def __call__(self, client: AsyncChanjingClient, **options: Any) -> JobManager: ...


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """The backend of anyio-marked tests: asyncio, the only one aiohttp runs on."""
    return "asyncio"


@pytest.fixture
async def chanjing_emulator() -> AsyncIterator[EmulatorFactory]:
    """Start emulators in this process: ``await chanjing_emulator(task_seconds=60)``."""
    async with AsyncExitStack() as made:

        async def start(**settings: Any) -> EmulatorServer:
            server = EmulatorServer(emulator_settings(**settings))
            return await made.enter_async_context(server)

        yield start


@pytest.fixture
async def chanjing_client(chanjing_emulator: EmulatorFactory) -> AsyncIterator[ClientFactory]:
    """Open clients paced to an emulator: ``await chanjing_client(emulator, limits=...)``.

    Its clients close before the emulators of ``chanjing_emulator`` stop.
    """
    async with AsyncExitStack() as made:

        async def open_client(
            emulator: EmulatorServer | str, **options: Any
        ) -> AsyncChanjingClient:
            return await made.enter_async_context(paced_client(emulator, **options))

        yield open_client


@pytest.fixture
async def chanjing_jobs(chanjing_client: ClientFactory) -> AsyncIterator[JobsFactory]:
    """Open job managers paced like their client: ``await chanjing_jobs(client)``.

    Its managers close (unfinished jobs end as cancelled) before the clients they use.
    """
    async with AsyncExitStack() as made:

        async def open_jobs(client: AsyncChanjingClient, **options: Any) -> JobManager:
            return await made.enter_async_context(paced_jobs(client, **options))

        yield open_jobs
