"""Per-request cost of catalogue filtering with a 100k-item catalogue, beside no filtering.

    .venv/bin/python -m load.benchmarks.catalog [--events 2000000] [--items 100000] [--requests 400]

One graph (synthetic events over ``--items`` items) and one Recommender with the popular tier;
the same users and request ids (so the same walks) are asked under each catalogue, the modes
interleaved request by request so machine noise hits them alike:

* ``none``: no catalogue at all (the baseline);
* ``rules``: 5% of items hidden, 5% with an expiry (half of them past);
* ``rules+category``: the same, and the request asks for one of ``--categories`` categories
  (each item has 1-3 of them: with 20, about 10% of items pass);
* ``rules+narrow``: asks for a category of 0.2% of items: the walk and the popular head come
  up short and popular ranks every item the filter allows (the worst case).

Figures: p50 / p99 of the whole ``recommend`` call per mode, its extra cost over ``none``, and
the filter's own cost per call on candidate lists of the sizes a walk produces.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from load.common import machine_line, pct, print_table
from recserver.catalog.filter import ItemFilter
from recserver.catalog.items import ItemUpdate
from recserver.catalog.view import CatalogView
from recserver.config import config_from_document
from recserver.graph.config import GraphConfig
from recserver.graph.live import LiveGraph
from recserver.graph.synthetic import generate
from recserver.graph.walk import warm_up
from recserver.service.fallback import FallbackChain, PopularTier
from recserver.service.recommender import Recommender
from recserver.service.types import RecommendQuery

MODES = ("none", "rules", "rules+category", "rules+narrow")


def catalogue(n_items: int, now: float, n_categories: int = 20, seed: int = 1
              ) -> list[ItemUpdate]:
    rng = np.random.default_rng(seed)
    hidden = rng.random(n_items) < 0.05
    expiring = rng.random(n_items) < 0.05
    expiry = np.where(rng.random(n_items) < 0.5, now - 3600.0, now + 86_400.0)
    n_cats = rng.integers(1, 4, n_items)
    updates = []
    for i in range(n_items):
        cats = {f"c{c}" for c in rng.integers(0, n_categories, int(n_cats[i])).tolist()}
        if i % 500 == 0:
            cats.add("narrow")
        updates.append(ItemUpdate(f"i{i}", hidden=bool(hidden[i]), categories=tuple(sorted(cats)),
                                  expires_at=float(expiry[i]) if expiring[i] else 0.0))
    return updates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--categories", type=int, default=20,
                        help="categories in the catalogue (over 64: the exact-list path)")
    args = parser.parse_args()
    print(machine_line())
    started = time.perf_counter()
    graph = LiveGraph(GraphConfig())
    graph.ingest(generate(args.events, n_items=args.items, n_users=args.events // 30))
    plain = graph.publish(compact=True)
    graph.update_items(catalogue(args.items, time.time(), args.categories))
    ruled = graph.publish()
    assert ruled.catalog is not None
    print(f"graph: {plain.n_users:,} users, {plain.n_items:,} items, {plain.n_edges:,} edges; "
          f"catalogue {ruled.catalog.n:,} items, {len(ruled.catalog.categories)} categories "
          f"({time.perf_counter() - started:.1f}s to build)")

    # One recommender per catalogue, over fixed snapshots (the same walks in every mode).
    config = config_from_document({"surfaces": {"home": {
        "budget_ms": 1000, "sla_p99_ms": 1000, "k_default": 20, "k_max": 100,
        "walk": {"steps": 60_000}, "fallback": {"tiers": ["popular"]}}}})

    class Fixed:
        def __init__(self, snap: object) -> None:
            self.current, self.ready, self.on_publish = snap, True, []

    warm_up()
    recommenders = {}
    for name, snap in (("none", plain), ("ruled", ruled)):
        popular = PopularTier()
        popular.refresh(snap)  # type: ignore[arg-type]
        recommenders[name] = Recommender(Fixed(snap), lambda: config,  # type: ignore[arg-type]
                                         FallbackChain({"popular": popular}))
    asks = {"none": ("none", ()), "rules": ("ruled", ()),
            "rules+category": ("ruled", ("c3",)), "rules+narrow": ("ruled", ("narrow",))}
    rng = np.random.default_rng(7)
    users = rng.integers(0, plain.n_users, args.requests)
    took: dict[str, list[float]] = {mode: [] for mode in MODES}
    degraded: dict[str, int] = dict.fromkeys(MODES, 0)
    for n, user in enumerate(users.tolist()):
        for mode in MODES:
            which, cats = asks[mode]
            query = RecommendQuery(user_id=f"u{user}", surface="home", request_id=f"r{n}",
                                   categories=cats)
            t0 = time.perf_counter()
            answer = recommenders[which].recommend(query, arrival=t0, client_remaining_s=None)
            took[mode].append((time.perf_counter() - t0) * 1e3)
            degraded[mode] += "filtered" in answer.degraded_reasons
    base50, base99 = pct(took["none"], 50), pct(took["none"], 99)
    rows = []
    for mode in MODES:
        p50, p99 = pct(took[mode], 50), pct(took[mode], 99)
        rows.append([mode, f"{p50:.3f}", f"{p99:.3f}", f"{p50 - base50:+.3f}",
                     f"{p99 - base99:+.3f}", f"{degraded[mode] / len(users):.0%}"])
    print(f"\nrecommend() per request, ms ({len(users)} requests per mode, 60k-step walk, k=20)")
    print_table(["mode", "p50", "p99", "p50 vs none", "p99 vs none", "'filtered'"], rows)

    view: CatalogView = ruled.catalog
    rows = []
    for size in (100, 1_000, 10_000):
        cand = rng.integers(0, args.items, size).astype(np.int32)
        for cats in ((), ("c3",)):
            flt = ItemFilter(view, time.time(), cats)
            reps = max(20, 20_000 // size)
            t0 = time.perf_counter()
            for _ in range(reps):
                flt.keep(cand)
            per = (time.perf_counter() - t0) / reps * 1e6
            rows.append([f"{size:,}", "rules+category" if cats else "rules", f"{per:.1f}"])
    print("\nItemFilter.keep on candidate lists, us per call")
    print_table(["candidates", "filter", "us"], rows)


if __name__ == "__main__":
    main()
