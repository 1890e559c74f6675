"""The ``sizes`` part of ``load.benchmarks.build``: how cost grows with graph size, the figures
behind docs/scaling.md.

Each graph size runs in a fresh process (so resident memory is the graph's own), built from
synthetic events (``recserver.graph.synthetic``) the way ``recserver serve`` builds it, and prints:

1. build: edges, build time (ingest + compacting publish), snapshot bytes/edge (split into the edge
   arrays and the per-node arrays), and the process's resident memory growth per edge (snapshot +
   edge store + dedup index + id maps: what a replica must hold), with the peak during the build;
   target lines for the largest size (build <= 30 s at 10M events, snapshot <= 20 B/edge);
2. ingest: fresh events (10k batches, no publisher running) applied per second into that graph,
   then the overlay publish and the full compaction at that size (both off the request path);
3. walks: hops/s of one long walk, and the 100k-step query time (seeds + walk + rank) by seed
   degree: users bucketed by how many items they have, and single context items by degree; full
   walks (no early stop) and the default early stop (n_p 2000, n_v 4).

Then, in this process, the Prometheus side: series and ``/metrics`` render CPU by number of
surfaces (every surface x source used once, as on a busy server). About 1.5 minutes with the
defaults on a 2-core machine; one core is used at a time.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import time
from typing import Any

import numpy as np

from load.benchmarks.build import ROOT, run_child
from load.common import pct, print_table, verdict

USER_BUCKETS = ((1, 4), (5, 19), (20, 99), (100, 1 << 30))
ITEM_BUCKETS = ((1, 9), (10, 99), (100, 999), (1000, 1 << 30))
BATCH = 10_000


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _bucket_label(lo: int, hi: int) -> str:
    return f"{lo}+" if hi >= 1 << 30 else f"{lo}-{hi}"


def _query_ms(fn: Any, rows: np.ndarray) -> tuple[float, float]:
    times = []
    for row in rows:
        t0 = time.perf_counter()
        fn(int(row))
        times.append((time.perf_counter() - t0) * 1e3)
    return pct(times, 50), pct(times, 90)


def child_size(arg: str) -> dict[str, Any]:
    """``EVENTS:QUERIES:INGEST_EVENTS``: :func:`measure_size` in this (fresh) process."""
    n_events, queries, ingest_events = (int(x) for x in arg.split(":"))
    return measure_size(n_events, queries, ingest_events)


def measure_size(n_events: int, queries: int, ingest_events: int) -> dict[str, Any]:
    """Build, ingest into and walk one graph of ``n_events`` synthetic events."""
    from load.benchmarks.build_live import Stream, slice_cols
    from recserver.graph.bootstrap import CHUNK
    from recserver.graph.config import GraphConfig, WalkConfig
    from recserver.graph.live import LiveGraph
    from recserver.graph.seeds import context_seeds, user_seeds
    from recserver.graph.synthetic import generate
    from recserver.graph.walk import run_walk, warm_up

    warm_up()
    gc.collect()
    rss0 = _rss()
    cols = generate(n_events)
    live = LiveGraph(GraphConfig())
    t0 = time.perf_counter()
    for lo in range(0, n_events, CHUNK):
        live.ingest(slice_cols(cols, lo, min(lo + CHUNK, n_events)))
    snap = live.publish(compact=True)
    build_s = time.perf_counter() - t0
    del cols
    gc.collect()
    rss_graph = _rss() - rss0
    store = live.store
    runs = [r for r in (store.main, store.pending) if r is not None]
    store_bytes = sum(r.keys.nbytes + r.weight.nbytes + r.last_ts.nbytes for r in runs)
    dedup_bytes = len(store.dedup) * 8  # one uint64 key per event seen
    m = snap.n_edges
    sides = (snap.base_users, snap.base_items, snap.over_users, snap.over_items)
    edge_arrays = sum(s.packed.nbytes + (0 if s.weight is None else s.weight.nbytes)
                      for s in sides)
    out: dict[str, Any] = {
        "events": n_events, "users": snap.n_users, "items": snap.n_items, "edges": m,
        "build_s": build_s, "snapshot_bpe": snap.nbytes() / m,
        "snapshot_edge_bpe": edge_arrays / m, "prune": live.last_prune.summary(),
        "store_bpe": store_bytes / m,
        "dedup_bpe": dedup_bytes / m, "process_bpe": rss_graph / m,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "dedup_keys": len(store.dedup),
    }

    # Ingest into this graph, then what the publisher does with it.
    stream = Stream(live, max(ingest_events, BATCH), seed=11)
    applied, t_ingest = 0, 0.0
    for _ in range(max(1, ingest_events // BATCH)):
        batch = stream.next(BATCH)
        c0 = time.perf_counter()
        applied += live.ingest(batch).n_accepted
        t_ingest += time.perf_counter() - c0
    out["ingest_eps"] = applied / t_ingest
    c0 = time.perf_counter()
    live.publish()  # overlay only (may start a background compaction past the threshold)
    out["overlay_publish_ms"] = (time.perf_counter() - c0) * 1e3
    live.wait_for_compaction()
    c0 = time.perf_counter()
    snap = live.publish(compact=True)
    out["compaction_s"] = time.perf_counter() - c0

    # Walks.
    rng = np.random.default_rng(5)
    udeg = np.diff(snap.base_users.indptr) + np.diff(snap.over_users.indptr)
    ideg = np.diff(snap.base_items.indptr) + np.diff(snap.over_items.indptr)
    full = WalkConfig(steps=100_000, n_p=0)
    early = WalkConfig(steps=100_000)

    def user_query(cfg: WalkConfig) -> Any:
        def run(user: int) -> None:
            seeds, weights = user_seeds(snap, user, cfg.max_seeds)
            run_walk(snap, seeds, weights, cfg, k=100, exclude=snap.user_items(user)[0])

        return run

    def item_query(item: int) -> None:
        seeds, weights = context_seeds(snap, [item])
        run_walk(snap, seeds, weights, full, k=100)

    heavy = int(np.argmax(udeg))
    user_query(full)(heavy)  # scratch buffers sized for this graph
    seeds, weights = user_seeds(snap, heavy, 16)
    c0 = time.perf_counter()
    res = run_walk(snap, seeds, weights, WalkConfig(steps=5_000_000, n_p=0, batch_steps=65_536),
                   k=100)
    out["hops_per_s"] = res.steps_done / (time.perf_counter() - c0)

    out["user_walks"] = []
    for lo, hi in USER_BUCKETS:
        pool = np.flatnonzero((udeg >= lo) & (udeg <= hi))
        if pool.size == 0:
            continue
        rows = rng.choice(pool, min(queries, pool.size), replace=False)
        p50, p90 = _query_ms(user_query(full), rows)
        e50, e90 = _query_ms(user_query(early), rows)
        out["user_walks"].append((_bucket_label(lo, hi), int(pool.size), p50, p90, e50, e90))
    out["item_walks"] = []
    for lo, hi in ITEM_BUCKETS:
        pool = np.flatnonzero((ideg >= lo) & (ideg <= hi))
        if pool.size == 0:
            continue
        rows = rng.choice(pool, min(queries, pool.size), replace=False)
        p50, p90 = _query_ms(item_query, rows)
        out["item_walks"].append((_bucket_label(lo, hi), int(pool.size), p50, p90))
    return out


def metrics_cost(surface_counts: list[int]) -> list[list[str]]:
    """Series and /metrics render CPU with N surfaces, every (surface, source) used once."""
    from prometheus_client import CollectorRegistry, disable_created_metrics, generate_latest

    from recserver.config import config_from_document
    from recserver.metrics import Metrics
    from recserver.service.types import SOURCES, Recommendation

    disable_created_metrics()
    budgets = ((60, 80), (40, 60), (30, 50))  # the default surfaces' budgets and SLAs, cycled
    rows = []
    for n in surface_counts:
        surfaces = {
            f"s{i}": {"budget_ms": budgets[i % 3][0], "sla_p99_ms": budgets[i % 3][1]}
            for i in range(n)
        }
        config = config_from_document({"surfaces": surfaces})
        metrics = Metrics(config, CollectorRegistry())
        rec = Recommendation(
            items=[], source="graph", degraded=True, degraded_reasons=["deadline"],
            coverage=0.6, budget_ms=40.0, server_elapsed_ms=30.0, snapshot_version=1,
            stage_ms={"queue": 0.2, "seeds": 0.3, "walk": 25.0, "fallback": 0.8, "rank": 0.4},
        )
        for surface in surfaces:
            for source in SOURCES:
                rec.source = source
                metrics.request_finished(surface, rec)
        body = generate_latest(metrics.registry).decode()
        series = sum(1 for line in body.splitlines() if line and not line.startswith("#"))
        cpu0 = time.process_time()
        renders = 20
        for _ in range(renders):
            generate_latest(metrics.registry)
        render_ms = (time.process_time() - cpu0) / renders * 1e3
        rows.append([str(n), f"{series:,}", f"{len(body) / 1024:,.0f} KiB", f"{render_ms:.1f} ms",
                     f"{render_ms / 15 / 10:.2f}%"])
    return rows


def run(args: argparse.Namespace) -> None:
    """The sizes part: one fresh process per size, then the tables."""
    started = time.perf_counter()
    results = []
    for n in args.sizes:  # a fresh interpreter per size: honest RSS
        r = run_child(ROOT, "size", f"{n}:{args.queries}:{args.ingest_events}")
        if r is None:
            raise RuntimeError(f"the {n:,}-event size failed")
        results.append(r)
        print(f"size {n:,} events done ({time.perf_counter() - started:.0f} s): "
              f"{r['prune']}", flush=True)

    print("\nbuild and memory (one replica holds all of this)")
    print_table(
        ["events", "users", "items", "edges", "build", "B/edge: snapshot", "edge store",
         "dedup index", "process RSS", "peak RSS"],
        [[f"{r['events']:,}", f"{r['users']:,}", f"{r['items']:,}", f"{r['edges']:,}",
          f"{r['build_s']:.1f} s", f"{r['snapshot_bpe']:.1f}", f"{r['store_bpe']:.1f}",
          f"{r['dedup_bpe']:.1f}", f"{r['process_bpe']:.0f}", f"{r['peak_rss_mib']:,.0f} MiB"]
         for r in results],
    )
    big = results[-1]
    print()
    print_table(["figure", "measured", "target", "note", "verdict"], [
        [f"snapshot build, {big['events'] / 1e6:g}M events (ingest+publish)",
         f"{big['build_s']:.1f} s", "<= 30 s at 10M events", "",
         verdict(big["build_s"], 30, higher_is_better=False) if big["events"] >= 10_000_000
         else "-"],
        ["snapshot bytes/edge (all arrays)", f"{big['snapshot_bpe']:.1f}", "<= 20",
         f"{big['snapshot_edge_bpe']:.1f} in edge arrays; networkx ~210 (walk.py)",
         verdict(big["snapshot_bpe"], 20, higher_is_better=False)],
    ])
    print(f"\ningest ({args.ingest_events:,} fresh events in {BATCH:,}-event batches) and publish")
    print_table(
        ["base edges", "ingest events/s", "overlay publish", "full compaction"],
        [[f"{r['edges']:,}", f"{r['ingest_eps'] / 1e3:,.0f} k", f"{r['overlay_publish_ms']:.0f} ms",
          f"{r['compaction_s']:.1f} s"] for r in results],
    )
    print("\nwalks: hops/s (one 5M-step walk) and 100k-step query ms (seeds + walk + rank)")
    print_table(
        ["base edges", "hops/s"], [[f"{r['edges']:,}", f"{r['hops_per_s'] / 1e6:.1f} M"]
                                   for r in results],
    )
    print()
    rows = []
    for r in results:
        for label, count, p50, p90, e50, e90 in r["user_walks"]:
            rows.append([f"{r['edges']:,}", f"user, {label} items", f"{count:,}",
                         f"{p50:.2f} / {p90:.2f}", f"{e50:.2f} / {e90:.2f}"])
        for label, count, p50, p90 in r["item_walks"]:
            rows.append([f"{r['edges']:,}", f"item, degree {label}", f"{count:,}",
                         f"{p50:.2f} / {p90:.2f}", "-"])
    print_table(
        ["base edges", "seed", "nodes in bucket", "full p50 / p90 ms", "early stop p50 / p90"],
        rows,
    )
    print("\nPrometheus: /metrics with every surface x source used once; render CPU holds the GIL")
    print_table(
        ["surfaces", "series", "body", "render CPU", "of one core at 15 s"],
        metrics_cost([int(s) for s in args.surfaces.split(",") if s]),
    )
