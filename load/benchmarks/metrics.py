"""What metrics cost a request, and what a scrape costs the server.

    .venv/bin/python -m load.benchmarks.metrics [--requests 20000]

Prints: one cached histogram observe (the floor), the whole per-request cost of
``Metrics.request_finished`` + ``encode_finished`` + ``rpc_finished`` for a typical answer (6 stage
timings, one degraded reason), the same done the naive way (``.labels()`` per request), and the
CPU time of rendering ``/metrics`` (which holds the GIL) with the number of series. Single
thread, no server: this is the CPU each request pays, not a latency under load.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import grpc
from prometheus_client import CollectorRegistry, Histogram, disable_created_metrics, generate_latest

from load.common import machine_line, print_table
from recserver.config import load_config
from recserver.metrics import Metrics
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.server.outcomes import RECOMMEND_METHOD, RecommendOutcomes
from recserver.server.servicer import SOURCE_TO_PROTO
from recserver.service.types import SOURCES, Recommendation


def best_of(fn: Callable[[], None], n: int, repeats: int = 5) -> float:
    """Best per-call seconds of ``repeats`` runs of ``n`` calls."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - started) / n)
    return best


def typical_answer() -> Recommendation:
    return Recommendation(
        items=[], source="blended", degraded=True, degraded_reasons=["deadline"],
        coverage=0.62, budget_ms=40.0, server_elapsed_ms=37.5, snapshot_version=3,
        stage_ms={"queue": 0.2, "seeds": 0.3, "walk": 35.0, "fallback": 0.8, "rank": 0.4},
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    n = args.requests
    config = load_config(None)
    disable_created_metrics()  # as the metrics server does

    floor_hist = Histogram("floor_seconds", "x", ["surface"], registry=CollectorRegistry())
    child = floor_hist.labels("home")
    floor = best_of(lambda: child.observe(0.0123), n)
    per_labels = best_of(lambda: floor_hist.labels("home").observe(0.0123), n)

    metrics = Metrics(config, CollectorRegistry())
    rec = typical_answer()
    request = pb.RecommendRequest(surface="item_page")
    response = pb.RecommendResponse(source=SOURCE_TO_PROTO["blended"])
    ok = grpc.StatusCode.OK

    outcomes = RecommendOutcomes(metrics)

    def one_request() -> None:
        metrics.request_finished("item_page", rec)
        metrics.encode_finished("item_page", 0.00004)
        outcomes.rpc_finished(RECOMMEND_METHOD, request, response, ok)

    cached = best_of(one_request, n)

    naive = Metrics(config, CollectorRegistry())

    def naive_request() -> None:  # what the cache avoids: .labels() on every observation
        naive.request_duration.labels("item_page", rec.source).observe(0.0375)
        for stage, ms in rec.stage_ms.items():
            naive.stage_duration.labels("item_page", stage).observe(ms / 1000)
        naive.stage_duration.labels("item_page", "encode").observe(0.00004)
        naive.walk_coverage.labels("item_page").observe(rec.coverage)
        naive.degraded.labels("item_page", "deadline").inc()
        naive.budget_exhausted.labels("item_page").inc()
        naive.requests.labels("item_page", "blended", "OK").inc()

    uncached = best_of(naive_request, n)

    # Render with every (surface, source) combination used once, as a busy server would be.
    for surface in config.surfaces:
        for source in SOURCES:
            rec.source = source
            metrics.request_finished(surface, rec)
    registry = metrics.registry
    body = generate_latest(registry).decode()
    series = sum(1 for line in body.splitlines() if line and not line.startswith("#"))
    cpu0 = time.process_time()
    renders = 50
    for _ in range(renders):
        generate_latest(registry)
    render_ms = (time.process_time() - cpu0) / renders * 1000

    print(machine_line())
    print_table(
        ["what", "cost"],
        [
            ["one cached histogram observe (floor)", f"{floor * 1e6:.2f} µs"],
            ["one .labels() + observe", f"{per_labels * 1e6:.2f} µs"],
            ["per request, cached children (11 observes/incs)", f"{cached * 1e6:.2f} µs"],
            ["per request, .labels() each time", f"{uncached * 1e6:.2f} µs"],
            [f"render /metrics ({series} series, {len(body) / 1024:.0f} KiB)",
             f"{render_ms:.2f} ms CPU ({render_ms / series * 1000:.1f} µs/series)"],
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
