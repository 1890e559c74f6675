"""Walk benchmark on a synthetic ~3M-edge Zipf bipartite graph; prints a compact table.

    .venv/bin/python -m load.benchmarks.walk [--edges 3000000] [--queries 50] [--nx-edges 3000000]

Figures: single-core hops/s (a step is one hop) and item visits/s, the 100k-step query latency
for median users and heavy users (top 1% by degree), the plain-Python networkx walk's steps/s
on the same graph, and snapshot bytes per edge. The graph is built directly with numpy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

from recserver.graph.config import ALIAS_MAX_DEGREE, WalkConfig
from recserver.graph.idmap import IdMap
from recserver.graph.kernels import make_side
from recserver.graph.seeds import user_seeds
from recserver.graph.snapshot import CsrSide, GraphSnapshot
from recserver.graph.walk import run_walk

PACK_SECONDS = [0.0]  # time spent in make_side (alias packing), summed over all sides


def _csr(src: np.ndarray, dst: np.ndarray, w: np.ndarray, n: int, keep: bool) -> CsrSide:
    order = np.argsort(src, kind="stable")
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    nbr, weights = dst[order].astype(np.int32), w[order]
    t0 = time.perf_counter()
    side = make_side(indptr, nbr, weights, keep_weights=keep)
    PACK_SECONDS[0] += time.perf_counter() - t0
    return side


def zipf_edges(n_users: int, n_items: int, n_edges: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Distinct (user, item, weight) edges: item popularity ~ rank^-0.9, user activity ~ rank^-0.6.

    Ids are shuffled so popular nodes are spread over memory as in a real id space, and item
    degrees are capped at ``ALIAS_MAX_DEGREE`` as the compactor does.
    """
    rng = np.random.default_rng(seed)
    m = int(n_edges * 1.3)
    pu = 1.0 / np.arange(1, n_users + 1) ** 0.6
    pi = 1.0 / np.arange(1, n_items + 1) ** 0.9
    users = rng.permutation(n_users)[rng.choice(n_users, m, p=pu / pu.sum())]
    items = rng.permutation(n_items)[rng.choice(n_items, m, p=pi / pi.sum())]
    key = np.unique(users.astype(np.int64) * n_items + items)
    key = key[rng.permutation(key.shape[0])]
    item = key % n_items
    order = np.argsort(item, kind="stable")
    starts = np.searchsorted(item[order], item[order], side="left")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.shape[0]) - starts
    key = key[rank < ALIAS_MAX_DEGREE][:n_edges]
    weights = rng.exponential(1.0, key.shape[0]).astype(np.float32) + 0.1
    return key // n_items, key % n_items, weights


def build(n_edges: int, overlay_share: float = 0.03) -> GraphSnapshot:
    """Snapshot with ``overlay_share`` of the edges in the overlay (the usual serving state)."""
    n_users, n_items = n_edges // 10, n_edges // 30
    u, i, w = zipf_edges(n_users, n_items, n_edges)
    cut = int(u.shape[0] * (1 - overlay_share))
    deg = np.bincount(i, minlength=n_items).astype(np.int32)
    return GraphSnapshot(
        version=1,
        users=IdMap(),
        items=IdMap(),
        base_users=_csr(u[:cut], i[:cut], w[:cut], n_users, True),
        base_items=_csr(i[:cut], u[:cut], w[:cut], n_items, False),
        over_users=_csr(u[cut:], i[cut:], w[cut:], n_users, True),
        over_items=_csr(i[cut:], u[cut:], w[cut:], n_items, False),
        item_degree=deg,
        t_ref=0.0,
        built_at=time.time(),
    )


