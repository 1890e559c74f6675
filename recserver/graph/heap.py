"""Handing freed heap back to the operating system after big transient allocations.

glibc's malloc keeps freed memory in its arenas: after a build or a compaction has freed
hundreds of megabytes of temporaries, the process can stay that large although its live set is
small, because the allocator only returns the top of the main heap on its own. ``malloc_trim``
walks every arena and returns whole free pages (``madvise(MADV_DONTNEED)``), so resident memory
follows the live set again (elsewhere, musl or macOS, there is no such call). Arrow's own pool
is asked to release its unused pages too.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import threading
from collections.abc import Callable

_lock = threading.Lock()


#: Arrow's own variable for its default pool; when the operator set it, it wins
ARROW_POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"


def arrow_on_system_heap() -> bool:
    """Have Arrow allocate from the C heap (malloc) rather than its own pool: for a serving
    worker, which parses and joins names on every request and publish.

    Arrow's default pool (mimalloc or jemalloc) keeps what it freed in segments of its own that
    ``release_unused`` does not all give back: ~6 MB per worker on a node at 750k edges, which
    malloc returns. Not for the builder: its CSV loads run Arrow's threaded reader, whose
    buffers then scatter over malloc's per-thread arenas and stay (measured: 14 MB more than
    the pool kept). Call before Arrow allocates much; False when ``ARROW_DEFAULT_MEMORY_POOL``
    is set (the operator's choice stands) or this Arrow has no system pool.
    """
    if os.environ.get(ARROW_POOL_ENV):
        return False
    import pyarrow as pa

    try:
        pa.set_memory_pool(pa.system_memory_pool())
    except (AttributeError, NotImplementedError):
        return False
    return True


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def rss_bytes() -> int:
    """This process's resident set size now (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * _page_size()
    except (OSError, ValueError, IndexError):
        return 0


@functools.cache
def _page_size() -> int:
    import os

    return os.sysconf("SC_PAGE_SIZE")


def release_free_heap() -> int:
    """Return the allocator's free pages to the system; bytes of resident memory given back.

    Takes tens of milliseconds on a heap of a few GB (it holds the arena locks, so other threads'
    allocations wait that long); call it after a build or compaction, not on a request path.
    """
    import pyarrow as pa

    trim = _malloc_trim()
    with _lock:
        before = rss_bytes()
        # Arrow allocates from its own pool (mimalloc or jemalloc), which keeps freed pages for
        # reuse: after a file load that was ~200 MB of a 10M-event build's resident memory.
        pa.default_memory_pool().release_unused()
        if trim is not None:
            trim(0)
        return max(0, before - rss_bytes())
