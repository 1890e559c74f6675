"""Bulk work against busy workers: the ANN build in a SCHED_IDLE child vs in the builder's thread.

    .venv/bin/python -m load.benchmarks.bulk                       # old vs new, ~3 minutes
    .venv/bin/python -m load.benchmarks.bulk --modes child:0,child:10 --ingest 15000
    .venv/bin/python -m load.benchmarks.bulk --parts inversion   # compaction, checkpoint, the GIL

A node (``recserver serve``, 2 workers) on ``--synthetic`` events (1M). Each mode is
``BUILD:NICE``: where the builder runs ANN builds (``child``: a SCHED_IDLE process per build;
``thread``: its own thread, the old way) and the builder's niceness, passed through
``RECSERVER_ANN_BUILD`` and ``RECSERVER_BUILDER_NICE``. The default compares the old node
(``thread:10``) with the new one (``child:0``) in one run. Per mode:

1. The builder's proportional set size (PSS) before, during (peak; with the build child's beside
   it) and after the first ANN build, which runs while the node starts, cores otherwise idle.
2. Two busy loops at nice 0 (``--busy-nice``), pinned one per core, stand in for workers at
   full load (their event loops run at nice 0, their walk threads at 10), while a
   client records ``--ingest`` events/s (batches every 0.1 s) plus one timed event every 50 ms,
   all through the workers, and polls ``DescribeUser`` on a worker every 10 ms until each timed
   event is there: freshness is accepted -> visible in that worker's mapped snapshot. A
   reference window without a build, then ``--window`` seconds from the start of the second ANN
   build (``ann.rebuild_interval_s`` after the first): the busy loops' CPU share lost, and the
   cores the builder, the build child, the workers, this client and other tenants of the
   machine took (the busy loops lose exactly what all of them take; other tenants are noise).

Part ``inversion`` (``--parts inversion``, ~1 minute; ``load/benchmarks/bulk_probe.py``): what one
compaction and one checkpoint cost alone, and how long a normal thread waits for the GIL when
they run in a thread of its process under the busy loops, at normal class, nice 19 and
SCHED_IDLE.

Figures print as tables and go to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from load.benchmarks import bulk_probe
from load.benchmarks.bulk_watch import CpuMeter, Freshness, Sampler, all_children, machine_busy_s
from load.benchmarks.node_harness import Node, cpu_seconds, free_port, start_node
from load.common import machine_line, print_table

BUSY = "while True: pass"
STARTED = re.compile(r"^(\S+ \S+),(\d+) INFO \S+: ann build started in", re.M)


def start_busy(nice: int = 0) -> list[subprocess.Popen[bytes]]:
    """One busy loop at ``nice`` pinned to each core (workers at full load: their event loops
    run at nice 0, their walk threads at ``server.walk_nice``)."""
    cores = sorted(os.sched_getaffinity(0))
    return [subprocess.Popen(["nice", "-n", str(nice), "taskset", "-c", str(c), sys.executable,
                              "-c", BUSY]) for c in cores]


def note(mode: str, what: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {mode}: {what}", file=sys.stderr, flush=True)


def wait_for(check: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise TimeoutError(f"no {what} within {timeout_s:.0f}s")


def write_bulk_config(path: Path, rebuild_s: float) -> Path:
    """ANN on (so the builder builds), rebuilt every ``rebuild_s``; no checkpoint or compaction
    in the measured windows (they are measured apart: see docs/scaling.md)."""
    doc = {
        "surfaces": {"home": {"budget_ms": 50, "sla_p99_ms": 55,
                              "fallback": {"tiers": ["ann", "popular"]}}},
        "graph": {"compact_overlay_fraction": 0.5},
        "ann": {"rebuild_interval_s": rebuild_s},
        "ingest": {"checkpoint": {"interval_s": 3600}},
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def build_starts(tmp: Path) -> list[float]:
    """Wall-clock times of the ANN builds started so far, from the node's log."""
    text = (tmp / "server.log").read_text(errors="replace")
    return [time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(ms) / 1000
            for stamp, ms in STARTED.findall(text)]


def find_builder(node: Node) -> int:
    """The builder's pid, as soon as the supervisor has started it."""
    def look() -> int | None:
        for pid in all_children(node.proc.pid):
            with contextlib.suppress(OSError):
                if b"\0builder\0" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
        return None

    found: int = wait_for(look, 120, "builder process")
    return found


def window(meter: CpuMeter, busy_n: int) -> dict[str, float]:
    """A window's CPU: the busy loops' share lost, and what each part of the node took."""
    cores = meter.cores()
    mine = sum(v for k, v in cores.items() if k != "machine")
    return {"busy_share_lost": 1 - cores["busy"] / busy_n, "builder_cores": cores["builder"],
            "child_cores": cores["child"], "workers_cores": cores["workers"],
            "client_cores": cores["client"], "others_cores": max(0.0, cores["machine"] - mine)}


