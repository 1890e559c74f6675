"""The single-process server: the node's parts (``node.wiring``) composed in one process.

The node (``serve``) is what ships, and what the tests drive (``tests/node_harness.py`` runs a
real builder and workers in a test's process; others start ``recserver serve``). This keeps one
process that both writes and answers for one use: ``serve --single-process``, the baseline the
node's benchmarks (``load/benchmarks/node.py``, ``node_memory.py``) compare against. Only two
tests drive it, each about a behaviour only this mode has (it binds before it loads; without a
data dir it runs with no event log). It is built from the same wiring as the builder and the
workers, so what it serves is what they serve: the writer's graph, ingest and ANN runtime
(results in an in-process LRU unless Redis is configured), the answering side, the sync door and
one ``/metrics``. Online quality matches each answer in place (no report stream to a builder).

``App.start`` binds the port first (health NOT_SERVING, Recommend answers UNAVAILABLE), loads
the graph, then reports SERVING; ``App.stop`` drains in-flight requests.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from recserver.config_reload import ConfigHolder
from recserver.graph.bootstrap import BuildReport
from recserver.graph.walk import warm_up
from recserver.metrics import Metrics
from recserver.node import wiring
from recserver.node.builder import DataSource, bootstrap
from recserver.online.config import OnlineQualityConfig
from recserver.online.quality import OnlineQuality
from recserver.online.stability import OnlineStability
from recserver.service.recommender import WalkHook
from recserver.service.tiers import uses_ann

__all__ = ["App", "DataSource", "serve_single_process"]


class App:
    """The single-process server and its parts (see the module docstring)."""

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
        self.metrics = wiring.role_metrics(holder, answers_as="single-process", metrics=metrics)
        self.graph = wiring.writer_graph(holder, self.metrics)
        self.ann = wiring.ann_runtime(config, self.graph, self.metrics, redis_url=redis_url)
        # Online quality: sampled answers wait for their users' later events (every ingested
        # batch); answers whose window passed are counted as misses at each publish too.
        online = online_quality or config.online_quality
        self.online = OnlineQuality(online, metrics=self.metrics.online)
        self.graph.on_ingest.append(self.online.on_ingest)
        self.graph.on_publish.append(self.online.on_publish)
        # Stability: overlap of consecutive answers to a sampled user with no event between.
        self.stability = OnlineStability(online, metrics=self.metrics.stability)
        self.graph.on_ingest.append(self.stability.on_ingest)
        self.answering = wiring.Answering(holder, self.graph, self.ann, self.metrics,
                                          observers=[self.online, self.stability],
                                          walk_hook=walk_hook)
        self.recommender = self.answering.recommender
        self.tiers = self.answering.fallback.tiers
        self.ingest = wiring.ingest_runtime(holder, self.graph, self.metrics,
                                            event_log_url=event_log_url, data_dir=data_dir)
        # The sync door: this baseline predates the asyncio one, and tests reach its executor.
        self.server = wiring.public_server(config, self.answering, self.metrics, self.ingest,
                                           port=port, door="sync")
        self.metrics_server = wiring.metrics_endpoint(config, self.metrics, metrics_port)
        self.report: BuildReport | None = None
        self._stopped = threading.Event()

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


def serve_single_process(args: argparse.Namespace, stop: threading.Event, *,
                         on_loaded: Callable[[App], None] | None = None) -> int:
    """``serve --single-process`` until ``stop`` is set (SIGTERM/SIGINT): ``node.commands``
    checked the data dir and runs this. ``on_loaded(app)`` runs on the main thread once SERVING
    (in-process hooks of a caller's own)."""
    holder = ConfigHolder(args.config)
    data_dir = args.data_dir or holder.current.ingest.data_dir
    app = App(holder, port=args.port, metrics_port=args.metrics_port, redis_url=args.redis_url,
              walk_hook=wiring.fault_walk_hook(), event_log_url=args.event_log_url,
              data_dir=args.data_dir)
    holder.install_sighup()
    bound = app.bind()
    # The port is bound, but health says NOT_SERVING until the graph is loaded.
    print(f"recserver starting on {app.server.address} (port {bound}), not answering yet: "
          "loading the graph (--single-process: one process, not the node serve ships)",
          flush=True)
    print(f"recserver metrics on {app.metrics_server.url} (port {app.metrics_server.port})",
          flush=True)
    app.load(DataSource(events=args.events, synthetic=args.synthetic, strict=args.strict,
                        items=args.items, data_dir=Path(data_dir) if data_dir else None))
    snap = app.graph.current
    source = app.report.source if app.report else "?"
    print(f"recserver serving on {app.server.address}: {snap.n_users:,} users, "
          f"{snap.n_items:,} items, {snap.n_edges:,} edges from {source}; surfaces: "
          f"{', '.join(holder.current.surfaces)}", flush=True)
    if on_loaded is not None:
        on_loaded(app)
    while not stop.wait(0.5):
        pass
    print("recserver: draining in-flight requests ...", file=sys.stderr, flush=True)
    app.stop()
    return 0
