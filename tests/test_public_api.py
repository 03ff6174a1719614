"""The public surface: an explicit, sorted, importable export list without private names."""

from __future__ import annotations

import chanjing_async


def test_all_is_sorted_complete_and_public() -> None:
    names = chanjing_async.__all__
    assert list(names) == sorted(names)
    for name in names:
        assert hasattr(chanjing_async, name), name
        assert not name.startswith("_") or name == "__version__"


def test_version_is_a_string() -> None:
    assert isinstance(chanjing_async.__version__, str)
    assert chanjing_async.__version__.count(".") >= 2


def test_a_job_handle_shows_users_only_what_they_may_call() -> None:
    # The manager's mutators (advance, observe, finish, ...) are private: a user reads the
    # handle, waits on it and cancels it, and cannot finish a job by mistake.
    public = {name for name in dir(chanjing_async.JobHandle) if not name.startswith("_")}
    assert public == {
        "cancel",
        "done",
        "duplicates",
        "error",
        "eta",
        "events",
        "key",
        "last",
        "progress",
        "request",
        "result",
        "stage",
        "status",
        "task_id",
        "wait",
    }
