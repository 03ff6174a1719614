"""Running the emulator: an async context manager on a loopback port, and ``serve`` for the CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
from aiohttp import web

from ._pipeline import STATE_KEY
from .app import create_app
from .settings import EmulatorSettings

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from ._faults import Fault
    from .state import EmulatorState

__all__ = ["EmulatorServer", "serve"]

# Requests still in flight at shutdown (e.g. under a latency fault) get this long to finish.
SHUTDOWN_TIMEOUT = 2.0


class EmulatorServer:
    """The emulator served over HTTP for the lifetime of an ``async with`` block.

    Example:
        >>> async with EmulatorServer(EmulatorSettings(time_scale=60)) as emu:  # doctest: +SKIP
        ...     print(emu.base_url)
        http://127.0.0.1:54321

    Attributes:
        settings: The emulator settings.
        app: The aiohttp application.
    """

    def __init__(
        self,
        settings: EmulatorSettings | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """Prepare a server; nothing listens until the ``async with`` block is entered.

        Args:
            settings: The emulator settings; defaults apply when None.
            host: Interface to bind.
            port: Port to bind; 0 picks a free one (read it back from ``base_url``).
        """
        self.settings = settings or EmulatorSettings()
        self.app = create_app(self.settings)
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    @property
    def state(self) -> EmulatorState:
        """The emulator state: tasks, files, arrival logs, faults and counters."""
        return self.app[STATE_KEY]

    @property
    def base_url(self) -> str:
        """``http://host:port`` without a trailing slash.

        Raises:
            RuntimeError: The server is not running.
        """
        if self._base_url is None:
            raise RuntimeError("the emulator is not running")
        return self._base_url

    def inject(self, fault: Fault) -> None:
        """Apply ``fault`` to the next matching requests, after the faults already pending."""
        self.state.inject(fault)

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        self.state.clear_faults()

    def revoke_tokens(self) -> bool:
        """Revoke the current access token: its next use gets 10400. False if there was none."""
        return self.state.revoke_tokens()

    def set_task_status(self, task_id: str, status: int | None, msg: str | None = None) -> None:
        """Show ``status`` (e.g. 40, 41, 50, 1100, 1101) for a task; None follows its clock."""
        self.state.set_task_status(task_id, status, msg)

    def seed_tasks(self, count: int) -> list[str]:
        """Make ``count`` tasks at once without creates (see ``EmulatorState.seed_tasks``)."""
        return self.state.seed_tasks(count, self.base_url)

    def forget_tasks(self) -> int:
        """Forget every task, as a restart would: detail answers 40000, the list is empty."""
        return self.state.forget_tasks()

    async def __aenter__(self) -> EmulatorServer:
        if self._runner is not None:
            raise RuntimeError("an EmulatorServer can be started only once")
        self._runner = web.AppRunner(self.app, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await self._runner.setup()
        try:
            site = web.TCPSite(self._runner, self._host, self._port)
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            raise
        port = self._runner.addresses[0][1]
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._base_url = f"http://{host}:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._runner is not None
        self._base_url = None
        await self._runner.cleanup()

    def __repr__(self) -> str:
        where = self._base_url or "not running"
        return f"<EmulatorServer {where} time_scale={self.settings.time_scale:g}>"


async def serve(
    settings: EmulatorSettings,
    host: str,
    port: int,
    *,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the emulator until cancelled.

    Args:
        settings: The emulator settings.
        host: Interface to bind.
        port: Port to bind; 0 picks a free one.
        ready: Called with the base URL once the server listens.
    """
    async with EmulatorServer(settings, host=host, port=port) as emulator:
        if ready is not None:
            ready(emulator.base_url)
        await anyio.sleep_forever()
