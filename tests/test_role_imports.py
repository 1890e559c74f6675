"""Each process of a node imports what its role runs, and compiles kernels once per node.

The supervisor only starts and watches processes: no numpy, numba, FAISS or gRPC. A serving
worker maps and answers: no ANN build code (FAISS, ALS), no writer (event log, Redis, the live
graph), no evaluation commands. Checked in fresh interpreters (what a node's processes are)
and, for the running processes, in their memory maps.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from recserver.node.layout import RunDir
from recserver.node.supervisor import NUMBA_CACHE_ENV, Supervisor, walk_kernels_cached
from tests.process_output import REPO

HEAVY = ("numpy", "numba", "faiss", "grpc", "pyarrow", "scipy", "implicit", "redis")
BUILD_AND_WRITE = ("faiss", "implicit", "redis", "recserver.ann.index", "recserver.ann.als",
                   "recserver.ann.precompute", "recserver.graph.live", "recserver.graph.loaders",
                   "recserver.ingest.runtime", "recserver.eventlog.file_log",
                   "recserver.eval.evaluate", "recserver.online.quality",
                   "recserver.online.stability")


def imported_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys; print(json.dumps(list(sys.modules)))"],
        cwd=REPO, capture_output=True, text=True, check=True, timeout=120)
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_supervisor_imports_nothing_heavy() -> None:
    modules = imported_after("from recserver.cli import build_parser\n"
                             "build_parser('serve').parse_args(['serve', '--port', '0'])\n"
                             "import recserver.node.commands, recserver.node.supervisor")
    assert "recserver.config" in modules  # the supervisor reads the config itself
    assert not {m for m in modules if m.split(".")[0] in HEAVY}


def test_worker_imports_no_build_writer_or_evaluation_code() -> None:
    modules = imported_after("from recserver.cli import build_parser\n"
                             "build_parser('worker').parse_args(['worker', '--run-dir', 'x'])\n"
                             "import recserver.cli.worker, recserver.node.worker")
    assert "recserver.node.worker" in modules and "numba" in modules  # it walks
    assert not [m for m in BUILD_AND_WRITE if m in modules]


def test_one_command_line_parser_imports_one_command() -> None:
    modules = imported_after("from recserver.cli import build_parser\nbuild_parser('builder')")
    assert "recserver.cli.builder" in modules
    assert "recserver.cli.evaluate" not in modules and "recserver.cli.tune" not in modules


WRITER = """import json, os, sys, time
from pathlib import Path
run = Path(sys.argv[1])
if sys.argv[2] == "builder":
    (run / "builder.json").write_text(json.dumps({"pid": os.getpid()}))
else:
    time.sleep(1.0)
    (run / "ready").mkdir(exist_ok=True)
    (run / "ready" / f"{sys.argv[2]}.{os.getpid()}").write_text("1")
time.sleep(60)
"""


def start_supervisor(tmp: Path, cache: Path) -> Supervisor:
    script = tmp / "role.py"
    script.write_text(WRITER)
    run = RunDir(tmp / "run")
    sup = Supervisor(run, [sys.executable, str(script), str(run.root), "builder"],
                     lambda i: [sys.executable, str(script), str(run.root), f"worker-{i}"], 3)
    sup.env[NUMBA_CACHE_ENV] = str(cache)
    sup.start_builder()
    sup.start_workers()
    return sup


def test_cold_kernel_cache_starts_one_worker_then_the_others(tmp_path: Path) -> None:
    sup = start_supervisor(tmp_path, tmp_path / "empty-cache")
    try:
        assert [c.proc is not None for c in sup.workers] == [True, False, False]
        deadline = time.monotonic() + 60
        while sup.ready_workers() < 3 and time.monotonic() < deadline:
            sup.check()
            time.sleep(0.05)
        assert sup.ready_workers() == 3
    finally:
        sup.stop()


def test_warm_kernel_cache_starts_every_worker_at_once(tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "recserver_graph"
    cache.mkdir(parents=True)
    (cache / "walk_kernels._hop-107.py311.nbi").write_bytes(b"")
    assert walk_kernels_cached(str(tmp_path / "cache"))
    sup = start_supervisor(tmp_path, tmp_path / "cache")
    try:
        assert all(c.proc is not None for c in sup.workers)
    finally:
        sup.stop()
