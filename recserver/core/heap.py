"""Keep the interpreter's cyclic garbage collector off the hot path of a long-lived server.

A full (generation 2) collection walks every tracked object the process holds. A serving worker
holds hundreds of thousands of them from start-up alone (numba's compiled kernels and typing
caches, gRPC, FAISS, numpy), none of which will ever be garbage, so each full collection held
the GIL for 80-150 ms (measured in a worker under ingest: one every ~15 s), a stall for every
request in flight. :func:`freeze_startup_heap` moves everything alive at the end of start-up
into the collector's permanent generation: later collections only walk what was allocated
since (per-request objects and the small per-snapshot id tails), and nothing is leaked, since
frozen objects are still freed by reference counting.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Collect once, then freeze every surviving object out of later collections; returns how
    many objects are frozen. Call it when start-up is done (kernels compiled, snapshot mapped),
    before the process says SERVING."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
