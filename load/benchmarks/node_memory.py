"""Whole-node memory: PSS of every process of ``recserver serve``, per edge, at three moments.

    .venv/bin/python -m load.benchmarks.node_memory [--events 10000000] [--baseline-ref REF]

Writes a synthetic log of ``--events`` events (and one of 2,000) as CSV, then runs, each on a
fresh data directory: the node with one and with two workers and the single-process server
(``serve --single-process``), on both logs. Each run is measured (``/proc/PID/smaps_rollup`` of
the supervisor and every descendant, by role) at three moments:

1. ``serving``: 3 s after the node first says SERVING;
2. ``ann``: 3 s after the first ANN build is published (the peak PSS sampled while it ran is
   kept too: the build child's working set counts);
3. ``compaction``: 3 s after a background compaction of an overlay recorded over RecordEvents.

Edges are the builder's unique user-item pairs (``run/builder.json``; the single-process
server's log line). Per edge over a 2,000-event node = (PSS - PSS of the 2,000-event run of the
same kind, same moment) / edges. ``--baseline-ref`` runs the same steps on ``recserver/`` of a
git ref (``git archive``) in the same run and prints its figures beside. JSON goes to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

from load.benchmarks.node_harness import children, free_port, start_node, write_config
from load.common import machine_line, print_table, verdict
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[2]
MB = 1e6
SMALL = 2_000
KINDS = (("node_1", 1, False), ("node_2", 2, False), ("single", 1, True))
MOMENTS = ("serving", "ann", "compaction")
COMPACT_FRACTION = 0.02  # the overlay share that starts a compaction (the config below)


def role(pid: int) -> str:
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "gone"
    for name in ("builder", "worker", "serve", "child_build"):
        if name in words or any(w.endswith(name) for w in words):
            return {"serve": "supervisor", "child_build": "ann child"}.get(name, name)
    return "other"


def pss_by_process(root: int) -> list[tuple[int, str, int]]:
    """(pid, role, PSS bytes) of ``root`` and every descendant."""
    out = []
    for pid in children(root):
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        pss = next(int(line.split()[1]) * 1024 for line in text.splitlines()
                   if line.startswith("Pss:"))
        out.append((pid, role(pid), pss))
    return out


def snapshot(root: int) -> dict[str, Any]:
    procs = pss_by_process(root)
    return {"total": sum(p for _, _, p in procs),
            "processes": [{"pid": pid, "role": r, "pss": p} for pid, r, p in procs]}


def wait_log(log: Path, needle: str, count: int, timeout_s: float, root: int,
             peak: list[int]) -> bool:
    """Wait until ``needle`` occurs ``count`` times in the server log, sampling PSS peaks."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        peak[0] = max(peak[0], snapshot(root)["total"])
        if log.read_text(errors="replace").count(needle) >= count:
            return True
        time.sleep(0.5)
    return False


def record_overlay(address: str, n: int) -> None:
    """RecordEvents of ``n`` events by new users on known items (an overlay to compact)."""
    rng = random.Random(3)
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.RecommenderStub(channel)
        for start in range(0, n, 1_000):
            events = [pb.Event(event_id=f"m{start + j}", user_id=f"new{rng.randrange(n)}",
                               item_id=f"i{rng.randrange(200)}", event="view")
                      for j in range(min(1_000, n - start))]
            stub.RecordEvents(pb.RecordEventsRequest(events=events), timeout=30)


def run_one(tmp: Path, events: Path, workers: int, single: bool, env: dict[str, str], *,
            warm_only: bool = False) -> dict[str, Any]:
    tmp.mkdir(parents=True)
    config = write_config(tmp / "config.yaml", budget_ms=60.0, tiers=["ann", "popular"],
                          compact_fraction=COMPACT_FRACTION)
    node = start_node(tmp, config, free_port(), events=events, workers=workers, single=single,
                      env=env)
    log, root, out = tmp / "server.log", node.proc.pid, {}
    try:
        out["serving_s"] = node.wait_serving()
        if warm_only:
            return out
        time.sleep(3.0)
        out["serving"] = snapshot(root)
        peak = [out["serving"]["total"]]
        if not wait_log(log, "published to", 1, 1800, root, peak):
            raise RuntimeError("no ANN build published")
        time.sleep(3.0)
        out["ann"], out["ann_peak"] = snapshot(root), peak[0]
        out["edges"] = node.edges()
        before = log.read_text(errors="replace").count("compacted base in")
        record_overlay(node.address, max(2_000, int(out["edges"] * COMPACT_FRACTION * 2)))
        peak = [0]
        if not wait_log(log, "compacted base in", before + 1, 900, root, peak):
            raise RuntimeError("no compaction")
        time.sleep(3.0)
        out["compaction"] = snapshot(root)
    finally:
        node.stop()
    return out


def node_env(numba_cache: Path, code: Path | None) -> dict[str, str]:
    """Variables for a node run: its kernel cache, and ``code`` (a tree holding ``recserver/``)
    as the code it runs (None: this checkout)."""
    env = {"NUMBA_CACHE_DIR": str(numba_cache)}
    if code is not None:
        # ``python -m`` puts the working directory (this checkout) first on sys.path, ahead of
        # PYTHONPATH: without PYTHONSAFEPATH the baseline would run this tree's code.
        env |= {"PYTHONPATH": str(code), "PYTHONSAFEPATH": "1"}
    return env


def measure(tmp: Path, big: Path, small: Path, code: Path | None) -> dict[str, Any]:
    """Every kind on both logs. All runs of one tree share one kernel cache, filled by a
    first run that is not measured: the figures are a node's with its kernels compiled (a
    node's first start on a fresh data directory compiles them once)."""
    env = node_env(tmp / "numba-cache", code)
    run_one(tmp / "warm-up", small, 2, False, env, warm_only=True)
    runs: dict[str, Any] = {}
    for kind, workers, single in KINDS:
        for size, path in (("small", small), ("big", big)):
            label = f"{kind}/{size}"
            print(f"  {label} ...", flush=True)
            runs[label] = run_one(tmp / label.replace("/", "-"), path, workers, single, env)
    return runs


