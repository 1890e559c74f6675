"""Admission at the door: refuse at once what cannot be answered in time, never queue into lateness.

The sync gRPC server hands every accepted call to its thread pool's ``submit`` from its polling
thread. Past capacity a plain pool queues without bound and every answer comes later than its
budget (measured before this existed: p99 1.9 s and DEADLINE_EXCEEDED at twice capacity). Here
``submit`` decides, in microseconds, before any work is spent:

* **queue full** — more than ``max_queued`` calls wait for a handler thread;
* **queue slow** — CoDel-style: every call that started for at least ``interval_s`` had
  waited longer than ``target_wait_s`` in the queue (a standing queue, not one burst or one
  interpreter pause); while that lasts, newcomers are refused (the queue drains instead of
  growing), and the first call that starts within the target reopens the door.

A refused ``Recommend`` is answered RESOURCE_EXHAUSTED right there, on the server's polling
thread (``fast_refuse``): its request is never read, decoded or handed to a thread, so a
refusal costs tens of microseconds and never queues behind other refusals or walks (a single
refusing thread running the whole handler was measured to fall behind at four times capacity
on one core, answering its refusals a second late). That step uses grpc's internal call state;
when the installed grpcio does not have the expected shape, and for every other method (health
checks, ingest), the call runs on a thread of its own that only refuses (``current_refusal()``
tells the servicer, which raises ``ResourceExhausted`` before decoding). Calls that do get in
keep their arrival stamp (``current_arrival``), so their budgets count the queueing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from recserver.core.errors import REFUSAL_REASONS
from recserver.server.arrival import _local
from recserver.server.methods import RECOMMEND_METHOD
from recserver.server.refusal import call_method, fast_refuse

_T = TypeVar("_T")



def refusal_message(reason: str) -> str:
    """What a refused client is told (the same words on every refusal path)."""
    return (f"server overloaded ({reason}): nothing was computed; retry on another replica or "
            "after a short backoff")


def current_refusal() -> str | None:
    """Why the current call was refused at the door (a :data:`REFUSAL_REASONS` value), or None."""
    reason: str | None = getattr(_local, "refused", None)
    return reason


class AdmissionExecutor(ThreadPoolExecutor):
    """A handler pool that stamps arrivals and refuses at submission when overloaded."""

    def __init__(
        self, max_workers: int, *, max_queued: int | None, target_wait_s: float | None,
        interval_s: float = 0.0, on_refused: Callable[[str], None] | None = None,
        thread_name_prefix: str = "",
    ) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self._refuser = ThreadPoolExecutor(max_workers=1,
                                           thread_name_prefix=f"{thread_name_prefix}-refuse")
        self.max_queued = max_queued
        self.target_wait_s = target_wait_s
        self.interval_s = interval_s
        self._on_refused = on_refused
        self._lock = threading.Lock()
        self._queued = 0  # submitted, not started
        self._slow = False  # CoDel state: starts waited past the target for the interval
        self._above_since: float | None = None  # first start of the current run past it
        self.refused: dict[str, int] = dict.fromkeys(REFUSAL_REASONS, 0)
        self.fast_refused = 0  # refusals sent from the polling thread (the rest: refuser thread)

    @property
    def queued(self) -> int:
        return self._queued

    def _admit(self) -> str | None:
        with self._lock:
            if self.max_queued is not None and self._queued >= self.max_queued:
                return "queue_full"
            if self._slow and self._queued > 0:
                return "queue_slow"
            self._queued += 1
            return None

    def _started(self, waited_s: float, now: float) -> None:
        with self._lock:
            self._queued -= 1
            if self.target_wait_s is None:
                return
            if waited_s <= self.target_wait_s:
                self._above_since, self._slow = None, False
                return
            if self._above_since is None:
                self._above_since = now
            self._slow = now - self._above_since >= self.interval_s

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        submitted = time.perf_counter()
        reason = self._admit()
        if reason is not None:
            method = call_method(args)
            if method is not None and method != RECOMMEND_METHOD:
                # Health probes and ingest are not refused at the door: they run beside the
                # queue (a probe must not fail because answers are busy).
                return self._refuser.submit(fn, *args, **kwargs)
            with self._lock:
                self.refused[reason] += 1
            if self._on_refused is not None:
                self._on_refused(reason)
            if method == RECOMMEND_METHOD and fast_refuse(args, refusal_message(reason)):
                self.fast_refused += 1
                done: Future[Any] = Future()
                done.set_result(None)
                return done

            def refuse() -> _T:
                _local.arrival, _local.refused = submitted, reason
                try:
                    return fn(*args, **kwargs)
                finally:
                    _local.arrival = _local.refused = None

            return self._refuser.submit(refuse)

        def run() -> _T:
            now = time.perf_counter()
            self._started(now - submitted, now)
            _local.arrival = submitted
            try:
                return fn(*args, **kwargs)
            finally:
                # Threads are reused: never let one request see another's arrival.
                _local.arrival = None

        return super().submit(run)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=wait, cancel_futures=cancel_futures)
        self._refuser.shutdown(wait=wait, cancel_futures=cancel_futures)
