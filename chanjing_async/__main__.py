"""``python -m chanjing_async`` runs the ``chanjing`` command."""

from .cli._app import main

raise SystemExit(main())
