"""A few threads that run submitted jobs first come, first served, and know when a new one starts.

The asyncio door of a serving worker hands its walks (and its blocking admin calls) to these
threads, so the event loop that accepts and answers calls never runs one. Two properties make
the door's decisions possible:

* **FIFO on few threads**, not a pool of many: a walk is CPU-bound, and two walks sharing one
  core both finish late (processor sharing), where one after the other the first is on time;
* **a predicted start**: every job comes with a predicted duration and the time it is over
  by whatever happens (a walk stops at its deadline), so ``expected_start()`` says when a job
  submitted now would start (the running jobs' predicted ends, then the queue ahead), which is
  what "can this walk still be worth starting inside its budget?" needs.

The threads may run at a lower CPU priority than the thread that submits (``nice``, per
thread on Linux): whenever the door has a call to accept, refuse or answer from the fallback,
the kernel runs it before the next slice of a walk. Threads start through
``BackgroundWorker`` like every other thread of the server.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from recserver.core.background import BackgroundWorker

log = logging.getLogger(__name__)

#: Told the job's result, or the exception it raised (then the result is None).
Done = Callable[[Any, BaseException | None], None]


class _Job:
    __slots__ = ("done", "fn", "latest_end", "predicted_s")

    def __init__(self, fn: Callable[[], Any], predicted_s: float, latest_end: float,
                 done: Done) -> None:
        self.fn, self.predicted_s, self.latest_end, self.done = fn, predicted_s, latest_end, done

    def end_if_started(self, at: float) -> float:
        """When this job would end if it started ``at``: its predicted duration later, but
        never past its latest end (a walk stops at its deadline; one whose deadline passed
        before it started answers from the fallback at once)."""
        return max(at, min(at + self.predicted_s, self.latest_end))


class JobThreads:
    """``threads`` threads running jobs in submission order (see the module docstring)."""

    def __init__(self, name: str, threads: int = 1, *, nice: int = 0,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.name = name
        self._nice = nice
        self._clock = clock
        self._cond = threading.Condition()
        self._jobs: deque[_Job] = deque()
        self._ends: dict[int, float] = {}  # thread index -> predicted end of its running job
        self._workers = [
            BackgroundWorker(f"{name}-{i}", self._body(i), wake=self._wake, join_timeout_s=5.0)
            for i in range(max(1, threads))
        ]

    @property
    def threads(self) -> int:
        return len(self._workers)

    @property
    def queued(self) -> int:
        """Jobs waiting for a thread (not the running ones)."""
        return len(self._jobs)

    def start(self) -> None:
        for worker in self._workers:
            worker.start()

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop taking jobs; queued ones are dropped (their ``done`` is told ``Cancelled``)."""
        for worker in self._workers:
            worker.stop_event.set()
        with self._cond:
            dropped, self._jobs = list(self._jobs), deque()
            self._cond.notify_all()
        for job in dropped:
            job.done(None, Cancelled(f"{self.name} stopped before the job started"))
        for worker in self._workers:
            worker.stop(timeout_s)

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def expected_start(self, now: float | None = None) -> float:
        """When a job submitted now would start (``clock`` seconds): at once when a thread is
        free, else when the running jobs and the queue ahead of it are predicted to be done
        (each queued job taken by the first thread free, as the threads do)."""
        now = self._clock() if now is None else now
        with self._cond:
            if len(self._ends) < len(self._workers) and not self._jobs:
                return now
            # A running job past its predicted end is about to finish: it ends now.
            free = [max(now, end) for end in self._ends.values()]
            free += [now] * (len(self._workers) - len(free))
            heapq.heapify(free)
            for job in self._jobs:
                heapq.heapreplace(free, job.end_if_started(free[0]))
            return free[0]

    def submit(self, fn: Callable[[], Any], predicted_s: float, done: Done, *,
               latest_end: float = float("inf")) -> None:
        """Queue ``fn``, predicted to take ``predicted_s`` and to be over by ``latest_end``
        (``clock`` seconds) whatever happens; ``done(result, error)`` is called on the job's
        thread when it ends."""
        job = _Job(fn, max(0.0, predicted_s), latest_end, done)
        with self._cond:
            stopped = self._workers[0].stop_event.is_set()
            if not stopped:
                self._jobs.append(job)
                self._cond.notify()
        if stopped:
            done(None, Cancelled(f"{self.name} is stopped"))

    async def run(self, fn: Callable[[], Any], predicted_s: float = 0.0,
                  latest_end: float = float("inf")) -> Any:
        """``fn()`` on one of these threads, awaited on the caller's event loop (a cancelled
        caller stops waiting; a job that started runs to its end)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def done(result: Any, error: BaseException | None) -> None:
            loop.call_soon_threadsafe(_settle, future, result, error)

        self.submit(fn, predicted_s, done, latest_end=latest_end)
        return await future

    def _body(self, index: int) -> Callable[[threading.Event], None]:
        return lambda stop: self._run(index, stop)

    def _run(self, index: int, stop: threading.Event) -> None:
        if self._nice:
            try:  # per thread on Linux: this thread's task, not the whole process
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self._nice)
            except OSError as exc:  # not allowed here: run at the caller's priority
                log.warning("%s: cannot lower the thread priority (%s)", self.name, exc)
        while True:
            with self._cond:
                while not self._jobs and not stop.is_set():
                    self._cond.wait()
                if stop.is_set():
                    return
                job = self._jobs.popleft()
                self._ends[index] = job.end_if_started(self._clock())
            try:
                result = job.fn()
            except BaseException as exc:  # handed to the submitter, who decides
                self._finish(index)
                job.done(None, exc)
            else:
                self._finish(index)
                job.done(result, None)

    def _finish(self, index: int) -> None:
        with self._cond:
            self._ends.pop(index, None)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled (client gone): nobody waits for the result
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Cancelled(RuntimeError):
    """The job never ran: its threads were stopped first."""
