"""pytest fixtures around a real ``redis-server`` (``load.common.redis_server``): a free port, a
temp dir, no persistence, never 6379. Import the fixtures into a test module::

    from tests.redis_fixture import redis_server  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from load.common.redis_server import REDIS_BIN, RedisServer, free_port

__all__ = ["REDIS_BIN", "RedisServer", "free_port", "need_redis", "own_redis", "redis_server"]


def need_redis() -> None:
    if REDIS_BIN is None:
        pytest.skip("redis-server is not installed (scripts/test.sh installs it)")


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A fresh server per test module (tests flush or use their own key prefix)."""
    need_redis()
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of the test's own, for tests that kill or pause it."""
    need_redis()
    server = RedisServer(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()
