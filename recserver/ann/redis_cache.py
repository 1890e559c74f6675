"""The Redis cache backend: one round trip per read, timeouts from the caller's budget.

Hot-path reads bypass redis-py's client and pool: a list of idle connections (pop/append are
atomic under the GIL) gives a connection, the command is sent, and the reply is read with a
socket timeout the caller computes from the time left. There are no retries: a failure is
reported at once (``CacheError``) and the breaker above decides what happens next. A failed
connection is dropped, never reused, so a reply that arrives late cannot be read by the next
request. Bulk writes, scans and the pointer poll use an ordinary client with a longer timeout.

The URL may carry a password and use ``rediss://`` (TLS); it is only ever shown redacted.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from itertools import islice
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.connection import AbstractConnection
from redis.exceptions import RedisError, ResponseError
from redis.retry import Retry

from recserver.ann.cache import CacheError
from recserver.core.redis_url import redact_url

_GLOB = re.compile(rb"([*?\[\]\\])")
BULK_CHUNK = 2_000


class RedisCache:
    backend = "redis"

    def __init__(
        self,
        url: str,
        *,
        socket_timeout_s: float = 0.001,
        connect_timeout_s: float = 0.001,
        bulk_timeout_s: float = 10.0,
        max_idle: int = 32,
    ) -> None:
        self.url = redact_url(url)
        self._connect_timeout = connect_timeout_s
        self._socket_timeout = socket_timeout_s
        self._max_idle = max_idle
        try:
            factory = redis.ConnectionPool.from_url(
                url, socket_timeout=socket_timeout_s, socket_connect_timeout=connect_timeout_s,
                retry=Retry(NoBackoff(), 0), health_check_interval=0,
                driver_info=None,  # no CLIENT SETINFO round trips on a (re)connect
            )
            bulk_pool = redis.ConnectionPool.from_url(
                url, socket_timeout=bulk_timeout_s, socket_connect_timeout=bulk_timeout_s,
                retry=Retry(NoBackoff(), 0), max_connections=8,
            )
        except ValueError as exc:  # redis-py's messages do not echo the password
            raise ValueError(f"redis url {self.url}: {exc}") from None
        self._factory = factory
        self.bulk = redis.Redis(connection_pool=bulk_pool, retry=Retry(NoBackoff(), 1))
        self._idle: list[AbstractConnection] = []

    def __repr__(self) -> str:
        return f"RedisCache({self.url})"

    def _connection(self) -> AbstractConnection:
        try:
            return self._idle.pop()
        except IndexError:
            conn: AbstractConnection = self._factory.connection_class(
                **self._factory.connection_kwargs
            )
            return conn

    def _call(self, timeout_s: float, *args: Any) -> Any:
        """One command; connecting (when needed) and the reply share one ``timeout_s``."""
        conn = self._connection()
        budget = max(timeout_s, 1e-4)
        deadline = time.perf_counter() + budget
        keep = True
        try:
            if not conn.is_connected:
                # The configured timeouts are sized for the request path (a millisecond); a
                # long call (a build's publish, with seconds) may spend a tenth of its budget
                # connecting, so one busy moment of a shared core does not fail it. Such a
                # connection keeps its long socket timeout, so it is not pooled for requests.
                conn.socket_connect_timeout = min(budget, max(self._connect_timeout, budget / 10))
                conn.socket_timeout = min(budget, max(self._socket_timeout, budget / 10))
                keep = conn.socket_timeout <= self._socket_timeout
                conn.connect()
            conn.send_command(*args)
            reply = conn.read_response(timeout=max(deadline - time.perf_counter(), 1e-4))
        except (RedisError, OSError) as exc:
            conn.disconnect()
            raise CacheError(f"redis {args[0]} at {self.url}: {type(exc).__name__}") from None
        if keep and len(self._idle) < self._max_idle:
            self._idle.append(conn)
        else:
            conn.disconnect()
        return reply

    def get(self, key: bytes, timeout_s: float) -> bytes | None:
        reply: bytes | None = self._call(timeout_s, "GET", key)
        return reply

    def mget(self, keys: Sequence[bytes], timeout_s: float) -> list[bytes | None]:
        if not keys:
            return []
        reply: list[bytes | None] = self._call(timeout_s, "MGET", *keys)
        return reply

    def put_many(self, entries: Iterable[tuple[bytes, bytes]], ttl_s: int) -> int:
        """``SET key value EX ttl`` for every pair, ``BULK_CHUNK`` commands per write.

        The commands are packed here (RESP is simple and redis-py's pipeline spends ~50 us of
        Python per command; this is ~3 us), sent in one write, and every reply is read.
        """
        ttl = str(int(ttl_s)).encode()
        tail = b"\r\n$2\r\nEX\r\n$%d\r\n%s\r\n" % (len(ttl), ttl)
        written = 0
        it = iter(entries)
        pool = self.bulk.connection_pool
        while chunk := list(islice(it, BULK_CHUNK)):
            packed = b"".join(
                b"*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s%s"
                % (len(key), key, len(value), value, tail)
                for key, value in chunk
            )
            conn = pool.get_connection()
            failed: str | None = None
            try:
                conn.send_packed_command([packed])
                for _ in chunk:
                    try:
                        conn.read_response()
                    except ResponseError as exc:  # e.g. OOM: the rest of the replies still come
                        failed = str(exc)
            except (RedisError, OSError) as exc:
                conn.disconnect()
                raise CacheError(f"redis bulk SET at {self.url}: {type(exc).__name__}") from None
            finally:
                pool.release(conn)
            if failed is not None:
                raise CacheError(f"redis bulk SET at {self.url}: {failed}")
            written += len(chunk)
        return written

    def ttl(self, key: bytes) -> float | None:
        try:
            ms = int(self.bulk.pttl(key))
        except RedisError as exc:
            raise CacheError(f"redis PTTL at {self.url}: {type(exc).__name__}") from None
        if ms == -2:
            return None
        return float("inf") if ms == -1 else ms / 1000.0

    def delete(self, keys: Sequence[bytes]) -> int:
        if not keys:
            return 0
        try:
            return int(self.bulk.delete(*keys))
        except RedisError as exc:
            raise CacheError(f"redis DEL at {self.url}: {type(exc).__name__}") from None

    def expire_namespace(self, namespace: bytes, ttl_s: int) -> int:
        pattern = _GLOB.sub(rb"\\\1", namespace) + b"*"
        touched = 0
        try:
            keys = self.bulk.scan_iter(match=pattern, count=1_000)
            while chunk := list(islice(keys, BULK_CHUNK)):
                pipe = self.bulk.pipeline(transaction=False)
                for key in chunk:
                    pipe.expire(key, ttl_s)
                pipe.execute()
                touched += len(chunk)
        except RedisError as exc:
            raise CacheError(f"redis SCAN/EXPIRE at {self.url}: {type(exc).__name__}") from None
        return touched

    def memory_usage(self, keys: Sequence[bytes]) -> int | None:
        try:
            pipe = self.bulk.pipeline(transaction=False)
            for key in keys:
                pipe.memory_usage(key, samples=0)
            sizes = pipe.execute()
        except RedisError:
            return None
        return sum(int(size) for size in sizes if size is not None)

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.disconnect()
        self.bulk.close()
        self.bulk.connection_pool.disconnect()
