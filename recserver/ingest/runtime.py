"""Real-time ingest as the App runs it: the log, the recorder, the tailer and the checkpointer.

Start order (``App.load``): :meth:`IngestRuntime.restore` (newest checkpoint, if any) or the
caller's bootstrap; :meth:`catch_up` (replay the log from the graph's position); the first
publish; :meth:`start` (tailer and checkpointer threads; ``RecordEvents`` opens). Stop order:
``RecordEvents`` closes, the tailer stops, a final checkpoint, the log closes.

The servicer calls :meth:`record_events`, :meth:`update_items`, :meth:`delete_user`,
:meth:`status`, :meth:`describe_user` and :meth:`describe_items`.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recserver.catalog.describe import ItemStates, describe_items
from recserver.catalog.items import ItemUpdate
from recserver.catalog.recorder import ItemRecorder, ItemsOutcome
from recserver.core.errors import Unavailable
from recserver.eventlog.base import START, EventLog, LogUnavailable, Position
from recserver.eventlog.erasure_ledger import open_ledger
from recserver.eventlog.registry import choose, describe, open_log
from recserver.graph.arrayops import member_of_sorted, unique_inverse
from recserver.graph.dedup import id_keys
from recserver.graph.live import LiveGraph
from recserver.graph.source import SnapshotSource
from recserver.ingest.checkpoint import CheckpointStore
from recserver.ingest.config import IngestConfig
from recserver.ingest.eraser import Erasure, UserEraser
from recserver.ingest.recorder import EventRecorder, EventRows, RecordOutcome
from recserver.ingest.recovery import Checkpointer, Restored, restore_latest
from recserver.ingest.tailer import LogTailer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestStatus:
    """This replica's ingest state (``GetIngestStatus``)."""

    backend: str  # "file", "redis" or "off"
    where: str
    ready: bool
    applied_position: str
    visible_position: str
    events_applied: int
    snapshot_version: int
    apply_lag_s: float
    last_error: str
    checkpoint_position: str
    checkpoint_at: float


@dataclass(frozen=True)
class UserEdges:
    """A user's edges in the current snapshot, merged per item, strongest first."""

    found: bool
    item_ids: list[str]
    weights: list[float]
    snapshot_version: int


