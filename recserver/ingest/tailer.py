"""Applying the event log to this replica's graph: read, decode, ingest, in log order.

Every server runs one tailer, the server that appended a record included: the log is the only
way an event reaches a graph, so all replicas apply the same records in the same order and
converge. A read blocks briefly (``tail_block_ms``) and a new record wakes it at once (a Redis
``XREAD BLOCK`` returns on ``XADD``; the file log notifies its in-process readers), so the apply
delay is a few milliseconds; what is applied becomes visible at the next snapshot publish.

Several records are decoded and concatenated into one ``ingest`` call (up to ``max_events``),
which amortises dedup and id-map work while catching up after a restart. A record that does not
decode is logged, counted and skipped (its position is still passed), so one bad entry never
stalls the replica. The position is handed to the graph with each batch, atomically, so a
checkpoint always pairs the graph with the exact position it reflects.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from recserver.catalog.codec import CatalogRecordError, decode_updates, is_catalog_record
from recserver.core.background import BackgroundWorker
from recserver.eventlog.base import START, EventLog, LogRecord, LogUnavailable, Position
from recserver.eventlog.codec import LogBatch, RecordFormatError, concat_batches, decode_batch
from recserver.eventlog.erasure_codec import decode_erasure, is_erasure
from recserver.graph.live import LiveGraph
from recserver.graph.snapshot import GraphSnapshot

log = logging.getLogger(__name__)


class ApplyObserver(Protocol):
    """What the tailer reports (``metrics.IngestMetrics`` implements it)."""

    def applied(self, accepted: int, duplicates: int) -> None: ...
    def apply_delay(self, seconds: float) -> None: ...
    def visible_delay(self, seconds: float) -> None: ...
    def log_error(self, op: str) -> None: ...


class NullApplyObserver:
    def applied(self, accepted: int, duplicates: int) -> None:
        pass

    def apply_delay(self, seconds: float) -> None:
        pass

    def visible_delay(self, seconds: float) -> None:
        pass

    def log_error(self, op: str) -> None:
        pass


class LogTailer:
    """Tails ``log`` into ``graph`` from ``graph.applied_position`` (or the log's start)."""

    def __init__(
        self,
        log_: EventLog,
        graph: LiveGraph,
        *,
        observer: ApplyObserver | None = None,
        block_s: float = 0.05,
        max_records: int = 256,
        max_events: int = 20_000,
        retry_s: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._log = log_
        self._graph = graph
        self._observer: ApplyObserver = observer or NullApplyObserver()
        self._block_s = block_s
        self._max_records = max_records
        self._max_events = max_events
        self._retry_s = retry_s
        self._clock = clock
        start = graph.applied_position
        self.position: Position = Position.parse(start) if start else START
        #: The position every event of the current snapshot reaches (what readers can see).
        self.visible_position: Position = self.position
        self.records_skipped = 0
        self._behind_since: float | None = None  # append time of the oldest record not applied
        self._last_error: str | None = None
        # (ingest seq, position, append times) of applied records not yet in a snapshot.
        self._unpublished: deque[tuple[int, Position, list[float]]] = deque()
        self._unpublished_lock = threading.Lock()
        self._worker = BackgroundWorker("eventlog-tailer", self._run)
        self._stop = self._worker.stop_event
        graph.on_publish.append(self._on_publish)

    # -- one step ------------------------------------------------------------------------------

    def poll(self, timeout_s: float) -> int:
        """Read and apply what is there (waiting up to ``timeout_s``); returns events read."""
        records = self._log.read(self.position, self._max_records, timeout_s)
        if not records:
            self._behind_since = None  # caught up with everything durable
            return 0
        events = 0
        chunk: list[tuple[LogRecord, LogBatch]] = []
        chunk_events = 0
        for record in records:
            if is_catalog_record(record.payload):
                # In log order: the events before it first, then the catalogue update.
                self._flush(chunk)
                chunk, chunk_events = [], 0
                self._apply_catalog(record)
                continue
            if is_erasure(record.payload):
                self._flush(chunk)  # the events before it first: log order decides
                chunk, chunk_events = [], 0
                self._erase(record)
                continue
            try:
                batch = decode_batch(record.payload)
            except RecordFormatError as exc:
                self._flush(chunk)  # the events before it are applied; then it is passed over
                chunk, chunk_events = [], 0
                self._skip(record, exc)
                continue
            if self._behind_since is None:
                self._behind_since = batch.appended_at
            chunk.append((record, batch))
            chunk_events += len(batch.cols)
            events += len(batch.cols)
            if chunk_events >= self._max_events:
                self._flush(chunk)
                chunk, chunk_events = [], 0
        self._flush(chunk)
        if len(records) < self._max_records:
            self._behind_since = None  # read everything there was
        elif chunk:
            self._behind_since = chunk[-1][1].appended_at  # more to come, appended after this
        return events

    def _flush(self, chunk: list[tuple[LogRecord, LogBatch]]) -> None:
        if not chunk:
            return
        cols, keys = concat_batches([batch for _, batch in chunk])
        last = chunk[-1][0].position
        outcome = self._graph.ingest(cols, event_keys=keys, log_position=str(last))
        self.position = last
        now = self._clock()
        appended = [batch.appended_at for _, batch in chunk]
        for at in appended:
            self._observer.apply_delay(max(now - at, 0.0))
        accepted = outcome.n_accepted
        self._observer.applied(accepted, len(cols) - accepted)
        with self._unpublished_lock:
            self._unpublished.append((self._graph.ingest_seq, last, appended))

    def _apply_catalog(self, record: LogRecord) -> None:
        """Apply one catalogue record (a damaged one is logged, counted and passed over)."""
        try:
            batch = decode_updates(record.payload)
        except CatalogRecordError as exc:
            self._skip(record, exc)
            return
        self._graph.update_items(batch.updates, log_position=str(record.position))
        self._observer.apply_delay(max(self._clock() - batch.appended_at, 0.0))
        self._applied(record, batch.appended_at)

    def _erase(self, record: LogRecord) -> None:
        """Apply an erasure record (``erasure_codec``) at its place in the log."""
        try:
            erasure = decode_erasure(record.payload)
        except RecordFormatError as exc:
            self._skip(record, exc)
            return
        self._graph.erase_users(erasure.user_ids, log_position=str(record.position))
        self._applied(record, erasure.appended_at)

    def _skip(self, record: LogRecord, exc: Exception) -> None:
        """Pass over a record that cannot be decoded (logged and counted; the log moves on)."""
        self.records_skipped += 1
        self._observer.log_error("decode")
        log.error("event log record at %s skipped: %s", record.position, exc)
        self._graph.mark_position(str(record.position))
        self.position = record.position

    def _applied(self, record: LogRecord, appended_at: float) -> None:
        """A single-record step was applied: move on, and time it to visibility at publish."""
        self.position = record.position
        with self._unpublished_lock:
            self._unpublished.append((self._graph.ingest_seq, record.position, [appended_at]))

    def _on_publish(self, snap: GraphSnapshot) -> None:
        """Records the new snapshot holds are now visible: report their append-to-visible time."""
        folded = int(snap.stats.get("ingest_seq", 0))
        now = self._clock()
        visible: list[float] = []
        with self._unpublished_lock:
            while self._unpublished and self._unpublished[0][0] <= folded:
                _, position, appended = self._unpublished.popleft()
                visible.extend(appended)
                self.visible_position = max(self.visible_position, position)
        for at in visible:
            self._observer.visible_delay(max(now - at, 0.0))

    # -- catching up and running ---------------------------------------------------------------

    def catch_up(self, *, max_s: float | None = None) -> int:
        """Apply everything already in the log (at start, before serving); returns events read."""
        started = time.monotonic()
        total = 0
        while True:
            got = self.poll(0.0)
            total += got
            if got == 0 and self._behind_since is None:
                return total
            if max_s is not None and time.monotonic() - started > max_s:
                log.warning("catch-up stopped after %.0fs; the tailer goes on in the background",
                            max_s)
                return total

    def lag_seconds(self) -> float:
        """Seconds since the append of the oldest record known to be read but not applied
        (0 when caught up)."""
        since = self._behind_since
        return 0.0 if since is None else max(self._clock() - since, 0.0)

    @property
    def last_error(self) -> str | None:
        return self._last_error

    def start(self) -> None:
        self._worker.start()

    def _run(self, stop: threading.Event) -> None:
        while not self._stop.is_set():
            try:
                self.poll(self._block_s)
                if self._last_error is not None:
                    log.info("event log readable again at %s", self.position)
                    self._last_error = None
            except LogUnavailable as exc:
                self._observer.log_error("read")
                if self._last_error is None:
                    log.warning("event log unreadable, retrying every %.1fs: %s",
                                self._retry_s, exc)
                self._last_error = str(exc)
                self._stop.wait(self._retry_s)
            except Exception as exc:
                self._observer.log_error("apply")
                log.exception("applying the event log failed at %s; retrying", self.position)
                self._last_error = f"{type(exc).__name__}: {exc}"
                self._stop.wait(self._retry_s)

    def stop(self) -> None:
        self._worker.stop()
