"""ANN fallback benchmark: the tier's Redis-hit latency against a raw GET, precompute speed,
recall against exact search, and memory. Starts its own ``redis-server`` on a free port.

    .venv/bin/python -m load.benchmarks.ann [--events FILE] [--synthetic 1000000] [--samples 20000]

Targets: fallback p99 (server side, Redis hit) <= 1.5 x raw redis-py GET
p99 + 0.3 ms; precompute >= 5,000 users/s into Redis; recall@k >= 0.95 vs exact.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import redis

from load.common.redis_server import RedisServer
from recserver.ann.cache import CountingMetrics
from recserver.ann.config import AnnConfig, AnnIndexConfig
from recserver.ann.index import build_index, exact_search, recall_at_k, single_thread
from recserver.ann.runtime import AnnRuntime
from recserver.ann.tier import AnnUnavailable
from recserver.ann.vectors import user_matrix, user_vectors
from recserver.graph.config import GraphConfig
from recserver.graph.live import LiveGraph
from recserver.graph.loaders import load_events
from recserver.graph.synthetic import generate
from recserver.service.fallback import FallbackRequest

RETAIL = Path(__file__).resolve().parents[3] / "shared/data/online_retail/" \
    "uci_online_retail_purchases.csv.gz"
K = 20


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def graph_from(events: Path | None, synthetic: int | None) -> tuple[LiveGraph, str]:
    cfg = GraphConfig()
    live = LiveGraph(cfg)
    if events is not None:
        live.ingest(load_events(events, cfg.event_weights))
        name = events.name
    else:
        live.ingest(generate(synthetic or 1_000_000, seed=0))
        name = f"synthetic:{synthetic:,}"
    live.publish(compact=True)
    return live, name


def request(live: LiveGraph, user: int, deadline_s: float = 0.05) -> FallbackRequest:
    return FallbackRequest(snapshot=live.current, surface="home", user=user,
                           context=np.empty(0, np.int32), exclude=np.empty(0, np.int32), k=K,
                           deadline=time.perf_counter() + deadline_s)


def latency(live: LiveGraph, runtime: AnnRuntime, url: str, samples: int) -> dict[str, float]:
    """Interleaved: a raw redis-py GET and a tier fetch (both Redis hits) per iteration."""
    snap = live.current
    state = runtime.tier.state
    assert state is not None
    rng = np.random.default_rng(0)
    users = np.flatnonzero(np.diff(user_matrix(snap, 1).indptr) > 0)
    picks = rng.choice(users, samples).tolist()
    keys = [state.keys.user(snap.users.name(u)) for u in picks]
    raw = redis.Redis.from_url(url)
    raw_ms: list[float] = []
    tier_ms: list[float] = []
    tier = runtime.tier
    single_thread()
    for warm in range(200):  # connections, caches
        raw.get(keys[warm])
        tier.fetch(request(live, picks[warm]))
    before = dict(tier.counts)
    clock = time.perf_counter
    for user, key in zip(picks, keys, strict=True):
        t0 = clock()
        raw.get(key)
        t1 = clock()
        req = request(live, user)
        t2 = clock()
        tier.fetch(req)
        t3 = clock()
        raw_ms.append((t1 - t0) * 1e3)
        tier_ms.append((t3 - t2) * 1e3)
    hits = tier.counts["hit"] - before.get("hit", 0)
    # Fail-fast cost with the breaker open (a dead Redis after the breaker tripped).
    for _ in range(runtime.breaker.failure_threshold):
        runtime.breaker.record_failure()  # open (open_s is 1 s: longer than the loop below)
    open_ms = []
    for user in picks[:2000]:
        req = request(live, user)
        t0 = clock()
        with contextlib.suppress(AnnUnavailable):
            tier.fetch(req)
        open_ms.append((clock() - t0) * 1e3)
    runtime.breaker.record_success()
    # A miss computed in-process (no write-back): the key is gone.
    runtime.tier.writer = None
    compute_ms = []
    for user, key in list(zip(picks, keys, strict=True))[:500]:
        raw.delete(key)
        req = request(live, user)
        t0 = clock()
        tier.fetch(req)
        compute_ms.append((clock() - t0) * 1e3)
    raw.close()
    return {"raw_p50": pct(raw_ms, 50), "raw_p99": pct(raw_ms, 99),
            "tier_p50": pct(tier_ms, 50), "tier_p99": pct(tier_ms, 99),
            "hit_share": hits / samples, "open_p99": pct(open_ms, 99),
            "compute_p50": pct(compute_ms, 50), "compute_p99": pct(compute_ms, 99)}


def recall(live: LiveGraph, runtime: AnnRuntime) -> dict[str, float]:
    model = runtime.model
    assert model is not None
    snap = live.current
    matrix = user_matrix(snap, runtime.cfg.user_recent_items)
    users = np.flatnonzero(np.diff(matrix.indptr) > 0)[:1000]
    queries = user_vectors(matrix, model.vectors, users)
    _, exact = exact_search(model.vectors, queries, K)
    out = {}
    for kind in ("hnsw", "ivf"):
        index = build_index(model.vectors, AnnIndexConfig(kind=kind))
        _, found = index.search(queries, K)
        out[kind] = recall_at_k(found, exact)
    return out


def used_memory(url: str) -> int:
    with redis.Redis.from_url(url) as client:
        return int(client.info("memory")["used_memory"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=Path, default=RETAIL if RETAIL.exists() else None)
    parser.add_argument("--synthetic", type=int, default=1_000_000,
                        help="events of the synthetic graph for the precompute speed")
    parser.add_argument("--samples", type=int, default=20_000)
    args = parser.parse_args()
    started = time.perf_counter()
    print(f"machine: {os.cpu_count()} cpus, Python {platform.python_version()}, load average "
          + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp)).start()
        try:
            cfg = AnnConfig(socket_timeout_ms=50.0, connect_timeout_ms=50.0,
                            rebuild_interval_s=0)
            rows = []
            real, real_name = graph_from(args.events, args.synthetic)
            mem0 = used_memory(server.url)
            runtime = AnnRuntime(cfg, real, redis_url=server.url, metrics=CountingMetrics())
            report = runtime.build_now()
            mem1 = used_memory(server.url)
            snap = real.current
            print(f"\n[{real_name}] {snap.n_users:,} users, {snap.n_items:,} items, "
                  f"{snap.n_edges:,} edges\n{report.summary()}")
            rows.append((real_name, report, mem1 - mem0))
            lat = latency(real, runtime, server.url, args.samples)
            rec = recall(real, runtime)
            runtime.stop()
            if args.events is not None:  # precompute speed on a bigger (synthetic) graph too
                server.flush()
                big, big_name = graph_from(None, args.synthetic)
                mem0 = used_memory(server.url)
                big_rt = AnnRuntime(cfg.model_copy(update={"key_prefix": "bench"}), big,
                                    redis_url=server.url)
                big_report = big_rt.build_now()
                mem1 = used_memory(server.url)
                snap = big.current
                print(f"\n[{big_name}] {snap.n_users:,} users, {snap.n_items:,} items, "
                      f"{snap.n_edges:,} edges\n{big_report.summary()}")
                rows.append((big_name, big_report, mem1 - mem0))
                big_rt.stop()
        finally:
            server.stop()
    target = 1.5 * lat["raw_p99"] + 0.3
    print("\nfallback path (server side, Redis hit, k=20), "
          f"{args.samples:,} interleaved samples on {real_name}:")
    print(f"  raw redis-py GET        p50 {lat['raw_p50']:.3f} ms   p99 {lat['raw_p99']:.3f} ms")
    print(f"  ANN tier fetch          p50 {lat['tier_p50']:.3f} ms   p99 {lat['tier_p99']:.3f} ms"
          f"   (hits {lat['hit_share']:.0%})")
    print(f"  target p99 <= 1.5 x {lat['raw_p99']:.3f} + 0.3 = {target:.3f} ms: "
          f"{'MET' if lat['tier_p99'] <= target else 'MISSED'}")
    print(f"  breaker open (fail fast) p99 {lat['open_p99']:.3f} ms; miss computed in-process "
          f"p50 {lat['compute_p50']:.3f} ms, p99 {lat['compute_p99']:.3f} ms")
    print("\nprecompute into Redis (target >= 5,000 users/s) and memory:")
    for name, rep, used in rows:
        print(f"  {name:<40} {rep.users_per_s:>9,.0f} users/s "
              f"{'MET' if rep.users_per_s >= 5_000 else 'MISSED'}   "
              f"{rep.entries:,} entries, {rep.bytes_per_entry:,.0f} B/entry "
              f"(MEMORY USAGE {rep.measured_bytes_per_entry or 0:,.0f}), "
              f"total {rep.total_bytes / 2**20:,.1f} MiB estimated, "
              f"{used / 2**20:,.1f} MiB used_memory delta")
    print(f"\nrecall@{K} vs exact on {real_name} user vectors: "
          + ", ".join(f"{kind} {value:.4f}" for kind, value in rec.items())
          + f" (target >= 0.95: {'MET' if min(rec.values()) >= 0.95 else 'MISSED'})")
    print(f"\nbench time {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