def query_ms(snap: GraphSnapshot, users: np.ndarray, cfg: WalkConfig) -> tuple[float, float]:
    """Median and p90 latency (ms) of seeds + walk + rank for each user."""
    times = []
    for user in users:
        t0 = time.perf_counter()
        seeds, weights = user_seeds(snap, int(user), cfg.max_seeds)
        run_walk(snap, seeds, weights, cfg, k=100, exclude=snap.user_items(int(user))[0])
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), float(np.percentile(times, 90))


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def nx_reference(
    snap: GraphSnapshot, seeds: np.ndarray, budget_s: float
) -> tuple[float, float, float]:
    """(build seconds, graph bytes/edge, steps/s) of the plain-Python walk over networkx.

    The build includes the walker's per-node tables, so the walk itself is timed at its best;
    bytes/edge is the growth of the resident set while the graph alone is built.
    """
    import networkx as nx

    sys.path.insert(0, ".")
    from load.common.walk_reference import ReferenceWalker, add_edges

    t0, rss0 = time.perf_counter(), _rss_bytes()
    graph = nx.Graph()
    for side in (snap.base_users, snap.over_users):
        users = np.repeat(np.arange(side.n_rows), np.diff(side.indptr))
        items = (side.packed & np.uint64(0xFFFF_FFFF)).astype(np.int64)
        assert side.weight is not None
        add_edges(graph, zip(users.tolist(), items.tolist(), side.weight.tolist(), strict=True))
    graph_bytes = (_rss_bytes() - rss0) / snap.n_edges
    walker = ReferenceWalker(graph, rng_seed=1)
    walker.warm()  # per-node neighbour lists and cumulative weights, built once
    build_s = time.perf_counter() - t0
    plan = [(int(s), 0, 2_000) for s in seeds]
    moves, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < budget_s:
        walker.walk(plan, 0.5)
        moves += 2_000 * len(plan)
    return build_s, graph_bytes, 2 * moves / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", type=int, default=3_000_000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--nx-edges", type=int, default=3_000_000, help="0 skips networkx")
    args = parser.parse_args()
    t0 = time.perf_counter()
    snap = build(args.edges)
    print(f"graph: {snap.n_users:,} users, {snap.n_items:,} items, {snap.n_edges:,} edges, "
          f"{snap.over_users.nnz:,} of them in the overlay (built in "
          f"{time.perf_counter() - t0:.1f}s)")
    rng = np.random.default_rng(3)
    udeg = np.diff(snap.base_users.indptr) + np.diff(snap.over_users.indptr)
    order = np.argsort(udeg, kind="stable")
    mid = order[len(order) // 2 - 5_000 : len(order) // 2 + 5_000]
    median_users = rng.choice(mid, args.queries, replace=False)
    heavy_users = rng.choice(order[-len(order) // 100 :], args.queries, replace=False)
    full = WalkConfig(steps=100_000, n_p=0)
    early = WalkConfig(steps=100_000)
    query_ms(snap, median_users[:3], full)  # numba compile / cache load, scratch allocation

    seeds, weights = user_seeds(snap, int(heavy_users[0]), 16)
    long_cfg = WalkConfig(steps=10_000_000, n_p=0, batch_steps=65_536)
    t0 = time.perf_counter()
    res = run_walk(snap, seeds, weights, long_cfg, k=100)
    hop_s = res.steps_done / (time.perf_counter() - t0)

    pack_rate = 2 * snap.n_edges / PACK_SECONDS[0]
    rows = [("hops/s, one core (10M-step walk)", f"{hop_s / 1e6:.1f} M"),
            ("item visits/s", f"{hop_s / 2e6:.1f} M"),
            ("alias packing, both sides", f"{PACK_SECONDS[0] * 1e3:.0f} ms "
                                          f"({pack_rate / 1e6:.0f} M edges/s)")]
    for name, users in (("median user", median_users), ("heavy user (top 1%)", heavy_users)):
        for label, cfg in (("100k steps", full), ("100k, early stop", early)):
            p50, p90 = query_ms(snap, users, cfg)
            rows.append((f"{name}, {label}: p50 / p90", f"{p50:.2f} / {p90:.2f} ms"))
    sides = (snap.base_users, snap.base_items, snap.over_users, snap.over_items)
    bpe = sum(s.nbytes() for s in sides) / snap.n_edges
    rows.append(("snapshot bytes/edge", f"{bpe:.1f}"))
    if args.nx_edges >= snap.n_edges:
        build_s, nx_bpe, nx_s = nx_reference(snap, seeds, budget_s=3.0)
        rows.append(("networkx graph + walker tables build", f"{build_s:.1f} s"))
        rows.append(("networkx graph bytes/edge (RSS growth)", f"{nx_bpe:.0f}"))
        rows.append(("networkx reference walk steps/s", f"{nx_s / 1e6:.2f} M"))
        rows.append(("speed-up over networkx", f"{hop_s / nx_s:.0f}x"))
    else:
        rows.append(("networkx reference walk", "skipped (--nx-edges below graph size)"))
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
