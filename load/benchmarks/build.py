"""Building and holding the graph: build time, bytes per edge, ingest, freshness, memory.

    .venv/bin/python -m load.benchmarks.build                        # sizes: 100k / 1M / 5M events
    .venv/bin/python -m load.benchmarks.build --sizes 10000000 --surfaces 3  # one 10M-event graph
    .venv/bin/python -m load.benchmarks.build --parts live       # ingest + freshness, publisher on
    .venv/bin/python -m load.benchmarks.build --parts memory --sizes 10000000   # serve path's RSS

One benchmark, three parts (``--parts``, comma-separated; default ``sizes``). Every graph is built
from synthetic events (``recserver.graph.synthetic``, seed 0) in a fresh process, so resident
memory is the graph's own:

* ``sizes`` (``build_sizes.py``): per size in ``--sizes``, build time (ingest + compacting publish),
  bytes per edge (snapshot, split into edge and per-node arrays; edge store; dedup index; process
  RSS) and the peak; then ingest into that graph (no publisher), the overlay publish and the full
  compaction; walk speed and query time by seed degree; and ``/metrics`` series and render CPU by
  surface count (``--surfaces``). Target lines: build <= 30 s at 10M events, snapshot <= 20 B/edge.
* ``live`` (``build_live.py``): a ``--live-base`` graph with the background publisher running:
  events/s applied in 10k batches (target >= 500k) and the publishes made meanwhile, then
  freshness, ingest to the new user's walk seeds holding the marker item (target <= 1 s).
* ``memory`` (``build_memory.py``): per size, the synthetic log written as CSV and Parquet, then
  the way ``recserver build``/``serve`` load it: parse rate on one core, the build from the CSV
  (peak ``VmHWM`` against what is held after, and what is held broken down), id-map bytes per id,
  and resident memory across live background compactions with and without the heap release;
  beside the code before the Arrow loaders (``--baseline-ref``), measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from load.common import machine_line

PARTS = ("sizes", "live", "memory")
ROOT = Path(__file__).resolve().parents[2]


def run_child(code_root: Path, mode: str, arg: str) -> dict[str, Any] | None:
    """Run ``mode`` in a fresh interpreter on the ``recserver`` under ``code_root``.

    ``load`` itself always comes from this tree (second on the path): only the code under test
    changes. Returns the child's JSON result, or None (and says why) when it failed.
    """
    env = {**os.environ, "PYTHONPATH": f"{code_root}{os.pathsep}{ROOT}"}
    proc = subprocess.run(
        [sys.executable, "-m", "load.benchmarks.build", "--child", mode, arg],
        cwd=code_root, env=env, capture_output=True, text=True, timeout=1800,
    )
    if proc.returncode != 0:
        print(f"  [{mode} on {code_root.name}] failed: {proc.stderr.strip()[-400:]}")
        return None
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if not result["code"].startswith(str(code_root)):
        raise RuntimeError(f"{mode} ran {result['code']}, not the code under {code_root}")
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m load.benchmarks.build",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="sizes", help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--sizes", default="100000,1000000,5000000",
                        help="events per graph (parts sizes and memory)")
    sizes = parser.add_argument_group("sizes")
    sizes.add_argument("--queries", type=int, default=25, help="walk queries per degree bucket")
    sizes.add_argument("--ingest-events", type=int, default=200_000)
    sizes.add_argument("--surfaces", default="1,3,10,30", help="surface counts for /metrics")
    live = parser.add_argument_group("live")
    live.add_argument("--live-base", type=int, default=1_000_000, help="events in the base graph")
    live.add_argument("--ingest-seconds", type=float, default=12.0)
    live.add_argument("--trials", type=int, default=20, help="freshness probes")
    live.add_argument("--no-hash-unique", action="store_true",
                      help="diagnostic: numpy's sort-based unique (its hash path is slower here)")
    memory = parser.add_argument_group("memory")
    memory.add_argument("--baseline-ref", default=None,
                        help="git ref of the previous code (default: before the Arrow loaders)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.parts = [p for p in args.parts.split(",") if p]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    args.sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:  # one measurement in this fresh process; its result is the last stdout line
        import recserver
        from load.benchmarks import build_memory, build_sizes

        children = {**build_memory.CHILDREN, "size": build_sizes.child_size}
        mode, arg = args.child
        result = children[mode](arg)
        print(json.dumps({**result, "code": recserver.__file__}))
        return 0
    print(machine_line())
    started = time.perf_counter()
    if "sizes" in args.parts:
        from load.benchmarks.build_sizes import run as run_sizes

        run_sizes(args)
    if "live" in args.parts:
        from load.benchmarks.build_live import run as run_live

        run_live(args)
    if "memory" in args.parts:
        from load.benchmarks.build_memory import run as run_memory

        run_memory(args)
    print(f"\n{machine_line()}; total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
