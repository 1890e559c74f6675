"""The result cache interface, its errors, its metrics hook, and the backend registry.

One ``typing.Protocol`` and one file per backend (Gorse's ``storage/cache`` layout): a real
Redis (``redis_cache.RedisCache``) and a bounded in-process LRU (``lru_cache.LruCache``), picked
from the config by ``open_cache``. Both hold raw bytes under raw byte keys; the tier, the codec
and the precompute know what the bytes mean. The same test suite runs against both.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Protocol

from recserver.ann.config import AnnConfig


class CacheError(Exception):
    """The cache could not answer (down, timed out, refused). Never a plain miss."""


class ResultCache(Protocol):
    """Bytes in, bytes out; every value written has a TTL."""

    backend: str

    def get(self, key: bytes, timeout_s: float) -> bytes | None:
        """The value, or None on a miss; ``timeout_s`` bounds the wait (raises CacheError)."""
        ...

    def mget(self, keys: Sequence[bytes], timeout_s: float) -> list[bytes | None]:
        """Values of ``keys`` in one round trip."""
        ...

    def put_many(self, entries: Iterable[tuple[bytes, bytes]], ttl_s: int) -> int:
        """Write pairs in bulk (pipelined); returns how many were written."""
        ...

    def ttl(self, key: bytes) -> float | None:
        """Seconds left to live, or None when the key does not exist."""
        ...

    def delete(self, keys: Sequence[bytes]) -> int:
        """Remove ``keys`` now (erasure); returns how many were there. Raises ``CacheError``."""
        ...

    def expire_namespace(self, namespace: bytes, ttl_s: int) -> int:
        """Shorten the TTL of every key starting with ``namespace`` to at most ``ttl_s``."""
        ...

    def memory_usage(self, keys: Sequence[bytes]) -> int | None:
        """Bytes the backend spends on ``keys`` (None when it cannot tell)."""
        ...

    def close(self) -> None: ...


class CacheMetrics(Protocol):
    """What the ANN tier reports. ``recserver.metrics.CacheMetrics`` (Prometheus) fits as is.

    ``error(op)``: a failed cache command (``get``, ``mget``, ``set``, ``pipeline``) or another
    failure (``other``: an unreadable payload, a failed compute, a dropped write-back).
    ``lookup(outcome, seconds)``: once per read: ``hit`` (every key found), ``miss`` (some key
    missing or unreadable), ``error``, or ``skipped`` (breaker open).
    ``breaker(state)``: every transition (``closed``, ``half_open``, ``open``).
    """

    def error(self, op: str) -> None: ...

    def lookup(self, outcome: str, seconds: float) -> None: ...

    def breaker(self, state: str) -> None: ...


class NullMetrics:
    def error(self, op: str) -> None:
        pass

    def lookup(self, outcome: str, seconds: float) -> None:
        pass

    def breaker(self, state: str) -> None:
        pass


class CountingMetrics:
    """In-process counters (tests, the benchmark, debug output)."""

    def __init__(self) -> None:
        self.errors: Counter[str] = Counter()
        self.lookups: Counter[str] = Counter()
        self.states: list[str] = []
        self._lock = threading.Lock()

    def error(self, op: str) -> None:
        with self._lock:
            self.errors[op] += 1

    def lookup(self, outcome: str, seconds: float) -> None:
        with self._lock:
            self.lookups[outcome] += 1

    def breaker(self, state: str) -> None:
        with self._lock:
            self.states.append(state)


def open_cache(cfg: AnnConfig, redis_url: str | None) -> ResultCache:
    """The backend for ``redis_url``: Redis when set, else the in-process LRU (explicit map)."""
    from recserver.ann.lru_cache import LruCache
    from recserver.ann.redis_cache import RedisCache

    if redis_url:
        return RedisCache(
            redis_url,
            socket_timeout_s=cfg.socket_timeout_ms / 1000.0,
            connect_timeout_s=cfg.connect_timeout_ms / 1000.0,
            bulk_timeout_s=cfg.build_timeout_s,
            max_idle=cfg.max_idle_connections,
        )
    return LruCache(max_bytes=int(cfg.lru_max_mb * 2**20))
