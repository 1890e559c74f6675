"""Deadlines and the fallback reserve.

The deadline of a request is its arrival plus the smallest of the surface budget, the request's
own ``budget_ms`` (which may only lower it) and the client's gRPC deadline minus a safety margin.
The walk stops ``reserve`` before that deadline, where ``reserve`` follows a high percentile of how
long everything after a walk's stop recently took (handing the answer back, the fallback, the
blend, the ranking, and a walk's overrun of its stop), so finishing never pushes an answer past
its deadline.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from recserver.config import FallbackConfig


@dataclass(frozen=True)
class Deadline:
    """When a request must be answered (``perf_counter`` seconds) and why."""

    at: float
    budget_ms: float  # the effective budget, from arrival
    limited_by: str  # "surface", "request" or "client"


def compute_deadline(
    *,
    arrival: float,
    now: float,
    surface_budget_ms: float,
    request_budget_ms: float | None,
    client_remaining_s: float | None,
    margin_ms: float,
) -> Deadline:
    """The request's deadline; ``now`` is when the handler started (``client_remaining_s``
    was read then)."""
    budget_ms, limited_by = surface_budget_ms, "surface"
    if request_budget_ms is not None and 0 < request_budget_ms < budget_ms:
        budget_ms, limited_by = request_budget_ms, "request"
    if client_remaining_s is not None:
        # gRPC rounds a deadline up when it puts it on the wire (to 10 ms steps above 1 s,
        # 100 ms above 10 s), so the margin also keeps back 1% of what the client allows.
        remaining_ms = client_remaining_s * 1000.0
        client_ms = (now - arrival) * 1000.0 + remaining_ms * 0.99 - margin_ms
        if client_ms < budget_ms:
            budget_ms, limited_by = max(client_ms, 0.0), "client"
    return Deadline(at=arrival + budget_ms / 1000.0, budget_ms=budget_ms, limited_by=limited_by)


class ReserveEstimator:
    """Time to keep back for the fallback: ``max(floor, percentile(recent) + margin)``.

    Observations go into a ring buffer; the percentile is recomputed every few observations
    (not per request) so reading the reserve costs a field read.
    """

    def __init__(self, cfg: FallbackConfig, window: int = 512, recompute_every: int = 16) -> None:
        self._cfg = cfg
        self._ring = np.zeros(window, dtype=np.float64)
        self._count = 0
        self._recompute_every = recompute_every
        self._lock = threading.Lock()
        self._reserve_ms = cfg.min_reserve_ms

    @property
    def reserve_ms(self) -> float:
        return self._reserve_ms

    def update_config(self, cfg: FallbackConfig) -> None:
        self._cfg = cfg
        self._recompute()

    def observe(self, fallback_ms: float) -> None:
        """Record how long one answer took from its walk's stop to the answer built."""
        with self._lock:
            self._ring[self._count % self._ring.shape[0]] = fallback_ms
            self._count += 1
            if self._count % self._recompute_every == 0 or self._count < self._recompute_every:
                self._recompute()

    def _recompute(self) -> None:
        n = min(self._count, self._ring.shape[0])
        cfg = self._cfg
        if n == 0:
            self._reserve_ms = cfg.min_reserve_ms
            return
        recent = float(np.percentile(self._ring[:n], cfg.reserve_percentile))
        self._reserve_ms = max(cfg.min_reserve_ms, recent + cfg.reserve_margin_ms)
