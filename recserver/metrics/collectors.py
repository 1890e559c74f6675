"""Scrape-time collectors: values read from live objects when Prometheus scrapes."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from recserver.graph.snapshot import GraphSnapshot
from recserver.graph.source import SnapshotSource

log = logging.getLogger(__name__)

class GraphCollector(Collector):
    """Graph size, snapshot version, publication time and age, read when scraped."""

    def __init__(self, graph: SnapshotSource, clock: Any = time.time) -> None:
        self._graph = graph
        self._clock = clock

    def describe(self) -> Iterable[Metric]:
        return self._families(None)

    def collect(self) -> Iterable[Metric]:
        return self._families(self._graph.current if self._graph.ready else None)

    def _families(self, snap: GraphSnapshot | None) -> list[Metric]:
        rows = [
            ("recserver_graph_users", "Users in the current snapshot", lambda s: s.n_users),
            ("recserver_graph_items", "Items in the current snapshot", lambda s: s.n_items),
            ("recserver_graph_edges", "Edges in the current snapshot", lambda s: s.n_edges),
            ("recserver_graph_overlay_edges", "Edges in the snapshot's live overlay",
             lambda s: s.stats.get("overlay_edges", 0.0)),
            ("recserver_graph_snapshot_version", "Version of the current snapshot",
             lambda s: s.version),
            ("recserver_graph_snapshot_timestamp_seconds", "Unix time the snapshot was "
             "published", lambda s: s.built_at),
            ("recserver_graph_snapshot_age_seconds", "Seconds since the snapshot was published "
             "(at scrape time)", lambda s: max(self._clock() - s.built_at, 0.0)),
        ]
        families: list[Metric] = []
        for name, doc, value in rows:
            family = GaugeMetricFamily(name, doc)
            if snap is not None:
                family.add_metric([], float(value(snap)))
            families.append(family)
        return families


class ReloadCounts(Protocol):
    """What ``ConfigHolder`` exposes about its reloads."""

    reloads_ok: int
    reloads_failed: int
    last_error: str | None

    @property
    def restart_pending(self) -> Sequence[str]: ...


class ReloadCollector(Collector):
    """Config reloads by outcome and whether the last one was applied, read when scraped."""

    def __init__(self, holder: ReloadCounts) -> None:
        self._holder = holder

    def collect(self) -> Iterable[Metric]:
        holder = self._holder
        reloads = CounterMetricFamily("recserver_config_reloads", "Config reloads by outcome",
                                      labels=["outcome"])
        reloads.add_metric(["ok"], holder.reloads_ok)
        reloads.add_metric(["failed"], holder.reloads_failed)
        last = GaugeMetricFamily("recserver_config_last_reload_success",
                                 "0 while the last reload was rejected (the old config serves)")
        last.add_metric([], 0.0 if holder.last_error else 1.0)
        pending = GaugeMetricFamily(
            "recserver_config_restart_pending",
            "Restart-only keys a reloaded file changed; they take effect at the next restart")
        pending.add_metric([], float(len(holder.restart_pending)))
        return [reloads, last, pending]
