"""The declared layer order (``recserver.layers``) holds: no module imports upward.

Every module under ``recserver/`` is parsed (``ast``, nothing imported) and each of its
``import``/``from`` statements naming a ``recserver`` module, at any depth (a function's own
imports too), is checked; imports under ``if TYPE_CHECKING:`` are skipped (annotations only).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from recserver.layers import LAYERS, layer_of
from tests.process_output import REPO

PACKAGE = REPO / "recserver"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    path = REPO.joinpath(*name.split("."))
    return path.is_dir() or path.with_suffix(".py").is_file()


def type_checking_nodes(tree: ast.AST) -> set[int]:
    """Ids of every node under an ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``) test."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            for inner in node.body:
                skipped.update(id(n) for n in ast.walk(inner))
    return skipped


def imported_modules(source: str, module: str) -> list[tuple[int, str]]:
    """``(line, module)`` for each recserver module ``source`` imports at run time."""
    tree = ast.parse(source)
    skipped = type_checking_nodes(tree)
    package = module.split(".")
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = package[: len(package) - node.level]
                base = ".".join(anchor + ([base] if base else []))
            # ``from recserver import node`` imports the package recserver.node
            found.extend((node.lineno, f"{base}.{alias.name}" if is_module(f"{base}.{alias.name}")
                          else base) for alias in node.names)
    return sorted({(line, name) for line, name in found
                   if name == "recserver" or name.startswith("recserver.")})


def upward_imports(source: str, module: str, where: str) -> list[str]:
    """Each import of ``source`` (module ``module``) that reaches a higher layer."""
    own = layer_of(module)
    problems = []
    for line, target in imported_modules(source, module):
        theirs = layer_of(target)
        if own is not None and theirs is not None and theirs > own:
            problems.append(f"{where}:{line}: {module} (layer {own}) imports {target} "
                            f"(layer {theirs})")
    return problems


def test_every_module_has_a_layer() -> None:
    unplaced = [module_name(p) for p in sorted(PACKAGE.rglob("*.py"))
                if layer_of(module_name(p)) is None and module_name(p) != "recserver"]
    assert not unplaced, f"add these to recserver.layers.LAYERS: {unplaced}"


def test_each_entry_is_declared_once_and_names_real_code() -> None:
    entries = [entry for layer in LAYERS for entry in layer]
    assert len(entries) == len(set(entries))
    for entry in entries:
        path = PACKAGE.joinpath(*entry.split("."))
        assert path.is_dir() or path.with_suffix(".py").is_file(), entry


def test_no_module_imports_from_a_higher_layer() -> None:
    problems = [problem for path in sorted(PACKAGE.rglob("*.py"))
                for problem in upward_imports(path.read_text(), module_name(path),
                                              str(path.relative_to(REPO)))]
    assert not problems, "upward imports:\n" + "\n".join(problems)


def test_serving_code_imports_nothing_from_eval() -> None:
    serving = [entry for layer in LAYERS[: layer_of("recserver.eval")] for entry in layer]
    assert {"config", "node", "online", "server", "service"} <= set(serving)


@pytest.mark.parametrize(("source", "expected"), [
    ("from recserver.cli.serve import main\n", True),  # cli is above eventlog
    ("def f():\n    from recserver.ingest.config import IngestConfig\n", True),  # lazy
    ("from .. import node\n", True),  # relative, resolved: recserver.node
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from recserver.cli import x\n",
     False),
    ("from recserver.core.errors import Unavailable\n", False),
])
def test_the_check_finds_an_upward_import(source: str, expected: bool) -> None:
    # Checked as if it were a module of the eventlog package, like the real ones.
    found = upward_imports(source, "recserver.eventlog.probe", "probe.py")
    assert bool(found) is expected, found
