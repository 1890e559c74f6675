"""The ``memory`` part of ``load.benchmarks.build``: the serve path's memory and parse speed,
beside the previous code's figures, and the fresh-process runner every part measures in.

Per size, writes the synthetic log as CSV and Parquet in a temporary folder, then measures, each
in a fresh process:

1. parse rate on one core (``sched_setaffinity``): ``load_events`` of the CSV and the Parquet file;
2. a build from the CSV (``build_graph``, as ``recserver build``/``serve`` do): resident memory
   after imports, the peak during the build (``VmHWM``), what is held after it, and the held
   memory's breakdown (snapshot arrays, edge store, dedup keys, id maps, other);
3. id maps: resident growth per id of a map holding the build's user ids;
4. live compactions (new code only): resident memory after the build and after each of a few
   background compactions, with the heap release that follows an installed compaction and
   with it disabled.

"Previous code" figures come from the same steps run on the code before the Arrow loaders (``git
archive`` of ``--baseline-ref``, default the parent of the commit that brought pyarrow into the
loaders), in this run, on the same files. Each target line says met / MISSED.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from load.benchmarks.build import ROOT, run_child
from load.common import print_table, verdict

MIB = 1 << 20


def _status() -> tuple[int, int]:
    """(VmRSS, VmHWM) in bytes."""
    with open("/proc/self/status") as fh:
        fields = dict(line.split(":", 1) for line in fh)
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # resets VmHWM to the current RSS


def _trim() -> None:
    import ctypes

    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except ImportError:
        pass
    ctypes.CDLL("libc.so.6").malloc_trim(0)


# --- children (run with the code under test first on sys.path) -------------------------------


def child_parse(path: str) -> dict[str, Any]:
    """Best of two ``load_events`` of ``path`` on one core, after a warm-up read."""
    from recserver.graph.config import EventWeightsConfig
    from recserver.graph.loaders import load_events

    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    load_events(path, EventWeightsConfig())  # warm: page cache, lazy imports
    best = float("inf")
    for _ in range(2):
        gc.collect()
        started = time.perf_counter()
        cols = load_events(path, EventWeightsConfig())
        best = min(best, time.perf_counter() - started)
        n = len(cols) + len(cols.rejected)
        del cols
    return {"events": n, "seconds": best, "rate": n / best}


def child_build(path: str) -> dict[str, Any]:
    """Resident memory before, at the peak of and after ``build_graph`` of ``path``."""
    import numpy as np  # imported before the baseline RSS is taken

    from recserver.graph.bootstrap import build_graph
    from recserver.graph.config import GraphConfig

    gc.collect()
    base, _ = _status()
    _reset_peak()
    started = time.perf_counter()
    live, _ = build_graph(GraphConfig(), events=Path(path))
    seconds = time.perf_counter() - started
    gc.collect()
    _trim()  # the previous code had no trim of its own: give it the same chance
    held, peak = _status()
    snap, store = live.current, live.store
    edges = snap.base_users.nnz + (snap.over_users.nnz if snap.over_users is not None else 0)
    sides = ("base_users", "base_items", "over_users", "over_items")
    snapshot = snap.item_degree.nbytes + sum(
        a.nbytes for s in sides if getattr(snap, s) is not None
        for a in vars(getattr(snap, s)).values() if isinstance(a, np.ndarray)
    )
    runs = (store.main, store.pending)
    edge_store = sum(r.keys.nbytes + r.weight.nbytes + r.last_ts.nbytes for r in runs)
    dedup = sum(int(r.nbytes) for r in store.dedup.runs_view())
    idmaps = None
    if hasattr(store.users, "nbytes"):
        idmaps = store.users.nbytes() + store.items.nbytes()
    return {"base": base, "held": held, "peak": peak, "seconds": seconds, "edges": int(edges),
            "snapshot": int(snapshot), "edge_store": int(edge_store), "dedup": dedup,
            "dedup_keys": len(store.dedup), "idmaps": idmaps,
            "ids": len(store.users) + len(store.items)}


def child_idmap(arg: str) -> dict[str, Any]:
    """Resident bytes per id and lookup time of an ``IdMap`` of ``arg`` user ids."""
    n = int(arg)
    from recserver.graph.idmap import IdMap

    names = [f"u{i}" for i in range(n)]  # the synthetic log's user ids
    IdMap(["warm", "up"]).get("warm")  # load compiled code before measuring
    gc.collect()
    _trim()
    before, _ = _status()
    m = IdMap(names)
    gc.collect()
    _trim()
    after, _ = _status()
    started = time.perf_counter()
    probe = names[:100_000]
    for name in probe:
        m.get(name)
    get_us = (time.perf_counter() - started) / len(probe) * 1e6
    return {"ids": len(m), "bytes_per_id": (after - before) / len(m), "get_us": get_us}


#: Live compactions measured after the build, each started by an overlay of this share of the
#: file's events (past ``compact_overlay_fraction``, so every round compacts in the background).
COMPACTIONS = 3
COMPACTION_EVENTS = 0.08


def child_compactions(arg: str) -> dict[str, Any]:
    """RSS after the build and after each of ``COMPACTIONS`` live background compactions.

    ``arg`` is ``PATH:release`` or ``PATH:keep``; ``keep`` disables the heap release that
    follows an installed compaction (the figure to compare against).
    """
    import recserver.graph.live as live_module
    from recserver.graph.bootstrap import build_graph
    from recserver.graph.config import GraphConfig
    from recserver.graph.synthetic import generate

    path, mode = arg.rsplit(":", 1)
    if mode == "keep":
        live_module.release_free_heap = lambda: 0
    live, report = build_graph(GraphConfig(), events=Path(path))
    n_file = report.events_read
    gc.collect()
    rss = [_status()[0]]
    for k in range(COMPACTIONS):
        n = int(n_file * COMPACTION_EVENTS)
        cols = generate(n, n_users=max(n_file // 30, 10), n_items=max(n_file // 60, 10),
                        seed=100 + k, start=1_700_000_000.0 + (90 + k) * 86_400.0, days=1.0)
        live.ingest(cols)
        del cols
        live.publish()  # the overlay is past the threshold: a background compaction starts
        if not live.wait_for_compaction(timeout=600) or live.compactions != k + 2:
            raise RuntimeError(f"round {k}: no background compaction ran")
        gc.collect()
        rss.append(_status()[0])
    return {"rss": rss, "edges": int(live.current.n_edges)}


CHILDREN = {"parse": child_parse, "build": child_build, "idmap": child_idmap,
            "compactions": child_compactions}


# --- driver ---------------------------------------------------------------------------------


def _baseline_tree(ref: str | None, into: Path) -> Path | None:
    """The previous code (``recserver/`` of ``ref``) unpacked under ``into``."""
    try:
        if ref is None:
            intro = subprocess.run(
                ["git", "log", "--format=%H", "--reverse", "-S", "pyarrow", "--",
                 "recserver/graph/loaders.py"], cwd=ROOT, capture_output=True, text=True,
                check=True).stdout.split()
            if not intro:
                return None
            ref = intro[0] + "^"
        archive = subprocess.run(["git", "archive", ref, "recserver"], cwd=ROOT,
                                 capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"  no baseline: {exc}")
        return None
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def _mib(x: float | None) -> str:
    return "-" if x is None else f"{x / MIB:,.0f} MiB"


def run(args: argparse.Namespace) -> None:
    """The memory part, once per size in ``args.sizes``."""
    from recserver.graph.event_files import write_events
    from recserver.graph.synthetic import generate

    for n_events in args.sizes:
        with tempfile.TemporaryDirectory(prefix="bench_build_memory_") as tmp:
            folder = Path(tmp)
            cols = generate(n_events, seed=0)
            csv = write_events(cols, folder / "e.csv")
            parquet = write_events(cols, folder / "e.parquet")
            del cols
            print(f"\nmemory: {n_events:,} synthetic events: CSV "
                  f"{csv.stat().st_size / MIB:,.0f} MiB, Parquet "
                  f"{parquet.stat().st_size / MIB:,.0f} MiB")
            old_root = _baseline_tree(args.baseline_ref, folder / "baseline")
            new: dict[str, Any] = {}
            old: dict[str, Any] = {}
            for label, root, out in (("new", ROOT, new), ("previous", old_root, old)):
                if root is None:
                    continue
                print(f"measuring the {label} code ...", flush=True)
                out["csv"] = run_child(root, "parse", str(csv))
                if label == "new":
                    out["parquet"] = run_child(root, "parse", str(parquet))
                out["build"] = run_child(root, "build", str(csv))
                ids = (out["build"] or {}).get("ids", 500_000)
                out["idmap"] = run_child(root, "idmap", str(ids))
                if label == "new":  # the heap release after live compactions, on and off
                    for mode in ("release", "keep"):
                        out[f"compact_{mode}"] = run_child(root, "compactions", f"{csv}:{mode}")
            _report(new, old)


def _report(new: dict[str, Any], old: dict[str, Any]) -> None:
    def get(d: dict[str, Any], *path: str) -> Any:
        for p in path:
            d = (d or {}).get(p)  # type: ignore[assignment]
        return d

    rows = []
    csv_rate, old_csv = get(new, "csv", "rate"), get(old, "csv", "rate")
    pq_rate = get(new, "parquet", "rate")
    b, ob = new.get("build") or {}, old.get("build") or {}
    rows.append(["CSV parse, one core", f"{csv_rate / 1e6:.2f} M events/s",
                 f"{old_csv / 1e6:.2f} M/s" if old_csv else "-", ">= 2 M/s",
                 verdict(csv_rate, 2e6, higher_is_better=True)])
    rows.append(["Parquet parse, one core", f"{pq_rate / 1e6:.2f} M events/s",
                 "(no Parquet reader)", ">= 5 M/s", verdict(pq_rate, 5e6, higher_is_better=True)])
    ratio = b["peak"] / b["held"]
    old_ratio = ob["peak"] / ob["held"] if ob else None
    rows.append(["peak during build / held after", f"{ratio:.2f}x ({_mib(b['peak'])} / "
                 f"{_mib(b['held'])})", f"{old_ratio:.2f}x ({_mib(ob['peak'])} / "
                 f"{_mib(ob['held'])})" if ob else "-", "<= 1.5x",
                 verdict(ratio, 1.5, higher_is_better=False)])
    above = (b["peak"] - b["base"]) / (b["held"] - b["base"])
    old_above = (ob["peak"] - ob["base"]) / (ob["held"] - ob["base"]) if ob else None
    rows.append(["  same, above the interpreter", f"{above:.2f}x",
                 f"{old_above:.2f}x" if ob else "-", "", ""])
    bpe = b["held"] / b["edges"]
    rows.append(["all-in RSS per edge", f"{bpe:.1f} B ({b['edges']:,} edges)",
                 f"{ob['held'] / ob['edges']:.1f} B" if ob else "-", "<= 80 B",
                 verdict(bpe, 80, higher_is_better=False)])
    above_bpe = (b["held"] - b["base"]) / b["edges"]
    rows.append(["  same, above the interpreter", f"{above_bpe:.1f} B",
                 f"{(ob['held'] - ob['base']) / ob['edges']:.1f} B" if ob else "-", "", ""])
    idm, oidm = new.get("idmap") or {}, old.get("idmap") or {}
    rows.append(["id map bytes per id", f"{idm['bytes_per_id']:.1f} B",
                 f"{oidm['bytes_per_id']:.1f} B" if oidm else "-", "<= 32 B",
                 verdict(idm["bytes_per_id"], 32, higher_is_better=False)])
    rows.append(["id map get (one id)", f"{idm['get_us']:.2f} us",
                 f"{oidm['get_us']:.2f} us" if oidm else "-", "a few us", ""])
    rows.append(["build time (CSV)", f"{b['seconds']:.1f} s",
                 f"{ob['seconds']:.1f} s" if ob else "-", "", ""])
    print()
    print_table(["figure", "now", "previous code (same run)", "target", "verdict"], rows)
    print()
    other = b["held"] - b["base"] - b["snapshot"] - b["edge_store"] - b["dedup"] - b["idmaps"]
    parts = [("interpreter + libraries", b["base"]), ("snapshot arrays", b["snapshot"]),
             ("edge store", b["edge_store"]),
             (f"dedup keys ({b['dedup_keys']:,})", b["dedup"]),
             (f"id maps ({b['ids']:,} ids)", b["idmaps"]), ("other (heap, code)", other)]
    print_table(["held after build", "MiB", "B/edge"],
                [[name, f"{v / MIB:,.1f}", f"{v / b['edges']:.1f}"] for name, v in parts])
    on, off = new.get("compact_release"), new.get("compact_keep")
    if on and off:
        print()
        print(f"RSS after live background compactions (each after an overlay of "
              f"{COMPACTION_EVENTS:.0%} of the file's events; {on['edges']:,} edges at the end):")
        print_table(
            ["after", "heap released (now)", "not released", "saved"],
            [["the build" if k == 0 else f"compaction {k}", _mib(a), _mib(b), _mib(b - a)]
             for k, (a, b) in enumerate(zip(on["rss"], off["rss"], strict=True))],
        )

