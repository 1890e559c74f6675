"""The graph modes of replay (realtime, delayed, frozen) on the real serving path, in-process.

The graph is a ``LiveGraph`` built from the training events as the server builds it; answers
come from ``Recommender.recommend`` with the config's surface (its budget, walk, fallback tiers
and blend), the popular tier refreshed at every publish and the ANN tier built once at the
cutoff on the in-process cache (a server rebuilds it every ``ann.rebuild_interval_s``; replay
keeps the cutoff's model in every mode, so modes differ only by what the graph has seen).

Simulated time: an event reaches the graph (``LiveGraph.ingest``) when the clock passes its
timestamp plus the mode's delay, and is published as the live publisher would publish it: at
the latest one publish interval after the oldest unpublished event arrived. An ask at ``t``
sees the publishes due at or before ``t`` only, so never an event from ``t`` on. Publishing is
lazy: of the publishes due between two asks only the last is made (the others would be replaced
before anyone reads them), so a log with events every second costs one publish per ask, not one
per simulated second, and the answers stay those of publishing at every due time.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from recserver.ann.runtime import AnnRuntime
from recserver.config import RecServerConfig
from recserver.eval.replay_engine import Reply
from recserver.eval.replay_modes import Mode
from recserver.eval.replay_sessions import Ask
from recserver.graph.events import EventColumns
from recserver.graph.live import LiveGraph
from recserver.graph.snapshot import GraphSnapshot
from recserver.graph.walk import warm_up
from recserver.service.fallback import FallbackChain, FallbackTier, PopularTier
from recserver.service.recommender import Recommender
from recserver.service.trending import TrendingTier, keep_trending
from recserver.service.types import RecommendQuery


def slice_columns(cols: EventColumns, lo: int, hi: int) -> EventColumns:
    """Events ``lo:hi`` as views (names lists shared)."""
    return EventColumns(
        user_codes=cols.user_codes[lo:hi], item_codes=cols.item_codes[lo:hi],
        type_codes=cols.type_codes[lo:hi], weight=cols.weight[lo:hi],
        timestamp=cols.timestamp[lo:hi], user_names=cols.user_names,
        item_names=cols.item_names, type_names=cols.type_names,
        event_ids=cols.event_ids[lo:hi] if cols.event_ids is not None else None,
    )


def time_ordered(cols: EventColumns) -> EventColumns:
    """``cols`` sorted by timestamp (stable)."""
    order = np.argsort(cols.timestamp, kind="stable")
    if np.all(order[1:] > order[:-1]):
        return cols
    return EventColumns(
        user_codes=cols.user_codes[order], item_codes=cols.item_codes[order],
        type_codes=cols.type_codes[order], weight=cols.weight[order],
        timestamp=cols.timestamp[order], user_names=cols.user_names,
        item_names=cols.item_names, type_names=cols.type_names,
        event_ids=[cols.event_ids[i] for i in order.tolist()] if cols.event_ids else None,
    )


class GraphReplayer:
    """One graph mode: the training graph, then the test events as the mode lets them in."""

    def __init__(self, config: RecServerConfig, surface: str, mode: Mode, events: EventColumns,
                 cutoff: float, *, lazy: bool = True) -> None:
        """``events``: the whole log in time order. The graph starts with what the mode has
        seen at ``cutoff`` (a graph delayed by D: the events before ``cutoff - D``).
        ``lazy=False`` makes every due publish, not only those an ask reads (the same
        answers, much slower on a large log: for comparisons)."""
        self.mode = mode
        self.lazy = lazy
        self.surface = surface
        interval = mode.publish_interval_s or config.graph.publish_interval_s
        graph_cfg = config.graph.model_copy(update={"publish_interval_s": interval})
        self.interval = interval
        self.graph = LiveGraph(graph_cfg)
        keep_trending(self.graph, config)
        lag = mode.delay_s if mode.delay_s is not None else 0.0
        start = int(np.searchsorted(events.timestamp, cutoff - lag, side="left"))
        if start:
            self.graph.ingest(slice_columns(events, 0, start))
        self.graph.publish(compact=True)
        popular = PopularTier()
        popular.refresh(self.graph.current)
        self.graph.on_publish.append(popular.refresh)  # as the server's tiers refresh
        tiers: dict[str, FallbackTier] = {"popular": popular}
        if "trending" in config.surfaces[surface].fallback.tiers:
            trending = TrendingTier(lambda: config)
            trending.refresh(self.graph.current)
            self.graph.on_publish.append(trending.refresh)
            tiers["trending"] = trending
        self.ann: AnnRuntime | None = None
        if "ann" in config.surfaces[surface].fallback.tiers:
            self.ann = AnnRuntime(config.ann.model_copy(update={"redis_url": None}), self.graph)
            self.ann.build_now()
            tiers["ann"] = self.ann.tier
        self.recommender = Recommender(self.graph, lambda: config, FallbackChain(tiers))
        warm_up()
        # The rest of the log, and when each event reaches the graph (frozen: never).
        self.test = slice_columns(events, start, len(events))
        self._arrive = (self.test.timestamp + mode.delay_s if mode.delay_s is not None
                        else np.full(len(self.test), math.inf))
        self._next = 0  # first test event not ingested yet
        self._pending_since: float | None = None  # simulated arrival of the oldest unpublished
        self.publishes = 0
        self.skipped_publishes = 0  # due publishes no ask needed (replaced by a later one)
        self.publish_cpu_s = 0.0
        self.ingest_cpu_s = 0.0
        self.applied = 0  # test events the graph accepted (a duplicate is not applied twice)

    @property
    def snapshot(self) -> GraphSnapshot:
        return self.graph.current

    def advance(self, t: float) -> None:
        """Publish once, lazily: the last publish the live publisher would have made by ``t``.

        The publish clock runs as if every publish happened (the oldest unpublished arrival
        plus one interval, again from the first arrival after each due time), but only the
        last due publish at or before ``t`` is made, and those that would cut a new base:
        every other one would be replaced before anyone asks, so the ask sees the same graph.
        Events arrived after that due time are ingested and wait for a publish after ``t``.
        """
        arrive, n = self._arrive, len(self.test)
        last_due: float | None = None
        while True:
            if self._pending_since is None:  # the next arrival starts the publish clock
                if self._next >= n or arrive[self._next] >= t:
                    break
                self._pending_since = float(arrive[self._next])
            due = self._pending_since + self.interval
            if due > t:
                break  # what arrived since waits for a publish after t
            last_due, self._pending_since = due, None
            # Folded where that publish would fold (the same sums in the same order), and
            # made when it would cut a new base: walks read the base and overlay apart.
            self._ingest(self._next, int(np.searchsorted(arrive, due, side="left")))
            if not self.lazy or self._fold():
                self._publish()
                last_due = None
            else:
                self.skipped_publishes += 1
        if last_due is not None:
            self.skipped_publishes -= 1  # the one made
            self._publish(keep_pending=self._pending_since)
        stop = int(np.searchsorted(arrive, t, side="left"))
        if stop > self._next:
            self._ingest(self._next, stop)

    def _ingest(self, lo: int, hi: int) -> None:
        started = time.process_time()
        outcome = self.graph.ingest(slice_columns(self.test, lo, hi))
        self.ingest_cpu_s += time.process_time() - started
        self.applied += outcome.n_accepted
        self._next = hi

    def _fold(self) -> bool:
        started = time.process_time()
        base_changes = self.graph.fold_pending()
        self.publish_cpu_s += time.process_time() - started  # a publish's first step
        return base_changes

    def _publish(self, keep_pending: float | None = None) -> None:
        started = time.process_time()
        self.graph.publish()
        self.graph.wait_for_compaction()  # a compaction's CPU counts as this publish's
        self.publish_cpu_s += time.process_time() - started
        self.publishes += 1
        self._pending_since = keep_pending  # an arrival after the due time already counts

    def answer(self, ask: Ask, k: int) -> Reply:
        prefix = "probe" if ask.probe else "replay"
        query = RecommendQuery(user_id=ask.user, surface=self.surface, k=k,
                               context_item_ids=ask.context,
                               request_id=f"{prefix}:{ask.index}:{ask.user}")
        rec = self.recommender.recommend(query, arrival=time.perf_counter(),
                                         client_remaining_s=None)
        return Reply([item.item_id for item in rec.items], rec.server_elapsed_ms / 1000.0,
                     rec.source, "cold_start" in rec.degraded_reasons)

    def stats(self) -> dict[str, Any]:
        return {
            "publish_interval_s": self.interval,
            "events_applied": self.applied,
            "publishes": self.publishes,
            "publishes_skipped": self.skipped_publishes,
            "publish_cpu_s": round(self.publish_cpu_s, 4),
            "ingest_cpu_s": round(self.ingest_cpu_s, 4),
            "compactions": self.graph.compactions,
        }

    def close(self) -> None:
        if self.ann is not None:
            self.ann.stop()
        self.graph.stop()
