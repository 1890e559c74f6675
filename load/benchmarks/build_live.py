"""The ``live`` part of ``load.benchmarks.build``: a built graph taking events with its
background publisher running; also the synthetic event stream the ``sizes`` part ingests.

1. Ingest into a live graph (a ``--live-base`` graph, default 1M events) in steady 10k-event
   batches with fresh timestamps while the background publisher runs at its default 1 s interval:
   events/s applied (target >= 500k; GraphJet's 1M edges/s beside it) and the time of each
   publish. A bigger base (``--live-base 10000000``) shows the dedup cost growing with its index.
2. Freshness: a batch carrying a marker edge (a new user -> an item) is ingested at a random phase
   of the publisher; ``live.current`` is polled until the new user's walk seeds hold the marker
   item (target <= 1 s), timed from the start of the ``ingest()`` call. The publish interval
   dominates (the wait is uniform in [0, interval]) unless a compaction or a dedup merge lands.

``--no-hash-unique`` makes numpy's ``np.unique``/``union1d`` use their sort path (a diagnostic:
numpy 2.4's hash-table path is far slower on this machine and dominates dedup).
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass, field

import numpy as np

from load.common import pct, print_table, verdict
from recserver.graph.config import GraphConfig, WalkConfig
from recserver.graph.events import EventColumns
from recserver.graph.live import LiveGraph
from recserver.graph.seeds import user_seeds
from recserver.graph.snapshot import GraphSnapshot
from recserver.graph.synthetic import generate
from recserver.graph.walk import run_walk, warm_up

BATCH = 10_000
GRAPHJET_EDGES_S = 1_000_000


def slice_cols(cols: EventColumns, lo: int, hi: int, ts: np.ndarray | None = None) -> EventColumns:
    """Events ``lo:hi`` of ``cols`` (names shared), optionally with new timestamps."""
    return EventColumns(
        user_codes=cols.user_codes[lo:hi], item_codes=cols.item_codes[lo:hi],
        type_codes=cols.type_codes[lo:hi], weight=cols.weight[lo:hi],
        timestamp=cols.timestamp[lo:hi] if ts is None else ts,
        user_names=cols.user_names, item_names=cols.item_names, type_names=cols.type_names,
    )


@dataclass
class PublishLog:
    """Durations of the publishes a live graph made, split into overlay-only and compacting."""

    overlay_ms: list[float] = field(default_factory=list)
    compact_ms: list[float] = field(default_factory=list)

    def clear(self) -> None:
        self.overlay_ms.clear()
        self.compact_ms.clear()


def instrument(live: LiveGraph) -> PublishLog:
    """Time every ``live.publish`` (the background publisher calls it through the instance)."""
    log = PublishLog()
    original = live.publish

    def timed(*, compact: bool = False) -> GraphSnapshot:
        before = live.last_prune
        t0 = time.perf_counter()
        snap = original(compact=compact)
        t1 = time.perf_counter()
        (log.compact_ms if live.last_prune is not before else log.overlay_ms).append(
            (t1 - t0) * 1e3
        )
        return snap

    live.publish = timed  # type: ignore[method-assign]
    return log


class Stream:
    """Synthetic events for an existing graph, handed out in batches with fresh timestamps."""

    def __init__(self, live: LiveGraph, n_events: int, seed: int = 1) -> None:
        snap = live.current
        self.cols = generate(n_events, n_users=snap.n_users, n_items=snap.n_items, seed=seed)
        self.pos = 0
        self.t_end = float(live.store.max_ts)  # continue where the base's log ended
        self.started = time.perf_counter()

    def next(self, n: int = BATCH) -> EventColumns:
        if self.pos + n > len(self.cols):
            self.pos = 0
        now = self.t_end + (time.perf_counter() - self.started) + 1.0
        ts = now + np.arange(n) * 1e-6
        batch = slice_cols(self.cols, self.pos, self.pos + n, ts)
        self.pos += n
        return batch


def bench_ingest(
    live: LiveGraph, log: PublishLog, stream: Stream, seconds: float, label: str
) -> list[list[str]]:
    """Ingest 10k batches back to back for ``seconds`` while the publisher runs."""
    log.clear()
    live.start()
    applied, calls = 0, []
    t0 = time.perf_counter()
    try:
        while time.perf_counter() - t0 < seconds:
            batch = stream.next()
            c0 = time.perf_counter()
            applied += live.ingest(batch).n_accepted
            calls.append(time.perf_counter() - c0)
        wall = time.perf_counter() - t0
    finally:
        live.stop()
    rate = applied / wall
    n_over, n_comp = len(log.overlay_ms), len(log.compact_ms)
    print(
        f"ingest [{label}]: {applied:,} events applied in {wall:.1f} s = {rate:,.0f}/s; "
        f"ingest() per 10k batch p50 {pct(calls, 50) * 1e3:.1f} ms, p99 "
        f"{pct(calls, 99) * 1e3:.1f} ms, max {max(calls) * 1e3:.0f} ms; dedup index "
        f"{len(live.store.dedup):,} keys"
    )
    print(
        f"ingest [{label}]: {n_over} overlay publishes p50 {pct(log.overlay_ms, 50):.0f} ms "
        f"max {max(log.overlay_ms, default=float('nan')):.0f} ms; {n_comp} compacting "
        f"publishes p50 {pct(log.compact_ms, 50):.0f} ms max "
        f"{max(log.compact_ms, default=float('nan')):.0f} ms"
    )
    return [
        [f"ingest, events/s applied [{label}]", f"{rate / 1e3:,.0f} k", ">= 500 k",
         f"GraphJet {GRAPHJET_EDGES_S / 1e6:g} M edges/s ({rate / GRAPHJET_EDGES_S:.2f}x)",
         verdict(rate, 500_000, higher_is_better=True)],
        [f"publishes: overlay-only / compacting [{label}]",
         f"{n_over} / {n_comp}", "", f"p50 {pct(log.overlay_ms, 50):.0f} / "
         f"{pct(log.compact_ms, 50):.0f} ms a publish", ""],
    ]


def bench_visibility(
    live: LiveGraph, log: PublishLog, stream: Stream, trials: int
) -> list[list[str]]:
    """Seconds from ``ingest`` of a marker batch until the new user's seeds hold the marker."""
    log.clear()
    live.start()
    rnd = random.Random(5)
    lat: list[float] = []
    call: list[float] = []
    walked: list[int] = []
    try:
        for trial in range(trials):
            time.sleep(rnd.uniform(0.0, live.cfg.publish_interval_s))  # random publisher phase
            batch = stream.next()
            name, item = f"probe-{trial}", rnd.randrange(len(batch.item_names))
            marked = EventColumns(
                user_codes=np.append(batch.user_codes, len(batch.user_names)).astype(np.int32),
                item_codes=np.append(batch.item_codes, item).astype(np.int32),
                type_codes=np.append(batch.type_codes, 3).astype(np.int32),  # a purchase
                weight=np.append(batch.weight, 1.0), timestamp=np.append(batch.timestamp,
                                                                          batch.timestamp[-1]),
                user_names=[*batch.user_names, name], item_names=batch.item_names,
                type_names=batch.type_names,
            )
            t0 = time.perf_counter()
            live.ingest(marked)
            call.append(time.perf_counter() - t0)
            while True:
                snap = live.current
                uid = snap.users.get(name)
                if uid is not None and uid < snap.n_users:
                    seeds, weights = user_seeds(snap, uid, 16)
                    target = snap.items.get(batch.item_names[item])
                    if target is not None and target in seeds.tolist():
                        break
                if time.perf_counter() - t0 > 10.0:
                    raise RuntimeError(f"marker {name} not visible after 10 s")
                time.sleep(0.001)
            lat.append(time.perf_counter() - t0)
            res = run_walk(snap, seeds, weights, WalkConfig(steps=2_000), k=20)
            walked.append(res.items.shape[0])
    finally:
        live.stop()
    ms, call_ms = np.array(lat) * 1e3, np.array(call) * 1e3
    over = max(log.overlay_ms, default=float("nan"))
    print(
        f"freshness: {trials} trials, visible after p50 {pct(ms, 50):.0f} ms, p99 "
        f"{pct(ms, 99):.0f} ms, max {ms.max():.0f} ms (of which the ingest() call p50 "
        f"{pct(call_ms, 50):.0f} ms, max {call_ms.max():.0f} ms); {len(log.overlay_ms)} "
        f"overlay publishes p50 {pct(log.overlay_ms, 50):.0f} ms, max {over:.0f} ms; "
        f"{len(log.compact_ms)} compacting p50 {pct(log.compact_ms, 50):.0f} ms; every walk "
        f"from the new user's seed found candidates: {min(walked) > 0} (min {min(walked)})"
    )
    return [[
        "event visible to walks, p50 / p99 / max",
        f"{pct(ms, 50):.0f} / {pct(ms, 99):.0f} / {ms.max():.0f} ms", "<= 1000 ms",
        f"interval {live.cfg.publish_interval_s:g} s + publish {pct(log.overlay_ms, 50):.0f} ms"
        f" + ingest() {pct(call_ms, 50):.0f} ms (p50)",
        verdict(ms.max(), 1000, higher_is_better=False),
    ]]


def disable_hash_unique() -> None:
    """Diagnostic: route ``np.unique``/``union1d`` to numpy's sort-based path."""
    from numpy.lib import _arraysetops_impl

    _arraysetops_impl._unique_hash = lambda *a, **k: NotImplemented  # type: ignore[attr-defined]


def run(args: argparse.Namespace) -> None:
    """The live part: build the base, then ingest with the publisher on, then freshness."""
    if args.no_hash_unique:
        disable_hash_unique()
        print("diagnostic: numpy's hash-based unique disabled (sort path)")
    warm_up()
    base = LiveGraph(GraphConfig())
    base.ingest(generate(args.live_base))
    base.publish(compact=True)
    stream, log = Stream(base, min(max(3 * args.live_base, 100_000), 3_000_000)), instrument(base)
    label = f"{args.live_base / 1e6:g}M base"
    print(f"\nlive: {label}, {base.current.n_edges:,} edges")
    rows = bench_ingest(base, log, stream, args.ingest_seconds, label)
    rows += bench_visibility(base, log, stream, args.trials)
    print()
    print_table(["figure", "measured", "target", "baseline / note", "verdict"], rows)
