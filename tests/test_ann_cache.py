"""One test suite for every ResultCache backend (Gorse style): a real Redis and the LRU."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from recserver.ann.cache import CacheError, ResultCache
from recserver.ann.lru_cache import LruCache
from recserver.ann.redis_cache import RedisCache
from tests.redis_fixture import RedisServer, need_redis, redis_server  # noqa: F401


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["redis", "lru"])
def cache(request: pytest.FixtureRequest) -> Iterator[ResultCache]:
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        server.flush()
        backend: ResultCache = RedisCache(server.url, socket_timeout_s=1.0,
                                          connect_timeout_s=1.0)
    else:
        backend = LruCache(max_bytes=1 << 20)
    yield backend
    backend.close()


def test_put_get_mget_round_trip(cache: ResultCache) -> None:
    entries = [(b"p:1:u:a", b"\x00\x01payload"), (b"p:1:i:b", b"x" * 1000)]
    assert cache.put_many(entries, ttl_s=60) == 2
    assert cache.get(b"p:1:u:a", 0.5) == b"\x00\x01payload"
    assert cache.get(b"p:1:u:missing", 0.5) is None
    assert cache.mget([b"p:1:i:b", b"nope", b"p:1:u:a"], 0.5) == [
        b"x" * 1000, None, b"\x00\x01payload"]
    assert cache.mget([], 0.5) == []


def test_every_key_gets_the_ttl(cache: ResultCache) -> None:
    cache.put_many([(b"t:1:u:a", b"v"), (b"t:ptr", b"1")], ttl_s=120)
    for key in (b"t:1:u:a", b"t:ptr"):
        ttl = cache.ttl(key)
        assert ttl is not None and 110 < ttl <= 120
    assert cache.ttl(b"t:none") is None


def test_expire_namespace_shortens_only_that_version(cache: ResultCache) -> None:
    cache.put_many([(b"e:1:u:a", b"1"), (b"e:1:i:b", b"1"), (b"e:2:u:a", b"2"),
                    (b"e:1*:u:x", b"glob")], ttl_s=3600)
    assert cache.expire_namespace(b"e:1:", 5) == 2
    assert cache.ttl(b"e:1:u:a") <= 5 and cache.ttl(b"e:1:i:b") <= 5  # type: ignore[operator]
    assert cache.ttl(b"e:2:u:a") > 3000  # type: ignore[operator]
    assert cache.ttl(b"e:1*:u:x") > 3000  # type: ignore[operator]  (glob chars are escaped)


def test_delete_removes_only_the_keys_named(cache: ResultCache) -> None:
    cache.put_many([(b"d:1:u:a", b"1"), (b"d:1:u:b", b"2")], ttl_s=60)
    assert cache.delete([b"d:1:u:a", b"d:1:u:never"]) == 1
    assert cache.mget([b"d:1:u:a", b"d:1:u:b"], 0.5) == [None, b"2"]
    assert cache.delete([]) == 0


def test_memory_usage_is_reported(cache: ResultCache) -> None:
    cache.put_many([(b"m:1:u:a", b"x" * 600)], ttl_s=60)
    used = cache.memory_usage([b"m:1:u:a"])
    assert used is not None and used >= 600


def test_redis_keys_and_values_are_stored_byte_exact(redis_server: RedisServer) -> None:  # noqa: F811
    redis_server.flush()
    cache = RedisCache(redis_server.url, socket_timeout_s=1.0, connect_timeout_s=1.0)
    try:
        cache.put_many([(b"recserver:ann:5:u:\xc3\xbc", b"\x00\xff")], ttl_s=60)
        with redis_server.client() as raw:
            assert raw.keys(b"*") == [b"recserver:ann:5:u:\xc3\xbc"]
            assert raw.get(b"recserver:ann:5:u:\xc3\xbc") == b"\x00\xff"
            assert 0 < raw.ttl(b"recserver:ann:5:u:\xc3\xbc") <= 60
    finally:
        cache.close()


def test_lru_evicts_least_recently_used_and_expires() -> None:
    clock = FakeClock()
    cache = LruCache(max_bytes=3 * (170 + 10), clock=clock)
    cache.put_many([(b"k1", b"v" * 10), (b"k2", b"v" * 10)], ttl_s=10)
    assert cache.get(b"k1") is not None  # k1 is now the most recent
    cache.put_many([(b"k3", b"v" * 10), (b"k4", b"v" * 10)], ttl_s=10)
    assert cache.get(b"k2") is None and cache.get(b"k1") is not None
    assert cache.nbytes <= cache.max_bytes and cache.evictions >= 1
    clock.now += 11
    assert cache.get(b"k1") is None and len(cache) <= 2


def test_redis_down_is_an_error_not_a_miss(tmp_path: Path) -> None:
    need_redis()
    server = RedisServer(tmp_path).start()
    cache = RedisCache(server.url, socket_timeout_s=0.05, connect_timeout_s=0.05)
    try:
        cache.put_many([(b"d:1", b"v")], ttl_s=60)
        assert cache.get(b"d:1", 0.05) == b"v"
        server.kill()
        with pytest.raises(CacheError):
            cache.get(b"d:1", 0.05)
        with pytest.raises(CacheError):
            cache.mget([b"d:1", b"d:2"], 0.05)
        server.start()  # same port, empty (no persistence)
        assert cache.get(b"d:1", 0.5) is None
    finally:
        cache.close()
        server.stop()


def test_password_and_tls_urls_work_and_are_never_shown(tmp_path: Path) -> None:
    import shutil
    import subprocess

    need_redis()
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: no certificate for the TLS server")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost"],
                   check=True, capture_output=True, timeout=60)
    try:
        server = RedisServer(tmp_path, password="s3cr3t-pw", tls=(cert, key)).start()
    except RuntimeError as exc:
        pytest.skip(f"this redis-server has no TLS support ({exc})")
    cache = RedisCache(server.url, socket_timeout_s=1.0, connect_timeout_s=1.0)
    try:
        assert server.url.startswith("rediss://:s3cr3t-pw@")
        cache.put_many([(b"s:1", b"v")], ttl_s=60)
        assert cache.get(b"s:1", 1.0) == b"v"
        assert "s3cr3t-pw" not in repr(cache) and "s3cr3t-pw" not in cache.url
        server.kill()
        with pytest.raises(CacheError) as err:
            cache.get(b"s:1", 0.05)
        assert "s3cr3t-pw" not in str(err.value)
    finally:
        cache.close()
        server.stop()
    wrong = RedisServer(tmp_path, password="other")
    wrong.start()
    bad = RedisCache(f"redis://:wrong-pw@127.0.0.1:{wrong.port}/0", socket_timeout_s=1.0,
                     connect_timeout_s=1.0)
    try:
        with pytest.raises(CacheError) as err:
            bad.get(b"x", 1.0)
        assert "wrong-pw" not in str(err.value)
    finally:
        bad.close()
        wrong.stop()
