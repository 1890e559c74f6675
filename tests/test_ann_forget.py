"""Erased users' precomputed ANN results: deleted at once, and again where they could return."""

from __future__ import annotations

import time
from pathlib import Path

from recserver.ann.cache import CountingMetrics
from recserver.ann.codec import Keys
from recserver.ann.file_cache import FileCache
from recserver.ann.forget import UserForgetter
from recserver.ann.lru_cache import LruCache


def wait_until(check: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_users_keys_go_at_every_readable_version_and_nobody_elses() -> None:
    cache = LruCache()
    keys = [Keys("p", v) for v in (1, 2, 3)]
    cache.put_many([(k.user(u), b"x") for k in keys for u in ("gone", "kept")], ttl_s=60)
    forget = UserForgetter(cache, "p", lambda: {1, 2, None}, CountingMetrics(),
                           repeat_after_s=0.05)
    try:
        forget.erased(["gone"])
        wait_until(lambda: forget.purged == 2)
        assert cache.get(keys[0].user("gone")) is None and cache.get(keys[1].user("gone")) is None
        assert cache.get(keys[2].user("gone")) == b"x"  # version 3 is read by nobody
        assert all(cache.get(k.user("kept")) == b"x" for k in keys)
    finally:
        forget.stop()


def test_write_backs_after_the_erasure_and_builds_from_before_it_are_purged_again() -> None:
    cache = LruCache()
    forget = UserForgetter(cache, "p", lambda: {1}, CountingMetrics(), repeat_after_s=0.05)
    try:
        forget.erased(["gone"])
        wait_until(lambda: forget.purged == 0 and not forget._due)
        # A worker still on the old snapshot computes the user's results and writes them back.
        cache.put_many([(Keys("p", 1).user("gone"), b"late")], ttl_s=60)
        forget.published(7)  # snapshot 7 is the first without the user
        wait_until(lambda: cache.get(Keys("p", 1).user("gone")) is None)
        # A build from snapshot 6 (before the erasure) published version 2 with the user in it.
        cache.put_many([(Keys("p", 2).user("gone"), b"stale")], ttl_s=60)
        forget.built(6, 2)
        wait_until(lambda: cache.get(Keys("p", 2).user("gone")) is None)
        # A build from snapshot 7 or later cannot hold the user: nothing left to purge.
        cache.put_many([(Keys("p", 3).user("gone"), b"new profile")], ttl_s=60)
        forget.built(7, 3)
        time.sleep(0.1)
        assert cache.get(Keys("p", 3).user("gone")) == b"new profile"
    finally:
        forget.stop()


def test_sealed_files_read_deleted_keys_as_misses_in_every_process(tmp_path: Path) -> None:
    builder = FileCache(tmp_path, writer=True)
    worker = FileCache(tmp_path, writer=False, recheck_s=0.0)
    keys = Keys("ann", 5)
    builder.put_many([(keys.user("gone"), b"a"), (keys.user("kept"), b"b"),
                      (Keys("ann").pointer, b"5")], ttl_s=60)
    worker.put_many([(keys.user("gone"), b"written back")], ttl_s=60)  # the worker's own LRU
    assert worker.get(keys.user("gone")) == b"a"
    assert builder.delete([keys.user("gone")]) == 1
    assert builder.get(keys.user("gone")) is None
    assert worker.mget([keys.user("gone"), keys.user("kept")]) == [None, b"b"]
    assert len(worker._local) == 0  # evicted from its private LRU too
    # The next sealed version is built without the user: the list starts empty again.
    builder.put_many([(Keys("ann", 6).user("kept"), b"c"), (Keys("ann").pointer, b"6")], 60)
    assert worker.get(Keys("ann", 6).user("kept")) == b"c"
    assert worker._erased == frozenset()
