"""A circuit breaker: after repeated failures stop calling for a while, then probe once.

closed --(``failure_threshold`` failures in a row)--> open --(``open_s`` later)--> half_open:
one caller is let through as a probe; its success closes the breaker, its failure opens it for
another ``open_s``. While open every caller is refused at once, so a dead or hung Redis costs a
request a branch, not a timeout. Thread-safe; ``allow`` is lock-free when the breaker is closed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

StateListener = Callable[[str], None]


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int = 3,
        open_s: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_state: StateListener | None = None,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.open_s = open_s
        self._clock = clock
        self._on_state = on_state
        self._lock = threading.Lock()
        self.state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self._probe_at = 0.0

    def allow(self) -> bool:
        """May the caller try the protected call now?"""
        if self.state == CLOSED:
            return True
        with self._lock:
            if self.state == CLOSED:
                return True
            if self.state == OPEN and self._clock() - self._opened_at >= self.open_s:
                self._set(HALF_OPEN)
            now = self._clock()
            # A probe that never reported back (its caller gave up) is replaced after open_s.
            if self.state == HALF_OPEN and (
                not self._probing or now - self._probe_at >= self.open_s
            ):
                self._probing, self._probe_at = True, now
                return True
            return False

    def record_success(self) -> None:
        if self.state == CLOSED and self._failures == 0:
            return
        with self._lock:
            self._failures = 0
            self._probing = False
            if self.state != CLOSED:
                self._set(CLOSED)

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            self._probing = False
            if self.state == HALF_OPEN or (
                self.state == CLOSED and self._failures >= self.failure_threshold
            ):
                self._opened_at = self._clock()
                self._set(OPEN)

    def _set(self, state: str) -> None:
        self.state = state
        if self._on_state is not None:
            self._on_state(state)
