"""An in-process node for tests: a real ``Builder`` and real ``Worker``s in the test's process.

They are the classes ``recserver serve`` runs in its builder and worker processes, composed from
the same wiring, sharing a run directory under the test's temp dir: the builder publishes
snapshot files that each worker maps, and a worker relays ``RecordEvents`` (and its sampled
answers for online quality) to the builder over the node's real Unix socket. What one process
makes reachable is what a fault-injection test needs: a worker's fallback tiers (replace one in
place), its walk hook, its metrics registry and the builder's live graph.

Three things differ from separate processes, because they are process-global:

* **/metrics**: prometheus_client picks its multi-process mode at import, so the builder's
  ``/metrics`` cannot sum the workers' files here. Each role keeps its own registry; tests read
  a worker's (``metrics``) or scrape ``worker_metrics_url``, an endpoint over the first worker's
  registry that the shipped node does not have. ``tests/test_metrics_multiprocess.py`` and the
  process tests check the node's one summed ``/metrics``.
* **Signals**: no SIGHUP handler (a test reloads with ``reload()``); no SIGTERM drain.
* **Garbage collection**: workers do not freeze the start-up heap (it would freeze the test's).

Tests about any of those run real processes (``recserver serve``) instead.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType

from prometheus_client import CollectorRegistry

from recserver.config_reload import ConfigHolder
from recserver.graph.live import LiveGraph
from recserver.metrics import Metrics
from recserver.metrics.http import MetricsServer
from recserver.node import wiring
from recserver.node.builder import Builder, DataSource
from recserver.node.layout import RunDir
from recserver.node.worker import Worker
from recserver.server.aio_server import AioGrpcServer
from recserver.server.grpc_server import GrpcServer
from recserver.service.fallback import FallbackTier
from recserver.service.recommender import Recommender, WalkHook

__all__ = ["DataSource", "InProcessNode", "wait_sample"]


class InProcessNode:
    """One builder and ``workers`` workers in this process (see the module docstring)."""

    def __init__(self, config: Path | None, root: Path, *, workers: int = 1,
                 walk_hook: WalkHook | None = None, metrics: Metrics | None = None,
                 builder_metrics: Metrics | None = None, redis_url: str | None = None,
                 event_log_url: str | None = None, data_dir: Path | None = None,
                 ann_builds: str = "thread", port: int = 0) -> None:
        """``config``: the YAML file every role reads (None: the embedded default).
        ``walk_hook`` and ``metrics`` go to the first worker, ``builder_metrics`` to the
        builder. ``data_dir`` holds the event log and checkpoints (default ``root/data``).
        ``ann_builds``: ``thread`` by default, so a test spawns no build process. ``port``:
        the node's (0: a free one, known once the first worker listens)."""
        self.run = RunDir(root / "run").create()
        self.data_dir = data_dir if data_dir is not None else root / "data"
        self._holders = [ConfigHolder(config) for _ in range(workers + 1)]
        self._redis_url = redis_url
        # The first worker now (a test may replace its tiers before start); the others bind
        # the port it got, so they are made once it has one.
        self.workers = [Worker(self._holders[1], self.run, port=port, redis_url=redis_url,
                               reuse_port=True, name="worker-0", walk_hook=walk_hook,
                               metrics=metrics)]
        # The builder last: a worker's config error (e.g. an unset token) leaves no event log
        # open behind it.
        self.builder = Builder(self._holders[0], self.run, redis_url=redis_url,
                               event_log_url=event_log_url, data_dir=str(self.data_dir),
                               metrics_port=0, ann_builds=ann_builds, metrics=builder_metrics)
        self._worker_metrics: MetricsServer | None = None
        self.port = port
        self._started: list[Worker] = []

    # -- what tests reach -------------------------------------------------------------------

    @property
    def worker(self) -> Worker:
        """The first worker (the one with the walk hook and the test's metrics)."""
        return self.workers[0]

    @property
    def holder(self) -> ConfigHolder:
        """The first worker's config (each role holds its own, read from the same file)."""
        return self.worker.holder

    @property
    def server(self) -> GrpcServer | AioGrpcServer:
        """The first worker's public gRPC server."""
        return self.worker.server

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``: the node's port, which every worker listens on."""
        return f"127.0.0.1:{self.port}"

    @property
    def graph(self) -> LiveGraph:
        """The builder's live graph (the writer: ``ingest``, ``publish``)."""
        return self.builder.graph

    @property
    def metrics(self) -> Metrics:
        """The first worker's metrics (what its answers count)."""
        return self.worker.metrics

    @property
    def recommender(self) -> Recommender:
        """The first worker's recommender."""
        return self.worker.recommender

    @property
    def tiers(self) -> dict[str, FallbackTier]:
        """The first worker's fallback tiers: the chain holds this very dict."""
        return self.worker.answering.fallback.tiers

    @property
    def worker_metrics_url(self) -> str:
        """``/metrics`` over the first worker's registry (only this harness has it)."""
        if self._worker_metrics is None:
            self._worker_metrics = wiring.metrics_endpoint(self.worker.holder.current,
                                                           self.worker.metrics, 0)
            self._worker_metrics.start()
        return self._worker_metrics.url

    # -- life -------------------------------------------------------------------------------

    def start(self, source: DataSource) -> int:
        """Build and publish the graph, then start each worker on the node's port; returns it."""
        self.start_builder(source)
        return self.start_workers()

    def start_builder(self, source: DataSource) -> None:
        """Build and publish the first graph (no worker listens yet, as in a starting node)."""
        if source.data_dir is None:
            source = DataSource(events=source.events, synthetic=source.synthetic,
                                strict=source.strict, items=source.items,
                                data_dir=self.data_dir)
        try:
            self.builder.start(source)
        except BaseException:
            self.stop()
            raise

    def start_workers(self) -> int:
        """Start each worker on the node's port (the first picks it when it is 0); returns it."""
        try:
            self.port = self.worker.start(timeout_s=60.0, freeze_heap=False)
            self._started.append(self.worker)
            for i, holder in enumerate(self._holders[2:], start=1):
                worker = Worker(holder, self.run, port=self.port, redis_url=self._redis_url,
                                reuse_port=True, name=f"worker-{i}")
                self.workers.append(worker)
                worker.start(timeout_s=60.0, freeze_heap=False)
                self._started.append(worker)
        except BaseException:
            self.stop()
            raise
        return self.port

    def reload(self) -> bool:
        """Reload the config in every role (what SIGHUP does in each process); True when every
        role took the new file (``holder.last_error`` says why the first worker did not)."""
        return all([holder.reload() for holder in self._holders])

    def stop(self, grace: float | None = None) -> None:
        """Stop the workers (draining in-flight answers), then the builder."""
        if self._worker_metrics is not None:
            self._worker_metrics.stop()
        for worker in self._started:
            worker.stop(grace)
        self.builder.stop()

    def __enter__(self) -> InProcessNode:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def wait_sample(registry: CollectorRegistry, name: str, labels: dict[str, str] | None = None,
                *, at_least: float = 1.0, timeout_s: float = 15.0) -> float:
    """``name``'s value in ``registry`` once it reaches ``at_least`` (fails after
    ``timeout_s``): what a worker reports reaches the builder asynchronously, in batches."""
    deadline = time.monotonic() + timeout_s
    while (got := registry.get_sample_value(name, labels or {}) or 0.0) < at_least:
        assert time.monotonic() < deadline, f"{name}{labels or ''} = {got} < {at_least}"
        time.sleep(0.02)
    return got
