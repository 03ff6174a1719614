"""Every public module says what it exports: ``__all__`` exists, is sorted, repeats no name,
holds no private name and names only attributes of the module.

A module is public when no component of its dotted path starts with ``_``. The modules are found
by walking the package's files, so a new module is checked without being listed here. "Sorted"
is the order ruff's RUF022 gives a literal ``__all__`` (isort-style: CONSTANTS, then Classes,
then the rest, each group in natural order), so this test and the linter never disagree; the
test also covers an ``__all__`` the linter cannot see (built at run time, or missing). Dunder
names such as ``__version__`` are public metadata, not private names.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

import chanjing_async

PACKAGE = Path(chanjing_async.__file__).resolve().parent


def public_modules() -> list[str]:
    """The dotted names of the package's public modules, the package itself first."""
    names: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not any(part.startswith("_") for part in parts):
            names.append(".".join(parts))
    return sorted(names, key=lambda name: (name != PACKAGE.name, name))


MODULES = public_modules()


def ruff_order(name: str) -> tuple[int, list[str | int]]:
    """The sort key of RUF022: the kind of name, then a natural order (digit runs as numbers)."""
    if len(name) > 1 and name.isupper():
        kind = 0  # SCREAMING_SNAKE_CASE: constants
    elif name[:1].isupper():
        kind = 1  # CamelCase: classes
    else:
        kind = 2
    runs = re.split(r"(\d+)", name)  # text at even indexes, digits at odd ones
    return kind, [int(run) if index % 2 else run for index, run in enumerate(runs)]


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_the_walk_finds_the_public_modules_and_only_those() -> None:
    expected = {
        "chanjing_async",
        *(
            f"chanjing_async.{name}"
            for name in (
                "errors models client limits jobs callbacks stores batch scaleout cli journal"
                " redis_limits emulator emulator.settings"
            ).split()
        ),
    }
    assert expected <= set(MODULES)
    assert MODULES[0] == "chanjing_async"
    assert not [name for name in MODULES if "._" in name]
    assert "chanjing_async.emulator._faults" not in MODULES


def test_the_order_is_ruffs() -> None:
    names = ["serve", "STATE_KEY", "Fault", "item10", "item2", "EmulatorState", "X", "_x"]
    assert sorted(names, key=ruff_order) == [
        "STATE_KEY", "EmulatorState", "Fault", "X", "_x", "item2", "item10", "serve"
    ]  # fmt: skip
    assert [is_private(name) for name in ("_x", "__version__", "__x", "x_")] == [
        True, False, True, False
    ]  # fmt: skip


@pytest.mark.parametrize("name", MODULES)
def test_all_is_sorted_unique_public_and_defined(name: str) -> None:
    module = importlib.import_module(name)
    assert hasattr(module, "__all__"), f"{name} has no __all__"
    exported = list(module.__all__)
    assert all(isinstance(entry, str) for entry in exported), exported
    repeated = sorted({entry for entry in exported if exported.count(entry) > 1})
    assert not repeated, f"{name}.__all__ repeats {repeated}"
    private = [entry for entry in exported if is_private(entry)]
    assert not private, f"{name}.__all__ holds private names {private}"
    missing = [entry for entry in exported if not hasattr(module, entry)]
    assert not missing, f"{name}.__all__ names what {name} lacks: {missing}"
    assert exported == sorted(exported, key=ruff_order), f"{name}.__all__ is not sorted"