def run_mode(args: argparse.Namespace, mode: str, tmp: Path) -> dict[str, Any]:
    build, nice = mode.split(":")
    os.environ.update(RECSERVER_ANN_BUILD=build, RECSERVER_BUILDER_NICE=nice)
    config = write_bulk_config(tmp / "config.yaml", args.rebuild)
    node: Node = start_node(tmp, config, free_port(), synthetic=args.synthetic, workers=2,
                            single=False)
    busy: list[subprocess.Popen[bytes]] = []
    sampler: Sampler | None = None
    client: Freshness | None = None
    try:
        builder = find_builder(node)
        sampler = Sampler(builder)
        manifest = node.data / "run" / "ann" / "ANN.json"
        wait_for(lambda: (_read_json(manifest) or {}).get("name"), 900, "first ANN build")
        first_done = time.time()
        note(mode, "first ANN build published")
        node.wait_serving(600)
        time.sleep(max(0.0, first_done + 3.0 - time.time()))
        first_started = build_starts(tmp)[0]
        memory = sampler.memory(first_started, first_done)
        busy = start_busy(args.busy_nice)
        note(mode, "busy loops and the freshness client started")
        client = Freshness(node.address, mode.replace(":", "-"), ingest_per_s=args.ingest)
        groups = {"busy": lambda: cpu_seconds([p.pid for p in busy]),
                  "builder": lambda: cpu_seconds([builder]), "child": sampler.child_cpu_total,
                  "workers": lambda: cpu_seconds([p for p in node.pids if p != builder]),
                  "client": _own_cpu, "machine": machine_busy_s}
        time.sleep(1.0)
        t_ref, meter = time.monotonic(), CpuMeter(groups)
        wait_for(lambda: len(build_starts(tmp)) >= 2, args.rebuild + 120, "second ANN build")
        t_build = time.monotonic()
        ref = {"seconds": t_build - t_ref, **window(meter, len(busy))}
        note(mode, "second ANN build started")
        meter = CpuMeter(groups)
        time.sleep(args.window)
        t_end = time.monotonic()
        built = {"seconds": t_end - t_build, **window(meter, len(busy))}
        for proc in busy:
            proc.kill()
        client.finish()
        ref["freshness"] = client.summary(t_ref, t_build)
        built["freshness"] = client.summary(t_build, t_end)
        stopped = time.monotonic()
        node.stop()
        return {"mode": mode, "first_build_s": first_done - first_started, "memory": memory,
                "ref": ref, "build": built, "client_errors": client.errors,
                "ingested": client.ingested,
                "stop_s": time.monotonic() - stopped}
    finally:
        for proc in busy:
            proc.kill()
        if sampler is not None:
            sampler.stop.set()
        node.stop()


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def table(results: list[dict[str, Any]]) -> None:
    rows = []
    for r in results:
        m, ref, b = r["memory"], r["ref"], r["build"]
        rows.append([
            r["mode"], f"{ref['busy_share_lost']:.1%} / {b['busy_share_lost']:.1%}",
            f"{b['builder_cores']:.2f} + {b['child_cores']:.2f}",
            f"{ref['others_cores']:.2f} / {b['others_cores']:.2f}",
            "{p50_ms:.0f} / {p99_ms:.0f} / {max_ms:.0f} ({events})".format(**ref["freshness"]),
            "{p50_ms:.0f} / {p99_ms:.0f} / {max_ms:.0f} ({events})".format(**b["freshness"]),
            f"{m['before_mib']:.0f} / {m['peak_mib']:.0f} ({m['peak_with_child_mib']:.0f}) / "
            f"{m['after_mib']:.0f}", f"{r['first_build_s']:.1f}",
        ])
    print_table(["build:nice", "busy lost: no build / build", "build: builder + child cores",
                 "other tenants' cores", "fresh ms p50/p99/max (n), no build",
                 "fresh ms, build", "builder PSS MiB before/peak (+child)/after",
                 "1st build s"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="thread:10,child:0",
                        help="comma-separated BUILD:NICE (BUILD: child or thread)")
    parser.add_argument("--synthetic", default="1000000", help="synthetic events")
    parser.add_argument("--rebuild", type=float, default=20.0,
                        help="ann.rebuild_interval_s: the second build starts this long after "
                        "the first")
    parser.add_argument("--window", type=float, default=25.0,
                        help="seconds measured from the start of the second build")
    parser.add_argument("--ingest", type=int, default=5000,
                        help="events/s recorded beside the timed ones (batches every 0.1 s)")
    parser.add_argument("--busy-nice", type=int, default=0,
                        help="niceness of the busy loops (0: worker event loops; 10: walks)")
    parser.add_argument("--parts", default="ann", help="ann, inversion or both (comma)")
    parser.add_argument("--out", type=Path, default=Path("var/perf/bulk.json"))
    args = parser.parse_args()
    print(machine_line(), flush=True)
    out: dict[str, Any] = {"machine": machine_line(), "args": vars(args) | {"out": str(args.out)}}
    parts = args.parts.split(",")
    if "ann" in parts:
        results = []
        for mode in args.modes.split(","):
            with tempfile.TemporaryDirectory(prefix="bench-bulk-") as tmp:
                result = run_mode(args, mode, Path(tmp))
            print(f"{mode}: {json.dumps(result)}", flush=True)
            results.append(result)
        table(results)
        out["results"] = results
    if "inversion" in parts:
        out["inversion"] = bulk_probe.run(int(args.synthetic), start_busy)
        print(f"inversion: {json.dumps(out['inversion'])}", flush=True)
        print_table(bulk_probe.HEADER, bulk_probe.rows(out["inversion"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
