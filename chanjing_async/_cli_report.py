"""How ``chanjing batch run`` and ``batch status`` report: tables for people, JSON for scripts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from ._cli_common import console

if TYPE_CHECKING:
    from pathlib import Path

    from .batch import BatchReport, RowOutcome


def print_report(report: BatchReport, out: Path) -> None:
    resumed = sum(outcome.resumed for outcome in report.outcomes)
    summary = Table(title="batch summary")
    summary.add_column("result")
    summary.add_column("rows", justify="right")
    summary.add_row("succeeded", str(report.count("succeeded")))
    summary.add_row("failed", str(report.count("failed")))
    summary.add_row("skipped (invalid)", str(report.count("skipped")))
    summary.add_row("finished in an earlier run", str(resumed))
    console.print(summary)
    problems = [outcome for outcome in report.outcomes if outcome.result != "succeeded"]
    if problems:
        table = Table(title="rows that did not succeed")
        for column in ("row", "output", "result", "task id", "reason"):
            table.add_column(column)
        for outcome in problems:
            table.add_row(
                str(outcome.row),
                outcome.output,
                outcome.result,
                outcome.task_id or "-",
                outcome.reason or "",
            )
        console.print(table)
    if report.count("succeeded"):
        console.print(f"results (video .mp4 and preview .jpg per row) are in {out}")


def outcome_json(outcome: RowOutcome) -> dict[str, object]:
    return {
        "row": outcome.row,
        "output": outcome.output,
        "result": outcome.result,
        "task_id": outcome.task_id,
        "reason": outcome.reason,
        "files": [str(path) for path in outcome.files],
        "resumed": outcome.resumed,
    }


def print_status(journal: Path, summary: dict[str, object]) -> None:
    """Print what ``journal_summary`` found in a journal, as tables."""
    table = Table(title=f"journal {journal}")
    table.add_column("stage")
    table.add_column("jobs", justify="right")
    stages = summary["stages"]
    assert isinstance(stages, dict)
    for stage, count in stages.items():
        table.add_row(stage, str(count))
    table.add_row("delivered", str(summary["delivered"]))
    console.print(table)
    rows = summary["rows"]
    assert isinstance(rows, list)
    failed = [row for row in rows if row["error"]]
    if failed:
        errors = Table(title="failed")
        for column in ("output", "task id", "reason"):
            errors.add_column(column)
        for row in failed:
            errors.add_row(row["key"], row["task_id"] or "-", row["error"])
        console.print(errors)
