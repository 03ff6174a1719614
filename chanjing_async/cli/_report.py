"""How ``chanjing batch run`` and ``batch status`` report: tables for people, JSON for scripts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from ..batch._runner import DOWNLOAD_FAILED
from ._common import console
from ._progress_lines import plural

if TYPE_CHECKING:
    from pathlib import Path

    from ..batch._state import BatchReport, Result, RowOutcome


_RESULTS: tuple[tuple[Result, str], ...] = (
    ("succeeded", "succeeded"),
    ("failed", "failed"),
    ("not sent", "not sent"),
    ("unfinished", "unfinished"),
    ("changed", "changed"),
    ("skipped", "skipped (invalid)"),
)


def print_report(report: BatchReport, out: Path, *, advice: bool = True) -> None:
    """The summary table, the rows that did not succeed, and (``advice``) what to do next."""
    resumed = sum(outcome.resumed for outcome in report.outcomes)
    summary = Table(title="batch summary")
    summary.add_column("result")
    summary.add_column("rows", justify="right")
    for result, label in _RESULTS:
        count = report.count(result)
        if count or result in ("succeeded", "failed"):
            summary.add_row(label, str(count))
    summary.add_row("of these, finished in an earlier run", str(resumed))  # not added up
    console.print(summary)
    problems = [
        outcome
        for outcome in report.outcomes
        if outcome.result != "succeeded" and not (report.stopped and outcome.result == "not sent")
    ]
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
    for line in next_steps(report) if advice else ():
        console.print(line, markup=False, soft_wrap=True)


def next_steps(report: BatchReport) -> list[str]:
    """What to do about the rows that did not succeed, one line per kind."""
    lines: list[str] = []
    if report.stopped is not None:
        lines.append(f"the batch stopped: {report.stopped}")
    not_sent = [outcome for outcome in report.outcomes if outcome.result == "not sent"]
    if not_sent:
        why = "" if report.stopped else f" ({_first_reason(not_sent)})"
        fix = "fix the credentials, then run" if report.stopped else "run"
        lines.append(
            f"{plural(len(not_sent), 'row')} {_were(not_sent)} not sent{why}:"
            f" {fix} the same command again to run {_them(len(not_sent))}"
        )
    unfinished = report.count("unfinished")
    if unfinished:
        lines.append(
            f"{plural(unfinished, 'row')} did not finish in this run:"
            f" run the same command again to finish {_them(unfinished)} (no new task is created)"
        )
    failed = [outcome for outcome in report.outcomes if outcome.result == "failed"]
    downloads = [o for o in failed if (o.reason or "").startswith(DOWNLOAD_FAILED)]
    unknown = [o for o in failed if (o.reason or "").startswith("CreateOutcomeUnknown")]
    retryable = len(failed) - len(downloads) - len(unknown)
    if downloads:
        lines.append(
            f"the results of {plural(len(downloads), 'row')} could not be downloaded:"
            " run the same command again to download them"
        )
    if retryable:
        tasks = "a new task for the failed row" if retryable == 1 else "new tasks for the"
        lines.append(
            f"run again with --retry-failed to create {tasks}"
            + ("" if retryable == 1 else f" {retryable} failed rows")
        )
    if unknown:
        lines.append(
            f"{plural(len(unknown), 'row')} may have made a task the task list could not tell"
            f" apart (see the candidates): check them before making {_them(len(unknown))} again"
        )
    changed = report.count("changed")
    if changed:
        names = "a new output name" if changed == 1 else "new output names"
        it = _them(changed)
        lines.append(
            f"{plural(changed, 'row')} changed since an earlier run recorded {it}: give {it}"
            f" {names} to run {it} anew"
        )
    skipped = report.count("skipped")
    if skipped:
        lines.append(
            f"{plural(skipped, 'invalid row')} skipped: fix {_them(skipped)} and run again"
        )
    return lines


def _were(rows: list[RowOutcome]) -> str:
    return "was" if len(rows) == 1 else "were"


def _them(count: int) -> str:
    return "it" if count == 1 else "them"


def _first_reason(rows: list[RowOutcome]) -> str:
    """The reason of the first row, and how many other reasons there are."""
    reasons = dict.fromkeys(outcome.reason or "" for outcome in rows)
    first = next(iter(reasons))
    more = len(reasons) - 1
    return first if not more else f"{first}; and {plural(more, 'other reason')}"


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
    troubled = [row for row in rows if row["error"]]
    if troubled:
        errors = Table(title="jobs with an error (those not sent run again with the same command)")
        for column in ("output", "stage", "task id", "reason"):
            errors.add_column(column)
        for row in troubled:
            stage = "not sent" if row["not_sent"] else row["stage"]
            errors.add_row(row["key"], stage, row["task_id"] or "-", row["error"])
        console.print(errors)
