"""The in-process cache backend: a bounded LRU with per-key TTL (no Redis configured).

Bounded by bytes (keys + values + an estimate of Python's per-entry overhead): the least
recently used entries are evicted first, expired ones are dropped when touched. Same interface
and semantics as ``RedisCache`` (the shared backend test suite checks both).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence

#: Python's cost of one entry beyond its bytes: two bytes objects, a tuple, a float, the slot.
ENTRY_OVERHEAD = 160


class LruCache:
    backend = "memory"

    def __init__(
        self, max_bytes: int = 64 * 2**20, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_bytes = max_bytes
        self._clock = clock
        self._data: OrderedDict[bytes, tuple[bytes, float]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.evictions = 0

    @staticmethod
    def _size(key: bytes, value: bytes) -> int:
        return len(key) + len(value) + ENTRY_OVERHEAD

    def _live(self, key: bytes, now: float) -> bytes | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._data[key]
            self._bytes -= self._size(key, entry[0])
            return None
        self._data.move_to_end(key)
        return entry[0]

    def get(self, key: bytes, timeout_s: float = 0.0) -> bytes | None:
        with self._lock:
            return self._live(key, self._clock())

    def mget(self, keys: Sequence[bytes], timeout_s: float = 0.0) -> list[bytes | None]:
        with self._lock:
            now = self._clock()
            return [self._live(key, now) for key in keys]

    def put_many(self, entries: Iterable[tuple[bytes, bytes]], ttl_s: int) -> int:
        written = 0
        with self._lock:
            expires = self._clock() + ttl_s
            for key, value in entries:
                old = self._data.pop(key, None)
                if old is not None:
                    self._bytes -= self._size(key, old[0])
                self._data[key] = (bytes(value), expires)
                self._bytes += self._size(key, value)
                written += 1
            while self._bytes > self.max_bytes and self._data:
                key, (value, _) = self._data.popitem(last=False)
                self._bytes -= self._size(key, value)
                self.evictions += 1
        return written

    def ttl(self, key: bytes) -> float | None:
        with self._lock:
            now = self._clock()
            if self._live(key, now) is None:
                return None
            return self._data[key][1] - now

    def delete(self, keys: Sequence[bytes]) -> int:
        removed = 0
        with self._lock:
            for key in keys:
                entry = self._data.pop(key, None)
                if entry is not None:
                    self._bytes -= self._size(key, entry[0])
                    removed += 1
        return removed

    def delete_hashed(self, hashes: frozenset[int], hash_of: Callable[[bytes], int]) -> int:
        """Remove the keys whose ``hash_of(key)`` is in ``hashes``; returns how many."""
        if not hashes:
            return 0
        with self._lock:
            doomed = [key for key in self._data if hash_of(key) in hashes]
        return self.delete(doomed)

    def expire_namespace(self, namespace: bytes, ttl_s: int) -> int:
        with self._lock:
            limit = self._clock() + ttl_s
            touched = 0
            for key, (value, expires) in list(self._data.items()):
                if key.startswith(namespace):
                    self._data[key] = (value, min(expires, limit))
                    touched += 1
            return touched

    def memory_usage(self, keys: Sequence[bytes]) -> int | None:
        with self._lock:
            return sum(self._size(k, self._data[k][0]) for k in keys if k in self._data)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._data)

    def close(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0
