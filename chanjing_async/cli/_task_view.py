"""How the ``lipsync``, ``voices`` and ``files`` commands print: tasks on stdout, notes on stderr.

What a script needs (a task id, a file id, ``--json``) goes to stdout; notes go to stderr.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich import box
from rich.table import Table

from ..models import TaskStatus
from ._common import EXIT_FAILED, console, dump_json, err_console, fail
from ._progress_lines import plural

if TYPE_CHECKING:
    from ..models import LipSyncTask, PageInfo


def note(message: str) -> None:
    """One line of information on stderr (never on stdout: scripts read stdout)."""
    err_console.print(message, markup=False, soft_wrap=True)


def status_name(status: int) -> str:
    """``generating`` for 10; ``status 7`` for a status the SDK does not know."""
    try:
        return TaskStatus(status).name.lower().replace("_", " ")
    except ValueError:
        return f"status {status}"


def task_json(task: LipSyncTask) -> dict[str, Any]:
    return task.model_dump(mode="json")


def created(task: LipSyncTask, pattern: str = "%Y-%m-%d %H:%M:%S") -> str:
    return task.created_at.strftime(pattern) if task.create_time else "-"


def show_task(task: LipSyncTask) -> None:
    """A task as two columns on stdout."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    rows = {
        "id": task.id,
        "status": f"{status_name(task.status)} ({task.status})",
        "progress": f"{task.progress}%",
        "created": f"{created(task)} UTC",
        "duration": str(task.duration),
        "msg": task.msg or "-",
        "video_url": task.video_url or "-",
        "preview_url": task.preview_url or "-",
    }
    for key, value in rows.items():
        grid.add_row(key, value)
    console.print(grid, markup=False)


def page_table(info: PageInfo, noun: str) -> Table:
    """A table for one page of a list, its first column the ids (never cut)."""
    table = Table(
        caption=f"page {info.page} of {info.total_page}, {plural(info.total_count, noun)}",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("id", no_wrap=True, min_width=32)
    return table


def fail_if_failed(task: LipSyncTask) -> None:
    """Exit 1 with the task's reason if it ended without a result."""
    if task.failed:
        fail(f"task {task.id} failed: {task.msg or '(no reason given)'}", EXIT_FAILED)


def finish(task: LipSyncTask, *, as_json: bool, show: bool) -> None:
    """Print the ended task (JSON, or the two columns when ``show``); exit 1 if it failed."""
    if as_json:
        dump_json(task_json(task))
    elif show:
        show_task(task)
    fail_if_failed(task)
