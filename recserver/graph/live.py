"""The live graph: ingest beside the hot path, atomic snapshot publication.

Writers call ``ingest`` (cheap: dedup and an append under a short lock). One publisher, a
background thread or an explicit ``publish()`` call, folds what arrived into the overlay and
publishes a new immutable ``GraphSnapshot`` by swapping a single reference, which is atomic in
CPython. Readers take ``live.current`` once per request and never lock; they see the previous or
the next snapshot, never a half-applied batch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from recserver.graph.compact import (
    BaseBuild,
    Sides,
    build_base,
    build_overlay,
    overlay_too_dense,
)
from recserver.graph.config import GraphConfig
from recserver.graph.events import EventColumns
from recserver.graph.prune import PruneReport
from recserver.graph.snapshot import GraphSnapshot
from recserver.graph.store import EdgeStore, IngestOutcome

log = logging.getLogger(__name__)


class LiveGraph:
    """Owns the edge store and the current snapshot."""

    def __init__(self, cfg: GraphConfig, store: EdgeStore | None = None) -> None:
        self.cfg = cfg
        self.store = store or EdgeStore(cfg)
        self._lock = threading.Lock()  # guards the store between ingest and publish
        self._publish_lock = threading.Lock()  # one publisher at a time
        self._base: Sides | None = None
        self._base_scale = 1.0
        self._t_ref = 0.0
        self.last_prune: PruneReport = PruneReport()
        self.last_compaction_s = 0.0
        self._version = 0
        self._current: GraphSnapshot | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_publish: list[Callable[[GraphSnapshot], None]] = []

    @property
    def current(self) -> GraphSnapshot:
        """The latest published snapshot (raises if nothing was published yet)."""
        snap = self._current
        if snap is None:
            raise RuntimeError("no snapshot published yet")
        return snap

    @property
    def ready(self) -> bool:
        return self._current is not None

    def ingest(self, cols: EventColumns) -> IngestOutcome:
        """Apply a validated batch to the store; visible after the next publish."""
        with self._lock:
            return self.store.ingest(cols)

    def publish(self, *, compact: bool = False) -> GraphSnapshot:
        """Fold new events in and publish a snapshot; compacts when the overlay grew too big."""
        with self._publish_lock:
            with self._lock:
                self.store.fold_incoming()
                pending = self.store.pending
                base_edges = self._base.users.nnz if self._base is not None else 0
            too_big = len(pending) > self.cfg.compact_overlay_fraction * max(base_edges, 1)
            if compact or self._base is None or too_big or overlay_too_dense(pending):
                self._compact()
            return self._publish_overlay()

    def _compact(self) -> None:
        with self._lock:
            main, pending = self.store.take_for_compaction()
            t_ref = self.store.max_ts if np.isfinite(self.store.max_ts) else 0.0
            scale = self.store.scale_at(t_ref)
            n_users, n_items = len(self.store.users), len(self.store.items)
        built: BaseBuild = build_base(
            main, pending, self.cfg, scale=scale, t_ref=t_ref, n_users=n_users, n_items=n_items
        )
        with self._lock:
            self.store.install_main(built.merged)
        self._base, self._base_scale, self._t_ref = built.sides, scale, t_ref
        self.last_prune, self.last_compaction_s = built.report, built.seconds
        log.info("compacted base in %.2fs: %s", built.seconds, built.report.summary())

    def _publish_overlay(self) -> GraphSnapshot:
        assert self._base is not None
        with self._lock:
            pending = self.store.pending
            n_users, n_items = len(self.store.users), len(self.store.items)
        overlay = build_overlay(
            pending, scale=self._base_scale, n_users=n_users, n_items=n_items
        )
        base = self._base
        degree = np.zeros(n_items, dtype=np.int32)
        degree[: base.items.n_rows] += np.diff(base.items.indptr).astype(np.int32)
        degree += np.diff(overlay.items.indptr).astype(np.int32)
        self._version += 1
        snap = GraphSnapshot(
            version=self._version,
            users=self.store.users,
            items=self.store.items,
            base_users=base.users,
            base_items=base.items,
            over_users=overlay.users,
            over_items=overlay.items,
            item_degree=degree,
            t_ref=self._t_ref,
            built_at=time.time(),
            stats={"overlay_edges": float(len(pending))},
        )
        self._current = snap  # the atomic swap readers rely on
        for callback in self.on_publish:
            callback(snap)
        return snap

    def start(self) -> None:
        """Publish every ``publish_interval_s`` in a daemon thread while new events arrive."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="graph-publisher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.cfg.publish_interval_s):
            try:
                if self.store.incoming_events or self._current is None:
                    self.publish()
            except Exception:  # keep publishing later; the old snapshot keeps serving
                log.exception("snapshot publish failed; the previous snapshot keeps serving")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
