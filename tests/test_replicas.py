"""Two real server processes sharing one real Redis stream as their event log.

An event recorded through either replica reaches both graphs (each tails the stream and applies
it); a batch with a bad event is judged per event; the same events recorded through both at once
count once in each graph; with Redis down ``RecordEvents`` is UNAVAILABLE and acknowledges
nothing, and both replicas carry on once Redis is back. Waits are bounded; no speed assertions.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from recserver.proto.recserver.v1 import recommender_pb2 as pb
from tests.ingest_servers import CALL_TIMEOUT_S, Server, write_ingest_config
from tests.redis_fixture import RedisServer, redis_server  # noqa: F401


@pytest.fixture(scope="module")
def replicas(
    redis_server: RedisServer,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Server, Server]]:
    root = tmp_path_factory.mktemp("replicas")
    config = write_ingest_config(
        root / "config.yaml",
        redis={"stream_key": "test:replicas", "timeout_ms": 500},
        checkpoint={"interval_s": 3600},
    )
    servers = [Server(config, "--event-log-url", redis_server.url, "--data-dir", str(root / n))
               for n in ("a", "b")]
    try:
        for server in servers:
            server.wait_serving()
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.kill()


def event(event_id: str, user: str, item: str, kind: str = "purchase", **kw: Any) -> pb.Event:
    return pb.Event(event_id=event_id, user_id=user, item_id=item, event=kind, **kw)


def test_an_event_recorded_on_one_replica_appears_in_the_others_answers(
    replicas: tuple[Server, Server],
) -> None:
    a, b = replicas
    assert a.status().backend == "redis" and b.status().backend == "redis"
    before = b.stub.Recommend(pb.RecommendRequest(user_id="rep-b", surface="home", k=5),
                              timeout=CALL_TIMEOUT_S)
    assert "cold_start" in before.degraded_reasons  # nobody knows rep-b yet
    response = a.record([event("r1", "rep-a", "rep-x"), event("r2", "rep-a", "rep-y"),
                         event("r3", "rep-b", "rep-x")])
    assert response.accepted == 3
    b.wait_visible(response.log_position)
    assert b.edges("rep-a") == {"rep-x": 8.0, "rep-y": 8.0}
    answer = b.stub.Recommend(pb.RecommendRequest(user_id="rep-b", surface="home", k=5),
                              timeout=CALL_TIMEOUT_S)
    assert answer.items[0].item_id == "rep-y"  # only reachable through rep-a's new edges
    # And the other way round.
    back = b.record([event("r4", "rep-c", "rep-y")])
    a.wait_visible(back.log_position)
    assert a.edges("rep-c") == {"rep-y": 8.0}


def test_a_bad_event_is_rejected_with_its_reason_while_the_rest_replicate(
    replicas: tuple[Server, Server],
) -> None:
    a, b = replicas
    response = b.record([
        event("bad1", "rep-d", "rep-x"),
        event("bad2", "rep-d", "", ),
        event("bad3", "rep-d", "rep-z", kind="view", timestamp=-5.0),
        event("bad4", "rep-d", "rep-w", kind="view", weight=3.0),
    ])
    assert [r.status for r in response.results] == [
        pb.ACCEPTED, pb.REJECTED, pb.REJECTED, pb.ACCEPTED]
    assert response.results[1].reason == "empty item_id"
    assert "timestamp is negative" in response.results[2].reason
    a.wait_visible(response.log_position)
    b.wait_visible(response.log_position)
    assert a.edges("rep-d") == b.edges("rep-d") == {"rep-x": 8.0, "rep-w": 3.0}


def test_the_same_events_through_both_replicas_count_once(
    replicas: tuple[Server, Server],
) -> None:
    a, b = replicas
    batch = [event(f"both{i}", f"rep-e{i % 3}", f"rep-i{i}", kind="view") for i in range(30)]
    results: dict[str, pb.RecordEventsResponse] = {}

    def send(server: Server, name: str) -> None:
        results[name] = server.record(batch)

    threads = [threading.Thread(target=send, args=(s, n)) for s, n in ((a, "a"), (b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for name in ("a", "b"):
        assert all(r.status in (pb.ACCEPTED, pb.DUPLICATE) for r in results[name].results)
    last = max((r.log_position for r in results.values() if r.log_position),
               key=lambda p: tuple(map(int, p.split("-"))))
    for server in (a, b):
        server.wait_visible(last)
    for user in ("rep-e0", "rep-e1", "rep-e2"):
        assert a.edges(user) == b.edges(user)
        assert set(a.edges(user).values()) == {1.0}  # once, whichever replica appended it
    assert a.status().events_applied == b.status().events_applied


def test_redis_down_means_unavailable_and_nothing_acknowledged(
    replicas: tuple[Server, Server], redis_server: RedisServer  # noqa: F811
) -> None:
    a, b = replicas
    redis_server.kill()
    try:
        with pytest.raises(grpc.RpcError) as err:
            a.record([event("down1", "rep-down", "rep-x")])
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "event log" in str(err.value.details())
    finally:
        redis_server.start()  # same port, empty: what was not acknowledged is nowhere
    response = a.record([event("up1", "rep-up", "rep-x")])
    assert response.accepted == 1
    for server in (a, b):
        server.wait_visible(response.log_position)
        assert server.edges("rep-up") == {"rep-x": 8.0}
        assert server.edges("rep-down") == {}
        assert server.status().last_error == ""

