"""At the door: walk, or answer from the fallback at once? Decided by time, not queue length.

A walk is worth starting only if it can finish inside its budget. The door knows when a walk
submitted now would start (its walk threads' running jobs and queue, each with a predicted
duration and a deadline, see ``core.job_threads``) and how long walks have recently taken on
this surface; when the walk would not get ``MIN_WALK_SHARE`` of that time before the walk's
deadline (the deadline less the fallback reserve), no walk is queued: the fallback answers at
once, flagged ``overloaded``. Below capacity every walk fits, however
bursty the arrivals: a burst only sends to the fallback the walks that would really have come
too late, and nothing is refused outright.

Predicted durations are an exponentially weighted mean per surface, quick to rise and slow to
fall (a late walk costs more than a fallback answer that could have walked), seeded from a
share of the budget until the surface has answered.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from recserver.core.job_threads import JobThreads
from recserver.service.budget import Deadline
from recserver.service.types import Recommendation, RecommendQuery

#: Before a surface's first walk: assume a walk takes this share of its budget.
FIRST_GUESS_SHARE = 0.25
#: A walk is queued when it can still get this share of its usual time before its deadline.
#: Less than all of it was measured to be worse: walks are anytime, so with a share of 0.5
#: every queued walk ran until its deadline, the queue stayed full of partial walks, and at
#: twice capacity most answers came at the edge of the budget (client p50 18 ms, p99 33 ms
#: from the scheduled send, 20 ms budget, one core, against 2.1 and 21 ms with the whole walk
#: required).
MIN_WALK_SHARE = 1.0


class Admissible(Protocol):
    """What the door knows of a request once ``begin`` has run (``recommender.Ask``)."""

    @property
    def query(self) -> RecommendQuery: ...
    @property
    def deadline(self) -> Deadline: ...
    @property
    def walk_deadline(self) -> float: ...
    @property
    def walkable(self) -> bool: ...


class DoorHandler(Protocol):
    """The domain entry point the asyncio door calls in two steps (``Recommender``)."""

    def begin(self, query: RecommendQuery, *, arrival: float,
              client_remaining_s: float | None) -> Any:
        """Validate and fix the deadline (cheap; on the event loop); returns an Admissible."""
        ...

    def answer(self, ask: Any, *, walk: bool | None = None) -> Recommendation:
        """The answer to a begun request, walking or (``walk=False``) from the fallback."""
        ...

    def walk_step(self, ask: Any, *, walk: bool | None = None) -> Any:
        """The walk half of an answer (on a walk thread); ``finish`` makes the answer."""
        ...

    def finish(self, ask: Any, walked: Any) -> Recommendation:
        """Fallback, blend and rank after ``walk_step`` (on the door's loop)."""
        ...


class WalkAdmission:
    """Runs admitted walks on ``threads``; says whether a walk would finish in time."""

    def __init__(self, recommender: DoorHandler, threads: JobThreads,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self._recommender = recommender
        self._threads = threads
        self._clock = clock
        self._lock = threading.Lock()
        self._mean_s: dict[str, float] = {}
        self.admitted = 0
        self.degraded = 0

    def predicted_s(self, ask: Admissible) -> float:
        """How long an answer that walks is expected to take on this surface."""
        mean = self._mean_s.get(ask.query.surface)
        if mean is None:
            return ask.deadline.budget_ms / 1000.0 * FIRST_GUESS_SHARE
        return mean

    def observe(self, surface: str, seconds: float) -> None:
        """One answer that walked took ``seconds`` on a walk thread."""
        with self._lock:
            mean = self._mean_s.get(surface)
            if mean is None:
                self._mean_s[surface] = seconds
            else:
                rate = 0.3 if seconds > mean else 0.05
                self._mean_s[surface] = mean + rate * (seconds - mean)

    def admit(self, ask: Admissible) -> bool:
        """Whether a walk submitted now is expected to start early enough to get
        ``MIN_WALK_SHARE`` of its usual time before the walk's deadline."""
        if not ask.walkable:
            return False
        # The first walk to wait is always queued: it starts when a running walk ends, and a
        # walk is anytime, so it gets whatever its deadline leaves. Without that, a caller
        # that asks again as soon as it is answered (a closed loop) spun on fallback answers
        # beside every running walk, its CPU made the walks slower, the predicted time grew,
        # and no second walk was ever queued again (measured: 4 callers on 2 workers, 100%
        # fallback answers).
        fits = self._threads.queued == 0 or (
            self._threads.expected_start() + MIN_WALK_SHARE * self.predicted_s(ask)
            <= ask.walk_deadline)
        if fits:
            self.admitted += 1
        else:
            self.degraded += 1
        return fits

    async def answer(self, ask: Admissible) -> Recommendation:
        """The walking answer: its walk on a walk thread, awaited on the caller's event loop,
        then finished (fallback, blend, rank) on that loop."""
        recommender, clock, surface = self._recommender, self._clock, ask.query.surface

        def job() -> Any:
            started = clock()
            walked = recommender.walk_step(ask, walk=True)
            self.observe(surface, clock() - started)
            return walked

        walked = await self._threads.run(job, self.predicted_s(ask), latest_end=ask.walk_deadline)
        return recommender.finish(ask, walked)
