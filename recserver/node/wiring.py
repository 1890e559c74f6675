"""The node's one wiring: each part a role needs, built from the config one way.

The builder (``node.builder``), a serving worker (``node.worker``) and the single-process
server (``node.single``) compose these and nothing else builds them: metrics, the ANN runtime
(where its results live differs by role, nothing else), the writer's live graph and ingest, the
answering side (fallback tiers, recommender, and the one config listener that follows a
reload), the public gRPC server (either door) and the ``/metrics`` endpoint.

A worker must import no writer (the live graph, the event log, online matching): those parts'
modules are imported inside the functions only the writer roles call.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from recserver.ann.cache import ResultCache
from recserver.ann.file_cache import FileCache
from recserver.ann.runtime import AnnRuntime
from recserver.config import RecServerConfig
from recserver.config_reload import ConfigHolder
from recserver.core.redis_url import resolve_redis_url
from recserver.graph.source import SnapshotSource
from recserver.metrics import Metrics
from recserver.metrics.http import MetricsServer, serving_registry
from recserver.node.layout import RunDir
from recserver.server.aio_server import AioGrpcServer
from recserver.server.grpc_server import GrpcServer
from recserver.server.ingest_servicer import IngestHandler
from recserver.server.proxy import RawForwarder
from recserver.service.fallback import FallbackChain
from recserver.service.observer import Observers, RequestObserver
from recserver.service.recommender import Recommender, WalkHook
from recserver.service.tiers import build_tiers, uses_ann

if TYPE_CHECKING:  # writer parts: imported where built (see the module docstring)
    from recserver.graph.live import LiveGraph
    from recserver.ingest.runtime import IngestRuntime

log = logging.getLogger(__name__)

#: Fault injection for drills and tests: sleep this many ms after every walk batch.
FAULT_WALK_DELAY_ENV = "RECSERVER_FAULT_WALK_DELAY_MS"


def fault_walk_hook() -> WalkHook | None:
    """A walk hook that slows every batch, when ``RECSERVER_FAULT_WALK_DELAY_MS`` is set."""
    raw = os.environ.get(FAULT_WALK_DELAY_ENV)
    if not raw:
        return None
    try:
        delay_s = float(raw) / 1000.0
    except ValueError:
        raise ValueError(f"{FAULT_WALK_DELAY_ENV}={raw!r}: give milliseconds, e.g. 5") from None
    log.warning("fault injection: every walk batch sleeps %.1f ms", delay_s * 1000)
    return lambda steps_done: time.sleep(delay_s)


def role_metrics(holder: ConfigHolder, *, answers_as: str | None, metrics: Metrics | None = None
                 ) -> Metrics:
    """The role's metrics (``metrics``: a test's own registry). ``answers_as``: the name a
    process that answers requests counts them under (None: the builder, which answers none
    and counts config reloads for the node)."""
    metrics = metrics if metrics is not None else Metrics(holder.current)
    if answers_as is not None:
        metrics.serve_as(answers_as)
    if answers_as is None or answers_as == "single-process":
        metrics.watch_config(holder)  # counted once per node: where /metrics renders
    return metrics


def writer_graph(holder: ConfigHolder, metrics: Metrics, *, first_version: int = 1
                 ) -> LiveGraph:
    """The live graph of the process that applies events, counting trending from the start."""
    from recserver.graph.live import LiveGraph
    from recserver.service.trending import keep_trending

    graph = LiveGraph(holder.current.graph, first_version=first_version)
    keep_trending(graph, holder.current)  # before any ingest: bootstrap, restore, the log
    holder.add_listener(lambda new: keep_trending(graph, new))
    metrics.watch_graph(graph)
    return graph


def ann_runtime(config: RecServerConfig, graph: SnapshotSource, metrics: Metrics, *,
                redis_url: str | None, run: RunDir | None = None, writes: bool = True,
                child_builds: bool = False) -> AnnRuntime:
    """The ANN runtime. With Redis (``--redis-url``, else RECSERVER_REDIS_URL, else the
    config), results live there for every role. Without it a node's builder (``writes``) seals
    files in ``run`` that its workers (``writes=False``: they never build) read; the single
    process (``run=None``) keeps them in an in-process LRU. ``child_builds``: each build in a
    SCHED_IDLE child process (the builder's default)."""
    url, origin = resolve_redis_url(redis_url, config.ann.url())
    cache: ResultCache | None = None
    where = None
    if run is not None and not url:
        # recheck_s=0 for the builder: a version a build child sealed is adopted at once (it
        # reads its cache seldom: pointer polls and erasures, never requests).
        cache = (FileCache(run.ann, writer=True, recheck_s=0.0) if writes
                 else FileCache(run.ann, writer=False))
        where = f"files in {run.ann}"
    child = None
    if child_builds:
        from recserver.ann.child_runner import ChildJob

        if run is None:
            raise ValueError("ANN builds in a child process need a run directory")
        child = ChildJob(run.root, redis_url=url, ann_dir=run.ann)
    ann = AnnRuntime(config.ann, graph, redis_url=url, metrics=metrics.cache, cache=cache,
                     where=where, builds=writes, child=child)
    if writes:
        log.info("ann results: %s (from %s); builds %s", ann.where,
                 origin if url or run is None else "no Redis URL",
                 "in a SCHED_IDLE child process" if child else "in this process")
        ann.follow_erasures(graph)  # type: ignore[arg-type]  # a writer's graph erases
    return ann


def ingest_runtime(holder: ConfigHolder, graph: LiveGraph, metrics: Metrics, *,
                   event_log_url: str | None, data_dir: str | Path | None,
                   wait_for_log_s: float = 0.0) -> IngestRuntime:
    """The event log, tailer and checkpoints feeding ``graph``; ``wait_for_log_s``: wait that
    long for a builder still stopping to let go of the log (``builder.open_ingest``)."""
    from recserver.ingest.runtime import IngestRuntime
    from recserver.node.builder import open_ingest

    def make() -> IngestRuntime:
        return IngestRuntime(holder.current.ingest, graph, url_flag=event_log_url,
                             data_dir=data_dir, metrics=metrics.eventlog)

    ingest = open_ingest(make, wait_for_log_s) if wait_for_log_s > 0 else make()
    metrics.watch_ingest(ingest)
    return ingest


class Answering:
    """The answering side: fallback tiers, the recommender, and the one config listener."""

    def __init__(self, holder: ConfigHolder, graph: SnapshotSource, ann: AnnRuntime,
                 metrics: Metrics, *, observers: Sequence[RequestObserver] = (),
                 walk_hook: WalkHook | None = None) -> None:
        """``observers``: told every answer after the metrics (online quality, a reporter)."""
        self._holder = holder
        self._graph = graph
        self._ann = ann
        self._metrics = metrics
        self.fallback = FallbackChain(build_tiers(graph, ann, lambda: holder.current))
        self.recommender = Recommender(graph, lambda: holder.current, self.fallback,
                                       walk_hook=walk_hook,
                                       observer=Observers([metrics, *observers]))
        holder.add_listener(self.on_config)

    def on_config(self, config: RecServerConfig) -> None:
        """A reloaded config: surfaces, metrics' targets, and the ANN tier when one names it."""
        self.recommender.apply_config(config)
        self._metrics.apply_config(config)
        if uses_ann(config):
            self._ann.start()  # a no-op when already running
        log.info("config reloaded: %d surfaces", len(config.surfaces))

    def silent(self) -> Recommender:
        """A recommender over the same parts that nobody counts (warm-up requests)."""
        return Recommender(self._graph, lambda: self._holder.current, self.fallback)


def public_server(config: RecServerConfig, answering: Answering, metrics: Metrics,
                  ingest: IngestHandler, *, port: int | None, reuse_port: bool = False,
                  own_port: int | None = None, walk_threads: int | None = None,
                  forward: RawForwarder | None = None, door: str | None = None
                  ) -> GrpcServer | AioGrpcServer:
    """The gRPC server clients call, on the door ``door`` names (default: ``server.door``)."""
    if (door or config.server.door) == "aio":
        return AioGrpcServer(answering.recommender, config.server, port=port,
                             observer=metrics, ingest=ingest, reuse_port=reuse_port,
                             own_port=own_port, on_refused=metrics.call_refused,
                             walk_threads=walk_threads, forward=forward)
    return GrpcServer(answering.recommender, config.server, port=port, observer=metrics,
                      ingest=ingest, reuse_port=reuse_port, own_port=own_port,
                      on_refused=metrics.call_refused, forward=forward)


def metrics_endpoint(config: RecServerConfig, metrics: Metrics, port: int | None
                     ) -> MetricsServer:
    """``/metrics`` (``port`` wins over ``server.metrics_port``; 0 picks a free one)."""
    return MetricsServer(serving_registry(metrics), config.server.metrics_host,
                         config.server.metrics_port if port is None else port)
