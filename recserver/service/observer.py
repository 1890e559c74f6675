"""What the domain reports about each finished request (metrics implement it; tests can too)."""

from __future__ import annotations

from typing import Protocol

from recserver.service.types import Recommendation


class RequestObserver(Protocol):
    """Told about every answered request, after the answer is complete."""

    def request_finished(self, surface: str, rec: Recommendation) -> None:
        """``rec`` carries source, degraded reasons, coverage, elapsed and stage timings."""
        ...


class NullObserver:
    """Observes nothing (the default when metrics are not wired)."""

    def request_finished(self, surface: str, rec: Recommendation) -> None:
        return None
