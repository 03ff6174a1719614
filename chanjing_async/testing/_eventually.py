"""``eventually``: wait for a condition on state that signals no event (counters, stats)."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

import anyio

from .._checks import check_setting

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


def _describe(check: Callable[[], object]) -> str:
    """How a failure names the condition: a lambda's source line, else the callable's name."""
    name = getattr(check, "__qualname__", None) or repr(check)
    if "<lambda>" not in name:
        return name
    try:
        return inspect.getsource(check).strip()
    except (OSError, TypeError):  # defined in a REPL or by exec: no source to show
        return name


async def eventually(
    check: Callable[[], object | Awaitable[object]],
    timeout: float = 3.0,
    *,
    interval: float = 0.005,
    what: str | None = None,
) -> None:
    """Call ``check`` every ``interval`` seconds until it returns a true value.

    ``check`` may be a coroutine function: its result is awaited. Use it for state that no
    event announces; an event you can await (``handle.wait()``) is better when there is one.

    Example::

        await eventually(lambda: emulator.state.stats()["tasks"] == 3, timeout=2)

    Args:
        check: the condition; it is called at once, then after each ``interval``.
        timeout: seconds to wait (wall seconds: scale a server's durations with ``Pace``).
        interval: seconds between two calls.
        what: the condition in words, for the failure (default: the source of a lambda, or the
            name of a function).

    Raises:
        AssertionError: ``check`` was still false after ``timeout`` seconds; the message names
            the condition, the timeout and how many times it was checked.
        ConfigurationError: a ``timeout`` or ``interval`` that is not a finite number > 0.
    """
    check_setting("timeout", timeout, above=True, unit="seconds")
    check_setting("interval", interval, above=True, unit="seconds")
    deadline = anyio.current_time() + timeout
    calls = 0
    while True:
        calls += 1
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        left = deadline - anyio.current_time()
        if left <= 0:
            break
        await anyio.sleep(min(interval, left))
    plural = "" if calls == 1 else "s"
    raise AssertionError(
        f"not true within {timeout:g} s: {what or _describe(check)} "
        f"({calls} check{plural}, the last returned {result!r})"
    )
