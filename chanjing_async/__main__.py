"""``python -m chanjing_async`` runs the ``chanjing`` command."""

from .cli import main

raise SystemExit(main())
