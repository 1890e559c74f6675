"""Event-log and real-time ingest metrics: appends, applies, visibility lag, log errors."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from recserver.metrics.labels import (
    INGEST_DELAY_MS,
    INGEST_OUTCOMES,
    LOG_OPS,
    to_seconds,
)

log = logging.getLogger(__name__)

class IngestMetrics:
    """The event log and real-time ingest, given to the recorder, tailer and checkpointer.

    ``recorded`` counts ``RecordEvents`` outcomes into ``recserver_ingest_events`` (shared with
    the bootstrap load); the rest are this replica's view of the log: append time, errors by
    operation, events applied from the log, and per record the delay from its append (on any
    replica) to being applied here and to being visible in a published snapshot here. The apply
    lag (``recserver_ingest_apply_lag_seconds``) is read at scrape time (``watch_ingest``).
    """

    def __init__(self, registry: CollectorRegistry | None = None,
                 events: Counter | None = None) -> None:
        reg = registry if registry is not None else CollectorRegistry()
        self._events = events if events is not None else Counter(
            "recserver_ingest_events", "Events offered to the graph, by outcome", ["outcome"],
            registry=reg)
        buckets = [to_seconds(ms) for ms in INGEST_DELAY_MS]
        self._append = Histogram(
            "recserver_ingest_log_append_duration_seconds", "One durable append to the event log "
            "(a RecordEvents batch)", buckets=buckets, registry=reg)
        errors = Counter("recserver_ingest_log_errors", "Event log failures by operation",
                         ["op"], registry=reg)
        applied = Counter("recserver_ingest_applied_events", "Events applied to this replica's "
                          "graph from the log, by outcome", ["outcome"], registry=reg)
        self._apply_delay = Histogram(
            "recserver_ingest_apply_delay_seconds", "Per log record: append (any replica) to "
            "applied to this replica's graph", buckets=buckets, registry=reg)
        self._visible_delay = Histogram(
            "recserver_ingest_visible_delay_seconds", "Per log record: append (any replica) to "
            "visible in this replica's published snapshot", buckets=buckets, registry=reg)
        checkpoints = Counter("recserver_ingest_checkpoints", "Checkpoints written, by outcome",
                              ["outcome"], registry=reg)
        self._checkpoint_s = Gauge(
            "recserver_ingest_checkpoint_duration_seconds", "Time the last checkpoint took",
            registry=reg, multiprocess_mode="mostrecent")
        self._checkpoint_at = Gauge(
            "recserver_ingest_checkpoint_timestamp_seconds", "Unix time of the last successful "
            "checkpoint", registry=reg, multiprocess_mode="max")
        self._errors = {op: errors.labels(op) for op in LOG_OPS}
        self._applied = {o: applied.labels(o) for o in ("applied", "duplicate")}
        self._checkpoints = {o: checkpoints.labels(o) for o in ("ok", "failed")}
        self._outcomes = {o: self._events.labels(o) for o in INGEST_OUTCOMES}

    def recorded(self, accepted: int, duplicates: int, rejected: int) -> None:
        for outcome, n in zip(INGEST_OUTCOMES, (accepted, duplicates, rejected), strict=True):
            if n:
                self._outcomes[outcome].inc(n)

    def appended(self, seconds: float) -> None:
        self._append.observe(seconds)

    def log_error(self, op: str) -> None:
        (self._errors.get(op) or self._errors["apply"]).inc()

    def applied(self, accepted: int, duplicates: int) -> None:
        if accepted:
            self._applied["applied"].inc(accepted)
        if duplicates:
            self._applied["duplicate"].inc(duplicates)

    def apply_delay(self, seconds: float) -> None:
        self._apply_delay.observe(seconds)

    def visible_delay(self, seconds: float) -> None:
        self._visible_delay.observe(seconds)

    def checkpoint(self, ok: bool, seconds: float, at: float) -> None:
        self._checkpoints["ok" if ok else "failed"].inc()
        if ok:
            self._checkpoint_s.set(seconds)
            self._checkpoint_at.set(at)
        else:
            self.log_error("checkpoint")


class LagSource(Protocol):
    """What reports the apply lag (``eventlog.tailer.LogTailer``)."""

    def lag_seconds(self) -> float: ...


class IngestCollector(Collector):
    """The tailer's apply lag, read when scraped (0 when caught up)."""

    def __init__(self, source: LagSource) -> None:
        self._source = source

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "recserver_ingest_apply_lag_seconds", "Seconds since the append of the oldest log "
            "record this replica has read but not applied (0 when caught up)")
        family.add_metric([], float(self._source.lag_seconds()))
        return [family]
