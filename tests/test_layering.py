"""Data flows one way: lower layers never import upper ones (design §2.1)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "chanjing_async"

# module -> modules of ours it must never import
FORBIDDEN: dict[str, set[str]] = {
    "_config": {"models", "client", "_transport", "_auth", "limits", "cli", "emulator"},
    "_demo": {"cli"},
    "errors": {"models", "client", "_transport", "_auth", "limits", "cli", "emulator"},
    "models": {"client", "_transport", "_auth", "limits", "cli", "emulator"},
    "limits": {"client", "_transport", "_auth", "models", "cli", "emulator"},
    "_auth": {"client", "_transport", "cli", "emulator"},
    "_transport": {"client", "_resources", "cli", "emulator"},
    "_resources": {"client", "cli", "emulator"},
    "_wire": {"client", "_transport", "_resources", "jobs", "batch", "cli", "emulator"},
    "_connect_failures": {"client", "_transport", "_resources", "jobs", "batch", "cli", "emulator"},
    "_downloads": {"client", "_resources", "_auth", "jobs", "batch", "cli", "emulator"},
    "_output_files": {"client", "_transport", "_downloads", "_resources", "jobs", "batch", "cli"},
    "client": {"cli", "emulator", "_demo", "jobs", "callbacks", "_poller", "_submit"},
    "_handle": {"client", "_transport", "jobs", "_poller", "_submit", "cli", "emulator"},
    "_jobspec": {"client", "_transport", "jobs", "cli", "emulator"},
    "_poller": {"client", "_transport", "jobs", "_submit", "callbacks", "cli", "emulator"},
    "_submit": {"client", "_transport", "jobs", "_poller", "callbacks", "cli", "emulator"},
    "_uploads": {"client", "_transport", "jobs", "cli", "emulator"},
    "_callback_claims": {"client", "_transport", "jobs", "callbacks", "cli", "emulator"},
    "callbacks": {"client", "_transport", "jobs", "_poller", "_submit", "cli", "emulator"},
    "jobs": {"_transport", "cli", "emulator", "_demo", "batch", "_manifest"},
    "journal": {"client", "_transport", "jobs", "_submit", "_poller", "batch", "cli", "emulator"},
    "_manifest": {"client", "_transport", "jobs", "journal", "batch", "cli", "emulator"},
    "_manifest_text": {"client", "_transport", "jobs", "journal", "batch", "cli", "emulator"},
    "_manifest_types": {"client", "_transport", "jobs", "journal", "batch", "cli", "emulator"},
    "_manifest_sets": {"client", "_transport", "jobs", "journal", "batch", "cli", "emulator"},
    "_manifest_files": {"client", "_transport", "jobs", "journal", "batch", "cli", "emulator"},
    "_manifest_rows": {"client", "_transport", "jobs", "journal", "batch", "cli", "emulator"},
    "_output_names": {"client", "_transport", "jobs", "journal", "batch", "cli", "emulator"},
    "batch": {
        "_transport",
        "cli",
        "_cli_common",
        "_cli_batch",
        "_cli_check",
        "_cli_progress",
        "_cli_report",
        "_cli_demo",
        "_cli_tasks",
        "_cli_files",
        "_cli_download",
        "_cli_task_view",
        "_cli_help",
        "_cli_logging",
        "_cli_signals",
        "_cli_paths",
        "_cli_progress_lines",
        "emulator",
    },
}
UI_LIBRARIES = {"typer", "rich", "click"}


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:`` (annotations carry no data)."""
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


def imports_of(path: Path) -> set[str]:
    """Names a module imports at run time: 'x' for 'from .x import y' and 'import x'."""
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level >= 1:
                parts = module.split(".") if module else [a.name for a in node.names]
                found.add(parts[0])
            else:
                found.add(module.split(".")[0] if module != "chanjing_async" else "")
                if module.startswith("chanjing_async."):
                    found.add(module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name.split(".")[0])
    return found


def test_lower_layers_do_not_import_upper_ones() -> None:
    for module, forbidden in FORBIDDEN.items():
        imported = imports_of(PACKAGE / f"{module}.py")
        assert not imported & forbidden, f"{module} imports {imported & forbidden}"


def test_only_the_cli_imports_typer_or_rich() -> None:
    for path in PACKAGE.rglob("*.py"):
        if path.name == "cli.py" or path.name.startswith("_cli_"):
            continue
        assert not imports_of(path) & UI_LIBRARIES, path


def test_the_emulator_never_imports_the_sdk() -> None:
    sdk = {"client", "models", "errors", "_transport", "_auth", "limits", "_resources"}
    for path in (PACKAGE / "emulator").rglob("*.py"):
        imported = imports_of(path)
        assert "chanjing_async" not in imported, path
        assert not imported & sdk, path
