"""What the domain reports about each finished request (metrics implement it; tests can too)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from recserver.service.types import Recommendation, RecommendQuery


class RequestObserver(Protocol):
    """Told about every answered request, after the answer is complete."""

    def request_finished(
        self, surface: str, rec: Recommendation, query: RecommendQuery | None = None
    ) -> None:
        """``rec`` carries source, degraded reasons, coverage, elapsed and stage timings;
        ``query`` the request it answered (the user, for online quality)."""
        ...


class NullObserver:
    """Observes nothing (the default when metrics are not wired)."""

    def request_finished(
        self, surface: str, rec: Recommendation, query: RecommendQuery | None = None
    ) -> None:
        return None


class Observers:
    """Several observers told in order (metrics, then online quality)."""

    def __init__(self, observers: Sequence[RequestObserver]) -> None:
        self._observers = tuple(observers)

    def request_finished(
        self, surface: str, rec: Recommendation, query: RecommendQuery | None = None
    ) -> None:
        for observer in self._observers:
            observer.request_finished(surface, rec, query)
