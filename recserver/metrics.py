"""Every Prometheus metric of recserver, defined in this one module.

Design
------
* **One object, injected.** :class:`Metrics` is built by the App from the config and handed to
  the parts that report: the Recommender (as its ``RequestObserver``), the gRPC transport (status
  codes, encode time), the fallback tiers (:class:`CacheMetrics`), the graph and the config holder
  (scrape-time collectors). Every metric is registered in the ``registry`` given to the
  constructor, a fresh ``CollectorRegistry`` by default, never the library's global ``REGISTRY``:
  tests build their own and nothing on the hot path reads a global.
* **Names** follow ``recserver_<subsystem>_<what>_<unit>``: durations in seconds (Prometheus
  convention, even for millisecond latencies), counters end in ``_total``; gauges name what they
  hold (``recserver_graph_edges``, ``recserver_surface_budget_seconds``).
* **Buckets** are explicit and millisecond-scale, in seconds. The request duration's contain every
  configured surface budget and SLA as an exact boundary, so "the share of requests under the
  SLA" is a ratio of two counters (``le`` = the SLA), not an interpolation;
  ``recserver_surface_sla_boundary_info`` names that ``le`` per surface, which lets one recording
  rule serve every surface. Buckets are fixed when the process starts: a reload that introduces a
  *new* budget or SLA value keeps the old buckets (a warning is logged) and the boundary gauge then
  points at the largest boundary below the SLA, which undercounts good requests (alerts err on the
  loud side) until a restart adds the exact boundary. Stage buckets are a fixed list.
* **Labels come from fixed sets only**: surface names from the config (any other value, e.g. a
  client's typo in a failed request, is counted as ``unknown``), sources from ``SOURCES``, stages
  from :data:`STAGES`, reasons from :data:`REASONS` (``fallback_error:<tier>`` collapses to
  ``fallback_error``), gRPC code names, cache ops from :data:`CACHE_OPS`. Never user or item ids.
* **Cheap observation.** Label children are looked up once per (surface, source/stage/...) and
  cached in plain dicts; a request costs a dict lookup and an ``observe`` per stage, about 1.5 µs
  each (``load/bench_metrics.py`` prints the per-request cost and the ``/metrics`` render cost).
  The children every request produces are created up front, so ``rate()`` sees each series from
  zero instead of losing the first scrape interval.
* **Scrape-time values** (graph size, snapshot version and age, config reloads) come from
  collectors that read the live objects when Prometheus scrapes: no thread, and the age is exact.
* **Several worker processes**: start each worker with ``PROMETHEUS_MULTIPROC_DIR`` set to an
  empty directory shared by the workers (set it *before* Python imports ``prometheus_client``).
  Counters and histograms then live in memory-mapped files there and any worker's ``/metrics``
  (see ``recserver.metrics_http``) serves the sum over all workers; gauges declare how they merge
  (``mostrecent`` for config values, ``livemax`` for the breaker). Scrape-time collectors report
  the serving worker's own view. prometheus_client cannot remove a labelled child there, so a
  surface dropped by a reload keeps its last budget/SLA gauges (its SLA boundary is zeroed, which
  the rules ignore) until the directory is cleared, as it must be when the service (re)starts.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Iterable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Protocol

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from recserver import __version__
from recserver.config import RecServerConfig
from recserver.graph.snapshot import GraphSnapshot
from recserver.graph.source import SnapshotSource
from recserver.metrics_stability import StabilityMetrics
from recserver.server.servicer import SERVICE_NAME, SOURCE_TO_PROTO
from recserver.service.errors import REFUSAL_REASONS
from recserver.service.types import SOURCES, Recommendation, RecommendQuery

log = logging.getLogger(__name__)

UNKNOWN_SURFACE = "unknown"
#: Stages the pipeline reports (created up front).
CORE_STAGES: tuple[str, ...] = ("queue", "seeds", "walk", "fallback", "rank", "encode")
#: Stages a request can report; anything else is counted as "other" (created when first seen).
STAGES: tuple[str, ...] = (*CORE_STAGES, "other")
#: Degradation reasons (``Recommendation.degraded_reasons``); "unspecified": degraded, no reason.
REASONS: tuple[str, ...] = (
    "deadline", "budget_spent", "overloaded", "cold_start", "no_history", "context_unknown",
    "few_candidates", "fallback_error", "fallback_unready", "unspecified", "other",
)
#: Cache commands the ANN tier runs (lookups, write-back pipelines); "other": anything else.
CACHE_OPS: tuple[str, ...] = ("get", "mget", "pipeline", "other")
CACHE_OUTCOMES: tuple[str, ...] = ("hit", "miss", "error", "skipped")
#: Circuit-breaker state -> the value of ``recserver_cache_breaker_state``.
BREAKER_STATES: dict[str, int] = {"closed": 0, "half_open": 1, "open": 2}
INGEST_OUTCOMES: tuple[str, ...] = ("accepted", "duplicate", "rejected")
#: Event-log operations that can fail (``recserver_ingest_log_errors``).
LOG_OPS: tuple[str, ...] = ("append", "read", "decode", "apply", "checkpoint")
#: Append, apply and visibility delays (ms): from sub-millisecond appends to multi-second lag.
INGEST_DELAY_MS: tuple[float, ...] = (
    0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 750, 1000, 1500, 2000, 5000, 10000, 30000,
)
RECOMMEND_METHOD = f"/{SERVICE_NAME}/Recommend"

#: Request latency boundaries (ms); the configured budgets and SLAs are added to them.
BASE_LATENCY_MS: tuple[float, ...] = (
    0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 25, 30, 40, 50, 60, 80, 100, 150, 250, 500, 1000,
)
#: Stage boundaries (ms): finer at the bottom, where most stages live.
BASE_STAGE_MS: tuple[float, ...] = (
    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 50, 100, 250,
)
COVERAGE_BUCKETS: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)
CACHE_BUCKETS_MS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 25)

_PROTO_TO_SOURCE: dict[int, str] = {int(v): s for s, v in SOURCE_TO_PROTO.items()}
_REASON_SET = frozenset(REASONS)
_STAGE_SET = frozenset(STAGES)


def _seconds(ms: float) -> float:
    # round(): 33.3 / 1000 is 0.033299999999999996; the le label must read "0.0333".
    return round(ms / 1000.0, 9)


def configured_ms(config: RecServerConfig) -> set[float]:
    """Every budget and SLA of the config, in ms."""
    return {v for s in config.surfaces.values() for v in (s.budget_ms, s.sla_p99_ms)}


def latency_buckets(config: RecServerConfig, base_ms: Sequence[float]) -> tuple[float, ...]:
    """``base_ms`` plus every configured budget and SLA, as sorted boundaries in seconds."""
    return tuple(sorted({_seconds(ms) for ms in (*base_ms, *configured_ms(config))}))


def sla_boundary(sla_s: float, buckets: Sequence[float]) -> float:
    """The largest boundary <= the SLA (the SLA itself when it is one)."""
    below = [b for b in buckets if b <= sla_s + 1e-12]
    return below[-1] if below else buckets[0]


def reason_label(reason: str) -> str:
    """A degraded reason as a label value from :data:`REASONS`."""
    if reason in _REASON_SET:
        return reason
    for prefix in ("fallback_error", "fallback_unready"):
        if reason.startswith(prefix):
            return prefix
    return "other"


class _Surface:
    """The cached label children of one surface (the hot path touches only these)."""

    __slots__ = ("budget_exhausted", "coverage", "degraded", "duration", "over_budget", "stage")

    def __init__(self, m: Metrics, surface: str) -> None:
        self.duration = {src: m.request_duration.labels(surface, src) for src in SOURCES}
        self.stage = {st: m.stage_duration.labels(surface, st) for st in CORE_STAGES}
        self.coverage = m.walk_coverage.labels(surface)
        self.degraded = {r: m.degraded.labels(surface, r) for r in REASONS}
        self.budget_exhausted = m.budget_exhausted.labels(surface)
        self.over_budget = m.over_budget.labels(surface)


class Metrics:
    """All request, graph, config and cache metrics of one process."""

    def __init__(self, config: RecServerConfig, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        self.buckets = latency_buckets(config, BASE_LATENCY_MS)
        self.stage_buckets = tuple(_seconds(ms) for ms in BASE_STAGE_MS)
        self._boundaries = set(self.buckets)
        self.request_duration = Histogram(
            "recserver_request_duration_seconds",
            "Answered Recommend requests: arrival (queueing included) to the answer built, by "
            "the tier that served them", ["surface", "source"], buckets=self.buckets,
            registry=reg)
        self.stage_duration = Histogram(
            "recserver_request_stage_duration_seconds", "Time spent in each pipeline stage",
            ["surface", "stage"], buckets=self.stage_buckets, registry=reg)
        self.walk_coverage = Histogram(
            "recserver_walk_coverage_ratio", "Walk steps done / planned (0 when no walk ran)",
            ["surface"], buckets=COVERAGE_BUCKETS, registry=reg)
        self.requests = Counter(
            "recserver_grpc_requests", "Recommend calls by surface, serving tier ('none' when "
            "unanswered) and gRPC status code", ["surface", "source", "code"], registry=reg)
        self.degraded = Counter(
            "recserver_request_degraded", "Degraded answers by reason (a request with two "
            "reasons counts under both)", ["surface", "reason"], registry=reg)
        self.budget_exhausted = Counter(
            "recserver_request_budget_exhausted", "Requests whose walk ran out of budget "
            "(reasons deadline or budget_spent)", ["surface"], registry=reg)
        self.over_budget = Counter(
            "recserver_request_over_budget", "Requests answered after their budget",
            ["surface"], registry=reg)
        self.budget = Gauge(
            "recserver_surface_budget_seconds", "Configured server-side budget per surface",
            ["surface"], registry=reg, multiprocess_mode="mostrecent")
        self.sla = Gauge(
            "recserver_surface_sla_seconds", "Configured end-to-end p99 SLA per surface",
            ["surface"], registry=reg, multiprocess_mode="mostrecent")
        self.sla_boundary = Gauge(
            "recserver_surface_sla_boundary_info", "1 for the request_duration bucket (le) that "
            "counts requests within the surface's SLA", ["surface", "le"], registry=reg,
            multiprocess_mode="mostrecent")
        self.ingest = Counter(
            "recserver_ingest_events", "Events offered to the graph, by outcome", ["outcome"],
            registry=reg)
        self.publishes = Counter(
            "recserver_graph_publishes", "Snapshots published", registry=reg)
        self.refused = Counter(
            "recserver_server_refused", "Calls refused at the door before any work "
            "(RESOURCE_EXHAUSTED), by reason", ["reason"], registry=reg)
        for reason in REFUSAL_REASONS:
            self.refused.labels(reason)
        build = Gauge(
            "recserver_build_info", "Version of recserver and its runtime (always 1)",
            ["version", "python", "prometheus_client"], registry=reg, multiprocess_mode="max")
        build.labels(__version__, platform.python_version(), _client_version()).set(1)
        for outcome in INGEST_OUTCOMES:
            self.ingest.labels(outcome)  # exported at 0 from the start
        self.cache = CacheMetrics(reg)
        self.online = OnlineQualityMetrics(reg)
        self.stability = StabilityMetrics(reg)
        self.eventlog = IngestMetrics(reg, self.ingest)
        #: Collectors that read live objects at scrape time (served per process).
        self.local_collectors: list[Collector] = []
        self._rpc: dict[tuple[str, str, str], Any] = {}
        self._sla_le: dict[str, str] = {}
        self._surfaces: dict[str, _Surface] = {}
        self._unknown: _Surface | None = None
        self.apply_config(config)

    # -- the hot path --------------------------------------------------------------------------

    def request_finished(
        self, surface: str, rec: Recommendation, query: RecommendQuery | None = None
    ) -> None:
        """``RequestObserver``: one answered request (called by the Recommender)."""
        m = self._surfaces.get(surface) or self._unknown_surface()
        m.duration[rec.source].observe(rec.server_elapsed_ms * 0.001)
        stages = m.stage
        for stage, ms in rec.stage_ms.items():
            child = stages.get(stage)
            if child is None:
                child = self._stage_child(m, surface, stage)
            child.observe(ms * 0.001)
        m.coverage.observe(rec.coverage)
        if rec.degraded:
            reasons = rec.degraded_reasons
            if not reasons:
                m.degraded["unspecified"].inc()
            for reason in reasons:
                m.degraded[reason_label(reason)].inc()
                if reason == "deadline" or reason == "budget_spent":
                    m.budget_exhausted.inc()
        if rec.server_elapsed_ms > rec.budget_ms:
            m.over_budget.inc()

    def encode_finished(self, surface: str, seconds: float) -> None:
        """The transport encoded an answer (the ``encode`` stage, after the domain returned)."""
        m = self._surfaces.get(surface) or self._unknown_surface()
        m.stage["encode"].observe(seconds)

    def rpc_finished(
        self, method: str, request: Any, response: Any, code: grpc.StatusCode
    ) -> None:
        """Count one finished RPC (the error interceptor calls this for every unary call)."""
        if method != RECOMMEND_METHOD:
            return
        surface = getattr(request, "surface", "")
        if surface not in self._surfaces:
            surface = UNKNOWN_SURFACE
        source = "none" if response is None else _PROTO_TO_SOURCE.get(response.source, "none")
        key = (surface, source, code.name)
        child = self._rpc.get(key)
        if child is None:
            child = self._rpc.setdefault(key, self.requests.labels(*key))
        child.inc()

    # -- configuration, graph, ingest ----------------------------------------------------------

    def apply_config(self, config: RecServerConfig) -> None:
        """Follow a (re)loaded config: per-surface gauges and children for new surfaces."""
        missing = sorted(ms for ms in configured_ms(config) if _seconds(ms) not in self._boundaries)
        if missing:
            log.warning("budget/SLA values %s ms are not histogram boundaries (buckets are fixed "
                        "at start); restart the server to make them exact", missing)
        surfaces = dict(self._surfaces)
        for name in set(surfaces) - set(config.surfaces):
            del surfaces[name]
            self.budget.remove(name)
            self.sla.remove(name)
            self._set_sla_le(name, None)
        for name, cfg in config.surfaces.items():
            if name not in surfaces:
                surfaces[name] = _Surface(self, name)
            self.budget.labels(name).set(_seconds(cfg.budget_ms))
            self.sla.labels(name).set(_seconds(cfg.sla_p99_ms))
            boundary = sla_boundary(_seconds(cfg.sla_p99_ms), self.buckets)
            self._set_sla_le(name, floatToGoString(boundary))
        self._surfaces = surfaces  # one reference swap; readers never see a half-built dict

    def _set_sla_le(self, surface: str, le: str | None) -> None:
        old = self._sla_le.pop(surface, None)
        if old is not None and old != le:
            # Multi-process files keep a removed child, so it is zeroed first; rules match "== 1".
            self.sla_boundary.labels(surface, old).set(0)
            self.sla_boundary.remove(surface, old)
        if le is not None:
            self.sla_boundary.labels(surface, le).set(1)
            self._sla_le[surface] = le

    def watch_graph(self, graph: SnapshotSource) -> None:
        """Report the graph's size, snapshot version and age at scrape time; count publishes."""
        collector = GraphCollector(graph)
        self.registry.register(collector)
        self.local_collectors.append(collector)
        graph.on_publish.append(self._on_publish)

    def _on_publish(self, snapshot: GraphSnapshot) -> None:
        self.publishes.inc()

    def call_refused(self, reason: str) -> None:
        """A call refused at the door (``server.admission``), by reason."""
        self.refused.labels(reason).inc()

    def watch_config(self, holder: ReloadCounts) -> None:
        """Report config reload outcomes at scrape time."""
        collector = ReloadCollector(holder)
        self.registry.register(collector)
        self.local_collectors.append(collector)

    def watch_ingest(self, source: LagSource) -> None:
        """Report the event-log apply lag at scrape time."""
        collector = IngestCollector(source)
        self.registry.register(collector)
        self.local_collectors.append(collector)

    def record_ingest(self, accepted: int, duplicate: int, rejected: int) -> None:
        """Count events offered to the graph, by outcome."""
        for outcome, n in zip(INGEST_OUTCOMES, (accepted, duplicate, rejected), strict=True):
            if n:
                self.ingest.labels(outcome).inc(n)

    # -- rare paths ----------------------------------------------------------------------------

    def _unknown_surface(self) -> _Surface:
        if self._unknown is None:
            self._unknown = _Surface(self, UNKNOWN_SURFACE)
        return self._unknown

    def _stage_child(self, m: _Surface, surface: str, stage: str) -> Any:
        label = stage if stage in _STAGE_SET else "other"
        if surface not in self._surfaces:
            surface = UNKNOWN_SURFACE
        child = self.stage_duration.labels(surface, label)
        if stage in _STAGE_SET:  # cache only fixed names: the dict stays bounded
            m.stage[stage] = child
        return child


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
        buckets = [_seconds(ms) for ms in INGEST_DELAY_MS]
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


