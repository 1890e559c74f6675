"""Restart recovery: periodic checkpoints, and at start the newest checkpoint plus the log after it.

At start (``recover``): load the newest checkpoint into the graph (edge store, dedup keys, id
maps, log position); without one, the caller bootstraps the graph from its event file or
synthetic data as before. Either way the tailer then replays the log from the graph's position
(the start of the log without a checkpoint) before the server reports SERVING. Replaying is
idempotent: every event key is in the dedup index, so a record applied before a crash and
replayed after it counts once.

While serving, a :class:`Checkpointer` saves a checkpoint every ``checkpoint.interval_s`` (when
something was applied since the last one) and once more on a clean stop; after each, the file
log deletes the segments the oldest kept checkpoint no longer needs. Capturing the state holds
the graph's locks only to take references; writing happens outside them, off the request path.

What a crash can lose: nothing acknowledged. An event is acknowledged only once durable in the
log, and everything after the checkpoint's position is replayed from the log.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recserver.core.background import periodic
from recserver.eventlog.base import EventLog, Position
from recserver.graph.live import LiveGraph
from recserver.ingest.checkpoint import CheckpointStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Restored:
    """What ``restore_latest`` loaded."""

    folder: Path
    position: str | None
    events_applied: int
    edges: int
    seconds: float


def restore_latest(graph: LiveGraph, checkpoints: CheckpointStore) -> Restored | None:
    """Load the newest usable checkpoint into ``graph`` (before its first publish)."""
    started = time.perf_counter()
    latest = checkpoints.load_latest()
    if latest is None:
        return None
    state, folder = latest
    graph.restore_state(state)
    edges = len(state.main) + sum(len(r) for r in state.delta)
    restored = Restored(folder, state.log_position, state.events_applied, edges,
                        time.perf_counter() - started)
    log.info("restored checkpoint %s: %d events applied, %d edge entries, log position %s "
             "(%.2fs)", folder.name, restored.events_applied, edges, restored.position,
             restored.seconds)
    return restored


class CheckpointObserver:
    def checkpoint(self, ok: bool, seconds: float, at: float) -> None:
        pass


class Checkpointer:
    """Saves checkpoints of ``graph`` periodically and on stop; trims the log behind them."""

    def __init__(
        self,
        graph: LiveGraph,
        checkpoints: CheckpointStore,
        log_: EventLog | None,
        *,
        interval_s: float,
        observer: CheckpointObserver | Any = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self._graph = graph
        self._store = checkpoints
        self._log = log_
        self._interval = interval_s
        self._observer = observer or CheckpointObserver()
        self._extra = extra or {}
        self._lock = threading.Lock()
        self._last: tuple[str | None, int] | None = None
        self.last_folder: Path | None = None
        self.last_position: str | None = None
        self.last_at: float | None = None
        #: Why the last checkpoint failed, until one succeeds (``GetIngestStatus.last_error``).
        self.last_error: str | None = None
        # A failed save is logged by the worker and retried at the next interval.
        self._worker = periodic("checkpointer", self._interval, self.save_now,
                                join_timeout_s=60.0)

    def mark_current(self, position: str | None, events_applied: int) -> None:
        """The graph as restored is already checkpointed: skip saving it again unchanged."""
        self._last = (position, events_applied)

    def save_now(self, *, force: bool = False) -> Path | None:
        """Checkpoint now (unless nothing changed since the last one); None when skipped/failed."""
        with self._lock:
            state = self._graph.capture_state()
            key = (state.log_position, state.events_applied)
            if not force and key == self._last:
                return None
            started = time.perf_counter()
            try:
                folder = self._store.save(state, self._extra)
            except OSError as exc:
                self._observer.checkpoint(False, time.perf_counter() - started, time.time())
                self.last_error = self._skipped(state.log_position, exc)
                # An expected operational failure (disk full, read-only): the message says what
                # was skipped and what a restart does instead; a traceback would add nothing.
                log.error("%s", self.last_error)
                return None
            self.last_error = None
            seconds = time.perf_counter() - started
            self._last = key
            self.last_folder, self.last_position, self.last_at = folder, state.log_position, \
                time.time()
            self._observer.checkpoint(True, seconds, self.last_at)
            log.info("checkpoint %s at log position %s (%d events applied) in %.2fs",
                     folder.name, state.log_position, state.events_applied, seconds)
            self._trim_log()
            return folder

    def _skipped(self, position: str | None, exc: OSError) -> str:
        """What a failed checkpoint leaves undone, for the log and ``GetIngestStatus``."""
        reason = exc.strerror or str(exc)
        where = f"{exc.filename}: " if exc.filename else ""
        if self.last_folder is not None:
            previous = (f"the previous checkpoint {self.last_folder.name} (log position "
                        f"{self.last_position}) stays the recovery point")
        else:
            previous = "no checkpoint of this process stands; the newest older one, if any, stays"
        return (f"checkpoint at log position {position} skipped ({where}{reason}); {previous}, "
                "and a restart replays the event log from there (nothing acknowledged is lost)")

    def _trim_log(self) -> None:
        if self._log is None:
            return
        oldest = self._store.oldest_position()
        if oldest is None:
            return
        try:
            self._log.trim_before(Position.parse(oldest))
        except (OSError, ValueError):
            log.exception("trimming the event log failed (it only grows; nothing is lost)")

    def start(self) -> None:
        self._worker.start()

    def stop(self, *, final: bool = True) -> None:
        """Stop the thread; ``final`` saves one last checkpoint (a clean shutdown)."""
        self._worker.stop()
        if final:
            self.save_now()
