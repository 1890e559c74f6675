"""Deleting erased users' precomputed ANN results, and deleting them again where they come back.

An erased user's result key (``{prefix}:{v}:u:{user}``) is deleted for every version that may
be read: the one the pointer names, the one this process serves, the one it built last. Three
ways could write it again afterwards, so the purge is repeated for each:

* a serving process still answering from a snapshot older than the erasure computes the user's
  results on a miss and writes them back: purged again ``repeat_after_s`` after the first
  publish that holds the erasure (every worker has swapped to it by then);
* an ANN build that read a snapshot from before the erasure precomputes the user: purged at the
  new version when that build has published;
* nothing else writes user keys (a ``recserver build-ann`` run over an event file that still
  holds the user is the operator's to avoid).

Purges run on their own thread: a slow or failing cache never holds up the log tailer that
applies the erasure. A failure is logged and counted; the keys then expire with their version
(``ann.ttl_s``, or ``ann.old_version_grace_s`` after a newer version is published).
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable, Iterable

from recserver.ann.cache import CacheError, CacheMetrics, ResultCache
from recserver.ann.codec import Keys
from recserver.core.background import BackgroundWorker

log = logging.getLogger(__name__)


class UserForgetter:
    """Purges erased users' keys now, after the publish that shows the erasure, after builds."""

    def __init__(
        self, cache: ResultCache, prefix: str, versions: Callable[[], Iterable[int | None]],
        metrics: CacheMetrics, *, repeat_after_s: float = 2.0,
    ) -> None:
        self._cache = cache
        self._prefix = prefix
        self._versions = versions
        self._metrics = metrics
        self._repeat_after_s = repeat_after_s
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._due: list[tuple[float, int, tuple[str, ...], int | None]] = []
        self._seq = 0
        self._awaiting_publish: list[str] = []
        # (user, first snapshot version without them; None until that publish)
        self._unbuilt: list[tuple[str, int | None]] = []
        self._worker: BackgroundWorker | None = None
        self._stopped = False
        self.purged = 0  # keys deleted so far (tests, debugging)

    def erased(self, user_ids: list[str]) -> None:
        """An erasure was applied to the graph (``LiveGraph.on_erase``)."""
        with self._lock:
            self._awaiting_publish.extend(user_ids)
            self._unbuilt.extend((user, None) for user in user_ids)
        self._schedule(0.0, user_ids)

    def published(self, version: int) -> None:
        """A snapshot was published (``on_publish``): it holds every erasure applied so far."""
        with self._lock:
            users, self._awaiting_publish = self._awaiting_publish, []
            self._unbuilt = [(u, version if v is None else v) for u, v in self._unbuilt]
        if users:
            self._schedule(self._repeat_after_s, users)

    def built(self, snapshot_version: int, ann_version: int, *, now: bool = False) -> int:
        """An ANN build from ``snapshot_version`` published ``ann_version``: purge there the
        users that snapshot still held. ``now``: in this thread, before returning (a build
        staged by a child process, purged before its pointer flips); returns the keys deleted
        (0 when queued)."""
        with self._lock:
            stale = [u for u, v in self._unbuilt if v is None or v > snapshot_version]
            self._unbuilt = [(u, v) for u, v in self._unbuilt if v is None or v > snapshot_version]
        if stale and now:
            return self.purge(stale, ann_version)
        if stale:
            self._schedule(0.0, stale, version=ann_version)
        return 0

    def _schedule(self, delay_s: float, users: list[str], version: int | None = None) -> None:
        with self._lock:
            self._seq += 1
            heapq.heappush(self._due, (time.monotonic() + delay_s, self._seq, tuple(users),
                                       version))
            if self._worker is None and not self._stopped:
                self._worker = BackgroundWorker("ann-forget", lambda stop: self._run())
                self._worker.start()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._stopped and (not self._due or self._due[0][0] > time.monotonic()):
                    self._wake.wait(None if not self._due else self._due[0][0] - time.monotonic())
                if self._stopped:
                    return
                _, _, users, version = heapq.heappop(self._due)
            self.purge(users, version)

    def purge(self, users: Iterable[str], version: int | None = None) -> int:
        """Delete the users' keys at ``version``, or at every version that may be read."""
        versions = {version} if version is not None else set(self._versions())
        keys = [Keys(self._prefix, v).user(user) for v in sorted(x for x in versions
                                                                if x is not None)
                for user in users]
        if not keys:
            return 0
        try:
            deleted = self._cache.delete(keys)
        except CacheError as exc:
            self._metrics.error("other")
            log.error("deleting erased users' ANN results failed (%s); they expire with their "
                      "version", exc)
            return 0
        self.purged += deleted
        return deleted

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._wake.notify()
        if self._worker is not None:
            self._worker.stop()
