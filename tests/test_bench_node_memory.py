"""The node memory benchmark's baseline runs the baseline's code, not this checkout's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from load.benchmarks.node_memory import ROOT, node_env


def test_a_baseline_node_runs_the_code_of_the_baseline_tree(tmp_path: Path) -> None:
    tree = tmp_path / "baseline"
    (tree / "recserver").mkdir(parents=True)
    (tree / "recserver" / "__init__.py").write_text("")
    (tree / "recserver" / "__main__.py").write_text("print(__file__)\n")
    env = {**os.environ, **node_env(tmp_path / "cache", tree)}
    # Started the way the benchmark starts a node: ``python -m recserver`` from the checkout.
    out = subprocess.run([sys.executable, "-m", "recserver"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert Path(out).resolve() == (tree / "recserver" / "__main__.py").resolve()
    assert node_env(tmp_path / "cache", None) == {"NUMBA_CACHE_DIR": str(tmp_path / "cache")}
