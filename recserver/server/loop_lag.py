"""How far behind the door's event loop runs, and a CoDel-style verdict on it.

The asyncio door accepts, refuses and answers every call on one event loop. What a call waited
before its handler ran cannot be read off the call (gRPC's core queues it, then the loop's
ready queue does); what can be measured is how late the loop runs a timer it set for itself.
A probe sleeps ``period_s`` and measures how much later than that it woke: the time a call
arriving now waits before the loop gets to it, give or take a step.

One late wake-up is a burst or an interpreter pause, and the door lets it pass; only a loop
whose probes keep waking later than ``target_s`` for ``interval_s`` (CoDel's standing queue)
shuts the door: new Recommend calls are refused at once, which is the one thing cheaper than
answering from the fallback, so the loop catches up instead of answering everyone late. The
first probe back within the target opens it again.
"""

from __future__ import annotations

import asyncio
import logging
import selectors
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

#: Probe period while calls come in, and while the loop is idle (saves wake-ups). A probe is a
#: loop iteration of its own: every 1 ms it cost 50 us of CPU a call at 1,000 calls/s (measured
#: on the door with an empty handler); every 5 ms is still four probes in the shortest
#: interval a backlog must stand (``server.loop_lag_interval_ms``, 50 ms by default).
BUSY_PERIOD_S = 0.005
IDLE_PERIOD_S = 0.050
#: Calls within this long keep the probe at its busy period.
BUSY_FOR_S = 1.0


class LoopLag:
    """The loop's lateness (``lag_s``) and whether it is a standing backlog (``shut``)."""

    def __init__(self, target_s: float | None, interval_s: float,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        """``target_s=None``: never shut (the lateness is still measured)."""
        self.target_s = target_s
        self.interval_s = interval_s
        self._clock = clock
        self.lag_s = 0.0
        self.shut = False
        self._late_since: float | None = None
        self._last_call = -1e9
        self._logged = -1e9
        self.shuts = 0  # times the door shut

    def saw_call(self, now: float) -> None:
        """A call arrived: probe often for a while."""
        self._last_call = now

    def observe(self, late_s: float, now: float) -> None:
        """One probe woke ``late_s`` after it was due (``now``: when it woke)."""
        self.lag_s = late_s
        target = self.target_s
        if target is None or late_s <= target:
            self._late_since, self.shut = None, False
            return
        if self._late_since is None:
            # Counted from this wake-up, not from when the probe was due: one long pause (a
            # burst of arrivals handled in one go) is not a standing queue; only probes that
            # keep coming back late for the interval are.
            self._late_since = now
        shut = now - self._late_since >= self.interval_s
        if shut and not self.shut:
            self.shuts += 1
            if now - self._logged >= 10.0:  # an operator's hint, not a line per refusal
                self._logged = now
                log.warning("door shut: the event loop ran %.1f ms late for %.1f ms; refusing "
                            "Recommend calls until it catches up (%d times so far)",
                            late_s * 1e3, (now - self._late_since) * 1e3, self.shuts)
        self.shut = shut

    async def run(self) -> None:
        """Probe until cancelled (a task on the door's loop)."""
        clock = self._clock
        while True:
            now = clock()
            period = BUSY_PERIOD_S if now - self._last_call < BUSY_FOR_S else IDLE_PERIOD_S
            await asyncio.sleep(period)
            woke = clock()
            # asyncio wakes timers at the selector's 1 ms resolution: lateness under a period
            # of that rounding is no backlog.
            self.observe(max(0.0, woke - now - period - 0.001), woke)


#: At most this much waiting before the door saw a call is assumed (``WakeClock.arrival``).
HIDDEN_WAIT_CAP_S = 0.005


class WakeClock(selectors.DefaultSelector):
    """The door loop's selector, remembering when the loop last woke from having nothing to do.

    A call that the door stamps has waited before it, out of Python's sight, while the loop
    was busy with the calls ahead of it: in a burst of ten, the tenth is stamped milliseconds
    after it arrived. Every call stamped since the loop last woke arrived after that wake-up
    (an idle loop is woken by the first arrival), so the wake-up is an arrival no call can have
    been earlier than; ``arrival`` takes it, never more than ``HIDDEN_WAIT_CAP_S`` before the
    stamp, so that a call late in a long busy stretch does not lose more than that of its
    budget. asyncio asks the selector with a timeout of 0 while callbacks are ready, and with
    a longer one (or none) only when it has nothing else to do.
    """

    woke = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready: list[tuple[selectors.SelectorKey, int]] = super().select(timeout)
        if timeout is None or timeout > 0:
            self.woke = time.perf_counter()
        return ready

    def arrival(self, stamp: float) -> float:
        """The earliest a call stamped at ``stamp`` can have arrived (see the class)."""
        return max(self.woke, stamp - HIDDEN_WAIT_CAP_S) if self.woke <= stamp else stamp
