"""Write-back of results computed on a miss: a bounded queue and one thread, off the path.

``submit`` never blocks: when the queue is full, or the breaker is not closed (the cache is
ill), the entry is dropped and counted. The thread writes what has queued up in one pipeline.
"""

from __future__ import annotations

import logging
import queue
import threading

from recserver.ann.breaker import CLOSED, CircuitBreaker
from recserver.ann.cache import CacheError, CacheMetrics, ResultCache
from recserver.core.background import BackgroundWorker

log = logging.getLogger(__name__)

BATCH = 256


class WriteBack:
    def __init__(
        self, cache: ResultCache, ttl_s: int, breaker: CircuitBreaker, metrics: CacheMetrics,
        *, max_queue: int = 1_024,
    ) -> None:
        self._cache = cache
        self._ttl_s = ttl_s
        self._breaker = breaker
        self._metrics = metrics
        self._queue: queue.Queue[tuple[bytes, bytes] | None] = queue.Queue(max_queue)
        self._worker: BackgroundWorker | None = None
        self._lock = threading.Lock()
        self.written = 0
        self.dropped = 0

    def submit(self, key: bytes, payload: bytes) -> bool:
        if self._breaker.state != CLOSED:
            self.dropped += 1  # the cache is ill: not a failure of its own
            return False
        self._start()
        try:
            self._queue.put_nowait((key, payload))
        except queue.Full:
            self.dropped += 1
            self._metrics.error("other")
            return False
        return True

    def _start(self) -> None:
        if self._worker is not None:
            return
        with self._lock:
            if self._worker is None:
                # Stopped by a None in the queue (after what was submitted before it).
                self._worker = BackgroundWorker("ann-write-back", self._run,
                                                wake=lambda: self._queue.put(None))
                self._worker.start()

    def _run(self, stop: threading.Event) -> None:
        while True:
            entry = self._queue.get()
            if entry is None:
                return
            batch = [entry]
            while len(batch) < BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._write(batch)
                    return
                batch.append(more)
            self._write(batch)

    def _write(self, batch: list[tuple[bytes, bytes]]) -> None:
        try:
            self.written += self._cache.put_many(batch, self._ttl_s)
        except CacheError as exc:
            self._metrics.error("pipeline")
            log.debug("write-back of %d results failed: %s", len(batch), exc)

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until everything submitted so far is written (tests, shutdown)."""
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop(timeout_s)

    def close(self) -> None:
        self.flush()
