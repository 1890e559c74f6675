"""ANN result-cache metrics: lookups by outcome, command errors, breaker state."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from recserver.metrics.labels import (
    BREAKER_STATES,
    CACHE_BUCKETS_MS,
    CACHE_OPS,
    CACHE_OUTCOMES,
    to_seconds,
)

log = logging.getLogger(__name__)

class CacheMetrics:
    """Redis / ANN cache health, given to cache clients through their constructor.

    ``error(op)`` after a failed command; ``lookup(outcome, seconds)`` once per lookup (outcome
    ``hit``, ``miss``, ``error`` or ``skipped`` when the breaker is open); ``breaker(state)`` on
    every circuit-breaker transition (``closed``, ``half_open``, ``open``). ``CacheMetrics()``
    with no registry records into a private one (for tests and components used alone).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = registry if registry is not None else CollectorRegistry()
        errors = Counter("recserver_cache_errors", "Failed cache commands by operation",
                         ["op"], registry=reg)
        lookups = Counter("recserver_cache_lookups", "Cache lookups by outcome", ["outcome"],
                          registry=reg)
        self._duration = Histogram(
            "recserver_cache_lookup_duration_seconds", "Time of one cache lookup",
            buckets=[to_seconds(ms) for ms in CACHE_BUCKETS_MS], registry=reg)
        self._state = Gauge(
            "recserver_cache_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open",
            registry=reg, multiprocess_mode="livemax")
        self._opens = Counter("recserver_cache_breaker_opens", "Times the breaker opened",
                              registry=reg)
        self._errors = {op: errors.labels(op) for op in CACHE_OPS}
        self._lookups = {o: lookups.labels(o) for o in CACHE_OUTCOMES}
        self._current = "closed"

    def error(self, op: str) -> None:
        (self._errors.get(op) or self._errors["other"]).inc()

    def lookup(self, outcome: str, seconds: float) -> None:
        child = self._lookups.get(outcome)
        if child is None:
            raise ValueError(f"unknown cache outcome {outcome!r}; use one of {CACHE_OUTCOMES}")
        child.inc()
        if outcome != "skipped":
            self._duration.observe(seconds)

    def breaker(self, state: str) -> None:
        value = BREAKER_STATES.get(state)
        if value is None:
            raise ValueError(f"unknown breaker state {state!r}; use one of {set(BREAKER_STATES)}")
        if state == "open" and self._current != "open":
            self._opens.inc()
        self._current = state
        self._state.set(value)
