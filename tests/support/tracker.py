"""What an error tracker records of an exception, to search it for secrets.

A tracker with its defaults (Sentry's ``include_local_variables``) records, for every exception
of the chain (``__cause__`` and ``__context__``, suppressed contexts included, and the members
of an exception group), the ``repr`` of every local of every frame of its traceback, and the
exception's own ``str``, ``repr``, ``args`` and attributes. :func:`tracker_view` collects
exactly that (and the ``str`` of each local too).

The frames of test functions (and of their lambdas) are left out: they are the application's,
and hold the secrets because the test made them. Everything else is walked: the SDK's frames
and those of aiohttp, redis-py, anyio and asyncio that a kept third-party exception brings.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

TESTS = str(Path(__file__).parent.parent)
APPLICATION = ("test_", "<lambda>")  # the test functions and their one-line callables
Errors = BaseException | list[BaseException]


def chain(errors: Errors) -> Iterator[BaseException]:
    """``errors`` and every exception chained to them, each once."""
    todo = list(errors) if isinstance(errors, list) else [errors]
    seen: set[int] = set()
    while todo:
        exc = todo.pop()
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        yield exc
        linked = [exc.__cause__, exc.__context__, *getattr(exc, "exceptions", ())]
        todo.extend(link for link in linked if link is not None)


def _shown(value: object) -> str:
    """What a tracker records of a value: its ``repr`` (and here its ``str`` as well)."""
    try:
        return f"{value!r}\n{value!s}"
    except Exception as exc:  # a broken repr shows nothing of the value
        return f"<unrepresentable: {type(exc).__name__}>"


def tracker_view(errors: Errors) -> Iterator[tuple[str, str]]:
    """(place, text) for everything a tracker records of ``errors`` and of their chains."""
    for exc in chain(errors):
        name = type(exc).__name__
        yield f"{name} itself", _shown(exc)
        yield f"{name}.args", _shown(exc.args)
        for attribute, value in vars(exc).items():
            yield f"{name}.{attribute}", _shown(value)
        tb = exc.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code
            if not (code.co_filename.startswith(TESTS) and code.co_name.startswith(APPLICATION)):
                for local, value in tb.tb_frame.f_locals.items():
                    where = f"{name}: {code.co_name} ({Path(code.co_filename).name}) local {local}"
                    yield where, _shown(value)
            tb = tb.tb_next


def leaks(errors: Errors, secrets: list[str]) -> list[str]:
    """Where a tracker would have recorded one of ``secrets`` (empty: nowhere)."""
    assert all(secrets)
    return sorted(
        {
            f"{where}: {secret[:6]}..."
            for where, text in tracker_view(errors)
            for secret in secrets
            if secret in text
        }
    )


def foreign(errors: Errors) -> list[str]:
    """The exceptions chained to ``errors`` that are not the SDK's (aiohttp's, redis-py's,
    pydantic's ...): none may be kept, whatever it holds."""
    return [
        f"{type(exc).__module__}.{type(exc).__name__}"
        for exc in chain(errors)
        if not type(exc).__module__.startswith("chanjing_async")
    ]
