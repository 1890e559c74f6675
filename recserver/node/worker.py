"""The serving-worker role: map the newest snapshot, answer, nothing else.

A worker never builds, compacts, tails, checkpoints or renders ``/metrics``: it maps what the
builder publishes (``MappedGraph``), walks it, reads the fallback tiers (ANN results from Redis
or the builder's sealed files, popular items from the snapshot) and answers on the node's port,
which every worker binds with SO_REUSEPORT (the kernel spreads connections across them).

Readiness means able to keep the promise: the snapshot is mapped and its pages touched and the
walk kernels are compiled (on the mapped arrays), every surface has answered a user and an item
context once (``warm_requests``, not counted in metrics) and the start-up heap is frozen out of
garbage collection (``core.heap``) before the worker even listens; then health says SERVING. ANN
results the builder has not published yet are stated in each answer that needed them
(``fallback_unready:ann``) rather than waited for.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace

import numpy as np

from recserver.config_reload import ConfigHolder
from recserver.core.heap import freeze_startup_heap
from recserver.graph.config import WalkConfig
from recserver.graph.snapshot import GraphSnapshot
from recserver.graph.walk import run_walk, warm_up
from recserver.metrics import Metrics
from recserver.node import wiring
from recserver.node.forward import ForwardingIngest
from recserver.node.layout import RunDir
from recserver.node.mapped import MappedGraph
from recserver.online.report import ServedReporter
from recserver.server.servicer import encode_response
from recserver.service.recommender import Recommender, WalkHook
from recserver.service.tiers import uses_ann
from recserver.service.types import RecommendQuery

log = logging.getLogger(__name__)


def warm_on(snap: GraphSnapshot) -> None:
    """Walk the mapped snapshot once per scoring mode: its read-only arrays are another type
    for the JIT than ``warm_up``'s, and that compile must happen before SERVING, not in the
    first request (measured: 1.6 s)."""
    items = np.flatnonzero(np.asarray(snap.item_degree) > 0)[:2].astype(np.int32)
    if items.shape[0] == 0:
        return
    weights = np.ones(items.shape[0], np.float32)
    for boost in ("multi_hit", "sum"):
        run_walk(snap, items, weights, WalkConfig(steps=64, boost=boost), k=1)


def warm_requests(recommender: Recommender, snap: GraphSnapshot, surfaces: list[str]) -> int:
    """Answer a user and an item context on every surface, and encode the answers, before
    SERVING: the first request of each code path (seeds, exclusions, filters, fallback tiers,
    ranking, the wire encoding) otherwise pays its first-call costs inside a client's budget.
    ``recommender`` should be one without metrics, so these calls are not counted as traffic.
    Returns the calls made."""
    queries = []
    if snap.n_users:
        queries.append(RecommendQuery(user_id=snap.users.names([0])[0], surface=""))
    items = np.flatnonzero(np.asarray(snap.item_degree) > 0)[:1]
    if items.shape[0]:
        queries.append(RecommendQuery(user_id="", surface="",
                                      context_item_ids=tuple(snap.items.names(items))))
    made = 0
    for surface in surfaces:
        for query in queries:
            asked = replace(query, surface=surface)
            encode_response(recommender.recommend(asked, arrival=time.perf_counter(),
                                                  client_remaining_s=None), asked)
            made += 1
    return made


class NotReady(RuntimeError):
    """The worker could not map a snapshot in time (the builder is not publishing)."""


class Worker:
    """One serving worker process (see the module docstring)."""

    def __init__(
        self, holder: ConfigHolder, run: RunDir, *, port: int | None = None,
        redis_url: str | None = None, walk_hook: WalkHook | None = None,
        reuse_port: bool = True, own_port: int | None = None, name: str = "worker",
        walk_threads: int | None = None, metrics: Metrics | None = None,
    ) -> None:
        """``port`` is the node's, shared with its other workers; ``own_port`` this worker's
        alone (one client channel with round_robin over every worker's own port spreads its
        calls over all of them, where the shared port spreads connections). ``walk_threads``:
        this worker's share of the node's cores (``server.max_concurrent_walks`` wins).
        ``metrics``: a test's own registry (default: a fresh one)."""
        config = holder.current
        self.holder = holder
        self.run = run
        self.metrics = wiring.role_metrics(holder, answers_as=name, metrics=metrics)
        self.graph = MappedGraph(run)
        self.metrics.watch_graph(self.graph)
        self.ann = wiring.ann_runtime(config, self.graph, self.metrics, redis_url=redis_url,
                                      run=run, writes=False)
        # Online quality: sampled answers go to the builder, which sees every event to match.
        self.reporter = ServedReporter(config.online_quality, run.builder_target,
                                       metrics=self.metrics.online)
        self.answering = wiring.Answering(holder, self.graph, self.ann, self.metrics,
                                          observers=[self.reporter], walk_hook=walk_hook)
        self.recommender = self.answering.recommender
        # Writes are relayed to the builder as bytes; reads come from the mapped snapshot.
        self.ingest = ForwardingIngest(run.builder_target, self.graph)
        self.server = wiring.public_server(config, self.answering, self.metrics, self.ingest,
                                           port=port, reuse_port=reuse_port, own_port=own_port,
                                           walk_threads=walk_threads, forward=self.ingest)
        self._stopped = threading.Event()

    def start(self, timeout_s: float = 600.0, *, freeze_heap: bool = True) -> int:
        """Map the newest snapshot, compile the kernels, start watching, then bind the port and
        go SERVING; returns the port.

        The port comes last: the kernel hands new connections to every socket that listens on
        a shared port, so a worker that listened while loading would take connections it could
        only refuse. Until then the node's other workers answer.
        """
        if not self.graph.wait_ready(timeout_s):
            raise NotReady(f"no snapshot published in {self.run.snapshots} after "
                           f"{timeout_s:.0f}s; is the builder running?")
        warm_up()
        warm_on(self.graph.current)
        self.graph.start()
        if uses_ann(self.holder.current):
            self.ann.start()  # adopts what the builder published; never builds
        if self.holder.path is not None:
            self.holder.start_watching()
        started = time.perf_counter()
        made = warm_requests(self.answering.silent(), self.graph.current,
                             list(self.holder.current.surfaces))
        log.info("request path warmed: %d answers in %.0f ms", made,
                 (time.perf_counter() - started) * 1000.0)
        # Last before listening: no full collection may walk start-up's heap again (each one
        # held the GIL for 80-150 ms in a worker), and the collection it runs must not delay
        # calls the kernel already handed to this worker.
        self.reporter.start()
        if freeze_heap:
            frozen = freeze_startup_heap()
            log.info("start-up heap frozen out of garbage collection: %d objects", frozen)
        port = self.server.start()
        self.server.set_serving()
        snap = self.graph.current
        log.info("worker serving snapshot %d: %d users, %d items, %d edges", snap.version,
                 snap.n_users, snap.n_items, snap.n_edges)
        return port

    def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING, let in-flight answers finish, stop watching."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.server.stop(grace)
        self.graph.stop()
        self.ann.stop()
        self.ingest.close()
        self.reporter.stop()
        self.holder.stop_watching()
