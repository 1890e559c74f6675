"""The one module that wires the application: config, graph, fallback tiers, domain, transport.

Everything else receives its dependencies through constructors; nothing on the hot path reads a
global. ``App.start`` binds the port first (health NOT_SERVING, Recommend answers UNAVAILABLE),
loads the graph, then reports SERVING; ``App.stop`` drains in-flight requests.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from recserver.ann.runtime import AnnRuntime
from recserver.config import RecServerConfig
from recserver.config_reload import ConfigHolder
from recserver.core.redis_url import resolve_redis_url
from recserver.graph.bootstrap import BuildReport
from recserver.graph.live import LiveGraph
from recserver.graph.walk import warm_up
from recserver.ingest.runtime import IngestRuntime
from recserver.metrics import Metrics
from recserver.metrics.http import MetricsServer, serving_registry
from recserver.node.builder import DataSource, bootstrap
from recserver.online.config import OnlineQualityConfig
from recserver.online.quality import OnlineQuality
from recserver.online.stability import OnlineStability
from recserver.server.grpc_server import GrpcServer
from recserver.service.fallback import FallbackChain
from recserver.service.observer import Observers
from recserver.service.recommender import Recommender, WalkHook
from recserver.service.tiers import build_tiers, uses_ann
from recserver.service.trending import keep_trending

__all__ = ["App", "DataSource", "build_tiers", "uses_ann"]

log = logging.getLogger(__name__)


class App:
    """The running server and its parts."""

    def __init__(
        self,
        holder: ConfigHolder,
        *,
        port: int | None = None,
        walk_hook: WalkHook | None = None,
        metrics_port: int | None = None,
        metrics: Metrics | None = None,
        redis_url: str | None = None,
        event_log_url: str | None = None,
        data_dir: str | Path | None = None,
        online_quality: OnlineQualityConfig | None = None,
    ) -> None:
        """``redis_url`` is the ``--redis-url`` flag: it wins over RECSERVER_REDIS_URL, which wins
        over ``ann.redis_url`` in the config file. ``event_log_url`` and ``data_dir`` are the
        ``--event-log-url`` / ``--data-dir`` flags (see ``recserver.ingest.config``)."""
        self.holder = holder
        config = holder.current
        # Metrics first, so every part below can be handed its share (e.g. metrics.cache).
        self.metrics = metrics if metrics is not None else Metrics(config)
        self.metrics.serve_as("single-process")  # the one process that answers
        self.graph = LiveGraph(config.graph)
        keep_trending(self.graph, config)  # before any ingest
        self.metrics.watch_graph(self.graph)
        self.metrics.watch_config(holder)
        url, origin = resolve_redis_url(redis_url, config.ann.url())
        self.ann = AnnRuntime(config.ann, self.graph, redis_url=url, metrics=self.metrics.cache)
        log.info("ann cache: %s (from %s)", self.ann.where, origin)  # password redacted
        self.ann.follow_erasures(self.graph)
        self.tiers = build_tiers(self.graph, self.ann, lambda: holder.current)
        # Online quality: sampled answers wait for their users' later events (every ingested
        # batch); answers whose window passed are counted as misses at each publish too.
        self.online = OnlineQuality(
            online_quality or config.online_quality,
            metrics=self.metrics.online,
        )
        self.graph.on_ingest.append(self.online.on_ingest)
        self.graph.on_publish.append(self.online.on_publish)
        # Stability: overlap of consecutive answers to a sampled user with no event between.
        self.stability = OnlineStability(online_quality or config.online_quality,
                                         metrics=self.metrics.stability)
        self.graph.on_ingest.append(self.stability.on_ingest)
        self.recommender = Recommender(
            self.graph, lambda: holder.current, FallbackChain(self.tiers), walk_hook=walk_hook,
            observer=Observers([self.metrics, self.online, self.stability]),
        )
        holder.add_listener(self._on_config)
        self.ingest = IngestRuntime(config.ingest, self.graph, url_flag=event_log_url,
                                    data_dir=data_dir, metrics=self.metrics.eventlog)
        self.metrics.watch_ingest(self.ingest)
        self.server = GrpcServer(self.recommender, config.server, port=port, observer=self.metrics,
                                 on_refused=self.metrics.call_refused,
                                 ingest=self.ingest)
        self.metrics_server = MetricsServer(
            serving_registry(self.metrics), config.server.metrics_host,
            config.server.metrics_port if metrics_port is None else metrics_port,
        )
        self.report: BuildReport | None = None
        self._stopped = threading.Event()

    def _on_config(self, config: RecServerConfig) -> None:
        self.recommender.apply_config(config)
        self.metrics.apply_config(config)
        keep_trending(self.graph, config)
        if uses_ann(config):
            self.ann.start()  # a no-op when already running
        log.info("config reloaded: %d surfaces", len(config.surfaces))

    def start(self, source: DataSource, *, watch_config: bool = True) -> int:
        """Bind, load the graph, go SERVING; returns the bound port."""
        port = self.bind()
        self.load(source, watch_config=watch_config)
        return port

    def bind(self) -> int:
        """Serve /metrics, start answering RPCs (health NOT_SERVING until ``load``); returns the
        bound gRPC port (``metrics_server.port`` is the metrics one)."""
        self.metrics_server.start()
        try:
            return self.server.start()
        except BaseException:
            self.metrics_server.stop()
            raise

    def load(self, source: DataSource, *, watch_config: bool = True) -> None:
        """Load the first graph, start the publisher and the config watcher, go SERVING.

        With ingest on, the newest checkpoint replaces the bootstrap source when there is one,
        and the event log is replayed from the graph's position before SERVING.
        """
        self.report = bootstrap(self.graph, self.ingest, source, self.metrics)
        warm_up()  # compile (or load) the walk kernels before the first request pays for it
        self.graph.start()
        self.ingest.start()  # tail the log, checkpoint, open RecordEvents
        if uses_ann(self.holder.current):
            self.ann.start()  # builds in the background; the tier answers once it has a version
        if watch_config and self.holder.path is not None:
            self.holder.start_watching()
        self.server.set_serving()

    def stop(self, grace: float | None = None) -> None:
        """Stop taking requests, let in-flight ones finish, stop background threads."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.server.stop(grace)
        self.ingest.stop()  # after the last RecordEvents call: tailer, final checkpoint, log
        self.graph.stop()
        self.ann.stop()
        self.holder.stop_watching()
        self.metrics_server.stop()
