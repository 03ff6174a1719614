"""``python -m benchmarks [--smoke] [--only NAME ...]``: run the scenarios, write the results."""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path

import anyio

from ._common import Figure, Options
from ._report import markdown

# Scenario modules, in report order; each has NAME and `async def run(options) -> list[Figure]`.
SCENARIOS = (
    "limiter",
    "late_creates",
    "polling",
    "latency",
    "overhead",
    "memory",
    "upload",
    "batch_e2e",
    "manifest",
)
RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: check they still work")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, help="run only these scenarios")
    parser.add_argument("--seed", type=int, default=1, help="seed of latency and task fates")
    parser.add_argument(
        "--out", type=Path, default=None, help="results folder (default: benchmarks/results)"
    )
    args = parser.parse_args(argv)
    options = Options(smoke=args.smoke, seed=args.seed)
    figures: list[Figure] = []
    started = time.monotonic()
    for name in args.only or SCENARIOS:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"== {module.NAME}", file=sys.stderr, flush=True)
        begun = time.monotonic()
        found: list[Figure] = anyio.run(module.run, options)
        for figure in found:
            mark = "ok" if figure.met else "MISSED"
            print(
                f"   {mark:6} {figure.case}: {figure.ratio_label} = {figure.ratio}", file=sys.stderr
            )
        print(f"   ({time.monotonic() - begun:.1f} s)", file=sys.stderr, flush=True)
        figures.extend(found)
    out = args.out or (RESULTS if not args.smoke else RESULTS / "smoke")
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "command": "python -m benchmarks" + (" --smoke" if args.smoke else ""),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "seconds": round(time.monotonic() - started, 1),
        "figures": [figure.as_json() for figure in figures],
    }
    (out / "latest.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    table = markdown(figures)
    (out / "latest.md").write_text(table)
    print(table)
    return 0 if all(figure.met for figure in figures) or args.smoke else 1


if __name__ == "__main__":
    raise SystemExit(main())
