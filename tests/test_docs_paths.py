"""Every file and module the docs, tests, CI and deploy files name under ``load/`` exists, so
the commands they give run after ``load/`` was reorganised."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: ``load/x/y.py`` as a path.
LOAD_PATH = re.compile(r"(?<![\w/.])load/[\w/]+\.py\b")
#: ``python -m load.x.y`` in a shell line, and ``"-m", "load.x.y"`` in a subprocess argument list.
LOAD_MODULE = re.compile(r"-m[\s\"',]+(load(?:\.\w+)+)")
#: ``from load.x import y`` / ``import load.x``.
LOAD_IMPORT = re.compile(r"^\s*(?:from|import)\s+(load(?:\.\w+)+)", re.M)


def text_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout.split()
    keep = (".py", ".md", ".yaml", ".yml", ".toml", ".sh", "Dockerfile", "run")
    return [REPO / p for p in out if p.endswith(keep) and (REPO / p).is_file()]


def module_exists(name: str, *, runnable: bool) -> bool:
    """``load.a.b`` is ``load/a/b.py`` or a package ``load/a/b/`` (with ``__main__`` to run it)."""
    path = REPO.joinpath(*name.split("."))
    if path.with_suffix(".py").is_file():
        return True
    return (path / ("__main__.py" if runnable else "__init__.py")).is_file()


def references() -> list[tuple[str, str, str]]:
    """(where, kind, name) of every ``load`` path, runnable module and import in the tree."""
    found = []
    me = Path(__file__).resolve()
    for path in text_files():
        if path.resolve() == me:  # its own patterns' examples
            continue
        text = path.read_text(errors="replace")
        where = str(path.relative_to(REPO))
        found += [(where, "path", m.group(0)) for m in LOAD_PATH.finditer(text)]
        found += [(where, "run", m.group(1)) for m in LOAD_MODULE.finditer(text)]
        found += [(where, "import", m.group(1)) for m in LOAD_IMPORT.finditer(text)]
    return found


def test_the_docs_name_load_files_and_commands() -> None:
    kinds = {kind for _, kind, _ in references()}
    assert kinds == {"path", "run", "import"}  # the patterns still match how the tree cites


def test_every_load_path_and_module_named_exists() -> None:
    missing = []
    for where, kind, name in references():
        ok = ((REPO / name).is_file() if kind == "path"
              else module_exists(name, runnable=kind == "run")
              or (kind == "import" and module_exists(name.rsplit(".", 1)[0], runnable=False)))
        if not ok:
            missing.append(f"{where}: {kind} {name}")
    assert missing == []
