"""The benchmarks still run: ``python -m benchmarks --smoke`` (tiny sizes) end to end.

The figures themselves are checked by the full run (``python -m benchmarks``), not here: a
smoke run is too small for its ratios to mean anything.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import late_creates
from benchmarks.__main__ import SCENARIOS

pytestmark = pytest.mark.slow


ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(300)  # every scenario once; on a loaded machine a minute is not enough
def test_every_scenario_runs_and_reports(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "latest.json").read_text(encoding="utf-8"))
    names = {importlib.import_module(f"benchmarks.{name}").NAME for name in SCENARIOS}
    assert {figure["scenario"] for figure in report["figures"]} == names
    for figure in report["figures"]:
        assert figure["ours"] is not None, figure
    table = (tmp_path / "latest.md").read_text(encoding="utf-8")
    assert table.count("\n") == len(report["figures"]) + 2  # header, rule, one row each
    # Late creates: safety holds at any size (its smoke run meets creates in doubt on purpose).
    late = [figure for figure in report["figures"] if figure["scenario"] == late_creates.NAME]
    assert late
    for figure in late:
        extra = figure["extra"]
        assert extra["ambiguous"] > 0, extra
        assert (extra["40001"], extra["wrong_adoptions"], extra["duplicates"]) == (0, 0, 0), extra
