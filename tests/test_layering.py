"""Data flows one way: package rules over every module of the SDK, checked by walking imports.

A *unit* is a subpackage (``jobs``, ``client``, ...) or a top-level module (``errors``). Each
unit may import only the units its rule names; everything is checked at run time, annotations
under ``if TYPE_CHECKING:`` aside (they carry no data). A new module or subpackage must be given a
rule here before the suite passes.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "chanjing_async"

LEAVES = {"errors", "models", "_checks", "_bounded_log"}
ANYTHING = {"*"}

# unit -> the units of ours it may import (besides itself)
RULES: dict[str, set[str]] = {
    # Leaves: the exception tree, the wire models, the setting checks, a bounded log.
    "errors": {"models"},
    "models": {"errors"},
    "_checks": {"errors"},
    "_bounded_log": set(),
    # The core: limits know nothing of HTTP; the client knows nothing of jobs.
    "limits": LEAVES,
    "client": LEAVES | {"limits"},
    # Persistence and the callback receiver stand below the jobs that use them.
    "stores": LEAVES,
    "callbacks": LEAVES,
    # Redis implements interfaces that limits, client and callbacks define.
    "scaleout": LEAVES | {"limits", "client", "callbacks"},
    "jobs": LEAVES | {"limits", "client", "stores", "callbacks"},
    "batch": LEAVES | {"client", "jobs"},
    # Joins the emulator, the client and the manager for users' tests.
    "testing": LEAVES | {"limits", "client", "jobs", "emulator"},
    # The command line may use every layer (the test kit is for tests).
    "cli": LEAVES
    | {
        "limits",
        "client",
        "stores",
        "callbacks",
        "scaleout",
        "jobs",
        "batch",
        "emulator",
        "__version__",
    },
    # The emulator stands alone.
    "emulator": set(),
    # The package root and the paths kept for imports written before the subpackages.
    "__init__": ANYTHING,
    "__main__": {"cli"},
    "journal": {"stores"},
    "redis_limits": {"scaleout"},
}
UI_LIBRARIES = {"typer", "rich", "click"}


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:``."""
    nodes: list[ast.AST] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        nodes.append(node)
        for child in ast.iter_child_nodes(node):
            guarded = (
                isinstance(child, ast.If)
                and isinstance(child.test, ast.Name)
                and child.test.id == "TYPE_CHECKING"
            )
            if guarded:
                assert isinstance(child, ast.If)
                pending.extend(child.orelse)
            else:
                pending.append(child)
    return nodes


def unit_of(path: Path) -> str:
    """The unit a module belongs to: its subpackage, or its own name at the top level."""
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def imports_of(path: Path) -> tuple[set[str], set[str]]:
    """The units of ours and the outside top-level packages a module imports at run time."""
    ours: set[str] = set()
    outside: set[str] = set()
    here = list(path.relative_to(PACKAGE).parts[:-1])
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level >= 1:
            base = here[: len(here) - (node.level - 1)]
            names = node.module.split(".") if node.module else [a.name for a in node.names]
            ours.update([(base + names)[0]] if base or node.module else names)
        elif isinstance(node, ast.ImportFrom):
            module = (node.module or "").split(".")
            if module[0] == "chanjing_async":
                ours.update(module[1:2] or [alias.name for alias in node.names])
            else:
                outside.add(module[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                module = alias.name.split(".")
                (
                    ours.update(module[1:2])
                    if module[0] == "chanjing_async"
                    else outside.add(module[0])
                )
    return ours, outside


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_belongs_to_a_unit_with_a_rule() -> None:
    assert len(MODULES) > 90
    assert {unit_of(path) for path in MODULES} <= set(RULES)


def test_every_unit_imports_only_what_its_rule_allows() -> None:
    broken: list[str] = []
    for path in MODULES:
        unit = unit_of(path)
        allowed = RULES[unit]
        if allowed == ANYTHING:
            continue
        ours, _ = imports_of(path)
        for imported in sorted(ours - allowed - {unit}):
            broken.append(f"{path.relative_to(PACKAGE)} imports {imported}")
    assert not broken, "\n".join(broken)


def test_only_the_cli_imports_typer_or_rich() -> None:
    for path in MODULES:
        if unit_of(path) != "cli":
            assert not imports_of(path)[1] & UI_LIBRARIES, path


def test_the_emulator_never_imports_the_sdk() -> None:
    for path in (PACKAGE / "emulator").rglob("*.py"):
        ours, outside = imports_of(path)
        assert "chanjing_async" not in outside, path
        assert ours <= {"emulator"} | {p.stem for p in (PACKAGE / "emulator").glob("*.py")}, path


def test_the_walker_sees_each_kind_of_import() -> None:
    # The rules above are only as good as the walker: each import form must be seen.
    path = PACKAGE / "jobs" / "_manager.py"
    ours, outside = imports_of(path)
    assert {"client", "errors", "models"} <= ours
    assert "anyio" in outside
