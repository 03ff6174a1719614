"""``chanjing --verbose`` and ``--log-level``: the library's log on stderr.

The library never configures logging; the command line does, on request only: ``--verbose``
shows the ``chanjing_async`` logger's INFO records, ``--log-level`` any level. Records go
through the same console as the progress display, so a line never lands in the middle of a
bar, one line each, as ``HH:MM:SS LEVEL message``. The library keeps the
secret key, tokens and signed-URL queries out of its records (``_transport``); nothing is
added here but the time and the level.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ._common import say

if TYPE_CHECKING:
    from collections.abc import Callable

LOGGER = "chanjing_async"
LOG_LEVELS = ("debug", "info", "warning", "error")
"""The levels ``--log-level`` accepts (any case)."""


class _ConsoleHandler(logging.Handler):
    """Writes each record as one plain line on the stderr console (no markup, no wrapping)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            say(self.format(record))
        except Exception:  # logging's own contract: report, never raise
            self.handleError(record)


def configure_logging(level: str | None, *, verbose: bool) -> Callable[[], None]:
    """Show the library's records at ``level`` (``verbose``: INFO) on stderr; return what
    undoes it. Neither given: logging is left as it is (warnings still reach stderr through
    Python's last resort)."""
    logger = logging.getLogger(LOGGER)
    if level is None and not verbose:
        return lambda: None
    handler = _ConsoleHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    before = logger.level
    logger.addHandler(handler)
    logger.setLevel(level.upper() if level is not None else logging.INFO)

    def undo() -> None:  # main() may run again in this process (tests)
        logger.removeHandler(handler)
        logger.setLevel(before)

    return undo
