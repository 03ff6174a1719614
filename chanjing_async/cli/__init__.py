"""The ``chanjing`` command: the only place that imports typer and rich."""

from __future__ import annotations

from ._app import app as app
from ._app import main as main

__all__ = ["app", "main"]