class OnlineQualityMetrics:
    """Online quality (``recserver.eval.online``): sampled served answers and their outcome.

    ``sampled`` when an answer is kept, ``hit`` when a later event of its user touched one of its
    items within the window, ``missed`` when the window passed without one, ``dropped`` when the
    surface's sample was full. Labels: surface and the answer's source only.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = registry if registry is not None else CollectorRegistry()
        labels = ["surface", "source"]
        self._families = {
            "sampled": Counter("recserver_online_answers_sampled", "Served answers sampled for "
                               "online quality", labels, registry=reg),
            "hit": Counter("recserver_online_answers_hit", "Sampled answers whose user touched a "
                           "recommended item within the window", labels, registry=reg),
            "missed": Counter("recserver_online_answers_missed", "Sampled answers whose window "
                              "passed without such an event", labels, registry=reg),
        }
        self._dropped = Counter("recserver_online_answers_dropped", "Answers not sampled because "
                                "the surface's sample was full", ["surface"], registry=reg)
        self._children: dict[tuple[str, str, str], Any] = {}

    def _inc(self, outcome: str, surface: str, source: str) -> None:
        key = (outcome, surface, source if source in SOURCES else "popular")
        child = self._children.get(key)
        if child is None:
            child = self._children.setdefault(key, self._families[outcome].labels(*key[1:]))
        child.inc()

    def sampled(self, surface: str, source: str) -> None:
        self._inc("sampled", surface, source)

    def hit(self, surface: str, source: str) -> None:
        self._inc("hit", surface, source)

    def missed(self, surface: str, source: str) -> None:
        self._inc("missed", surface, source)

    def dropped(self, surface: str) -> None:
        self._dropped.labels(surface).inc()


class CacheMetrics:
    """Redis / ANN cache health, given to cache clients through their constructor.

    ``error(op)`` after a failed command; ``lookup(outcome, seconds)`` once per lookup (outcome
    ``hit``, ``miss``, ``error`` or ``skipped`` when the breaker is open); ``breaker(state)`` on
    every circuit-breaker transition (``closed``, ``half_open``, ``open``). ``CacheMetrics()``
    with no registry records into a private one (for tests and components used alone).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = registry if registry is not None else CollectorRegistry()
        errors = Counter("recserver_cache_errors", "Failed cache commands by operation",
                         ["op"], registry=reg)
        lookups = Counter("recserver_cache_lookups", "Cache lookups by outcome", ["outcome"],
                          registry=reg)
        self._duration = Histogram(
            "recserver_cache_lookup_duration_seconds", "Time of one cache lookup",
            buckets=[_seconds(ms) for ms in CACHE_BUCKETS_MS], registry=reg)
        self._state = Gauge(
            "recserver_cache_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open",
            registry=reg, multiprocess_mode="livemax")
        self._opens = Counter("recserver_cache_breaker_opens", "Times the breaker opened",
                              registry=reg)
        self._errors = {op: errors.labels(op) for op in CACHE_OPS}
        self._lookups = {o: lookups.labels(o) for o in CACHE_OUTCOMES}
        self._current = "closed"

    def error(self, op: str) -> None:
        (self._errors.get(op) or self._errors["other"]).inc()

    def lookup(self, outcome: str, seconds: float) -> None:
        child = self._lookups.get(outcome)
        if child is None:
            raise ValueError(f"unknown cache outcome {outcome!r}; use one of {CACHE_OUTCOMES}")
        child.inc()
        if outcome != "skipped":
            self._duration.observe(seconds)

    def breaker(self, state: str) -> None:
        value = BREAKER_STATES.get(state)
        if value is None:
            raise ValueError(f"unknown breaker state {state!r}; use one of {set(BREAKER_STATES)}")
        if state == "open" and self._current != "open":
            self._opens.inc()
        self._current = state
        self._state.set(value)


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
        return [reloads, last]


def _client_version() -> str:
    try:
        return version("prometheus_client")
    except PackageNotFoundError:
        return "unknown"
