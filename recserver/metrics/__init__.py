"""Every Prometheus metric of recserver, in this one package (no import of the transport).

Modules: ``labels`` (fixed label sets, buckets), ``serving`` (:class:`Metrics`: requests,
stages, budgets, refusals), ``ingest``, ``online``, ``cache``, ``collectors`` (scrape-time
values) and ``http`` (the ``/metrics`` endpoint, multi-process aggregation).

Design
------
* **One object, injected.** :class:`Metrics` is built by the App from the config and handed to
  the parts that report: the Recommender (as its ``RequestObserver``), the gRPC transport (status
  codes by name, encode time: the transport decodes its own messages, so nothing here imports
  it), the fallback tiers (:class:`CacheMetrics`), the graph and the config holder
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
  each (``load/benchmarks/metrics.py`` prints the per-request cost and the ``/metrics`` render
  cost).
  The children every request produces are created up front, so ``rate()`` sees each series from
  zero instead of losing the first scrape interval.
* **Scrape-time values** (graph size, snapshot version and age, config reloads) come from
  collectors that read the live objects when Prometheus scrapes: no thread, and the age is exact.
* **Several worker processes**: start each worker with ``PROMETHEUS_MULTIPROC_DIR`` set to an
  empty directory shared by the workers (set it *before* Python imports ``prometheus_client``).
  Counters and histograms then live in memory-mapped files there and any worker's ``/metrics``
  (see ``recserver.metrics.http``) serves the sum over all workers; gauges declare how they merge
  (``mostrecent`` for config values, ``livemax`` for the breaker). Scrape-time collectors report
  the serving worker's own view. prometheus_client cannot remove a labelled child there, so a
  surface dropped by a reload keeps its last budget/SLA gauges (its SLA boundary is zeroed, which
  the rules ignore) until the directory is cleared, as it must be when the service (re)starts.
"""

from recserver.metrics.cache import CacheMetrics
from recserver.metrics.collectors import GraphCollector, ReloadCollector, ReloadCounts
from recserver.metrics.ingest import IngestCollector, IngestMetrics, LagSource
from recserver.metrics.labels import (
    BREAKER_STATES,
    CACHE_OPS,
    CACHE_OUTCOMES,
    CORE_STAGES,
    INGEST_OUTCOMES,
    LOG_OPS,
    REASONS,
    STAGES,
    UNKNOWN_SURFACE,
    latency_buckets,
    reason_label,
    sla_boundary,
)
from recserver.metrics.online import OnlineQualityMetrics
from recserver.metrics.serving import Metrics

__all__ = [
    "BREAKER_STATES", "CACHE_OPS", "CACHE_OUTCOMES", "CORE_STAGES", "INGEST_OUTCOMES", "LOG_OPS",
    "REASONS", "STAGES", "UNKNOWN_SURFACE", "CacheMetrics", "GraphCollector", "IngestCollector",
    "IngestMetrics", "LagSource", "Metrics", "OnlineQualityMetrics", "ReloadCollector",
    "ReloadCounts", "latency_buckets", "reason_label", "sla_boundary",
]
