"""The package's shape: benchmarks stand apart from the tests, every thread is a background
worker, and the ground floor imports nothing above it."""

from __future__ import annotations

import argparse
import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_benchmarks_do_not_import_the_tests() -> None:
    offenders = [f"{p.name}: {name}" for p in sorted((ROOT / "load").rglob("*.py"))
                 for name in imports(p) if name == "tests" or name.startswith("tests.")]
    assert offenders == []


def test_core_imports_nothing_above_it() -> None:
    for path in sorted((ROOT / "recserver" / "core").glob("*.py")):
        for name in imports(path):
            assert not name.startswith("recserver.") or name.startswith("recserver.core"), (
                f"core/{path.name} imports {name}")


def test_threads_are_started_only_by_the_background_worker() -> None:
    """One start/stop/join policy: no module but ``core.background`` creates a Thread (the
    gRPC and HTTP servers' own pools excepted: they are the libraries')."""
    allowed = {ROOT / "recserver" / "core" / "background.py"}
    offenders = []
    for path in sorted((ROOT / "recserver").rglob("*.py")):
        if path in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "Thread"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_every_command_is_one_module_of_the_cli_package() -> None:
    from recserver import cli

    folder = ROOT / "recserver" / "cli"
    modules = {p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")}  # _x: helpers
    assert set(cli.COMMANDS) == modules
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == {m.replace("_", "-") for m in modules}
