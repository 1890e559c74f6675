"""The ANN tier's moving parts in one place: cache, breaker, write-back, builds, pointer poll.

``build_now`` learns a model from the current snapshot, publishes it (precompute + pointer flip)
and installs it for readers. ``start`` runs builds in a background thread once the graph is
loaded and again every ``rebuild_interval_s``; between builds it polls the pointer key, so a
version published by another process (``recserver build-ann``) is adopted: its item table is
mapped onto this process's ids, and the local model still computes misses.

A node's builder passes ``child``: each build then runs in a short-lived child process at
SCHED_IDLE (``build_in_child``, see ``ann.child_runner``) and the builder adopts the version it
published through the same pointer poll as the workers. ``build_now`` in this thread stays for
the single-process server, ``recserver build-ann`` and the evaluation tools.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

import numpy as np

from recserver.ann.blas import limit_blas_threads
from recserver.ann.breaker import CircuitBreaker
from recserver.ann.cache import CacheError, CacheMetrics, NullMetrics, ResultCache, open_cache
from recserver.ann.child_runner import ChildBuilder, ChildBuildFailed, ChildJob, ChildOutcome
from recserver.ann.codec import Keys, PayloadError, decode_items, parse_pointer
from recserver.ann.config import AnnConfig
from recserver.ann.fold_saved import SavedFolds, grown_state
from recserver.ann.forget import UserForgetter
from recserver.ann.tier import AnnTier, ServingState
from recserver.ann.writeback import WriteBack
from recserver.core.background import BackgroundWorker
from recserver.core.redis_url import redact_url
from recserver.graph.source import SnapshotSource
from recserver.service.fallback import FallbackRequest

if TYPE_CHECKING:  # the build code (FAISS, ALS, precompute) is imported by ``build_now`` only:
    # a serving worker never builds, and a node's builder builds in a child process
    from recserver.ann.model import AnnModel
    from recserver.ann.precompute import PrecomputeReport
    from recserver.graph.live import LiveGraph

log = logging.getLogger(__name__)


class AnnRuntime:
    def __init__(
        self, cfg: AnnConfig, graph: SnapshotSource, *, redis_url: str | None = None,
        metrics: CacheMetrics | None = None, cache: ResultCache | None = None,
        builds: bool = True, where: str | None = None, child: ChildJob | None = None,
    ) -> None:
        """``builds=False`` (serving workers): never build, only adopt the versions the pointer
        names (a builder publishes them). ``child``: build in child processes (a node's
        builder; ``cache`` must be one that other processes share)."""
        self.cfg = cfg
        self.builds = builds
        self.child = ChildBuilder(child) if child is not None else None
        #: a version a child has staged and not switched on yet: erasures purge it too
        self._staged: int | None = None
        self.last_child: ChildOutcome | None = None
        self.graph = graph
        self.metrics: CacheMetrics = metrics or NullMetrics()
        self.cache = cache if cache is not None else open_cache(cfg, redis_url)
        self.where = where or (redact_url(redis_url) if redis_url else "in-process LRU")
        self.breaker = CircuitBreaker(cfg.breaker.failure_threshold, cfg.breaker.open_s,
                                      on_state=self.metrics.breaker)
        self.writer = (WriteBack(self.cache, cfg.ttl_s, self.breaker, self.metrics,
                                 max_queue=cfg.write_back_queue) if cfg.write_back else None)
        self.tier = AnnTier(self.cache, self.breaker, cfg, metrics=self.metrics,
                            writer=self.writer)
        self.keys = Keys(cfg.key_prefix)
        self.model: AnnModel | None = None
        #: deletes erased users' results (wired to a writer's graph by ``follow_erasures``)
        self.forget = UserForgetter(self.cache, cfg.key_prefix, self._readable_versions,
                                    self.metrics)
        self.last_report: PrecomputeReport | None = None
        self._build_lock = threading.Lock()
        #: new items folded in from the vectors a build child saved (builds in a child)
        self.folds = (SavedFolds(child.ann_dir)
                      if child is not None and child.ann_dir is not None else None)
        self._worker = BackgroundWorker("ann-rebuild", self._run, join_timeout_s=30.0)
        self._stop = self._worker.stop_event

    def build_now(self, *, progress: bool = False) -> PrecomputeReport:
        """Build from the current snapshot, publish, and serve the new version."""
        from recserver.ann.index import set_threads
        from recserver.ann.model import build_model, new_version
        from recserver.ann.precompute import publish

        with self._build_lock:
            log.info("ann build started in this process's thread")
            set_threads(self.cfg.build_threads)
            limit_blas_threads(self.cfg.build_threads)
            snapshot = self.graph.current
            previous = self.tier.state.version if self.tier.state is not None else None
            model = build_model(snapshot, self.cfg, new_version(previous))
            report = publish(model, snapshot, self.cache, self.cfg, progress=progress)
            self.model = model
            self.tier.install(ServingState.local(model, self.cfg.key_prefix))
            self.last_report = report
            self.forget.built(snapshot.version, model.version)
            users = np.flatnonzero(np.diff(snapshot.base_users.indptr) > 0)[:1]
            if users.shape[0]:
                self.tier.calibrate(FallbackRequest(
                    snapshot=snapshot, surface="", user=int(users[0]),
                    context=np.empty(0, np.int32), exclude=np.empty(0, np.int32),
                    k=self.cfg.top_k, deadline=time.perf_counter() + 1.0))
            log.info("ann build %d published to %s:\n%s", model.version, self.where,
                     report.summary())
            return report

    def fold_new_items(self) -> int:
        """Give items born since the build a vector from their first users and publish what
        makes them reachable (``ann.fold_new``), without a rebuild: with the model this thread
        built, or (builds in a child) with the vectors the child saved (``ann.fold_saved``).
        Returns how many items got a vector."""
        from recserver.ann.fold_new import fold_new_items, publish_new_items

        if self.child is not None:
            return self._fold_saved()
        with self._build_lock:
            model, state = self.model, self.tier.state
            if model is None or state is None or state.version != model.version:
                return 0
            folded = fold_new_items(model, self.graph.current, self.cfg,
                                    min_users=self.cfg.fold_min_users)
            if folded is None:
                return 0
            publish_new_items(folded, self.cache, self.cfg)
            self.model = folded.model
            self.tier.install(ServingState.local(folded.model, self.cfg.key_prefix))
            log.info("ann: %d new items folded into version %d", folded.items.shape[0],
                     model.version)
            return int(folded.items.shape[0])

    def _fold_saved(self) -> int:
        if self.folds is None:
            return 0  # nowhere the child saves vectors
        with self._build_lock:  # never while a child seals a version
            version = self.poll_pointer()
            if version is None:
                return 0
            items = self.folds.fold(version, self.graph.current, self.cache, self.cfg)
            if items:
                self.poll_pointer()  # adopt the grown item table here too
                log.info("ann: %d new items folded into version %d", len(items), version)
            return len(items)

    def build(self) -> None:
        """One build, the way this runtime builds: in a child process, or in this thread."""
        if self.child is None:
            self.build_now()
        else:
            self.build_in_child()

    def build_in_child(self) -> ChildOutcome:
        """Build in a child process at SCHED_IDLE, then adopt its version (pointer poll).

        The child stages every result first; before its pointer flips, the users erased since
        the snapshot it maps are deleted at the new version (here, synchronously), and from then
        on every erasure purges that version too, so no reader ever sees an erased user's
        results there.
        """
        assert self.child is not None, "build_in_child needs a ChildJob"
        with self._build_lock:
            state = self.tier.state
            try:
                outcome = self.child.run(self.cfg, state.version if state else None,
                                         self._staged_in_child)
            finally:
                self._staged = None  # flipped (the pointer names it) or abandoned
            self.last_child = outcome
            self.poll_pointer()
            log.info("ann build %d (snapshot %d) published to %s by child process %d in "
                     "%.1f s:\n%s", outcome.version, outcome.snapshot_version, self.where,
                     outcome.pid, outcome.seconds, outcome.summary)
            return outcome

    def _staged_in_child(self, snapshot_version: int, version: int) -> None:
        self._staged = version  # first: an erasure from now on purges this version too
        self.forget.built(snapshot_version, version, now=True)

    def follow_erasures(self, graph: LiveGraph) -> None:
        """Delete the cached results of every user ``graph`` erases (``ann.forget``)."""
        graph.on_erase.append(self.forget.erased)
        graph.on_publish.append(lambda snap: self.forget.published(snap.version))

    def _readable_versions(self) -> set[int | None]:
        """Versions whose user keys someone may read: the pointer's, served, built here."""
        state = self.tier.state
        versions = {state.version if state is not None else None,
                    self.model.version if self.model is not None else None, self._staged}
        try:
            versions.add(parse_pointer(self.cache.get(self.keys.pointer,
                                                      self.cfg.build_timeout_s)))
        except (CacheError, PayloadError):
            self.metrics.error("get")
        return versions

    def poll_pointer(self) -> int | None:
        """Adopt the version the pointer names when it is not ours; returns that version."""
        try:
            version = parse_pointer(self.cache.get(self.keys.pointer, self.cfg.build_timeout_s))
            state = self.tier.state
            if version is None:
                return None
            if state is not None and version == state.version:
                if state.model is None:
                    self._adopt_grown(state)
                return version
            if self.model is not None and version == self.model.version:
                self.tier.install(ServingState.local(self.model, self.cfg.key_prefix))
                return version
            blob = self.cache.get(self.keys.at(version).items, self.cfg.build_timeout_s)
            if blob is None:
                return None
            names = decode_items(blob)
        except (CacheError, PayloadError) as exc:
            self.metrics.error("get")
            log.debug("ann pointer poll failed: %s", exc)
            return None
        local = self.graph.current.items.lookup_many(names).astype(np.int32)
        self.tier.install(ServingState(version, self.keys.at(version), local, self.model))
        log.info("ann: adopted version %d published elsewhere (%d items)", version, len(names))
        return version

    def _adopt_grown(self, state: ServingState) -> None:
        """Adopt the served version's item table when a fold grew it (``ann.fold_saved``)."""
        grown = grown_state(state, self.cache, self.cfg, self.graph.current)
        if grown is not None:
            self.tier.install(grown)
            log.info("ann: version %d grew to %d items (new items folded in)", state.version,
                     grown.to_local.shape[0])

    def start(self) -> None:
        """Build once the graph is loaded, then rebuild on schedule and poll the pointer."""
        self._worker.start()

    @property
    def running(self) -> bool:
        return self._worker.running

    def _run(self, stop: threading.Event) -> None:
        while not self.graph.ready:
            if self._stop.wait(0.2):
                return
        next_build = time.monotonic() if self.builds else float("inf")
        retry_s = 5.0
        # Folding needs the model, or the vectors a build child saved: a runtime that builds.
        fold_every = self.cfg.fold_new_items_s if self.builds else 0.0
        next_fold = time.monotonic() + fold_every
        if not self.builds:
            self.poll_pointer()  # adopt what is published before the first wait
        while not self._stop.is_set():
            if time.monotonic() >= next_build:
                interval = self.cfg.rebuild_interval_s
                try:
                    self.build()
                except Exception as exc:  # the previous version (if any) keeps serving
                    if self._stop.is_set():
                        return  # a child killed by stop(): nothing failed
                    self.metrics.error("other")
                    if isinstance(exc, ChildBuildFailed):  # its stderr says it all
                        log.error("ann build failed; retrying in %.0f s: %s", retry_s, exc)
                    else:
                        log.exception("ann build failed; retrying in %.0f s", retry_s)
                    # Retry soon, backing off: waiting a whole rebuild interval would leave a
                    # server whose first build failed without an ANN tier for that long.
                    next_build = time.monotonic() + min(retry_s, interval or retry_s)
                    retry_s = min(retry_s * 2, 300.0)
                else:
                    retry_s = 5.0
                    next_build = time.monotonic() + interval if interval else float("inf")
            if fold_every and time.monotonic() >= next_fold:
                try:
                    self.fold_new_items()
                except Exception:  # the build's vectors keep serving
                    log.exception("ann: folding new items failed")
                next_fold = time.monotonic() + fold_every
            wait = min(self.cfg.pointer_poll_s, max(next_build - time.monotonic(), 0.0))
            if self._stop.wait(wait):
                return
            if self.cache.backend != "memory":  # a store other processes publish to
                self.poll_pointer()

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop rebuilding. A build in progress is waited for up to ``timeout_s`` (default 30 s);
        past that it is left behind (a daemon thread: it dies with the process, and a version it
        had not switched on yet is never read, its keys expire). A build child is killed at
        once."""
        if self.child is not None:
            self.child.kill()
        self._worker.stop(timeout_s)
        self.forget.stop()
        if self.writer is not None:
            self.writer.close()
        self.cache.close()
