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
from dataclasses import replace

import numpy as np

from recserver.catalog.items import ItemUpdate
from recserver.catalog.state import CatalogState
from recserver.core.background import BackgroundWorker
from recserver.graph.compact import (
    BaseBuild,
    Sides,
    build_base,
    build_overlay,
    overlay_too_dense,
)
from recserver.graph.config import GraphConfig
from recserver.graph.dedup import U64
from recserver.graph.erasure import drop_users
from recserver.graph.events import EventColumns
from recserver.graph.heap import release_free_heap
from recserver.graph.prune import PruneReport
from recserver.graph.snapshot import CsrSide, GraphSnapshot
from recserver.graph.store import EdgeRun, EdgeStore, IngestOutcome, StoreState, merge_runs
from recserver.graph.trending import TrendingCounters, count_columns, seed_from_runs

log = logging.getLogger(__name__)


class LiveGraph:
    """Owns the edge store and the current snapshot.

    Compaction (rebuilding the compact base with pruning) runs in its own thread when the overlay
    outgrows ``compact_overlay_fraction`` of the base; meanwhile overlay publishes go on against
    the old base, so new events stay visible within a publish interval. The first build, and
    ``publish(compact=True)``, compact synchronously.
    """

    def __init__(
        self, cfg: GraphConfig, store: EdgeStore | None = None, *, first_version: int = 1
    ) -> None:
        """``first_version``: the version of the first publish (a restarted builder continues
        past what it published before, so versions only grow)."""
        self.cfg = cfg
        self.store = store or EdgeStore(cfg)
        self._ingest_lock = threading.Lock()  # one ingest at a time (dedup index, id maps)
        self._publish_lock = threading.Lock()  # one publisher at a time
        self._base: Sides | None = None
        self._base_lock = threading.Lock()  # swaps of ``_base`` (install, adopt_base)
        self._base_scale = 1.0
        self._t_ref = 0.0
        self._compacting: EdgeRun | None = None  # pending edges a running compaction absorbs
        self._compaction: BackgroundWorker | None = None
        self.last_prune: PruneReport = PruneReport()
        self.last_compaction_s = 0.0
        self.compactions = 0
        self._version = first_version - 1
        self._current: GraphSnapshot | None = None
        self._wake = threading.Event()  # set by an ingest that accepted events
        self._publisher = BackgroundWorker("graph-publisher", self._run, wake=self._wake.set)
        self._stop = self._publisher.stop_event
        # When the oldest accepted-but-unpublished event arrived (monotonic), and how long
        # publishes take: the publisher starts early enough to show it within the interval.
        self._oldest_unpublished: float | None = None
        self._publish_s = 0.0
        self.on_publish: list[Callable[[GraphSnapshot], None]] = []
        #: Called after every ``ingest`` with the batch and its outcome, outside the locks (online
        #: quality matches later events against served answers); exceptions are logged only.
        self.on_ingest: list[Callable[[EventColumns, IngestOutcome], None]] = []
        #: The event-log position everything ingested so far reaches (None: not from a log).
        self.applied_position: str | None = None
        #: Events applied (accepted by the store) since the graph began, checkpoints included.
        self.events_applied = 0
        self._ingest_seq = 0  # ingest calls so far
        #: Called with the user ids of every applied erasure (found or not), before any publish
        #: shows it, holding the graph's locks: listeners only take note (the ANN runtime
        #: queues the deletion of their cached results); exceptions are logged only.
        self.on_erase: list[Callable[[list[str]], None]] = []
        # Erased users whose edges the current base still holds: the next publish rebuilds it.
        self._erase_pending = False
        # Ids erased while a background compaction ran on the runs from before: filtered out of
        # what it installs (or hands back when it fails).
        self._erased_in_flight: list[np.ndarray] = []
        self._folded_seq = 0  # every ingest call up to this one is in the latest snapshot
        self._folded_position = ""  # ... and the event-log position the last of them reached
        #: the item catalogue (hidden, expiry, categories), applied from the log like events
        self.catalog = CatalogState()
        #: decayed per-item event counts for the trending tier (set before the first ingest by
        #: whoever serves a surface that uses it); each snapshot carries them at its newest event
        self.trending: TrendingCounters | None = None

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

    def ingest(
        self,
        cols: EventColumns,
        *,
        event_keys: U64 | None = None,
        log_position: str | None = None,
    ) -> IngestOutcome:
        """Apply a validated batch to the store; visible after the next publish.

        ``log_position``: the event-log position this batch brings the graph to (recorded with
        the batch, atomically, for checkpoints). ``event_keys``: see ``EdgeStore.ingest``.
        """
        target = self.store.rebase_target(cols.timestamp)
        if target is not None:
            self._rebase_epoch(target)
        with self._ingest_lock:
            outcome = self.store.ingest(cols, event_keys=event_keys)
            self.events_applied += outcome.n_accepted
            if self.trending is not None:
                count_columns(self.trending, self.store.items, cols, outcome.accepted)
            if log_position is not None:
                self.applied_position = log_position
            self._ingest_seq += 1
        if outcome.n_accepted:
            if self._oldest_unpublished is None:
                self._oldest_unpublished = time.monotonic()
            self._wake.set()
        for callback in self.on_ingest:
            try:
                callback(cols, outcome)
            except Exception:  # a listener must never fail an ingest
                log.exception("on_ingest listener failed")
        return outcome

    def update_items(self, updates: list[ItemUpdate], *, log_position: str | None = None) -> None:
        """Apply catalogue updates (validated); visible after the next publish.

        An item first described here gets its graph id now, before any event names it.
        """
        with self._ingest_lock:
            ids = self.store.items.add_many([u.item_id for u in updates])
            self.catalog.apply(ids, updates)
            if log_position is not None:
                self.applied_position = log_position
            self._ingest_seq += 1
        if updates:
            if self._oldest_unpublished is None:
                self._oldest_unpublished = time.monotonic()
            self._wake.set()

    def _rebase_epoch(self, t0: float) -> None:
        """Move the store's decay epoch to ``t0`` (active time) with no compaction, publish or
        ingest running."""
        with self._publish_lock:
            while self._compaction is not None:  # a compaction holds runs in the old epoch
                self._join_compaction()
            with self._ingest_lock:
                self.store.rebase(t0)
                self._base_scale = self.store.scale_at(self._t_ref)
        log.info("moved the time-decay epoch forward to %.0f (active time; %.0f days of dead "
                 "gaps skipped)", t0, self.store.clock.skipped_s / 86_400.0)

    @property
    def ingest_seq(self) -> int:
        """Ingest calls so far; a snapshot's ``stats["ingest_seq"]`` says how many it holds."""
        return self._ingest_seq

    def mark_position(self, log_position: str) -> None:
        """Move the applied position past log records that held nothing to apply."""
        with self._ingest_lock:
            self.applied_position = log_position

    def erase_users(self, user_ids: list[str], *, log_position: str | None = None) -> int:
        """Erase ``user_ids`` (``EdgeStore.erase_users``); returns how many were in the graph.

        Their edges leave the store at once and every snapshot from the next publish on, which
        rebuilds the compact base (the old base still holds them); ``log_position``: the erasure
        record's position, as for ``ingest``. Idempotent: unknown or erased users are skipped.
        """
        with self._publish_lock, self._ingest_lock:
            ids = self.store.erase_users(user_ids)
            if ids.shape[0]:
                self._erase_pending = True
                if self._compacting is not None:
                    self._compacting = drop_users(self._compacting, ids)
                if self._compaction is not None:
                    self._erased_in_flight.append(ids)
            if log_position is not None:
                self.applied_position = log_position
            self._ingest_seq += 1
            # Told before any publish can show the erasure (listeners only take note).
            for callback in self.on_erase:
                try:
                    callback(list(user_ids))
                except Exception:  # a listener must never fail an erasure
                    log.exception("on_erase listener failed")
        # A publish makes the erasure (and its log position) visible even when nothing changed.
        if self._oldest_unpublished is None:
            self._oldest_unpublished = time.monotonic()
        self._wake.set()
        log.info("erased %d of %d users at log position %s", ids.shape[0], len(user_ids),
                 log_position)
        return int(ids.shape[0])

    def _without_erased_in_flight(self, run: EdgeRun) -> EdgeRun:
        for ids in self._erased_in_flight:
            run = drop_users(run, ids)
        return run

    def seen(self, cols: EventColumns, event_keys: U64 | None = None) -> np.ndarray:
        """Mask of events already applied (duplicates), assigning no ids."""
        with self._ingest_lock:
            return self.store.seen(cols, event_keys)

    def capture_state(self) -> StoreState:
        """A consistent view of the store for a checkpoint; cheap (references, no copies).

        Holds both locks for the moment it takes: no ingest and no publish runs meanwhile, so
        the edges, dedup keys, id maps and ``applied_position`` all describe the same point.
        """
        with self._publish_lock, self._ingest_lock:
            store = self.store
            main, pending, incoming = store.state_parts()
            compacting = (self._compacting,) if self._compacting is not None else ()
            return StoreState(
                main=main, delta=(*compacting, pending, *incoming),
                dedup_runs=store.dedup.runs_view(), users=store.users, items=store.items,
                n_users=len(store.users), n_items=len(store.items), t0=store.t0,
                max_ts=store.max_ts, log_position=self.applied_position,
                events_applied=self.events_applied, catalog=self.catalog.view(),
                clock=store.clock,
            )

    def restore_state(self, state: StoreState) -> None:
        """Adopt a checkpoint (before the first publish); the next publish compacts it."""
        with self._publish_lock, self._ingest_lock:
            if self._current is not None:
                raise RuntimeError("restore_state must come before the first publish")
            self.store.restore(state)
            if self.trending is not None:  # a checkpoint has edges, not events: seed from them
                seed_from_runs(self.trending, state.main, state.delta)
            if state.catalog is not None:
                self.catalog = CatalogState.from_view(state.catalog)
            self.applied_position = state.log_position
            self.events_applied = state.events_applied

    def publish(self, *, compact: bool = False) -> GraphSnapshot:
        """Fold new events in and publish a snapshot; its ``log_position`` is the event-log
        position it makes visible, set before any ``on_publish`` listener sees it (so their
        order does not matter).

        ``compact=True`` rebuilds the base now (waiting for a background compaction first);
        otherwise a compaction starts in the background when the overlay has grown too big.
        """
        if compact:
            self.wait_for_compaction()
        with self._publish_lock:
            with self._ingest_lock:  # read first, together: every ingest up to seq is in
                # this fold, and position is where the last of them left the log
                seq, position = self._ingest_seq, self.applied_position
            self._oldest_unpublished = None  # before the fold: later arrivals set it anew
            self.store.fold_incoming()
            self._folded_seq = seq
            self._folded_position = position or ""
            overlay = self._overlay_run()
            # A base far behind the newest event would give overlay weights past float32.
            stale = self.store.base_stale(self._t_ref)
            rebuilt = (compact or self._base is None or stale or self._erase_pending
                       or overlay_too_dense(overlay))
            if rebuilt:
                self._join_compaction()
                self._install(self._build_base())
                self._erase_pending = False  # the build ran after every erasure so far
            elif self._compaction is None and len(overlay) > self._compact_threshold():
                self._start_compaction()
            snap = self._publish_overlay()
        if rebuilt:
            # The build's temporaries, the old base, and a private base a listener swapped
            # for its published mapping (``adopt_base``) are garbage: give their heap back.
            release_free_heap()
        return snap

    def fold_pending(self) -> bool:
        """Fold accepted events into the pending run without publishing, as ``publish`` folds
        first; True when a publish now would rebuild the base or start a compaction. A caller
        that skips publishes nobody reads (replay) folds at each skipped one and publishes where
        this says so, so the base is cut exactly where publishing every time would cut it."""
        with self._publish_lock:
            self.store.fold_incoming()
            overlay = self._overlay_run()
            return bool(self._base is None or self.store.base_stale(self._t_ref)
                        or self._erase_pending or overlay_too_dense(overlay)
                        or (self._compaction is None
                            and len(overlay) > self._compact_threshold()))

    def _compact_threshold(self) -> float:
        base_edges = self._base.users.nnz if self._base is not None else 0
        return self.cfg.compact_overlay_fraction * max(base_edges, 1)

    def _overlay_run(self) -> EdgeRun:
        """Edges the current base lacks: those being compacted plus those since."""
        if self._compacting is None:
            return self.store.pending
        return merge_runs(self._compacting, self.store.pending)

    def _build_base(self) -> BaseBuild:
        main, pending = self.store.take_for_compaction()
        if self._compacting is not None:
            pending = merge_runs(self._compacting, pending)
        self._compacting = pending
        t_ref = self.store.max_ts if np.isfinite(self.store.max_ts) else 0.0
        return build_base(
            main, pending, self.cfg, scale=self.store.scale_at(t_ref), t_ref=t_ref,
            n_users=len(self.store.users), n_items=len(self.store.items),
        )

    def _install(self, built: BaseBuild) -> None:
        """Adopt a new base (publish lock held)."""
        self.store.install_main(self._without_erased_in_flight(built.merged))
        self._erased_in_flight = []
        with self._base_lock:
            self._base, self._t_ref = built.sides, built.t_ref
        self._base_scale = self.store.scale_at(built.t_ref)
        self._compacting = None
        self.last_prune, self.last_compaction_s = built.report, built.seconds
        self.compactions += 1
        log.info("compacted base in %.2fs: %s", built.seconds, built.report.summary())

    def adopt_base(self, written: CsrSide, users: CsrSide, items: CsrSide) -> bool:
        """Serve ``users`` and ``items`` in place of the current base when its users side is
        ``written``: the same base, read back from where it was published (memory-mapped
        files), so this process stops holding a private copy. True when adopted; False when
        another base was installed meanwhile (its own publish is adopted in turn).

        The current snapshot is swapped for one with the mapped base (same version, same
        data), so the private arrays go as soon as no reader holds the old snapshot.
        """
        with self._base_lock:
            base = self._base
            if base is None or base.users is not written:
                return False
            if (users.nnz, users.n_rows, items.nnz, items.n_rows) != (
                    written.nnz, written.n_rows, base.items.nnz, base.items.n_rows):
                log.warning("a published base read back does not match the base it was "
                            "written from; keeping the private copy")
                return False
            self._base = Sides(users=users, items=items)
            current = self._current
            if current is not None and current.base_users is written:
                self._current = replace(current, base_users=users, base_items=items)
        return True

    def _start_compaction(self) -> None:
        """Build the next base in a thread; overlays keep publishing meanwhile."""
        main, pending = self.store.take_for_compaction()
        self._compacting = pending
        t_ref = self.store.max_ts if np.isfinite(self.store.max_ts) else 0.0
        sizes = (len(self.store.users), len(self.store.items))
        inputs = [main, pending]  # the thread's only references: dropped once installed
        del main, pending

        def run() -> None:
            try:
                built = build_base(inputs[0], inputs[1], self.cfg, scale=self.store.scale_at(t_ref),
                                   t_ref=t_ref, n_users=sizes[0], n_items=sizes[1])
            except Exception:  # the old base keeps serving; the edges stay in the overlay
                log.exception("background compaction failed; the previous base keeps serving")
                with self._publish_lock:
                    self.store.pending = merge_runs(self._without_erased_in_flight(inputs[1]),
                                                    self.store.pending)
                    self.store.install_main(self._without_erased_in_flight(inputs[0]))
                    self._erased_in_flight = []
                    self._compacting = None
                    self._compaction = None
                return
            inputs.clear()
            with self._publish_lock:
                self._install(built)
                self._compaction = None
                if not self._erase_pending:  # else this base still holds erased users' edges:
                    self._publish_overlay()  # the next publish rebuilds it
            del built
            # The old base and edge run, and the build's temporaries, are garbage now: hand
            # the heap they leave back, or a long-running builder keeps its largest compaction.
            release_free_heap()

        self._compaction = BackgroundWorker("graph-compaction", lambda stop: run())
        self._compaction.start()

    def _join_compaction(self) -> None:
        """Called with the publish lock held: let a running compaction finish first."""
        thread = self._compaction
        if thread is None:
            return
        self._publish_lock.release()
        try:
            thread.join()
        finally:
            self._publish_lock.acquire()

    def wait_for_compaction(self, timeout: float | None = None) -> bool:
        """Block until no background compaction runs; True if none is left running."""
        thread = self._compaction
        if thread is not None:
            thread.join(timeout)
        return self._compaction is None

    def _publish_overlay(self) -> GraphSnapshot:
        assert self._base is not None
        pending = self._overlay_run()
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
            stats={"overlay_edges": float(len(pending)), "ingest_seq": float(self._folded_seq)},
            log_position=self._folded_position,
            catalog=self.catalog.view(),
            trending=(self.trending.at(self.store.max_ts, n_items)
                      if self.trending is not None else {}),
        )
        self._current = snap  # the atomic swap readers rely on
        for callback in self.on_publish:
            callback(snap)
        # A listener may have swapped in the same snapshot with a mapped base (adopt_base):
        # hand that on, so no caller keeps the private arrays alive.
        return self._current

    def start(self) -> None:
        """Publish in a daemon thread, each new event within ``publish_interval_s`` (see _run)."""
        self._publisher.start()

    def _run(self, stop: threading.Event) -> None:
        """Publish so that every accepted event is visible within ``publish_interval_s``.

        The clock starts when the oldest unpublished event is accepted; the publish starts
        early by the (learned) time a publish takes. Under steady ingest that is one publish a
        little under every interval; an idle graph publishes nothing.
        """
        interval = self.cfg.publish_interval_s
        while not self._stop.is_set():
            oldest = self._oldest_unpublished
            if oldest is None and self._current is not None:
                self._wake.wait(interval)
                self._wake.clear()
                continue
            if oldest is not None:
                # Start early by the publish time, plus 5% of the interval for the way from
                # the event log to this graph (tail read, ingest call) the clock did not see,
                # plus a serving worker's poll of the published manifest (MappedGraph, 20 ms).
                lead = min(self._publish_s * 1.2 + 0.05 * interval + 0.025, interval / 2)
                delay = oldest + interval - lead - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
            began = time.monotonic()
            try:
                self.publish()
            except Exception:  # keep publishing later; the old snapshot keeps serving
                log.exception("snapshot publish failed; the previous snapshot keeps serving")
                self._stop.wait(interval)  # no hot loop while the failure lasts
                continue
            took = time.monotonic() - began
            # Quick to rise (a late publish breaks the promise), slow to fall.
            self._publish_s += (0.5 if took > self._publish_s else 0.1) * (took - self._publish_s)

    def stop(self) -> None:
        self._publisher.stop()
        self.wait_for_compaction(timeout=60)
