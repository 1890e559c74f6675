"""Online quality: did users touch what they were recommended, per surface and serving tier?

The server samples a share of the answers it serves (``sample_rate``); each sampled answer waits
for the user's later events. An event on one of its items with a timestamp inside
``[served_at - clock_skew_s, served_at + window_s]`` makes it a **hit** (once per answer); an
answer still waiting ``late_s`` after its window closed is a **miss**. Counts go to Prometheus
by surface and by the answer's source (``graph``, ``graph_partial``, ``blended``,
``ann_fallback``, ``popular``), never by user or item, so an SRE can see whether degraded
answers hurt users and a drift in quality shows without an offline study::

    hit rate = rate(recserver_online_answers_hit_total[1h])
             / (rate(recserver_online_answers_hit_total[1h])
                + rate(recserver_online_answers_missed_total[1h]))

Memory is bounded: at most ``max_pending_per_surface`` answers wait per surface (more are
dropped and counted), and every answer leaves after its window. Events arrive through
``observe_events`` (plain columns) or ``on_ingest``, the ``LiveGraph.on_ingest`` hook, which
sees every batch applied to the graph (RPC, log tailer, bootstrap).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from recserver.graph.events import EventColumns
from recserver.graph.store import IngestOutcome
from recserver.online.config import OnlineQualityConfig
from recserver.service.types import Recommendation, RecommendQuery

__all__ = ["NullOnlineMetrics", "OnlineMetrics", "OnlineQuality", "OnlineQualityConfig"]

log = logging.getLogger(__name__)


class OnlineMetrics(Protocol):
    """Where outcomes go (``recserver.metrics.OnlineQualityMetrics`` implements it)."""

    def sampled(self, surface: str, source: str) -> None: ...

    def hit(self, surface: str, source: str) -> None: ...

    def missed(self, surface: str, source: str) -> None: ...

    def dropped(self, surface: str) -> None: ...


class NullOnlineMetrics:
    def sampled(self, surface: str, source: str) -> None:
        return None

    def hit(self, surface: str, source: str) -> None:
        return None

    def missed(self, surface: str, source: str) -> None:
        return None

    def dropped(self, surface: str) -> None:
        return None


@dataclass(eq=False)
class _Pending:
    surface: str
    source: str
    user: str
    items: frozenset[str]
    served_at: float
    done: bool = field(default=False)


class OnlineQuality:
    """Sampled served answers waiting for the user's next events (thread-safe)."""

    def __init__(
        self, cfg: OnlineQualityConfig | None = None, *, metrics: OnlineMetrics | None = None,
        clock: Callable[[], float] = time.time, rng: Callable[[], float] = random.random,
    ) -> None:
        self.cfg = cfg or OnlineQualityConfig()
        self.metrics: OnlineMetrics = metrics or NullOnlineMetrics()
        self._clock = clock
        self._rng = rng
        self._lock = threading.Lock()
        self._queues: dict[str, deque[_Pending]] = {}  # per surface, in serving order
        self._by_user: dict[str, list[_Pending]] = {}
        #: (surface, source, outcome) -> answers; outcome sampled/hit/missed/dropped (for tests
        #: and debugging, approximate under threads; the metrics are exact)
        self.counts: Counter[tuple[str, str, str]] = Counter()

    # -- served answers (the RequestObserver side) ---------------------------------------------

    def request_finished(
        self, surface: str, rec: Recommendation, query: RecommendQuery | None = None
    ) -> None:
        """``RequestObserver``: sample the answer when it names a user and has items."""
        if query is None or not query.user_id or not rec.items or not self.cfg.enabled:
            return
        if self._rng() >= self.cfg.sample_rate:
            return
        try:
            self.observe_answer(surface, query.user_id, [i.item_id for i in rec.items],
                                rec.source)
        except Exception:  # runs on the request path: never fail an answer over a statistic
            log.exception("online quality: sampling an answer failed")

    def observe_answer(self, surface: str, user_id: str, item_ids: Sequence[str], source: str,
                       served_at: float | None = None) -> bool:
        """Keep one served answer (already sampled); False when the surface's sample is full."""
        now = self._clock() if served_at is None else served_at
        entry = _Pending(surface, source, user_id, frozenset(item_ids), now)
        with self._lock:
            missed = self._expire_locked(self._clock())
            queue = self._queues.setdefault(surface, deque())
            kept = len(queue) < self.cfg.max_pending_per_surface
            if kept:
                queue.append(entry)
                self._by_user.setdefault(user_id, []).append(entry)
        self._report_missed(missed)
        if kept:
            self.counts[surface, source, "sampled"] += 1
            self.metrics.sampled(surface, source)
        else:
            self.counts[surface, source, "dropped"] += 1
            self.metrics.dropped(surface)
        return kept

    # -- later events -------------------------------------------------------------------------

    def observe_events(self, user_ids: Sequence[str], item_ids: Sequence[str],
                       timestamps: Sequence[float]) -> int:
        """Match events against waiting answers; returns how many answers became hits."""
        window, skew = self.cfg.window_s, self.cfg.clock_skew_s
        hits: list[_Pending] = []
        with self._lock:
            by_user = self._by_user
            for user, item, ts in zip(user_ids, item_ids, timestamps, strict=True):
                waiting = by_user.get(user)
                if not waiting:
                    continue
                for entry in waiting:
                    if (not entry.done and item in entry.items
                            and entry.served_at - skew <= ts <= entry.served_at + window):
                        entry.done = True
                        hits.append(entry)
                if any(e.done for e in waiting):
                    left = [e for e in waiting if not e.done]
                    if left:
                        by_user[user] = left
                    else:
                        del by_user[user]
            missed = self._expire_locked(self._clock())
        for entry in hits:
            self.counts[entry.surface, entry.source, "hit"] += 1
            self.metrics.hit(entry.surface, entry.source)
        self._report_missed(missed)
        return len(hits)

    def on_ingest(self, cols: EventColumns, outcome: IngestOutcome) -> None:
        """``LiveGraph.on_ingest`` hook: the accepted events of users with waiting answers."""
        if not self._by_user or len(cols) == 0:
            return
        waiting = self._by_user
        wanted = np.fromiter((name in waiting for name in cols.user_names), bool,
                             len(cols.user_names))
        rows = np.flatnonzero(wanted[cols.user_codes] & outcome.accepted)
        if rows.shape[0] == 0:
            return
        users = [cols.user_names[c] for c in cols.user_codes[rows].tolist()]
        items = [cols.item_names[c] for c in cols.item_codes[rows].tolist()]
        self.observe_events(users, items, cols.timestamp[rows].tolist())

    # -- expiry --------------------------------------------------------------------------------

    def expire(self, now: float | None = None) -> int:
        """Count answers whose window (plus ``late_s``) has passed as misses; returns how many."""
        with self._lock:
            missed = self._expire_locked(self._clock() if now is None else now)
        self._report_missed(missed)
        return len(missed)

    def on_publish(self, snapshot: object) -> None:
        """``LiveGraph.on_publish`` hook: misses are counted even while no request arrives."""
        self.expire()

    def _expire_locked(self, now: float) -> list[_Pending]:
        horizon = now - self.cfg.window_s - self.cfg.late_s
        missed: list[_Pending] = []
        for queue in self._queues.values():
            while queue and queue[0].served_at < horizon:
                entry = queue.popleft()
                if entry.done:
                    continue  # a hit, counted when it happened
                entry.done = True
                missed.append(entry)
                waiting = self._by_user.get(entry.user)
                if waiting is not None:
                    left = [e for e in waiting if e is not entry]
                    if left:
                        self._by_user[entry.user] = left
                    else:
                        del self._by_user[entry.user]
        return missed

    def _report_missed(self, missed: list[_Pending]) -> None:
        for entry in missed:
            self.counts[entry.surface, entry.source, "missed"] += 1
            self.metrics.missed(entry.surface, entry.source)

    @property
    def pending(self) -> int:
        """Answers waiting (hits already counted may still sit in the queues until expiry)."""
        with self._lock:
            return sum(len(v) for v in self._by_user.values())
