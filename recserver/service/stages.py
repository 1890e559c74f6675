"""Per-request stage timings (queue, seeds, walk, fallback, rank ...)."""

from __future__ import annotations

from collections.abc import Callable


class StageClock:
    """Records the time spent in each stage as the request moves through them."""

    __slots__ = ("_clock", "_last", "seconds")

    def __init__(self, clock: Callable[[], float], start: float) -> None:
        self._clock = clock
        self._last = start
        self.seconds: dict[str, float] = {}

    def mark(self, stage: str, at: float | None = None) -> None:
        """Close ``stage`` now (or at ``at``): it took the time since the previous mark."""
        now = self._clock() if at is None else at
        self.seconds[stage] = self.seconds.get(stage, 0.0) + (now - self._last)
        self._last = now

    def as_ms(self) -> dict[str, float]:
        return {stage: s * 1000.0 for stage, s in self.seconds.items()}
