"""Catalogue updates on two real replicas sharing one real Redis stream as their event log.

An item hidden or categorised through either replica is filtered in the other's answers once
that replica shows the update's log position: the update travels like events, through the log.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from recserver.proto.recserver.v1 import recommender_pb2 as pb
from tests.ingest_servers import CALL_TIMEOUT_S, Server, write_ingest_config
from tests.redis_fixture import RedisServer, redis_server  # noqa: F401


@pytest.fixture(scope="module")
def replicas(
    redis_server: RedisServer,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Server, Server]]:
    root = tmp_path_factory.mktemp("catalog-replicas")
    config = write_ingest_config(root / "config.yaml",
                                 redis={"stream_key": "test:catalog", "timeout_ms": 500})
    servers = [Server(config, "--event-log-url", redis_server.url, "--data-dir", str(root / n))
               for n in ("a", "b")]
    try:
        for server in servers:
            server.wait_serving()
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.kill()


def answer(server: Server, categories: tuple[str, ...] = ()) -> list[str]:
    response = server.stub.Recommend(
        pb.RecommendRequest(user_id="u1", surface="home", k=10, categories=categories),
        timeout=CALL_TIMEOUT_S)
    return [item.item_id for item in response.items]


def update(server: Server, *items: pb.ItemInfo) -> str:
    response = server.stub.UpdateItems(pb.UpdateItemsRequest(items=items),
                                       timeout=CALL_TIMEOUT_S)
    assert response.accepted == len(items)
    return str(response.log_position)


def test_an_item_hidden_on_one_replica_leaves_the_others_answers(
    replicas: tuple[Server, Server],
) -> None:
    a, b = replicas
    shown = answer(b)
    assert len(shown) == 10
    position = update(a, *[pb.ItemInfo(item_id=i, hidden=True) for i in shown[:3]])
    b.wait_visible(position)
    a.wait_visible(position)
    for server in (a, b):
        after = answer(server)
        assert len(after) == 10 and not set(shown[:3]) & set(after)


def test_categories_set_on_one_replica_hold_on_the_other(replicas: tuple[Server, Server]) -> None:
    a, b = replicas
    items = [f"i{i}" for i in range(2_000)]
    position = update(b, *[pb.ItemInfo(item_id=i, categories=["low" if n < 20 else "rest"])
                           for n, i in enumerate(items)])
    a.wait_visible(position)
    low = answer(a, ("low",))
    assert low and all(int(i[1:]) < 20 for i in low)
    assert any(int(i[1:]) >= 20 for i in answer(a))  # unfiltered, the rest shows
