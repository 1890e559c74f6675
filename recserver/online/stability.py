"""Online answer stability: how much of a user's list survives until their next request.

For a stable sample of users (a hash of the user id under ``online_quality.sample_rate``, so
every answer of a sampled user is seen), the server remembers the last answer per surface.
When the same user asks the same surface again and had no accepted event in between (events
arrive through ``LiveGraph.on_ingest``, as for online quality), the overlap@k of the two answers
(``|a ∩ b| / k``, order ignored, ``k`` the larger answer's size) goes to
``recserver_online_stability_overlap_ratio``. An event of the user forgets their answers: a list
that changes because the user acted is not churn. What remains is churn from other users'
events, publishes, fallbacks and the walk's own randomness, the cost side of freshness that
``recserver replay`` reports per mode offline.

Memory is bounded: at most ``max_pending_per_surface`` users are remembered (least recently
answered forgotten first), each with one list per surface.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from recserver.graph.events import EventColumns
from recserver.graph.store import IngestOutcome
from recserver.online.config import OnlineQualityConfig, sampled_user
from recserver.service.types import Recommendation, RecommendQuery


class OverlapSink(Protocol):
    """Where overlaps go (``recserver.metrics.stability.StabilityMetrics`` implements it)."""

    def overlap(self, surface: str, value: float) -> None: ...


def overlap(a: Sequence[str], b: Sequence[str]) -> float:
    """``|a ∩ b| / k`` with ``k`` the larger size (0 for two empty answers)."""
    k = max(len(a), len(b))
    return len(set(a) & set(b)) / k if k else 0.0


class OnlineStability:
    """Last answers of sampled users, compared with the next (thread-safe)."""

    def __init__(self, cfg: OnlineQualityConfig | None = None, *,
                 metrics: OverlapSink | None = None) -> None:
        self.cfg = cfg or OnlineQualityConfig()
        self.metrics = metrics
        self._lock = threading.Lock()
        self._last: OrderedDict[str, dict[str, tuple[str, ...]]] = OrderedDict()
        #: surface -> [pairs compared, sum of their overlaps] (for tests and debugging).
        self.totals: dict[str, list[float]] = {}

    def request_finished(
        self, surface: str, rec: Recommendation, query: RecommendQuery | None = None
    ) -> None:
        """``RequestObserver``: compare with the user's previous answer on ``surface``."""
        if (query is None or not query.user_id or not rec.items or not self.cfg.enabled
                or query.context_item_ids or not sampled_user(query.user_id,
                                                              self.cfg.sample_rate)):
            return  # an answer to a context (item page, search) is not a list the user keeps
        self.observe_answer(surface, query.user_id, tuple(item.item_id for item in rec.items))

    def observe_answer(self, surface: str, user: str, items: tuple[str, ...]) -> None:
        """Compare ``items``, an answer to ``user`` on ``surface`` (already sampled and to no
        context), with that user's previous answer there, and remember it instead."""
        with self._lock:
            answers = self._last.pop(user, None) or {}
            previous = answers.get(surface)
            answers[surface] = items
            self._last[user] = answers
            while len(self._last) > self.cfg.max_pending_per_surface:
                self._last.popitem(last=False)
        if previous is not None:
            value = overlap(previous, items)
            total = self.totals.setdefault(surface, [0, 0.0])
            total[0] += 1
            total[1] += value
            if self.metrics is not None:
                self.metrics.overlap(surface, value)

    def on_ingest(self, cols: EventColumns, outcome: IngestOutcome) -> None:
        """``LiveGraph.on_ingest`` hook: users with an accepted event start afresh."""
        if not self._last or len(cols) == 0:
            return
        codes = np.unique(cols.user_codes[outcome.accepted])
        with self._lock:
            for code in codes.tolist():
                self._last.pop(cols.user_names[code], None)

    @property
    def remembered(self) -> int:
        with self._lock:
            return len(self._last)
