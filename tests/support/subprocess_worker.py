"""Running a measuring worker (``python -m tests.<name> ...``) in a process of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_worker(module: str, *args: str, timeout: float = 300) -> dict[str, Any]:
    """Run ``python -m <module> <args>`` from the repository root; return its last JSON line.

    Raises:
        AssertionError: the worker failed (its stderr is the message).
    """
    run = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    report: dict[str, Any] = json.loads(run.stdout.splitlines()[-1])
    return report
