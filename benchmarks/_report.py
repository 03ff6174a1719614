"""The Markdown table of a run (the README shows it)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._common import Figure


def _number(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def markdown(figures: list[Figure]) -> str:
    """One row per figure: scenario, case, ours, baseline, ratio, goal, met."""
    lines = [
        "| scenario | case | metric | ours | baseline | ratio | goal | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for figure in figures:
        baseline = f"{figure.baseline_name}: {_number(figure.baseline)}"
        ratio = f"{_number(figure.ratio)} ({figure.ratio_label})"
        lines.append(
            f"| {figure.scenario} | {figure.case} | {figure.metric} | {_number(figure.ours)} "
            f"| {baseline} | {ratio} | {figure.goal} | {'yes' if figure.met else '**no**'} |"
        )
    return "\n".join(lines) + "\n"