class IngestRuntime:
    """Owns the event log and everything that reads or writes it for one server."""

    def __init__(
        self,
        cfg: IngestConfig,
        graph: LiveGraph,
        *,
        url_flag: str | None = None,
        data_dir: str | Path | None = None,
        metrics: Any = None,
        origin: str | None = None,
    ) -> None:
        self.cfg = cfg
        self.graph = graph
        self.metrics = metrics
        self.choice = choose(cfg, url_flag=url_flag, data_dir=data_dir)
        self.log: EventLog | None = open_log(self.choice, cfg)
        log.info("event log: %s", describe(self.choice))
        self.checkpoints: CheckpointStore | None = None
        if self.log is not None and self.choice.checkpoint_dir is not None:
            self.checkpoints = CheckpointStore(self.choice.checkpoint_dir, cfg.checkpoint.keep)
        self.tailer: LogTailer | None = None
        self.checkpointer: Checkpointer | None = None
        self.restored: Restored | None = None
        self.recorder = EventRecorder(
            graph, self.log, weights=graph.cfg.event_weights, max_batch=cfg.max_batch_events,
            max_id_chars=cfg.max_id_chars, applied_position=self._applied_position,
            origin=origin or f"{socket.gethostname()}:{os.getpid()}",
            off_reason=f"RecordEvents is off on this server ({self.choice.why})",
            observer=metrics,
        )
        self.items = ItemRecorder(
            self.log, origin=self.recorder.origin, ready=lambda: self.recorder.ready,
            off_reason=self.recorder.off_reason, on_error=self._append_error,
        )
        self.ledger = open_ledger(self.choice, cfg)
        self.eraser = UserEraser(
            graph, self.log, self.recorder, max_id_chars=cfg.max_id_chars,
            origin=self.recorder.origin,
            off_reason=f"DeleteUser is off on this server ({self.choice.why})",
            ledger=self.ledger,
        )

    @property
    def enabled(self) -> bool:
        return self.log is not None

    def _applied_position(self) -> Position:
        return self.tailer.position if self.tailer is not None else START

    def lag_seconds(self) -> float:
        """The tailer's apply lag (``metrics.Metrics.watch_ingest`` reads it at scrape time)."""
        return self.tailer.lag_seconds() if self.tailer is not None else 0.0

    # -- start and stop ------------------------------------------------------------------------

    def restore(self) -> Restored | None:
        """Load the newest checkpoint into the graph; None when there is none (bootstrap)."""
        if self.checkpoints is None:
            return None
        self.restored = restore_latest(self.graph, self.checkpoints)
        return self.restored

    def erase_ledgered(self) -> int:
        """Erase the bootstrapped users the erasure ledger names (before ``catch_up``); returns
        how many. Raises ``Unavailable`` when the ledger cannot be read: serving the bootstrap
        data without it could bring erased users back."""
        if self.ledger is None:
            return 0
        hashes = self.ledger.hashes()
        n = len(self.graph.store.users)
        if not hashes.shape[0] or not n:
            return 0
        names = self.graph.store.users.names(range(n))
        hit = member_of_sorted(hashes, id_keys(names))
        erased = [names[i] for i in np.flatnonzero(hit).tolist()]
        if erased:
            self.graph.erase_users(erased)
            log.info("erased %d users of the bootstrap data named by the erasure ledger",
                     len(erased))
        return len(erased)

    def catch_up(self) -> int:
        """Replay the log from the graph's position; returns the events read (0 when off)."""
        if self.log is None:
            return 0
        self.tailer = LogTailer(
            self.log, self.graph, observer=self.metrics, block_s=self.cfg.tail_block_ms / 1e3,
            max_events=self.cfg.tail_max_events,
        )
        try:
            warning = self.log.check_position(self.tailer.position)
            if warning:
                log.error("event log gap: %s", warning)
            replayed = self.tailer.catch_up()
            self.graph.mark_position(str(self.tailer.position))  # also when nothing was read
        except LogUnavailable as exc:
            log.warning("event log unreachable at start (%s); serving the recovered graph, the "
                        "tailer keeps retrying", exc)
            return 0
        log.info("event log replayed: %d events up to %s", replayed, self.tailer.position)
        return replayed

    def start(self) -> None:
        """Tail in the background, checkpoint periodically, open ``RecordEvents``."""
        if self.tailer is None:
            return
        self.tailer.start()
        if self.checkpoints is not None:
            self.checkpointer = Checkpointer(
                self.graph, self.checkpoints, self.log,
                interval_s=self.cfg.checkpoint.interval_s, observer=self.metrics,
                extra={"log_backend": self.choice.backend, "log": self.log.where
                       if self.log is not None else None},
            )
            if self.restored is not None and self.tailer.position == Position.parse(
                self.restored.position or str(START)
            ):
                self.checkpointer.mark_current(self.restored.position,
                                               self.restored.events_applied)
            self.checkpointer.start()
        self.recorder.ready = True

    def stop(self) -> None:
        self.recorder.ready = False
        if self.tailer is not None:
            self.tailer.stop()
        if self.checkpointer is not None:
            self.checkpointer.stop(final=True)
        if self.log is not None:
            self.log.close()

    # -- what the servicer calls ---------------------------------------------------------------

    def record_events(self, rows: EventRows) -> RecordOutcome:
        return self.recorder.record(rows)

    def update_items(self, updates: list[ItemUpdate]) -> ItemsOutcome:
        return self.items.update(updates)

    def _append_error(self, error: str | None) -> None:
        self.recorder.last_append_error = error

    def delete_user(self, user_id: str) -> Erasure:
        return self.eraser.erase(user_id)

    def status(self) -> IngestStatus:
        snap = self.graph.current if self.graph.ready else None
        tailer, ckpt = self.tailer, self.checkpointer
        return IngestStatus(
            backend=self.choice.backend or "off",
            where=self.log.where if self.log is not None else self.choice.why,
            ready=self.recorder.ready,
            applied_position=str(tailer.position) if tailer else "",
            visible_position=str(tailer.visible_position) if tailer else "",
            events_applied=self.graph.events_applied,
            snapshot_version=snap.version if snap is not None else 0,
            apply_lag_s=tailer.lag_seconds() if tailer else 0.0,
            # Reading the log first (the graph falls behind), then appending, then checkpoints.
            last_error=(tailer.last_error if tailer else None) or self.recorder.last_append_error
            or (ckpt.last_error if ckpt else None) or "",
            # Until the next checkpoint, the one restored at start is the recovery point.
            checkpoint_position=((ckpt.last_position if ckpt else None)
                                 or (self.restored.position if self.restored else None) or ""),
            checkpoint_at=(ckpt.last_at or 0.0) if ckpt else 0.0,
        )

    def describe_user(self, user_id: str, limit: int = 0) -> UserEdges:
        return describe_user(self.graph, user_id, limit)

    def describe_items(self, item_ids: list[str]) -> ItemStates:
        return describe_items(self.graph, item_ids)


def describe_user(graph: SnapshotSource, user_id: str, limit: int = 0) -> UserEdges:
    """A user's edges in ``graph``'s current snapshot, merged per item, strongest first."""
    if not graph.ready:
        raise Unavailable("the graph is still loading; retry shortly")
    snap = graph.current
    # A blank id names no user: erased users' id slots carry blank placeholder names.
    user = snap.users.get(user_id) if user_id.strip() else None
    if user is None or user >= snap.n_users:
        return UserEdges(False, [], [], snap.version)
    items, weights = snap.user_items(user)
    if items.shape[0] == 0:
        return UserEdges(True, [], [], snap.version)
    distinct, inverse = unique_inverse(items)
    total = np.bincount(inverse, weights=weights.astype(np.float64), minlength=len(distinct))
    order = np.argsort(-total, kind="stable")
    if limit > 0:
        order = order[:limit]
    return UserEdges(True, snap.items.names(distinct[order].tolist()),
                     total[order].tolist(), snap.version)
