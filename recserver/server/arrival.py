"""The arrival time of a request, taken when gRPC hands it to the thread pool.

A request's latency budget starts when the request arrives, not when a worker thread gets round to
it: under load a request can wait in the pool's queue for longer than its whole budget, and a
deadline measured from the handler's first line would hide that wait and let the server answer
late (queue collapse). The sync gRPC server calls ``thread_pool.submit`` once per RPC from its
polling thread, as soon as the call is accepted, so a pool that stamps ``time.perf_counter()``
in ``submit`` (``admission.AdmissionExecutor``) is the earliest point Python code can see.

The stamp travels to the worker in a ``threading.local``, not a ``contextvars.ContextVar``: gRPC
runs each handler inside ``contextvars.Context.run`` of a context copied at submission time, so a
context variable set by our wrapper in the worker thread would not be visible inside it, whereas a
thread-local is.
"""

from __future__ import annotations

import threading
import time

_local = threading.local()


def current_arrival() -> float | None:
    """``perf_counter()`` at the moment the current RPC was submitted to the pool.

    ``None`` outside a task of the handler pool (``admission.AdmissionExecutor``); the caller
    then falls back to its own start time.
    """
    arrival: float | None = getattr(_local, "arrival", None)
    return arrival


def queued_ms(arrival: float, now: float | None = None) -> float:
    """Milliseconds between ``arrival`` and ``now`` (default: the current ``perf_counter()``)."""
    return ((time.perf_counter() if now is None else now) - arrival) * 1000.0
