"""Request metrics of the serving path: durations by surface, tier and stage, degradation
reasons, budgets and SLAs, refusals, publishes. The Recommender and the transport report here."""

from __future__ import annotations

import logging
import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from recserver import __version__
from recserver.config import RecServerConfig
from recserver.core.errors import REFUSAL_REASONS
from recserver.graph.snapshot import GraphSnapshot
from recserver.graph.source import SnapshotSource
from recserver.metrics.cache import CacheMetrics
from recserver.metrics.collectors import GraphCollector, ReloadCollector, ReloadCounts
from recserver.metrics.ingest import IngestCollector, IngestMetrics, LagSource
from recserver.metrics.labels import (
    BASE_LATENCY_MS,
    BASE_STAGE_MS,
    CORE_STAGES,
    COVERAGE_BUCKETS,
    INGEST_OUTCOMES,
    REASONS,
    STAGE_SET,
    UNKNOWN_SURFACE,
    configured_ms,
    latency_buckets,
    reason_label,
    sla_boundary,
    to_seconds,
)
from recserver.metrics.online import OnlineQualityMetrics
from recserver.metrics.stability import StabilityMetrics
from recserver.service.types import SOURCES, Recommendation, RecommendQuery

log = logging.getLogger(__name__)

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
        self.stage_buckets = tuple(to_seconds(ms) for ms in BASE_STAGE_MS)
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
        self.worker_answers = Counter(
            "recserver_worker_answers", "Recommend answers by serving worker of the node (a "
            "fixed set: worker-0 .. worker-N-1; single-process for serve --single-process), "
            "to see that every worker gets its share",
            ["worker"], registry=reg)
        self._worker_answers: Any = None
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
        if self._worker_answers is not None:
            self._worker_answers.inc()
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

    def recommend_call_finished(self, surface: str, source: str | None, code: str) -> None:
        """Count one finished Recommend call: ``source`` is the serving tier (None when it was
        not answered), ``code`` the status code's name (``OK``, ``INVALID_ARGUMENT``...)."""
        if surface not in self._surfaces:
            surface = UNKNOWN_SURFACE
        key = (surface, source or "none", code)
        child = self._rpc.get(key)
        if child is None:
            child = self._rpc.setdefault(key, self.requests.labels(*key))
        child.inc()

    # -- configuration, graph, ingest ----------------------------------------------------------

    def apply_config(self, config: RecServerConfig) -> None:
        """Follow a (re)loaded config: per-surface gauges and children for new surfaces."""
        missing = sorted(
            ms for ms in configured_ms(config) if to_seconds(ms) not in self._boundaries
        )
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
            self.budget.labels(name).set(to_seconds(cfg.budget_ms))
            self.sla.labels(name).set(to_seconds(cfg.sla_p99_ms))
            boundary = sla_boundary(to_seconds(cfg.sla_p99_ms), self.buckets)
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

    def serve_as(self, worker: str) -> None:
        """Count this process's answers under ``worker`` (a serving worker's name)."""
        self._worker_answers = self.worker_answers.labels(worker)

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
        label = stage if stage in STAGE_SET else "other"
        if surface not in self._surfaces:
            surface = UNKNOWN_SURFACE
        child = self.stage_duration.labels(surface, label)
        if stage in STAGE_SET:  # cache only fixed names: the dict stays bounded
            m.stage[stage] = child
        return child


def _client_version() -> str:
    try:
        return version("prometheus_client")
    except PackageNotFoundError:
        return "unknown"
