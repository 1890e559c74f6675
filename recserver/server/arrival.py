"""The arrival time of a request: the earliest moment Python code sees the call.

A request's latency budget starts when the request arrives, not when a worker thread gets round to
it: under load a request can wait in the pool's queue for longer than its whole budget, and a
deadline measured from the handler's first line would hide that wait and let the server answer
late (queue collapse). The sync gRPC server calls ``thread_pool.submit`` once per RPC from its
polling thread, as soon as the call is accepted, so a pool that stamps ``time.perf_counter()``
in ``submit`` (``admission.AdmissionExecutor``) is the earliest point Python code can see.

The stamp travels to the worker in a ``threading.local``, not a ``contextvars.ContextVar``: gRPC
runs each handler inside ``contextvars.Context.run`` of a context copied at submission time, so a
context variable set by our wrapper in the worker thread would not be visible inside it, whereas a
thread-local is. The asyncio door (``aio_server``) stamps the call in its interceptor, before the
request is read, and hands the stamp down in a ``ContextVar``: interceptor and handler run in the
same task there.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar

_local = threading.local()
#: The asyncio door's stamp: each call runs in its own task, whose context carries it.
ARRIVAL: ContextVar[float | None] = ContextVar("recserver_arrival", default=None)


def current_arrival() -> float | None:
    """``perf_counter()`` at the moment the current RPC was submitted to the pool (sync
    server) or reached the asyncio door's interceptor.

    ``None`` outside both; the caller then falls back to its own start time.
    """
    arrival: float | None = getattr(_local, "arrival", None)
    return arrival if arrival is not None else ARRIVAL.get()
