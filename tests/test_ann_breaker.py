"""The circuit breaker and the write-back queue, on a fake clock."""

from __future__ import annotations

from recserver.ann.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from recserver.ann.cache import CacheError, CountingMetrics
from recserver.ann.lru_cache import LruCache
from recserver.ann.writeback import WriteBack


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_repeated_failures_and_probes_once() -> None:
    clock = Clock()
    states: list[str] = []
    breaker = CircuitBreaker(3, 1.0, clock=clock, on_state=states.append)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    breaker.record_success()  # a success resets the run of failures
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == OPEN and not breaker.allow()
    clock.now = 0.99
    assert not breaker.allow()
    clock.now = 1.0
    assert breaker.allow() and breaker.state == HALF_OPEN  # the probe
    assert not breaker.allow()  # one probe at a time
    breaker.record_failure()
    assert breaker.state == OPEN and not breaker.allow()
    clock.now = 2.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == CLOSED and breaker.allow() and breaker.allow()
    assert states == [OPEN, HALF_OPEN, OPEN, HALF_OPEN, CLOSED]


def test_a_probe_that_never_reports_is_replaced() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 1.0, clock=clock)
    breaker.record_failure()
    clock.now = 1.0
    assert breaker.allow()  # probe taken, its caller gives up without reporting
    clock.now = 1.5
    assert not breaker.allow()
    clock.now = 2.0
    assert breaker.allow()


class FailingCache(LruCache):
    def put_many(self, entries, ttl_s):  # type: ignore[no-untyped-def]
        raise CacheError("down")


def test_write_back_writes_off_the_path_and_drops_when_ill() -> None:
    metrics = CountingMetrics()
    cache = LruCache()
    breaker = CircuitBreaker(1, 60.0)
    writer = WriteBack(cache, 60, breaker, metrics, max_queue=4)
    assert writer.submit(b"k1", b"v1")
    writer.flush()
    assert cache.get(b"k1") == b"v1" and writer.written == 1
    breaker.record_failure()  # open: the cache is ill, nothing is queued for it
    assert not writer.submit(b"k2", b"v2") and writer.dropped == 1
    failing = WriteBack(FailingCache(), 60, CircuitBreaker(), metrics, max_queue=4)
    assert failing.submit(b"k3", b"v3")
    failing.flush()
    assert metrics.errors["pipeline"] == 1
