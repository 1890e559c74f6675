"""The fixed label sets and bucket boundaries every metric family draws from."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from recserver.config import RecServerConfig

log = logging.getLogger(__name__)

UNKNOWN_SURFACE = "unknown"
#: Stages the pipeline reports (created up front).
CORE_STAGES: tuple[str, ...] = ("queue", "seeds", "walk", "fallback", "rank", "encode")
#: Stages a request can report; anything else is counted as "other" (created when first seen).
STAGES: tuple[str, ...] = (*CORE_STAGES, "other")
#: Degradation reasons (``Recommendation.degraded_reasons``); "unspecified": degraded, no reason.
REASONS: tuple[str, ...] = (
    "deadline", "budget_spent", "overloaded", "cold_start", "no_history", "context_unknown",
    "few_candidates", "filtered", "fallback_error", "fallback_unready", "over_budget",
    "unspecified", "other",
)
#: Cache commands the ANN tier runs (lookups, write-back pipelines); "other": anything else.
CACHE_OPS: tuple[str, ...] = ("get", "mget", "pipeline", "other")
CACHE_OUTCOMES: tuple[str, ...] = ("hit", "miss", "error", "skipped")
#: Circuit-breaker state -> the value of ``recserver_cache_breaker_state``.
BREAKER_STATES: dict[str, int] = {"closed": 0, "half_open": 1, "open": 2}
INGEST_OUTCOMES: tuple[str, ...] = ("accepted", "duplicate", "rejected")
#: Event-log operations that can fail (``recserver_ingest_log_errors``).
LOG_OPS: tuple[str, ...] = ("append", "read", "decode", "apply", "checkpoint")
#: Append, apply and visibility delays (ms): from sub-millisecond appends to multi-second lag.
INGEST_DELAY_MS: tuple[float, ...] = (
    0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 750, 1000, 1500, 2000, 5000, 10000, 30000,
)

#: Request latency boundaries (ms); the configured budgets and SLAs are added to them.
BASE_LATENCY_MS: tuple[float, ...] = (
    0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 25, 30, 40, 50, 60, 80, 100, 150, 250, 500, 1000,
)
#: Stage boundaries (ms): finer at the bottom, where most stages live.
BASE_STAGE_MS: tuple[float, ...] = (
    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 50, 100, 250,
)
COVERAGE_BUCKETS: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)
CACHE_BUCKETS_MS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 25)

REASON_SET = frozenset(REASONS)
STAGE_SET = frozenset(STAGES)


def to_seconds(ms: float) -> float:
    # round(): 33.3 / 1000 is 0.033299999999999996; the le label must read "0.0333".
    return round(ms / 1000.0, 9)


def configured_ms(config: RecServerConfig) -> set[float]:
    """Every budget and SLA of the config, in ms."""
    return {v for s in config.surfaces.values() for v in (s.budget_ms, s.sla_p99_ms)}


def latency_buckets(config: RecServerConfig, base_ms: Sequence[float]) -> tuple[float, ...]:
    """``base_ms`` plus every configured budget and SLA, as sorted boundaries in seconds."""
    return tuple(sorted({to_seconds(ms) for ms in (*base_ms, *configured_ms(config))}))


def sla_boundary(sla_s: float, buckets: Sequence[float]) -> float:
    """The largest boundary <= the SLA (the SLA itself when it is one)."""
    below = [b for b in buckets if b <= sla_s + 1e-12]
    return below[-1] if below else buckets[0]


def reason_label(reason: str) -> str:
    """A degraded reason as a label value from :data:`REASONS`."""
    if reason in REASON_SET:
        return reason
    for prefix in ("fallback_error", "fallback_unready"):
        if reason.startswith(prefix):
            return prefix
    return "other"