def baseline_tree(ref: str, into: Path) -> Path:
    archive = subprocess.run(["git", "archive", ref, "recserver"], cwd=ROOT,
                             capture_output=True, check=True).stdout
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def figures(runs: dict[str, Any]) -> dict[str, Any]:
    """Per kind and moment: PSS, PSS of the 2,000-event run, bytes per edge over it."""
    out: dict[str, Any] = {}
    for kind, _, _ in KINDS:
        big, small = runs[f"{kind}/big"], runs[f"{kind}/small"]
        edges = big["edges"]
        for moment in MOMENTS:
            pss, base = big[moment]["total"], small[moment]["total"]
            out[f"{kind}/{moment}"] = {"pss": pss, "small": base, "edges": edges,
                                       "per_edge": (pss - base) / max(edges, 1)}
        out[f"{kind}/ann_peak_ratio"] = big["ann_peak"] / big["ann"]["total"]
    two, one = runs["node_2/big"]["compaction"], runs["node_1/big"]["compaction"]
    out["extra_worker"] = two["total"] - one["total"]
    return out


def report(new: dict[str, Any], old: dict[str, Any] | None) -> list[list[str]]:
    rows = []

    def side(f: dict[str, Any] | None, key: str, fmt: str) -> str:
        if f is None or key not in f:
            return "-"
        v = f[key]
        return fmt.format(**v) if isinstance(v, dict) else fmt.format(v=v)

    a, b = figures(new), figures(old) if old else None
    edge_fmt = "{pss_mb:,.0f} MB, {per_edge:,.0f} B/edge"
    for key in a:
        if isinstance(a[key], dict):
            for f in (a, b):
                if f is not None:
                    f[key]["pss_mb"] = f[key]["pss"] / MB
    for kind, _, _ in KINDS:
        for moment in MOMENTS:
            key = f"{kind}/{moment}"
            target = verdict(a[key]["per_edge"], 80, higher_is_better=False) \
                if key == "node_2/compaction" else ""
            rows.append([key, side(a, key, edge_fmt), side(b, key, edge_fmt),
                         "<= 80 B/edge" if target else "", target])
        key = f"{kind}/ann_peak_ratio"
        rows.append([f"{kind} peak in ANN build / after", side(a, key, "{v:.2f}x"),
                     side(b, key, "{v:.2f}x"), "<= 1.5x" if kind == "node_2" else "",
                     verdict(a[key], 1.5, higher_is_better=False) if kind == "node_2" else ""])
    small = new["node_2/small"]["serving"]["total"]
    rows.append(["2,000-event node, 2 workers", f"{small / MB:,.0f} MB",
                 f"{old['node_2/small']['serving']['total'] / MB:,.0f} MB" if old else "-",
                 "<= 300 MB", verdict(small, 300 * MB, higher_is_better=False)])
    edges = new["node_2/big"]["edges"]
    extra_target = 40 * MB + 5 * edges
    rows.append(["extra worker (2 - 1, after compaction)", f"{a['extra_worker'] / MB:,.0f} MB",
                 f"{b['extra_worker'] / MB:,.0f} MB" if b else "-",
                 f"<= {extra_target / MB:,.0f} MB",
                 verdict(a["extra_worker"], extra_target, higher_is_better=False)])
    rows.append(["worker start to SERVING (node_2, big)", f"{new['node_2/big']['serving_s']:.1f} s",
                 f"{old['node_2/big']['serving_s']:.1f} s" if old else "-", "", ""])
    return rows


def by_role(run: dict[str, Any], moment: str) -> str:
    parts: dict[str, list[float]] = {}
    for p in run[moment]["processes"]:
        parts.setdefault(p["role"], []).append(p["pss"] / MB)
    return ", ".join(f"{r} {' + '.join(f'{v:.0f}' for v in vs)}" for r, vs in parts.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--baseline-ref", help="also measure recserver/ of this git ref")
    parser.add_argument("--out", type=Path, default=Path("var/perf/node_memory.json"))
    args = parser.parse_args()
    print(machine_line())
    from recserver.graph.event_files import write_events
    from recserver.graph.synthetic import generate

    with tempfile.TemporaryDirectory(prefix="bench-node-memory-") as name:
        tmp = Path(name)
        big = write_events(generate(args.events, seed=0), tmp / "big.csv")
        small = write_events(generate(SMALL, seed=0), tmp / "small.csv")
        print(f"measuring this tree on {args.events:,} and {SMALL:,} events", flush=True)
        new = measure(tmp / "new", big, small, None)
        old = None
        if args.baseline_ref:
            print(f"measuring {args.baseline_ref}", flush=True)
            code = baseline_tree(args.baseline_ref, tmp / "baseline")
            old = measure(tmp / "old", big, small, code)
    print()
    print_table(["figure (PSS; B/edge over the 2,000-event run)", "now",
                 f"{args.baseline_ref or 'baseline'} (same run)", "target", "verdict"],
                report(new, old))
    print()
    rows = [[f"{label}{' (' + args.baseline_ref + ')' if tag == 'old' else ''}", moment,
             by_role(runs[label], moment)]
            for tag, runs in (("new", new), ("old", old)) if runs
            for label in runs for moment in MOMENTS]
    print_table(["run", "moment", "PSS by process (MB)"], rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"events": args.events, "now": new, "baseline": old,
                                    "baseline_ref": args.baseline_ref}, indent=1))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
