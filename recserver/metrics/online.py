"""Online quality: served answers matched against the events that followed them."""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from recserver.service.types import SOURCES

log = logging.getLogger(__name__)

class OnlineQualityMetrics:
    """Online quality (``recserver.online.quality``): sampled served answers and their outcome.

    ``sampled`` when an answer is kept, ``hit`` when a later event of its user touched one of its
    items within the window, ``missed`` when the window passed without one, ``dropped`` when the
    surface's sample was full. Labels: surface and the answer's source only.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = registry if registry is not None else CollectorRegistry()
        labels = ["surface", "source"]
        self._families = {
            "sampled": Counter("recserver_online_answers_sampled", "Served answers sampled for "
                               "online quality", labels, registry=reg),
            "hit": Counter("recserver_online_answers_hit", "Sampled answers whose user touched a "
                           "recommended item within the window", labels, registry=reg),
            "missed": Counter("recserver_online_answers_missed", "Sampled answers whose window "
                              "passed without such an event", labels, registry=reg),
        }
        self._dropped = Counter("recserver_online_answers_dropped", "Answers not sampled because "
                                "the surface's sample was full", ["surface"], registry=reg)
        self._report_dropped = Counter(
            "recserver_online_reports_dropped", "Sampled answers a serving worker dropped "
            "before the builder matched them: its report queue was full, or the builder could "
            "not be reached", ["reason"], registry=reg)
        self._children: dict[tuple[str, str, str], Any] = {}

    def _inc(self, outcome: str, surface: str, source: str) -> None:
        key = (outcome, surface, source if source in SOURCES else "popular")
        child = self._children.get(key)
        if child is None:
            child = self._children.setdefault(key, self._families[outcome].labels(*key[1:]))
        child.inc()

    def sampled(self, surface: str, source: str) -> None:
        self._inc("sampled", surface, source)

    def hit(self, surface: str, source: str) -> None:
        self._inc("hit", surface, source)

    def missed(self, surface: str, source: str) -> None:
        self._inc("missed", surface, source)

    def dropped(self, surface: str) -> None:
        self._dropped.labels(surface).inc()

    def report_dropped(self, reason: str, n: int) -> None:
        """``n`` sampled answers a worker could not report (``online.report.DROP_REASONS``)."""
        self._report_dropped.labels(reason).inc(n)
