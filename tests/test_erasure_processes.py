"""DeleteUser against real server processes: a node on a file log, and replicas on a Redis stream.

The node test erases a user whose events link two items, checks that the user is gone from the
answers of every worker and from other users' walks, then kills the node with SIGKILL (no
checkpoint since the erasure: the restart replays the log, erasure record included) and stops it
cleanly (the final checkpoint holds the erasure), and looks for the user's id in every file the
node keeps. The replica test erases a user while one replica is down; that replica applies the
erasure from the shared stream when it comes back. Waits are bounded; no speed assertions.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from recserver.eventlog.base import Position
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc
from tests.ann_helpers import TEST_ANN
from tests.ingest_servers import CALL_TIMEOUT_S, Server, write_ingest_config
from tests.redis_fixture import RedisServer, redis_server  # noqa: F401


def erasure_config(path: Path, *, ann: bool = False, **ingest: Any) -> Path:
    """The ingest tests' config; with ``ann``, the ANN tier before the popular one. The home
    surface gets a budget no busy test machine runs out of: whether an item is in an answer
    must depend on the graph only, never on an answer cut short."""
    write_ingest_config(path, **ingest)
    doc = yaml.safe_load(path.read_text())
    doc["surfaces"]["home"].update({"budget_ms": 2000, "sla_p99_ms": 3000})
    doc["defaults"]["fallback"] = {"tiers": ["ann", "popular"] if ann else ["popular"]}
    if ann:
        doc["ann"] = TEST_ANN
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def event(event_id: str, user: str, item: str, kind: str = "purchase", **kw: Any) -> pb.Event:
    return pb.Event(event_id=event_id, user_id=user, item_id=item, event=kind, **kw)


def recommend(server: Server, user: str) -> list[str]:
    """The graph's items in the user's home answer (the popular tier's left out)."""
    answer = server.stub.Recommend(pb.RecommendRequest(user_id=user, surface="home", k=10),
                                   timeout=CALL_TIMEOUT_S)
    assert not {"deadline", "budget_spent", "overloaded"} & set(answer.degraded_reasons), answer
    return [item.item_id for item in answer.items if item.source != pb.POPULAR]


def found(server: Server, user: str) -> bool:
    response = server.stub.DescribeUser(pb.DescribeUserRequest(user_id=user),
                                        timeout=CALL_TIMEOUT_S)
    return bool(response.found)


def delete(server: Server, user: str) -> pb.DeleteUserResponse:
    response: pb.DeleteUserResponse = server.stub.DeleteUser(
        pb.DeleteUserRequest(user_id=user), timeout=CALL_TIMEOUT_S)
    return response


def fresh_connections(server: Server, position: str, n: int = 6) -> list[Any]:
    """Stubs on ``n`` new connections (the kernel spreads them over the node's workers), each
    after its worker shows ``position``."""
    stubs = []
    for _ in range(n):
        channel = grpc.insecure_channel(server.address)
        stub = pb_grpc.RecommenderStub(channel)
        deadline = time.monotonic() + 30
        while True:
            status = stub.GetIngestStatus(pb.GetIngestStatusRequest(), timeout=CALL_TIMEOUT_S)
            if status.visible_position and (Position.parse(status.visible_position)
                                            >= Position.parse(position)):
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.02)
        stubs.append(stub)
    return stubs


def crash(server: Server) -> None:
    """SIGKILL the whole node at once, builder included: no final checkpoint anywhere.

    (SIGKILL to the supervisor alone makes its children stop cleanly, with a checkpoint.)
    """
    pid = server.proc.pid
    os.kill(pid, signal.SIGSTOP)  # so it restarts nothing while its children die
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for child in children:
        os.kill(int(child), signal.SIGKILL)
    server.kill()


def files_holding(root: Path, needle: bytes) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and needle in p.read_bytes())


def test_an_erased_user_stays_erased_across_sigkill_and_a_clean_restart(tmp_path: Path) -> None:
    config = erasure_config(tmp_path / "config.yaml", checkpoint={"interval_s": 3600})
    data = tmp_path / "data"
    args = ["--data-dir", str(data), "--workers", "2"]
    server = Server(config, *args)
    restarted: Server | None = None
    try:
        server.wait_serving()
        # zq-era links erx to ery; erb bought erx only: erb's walks reach ery through zq-era.
        recorded = server.record([event("e1", "zq-era", "erx"), event("e2", "zq-era", "ery"),
                                  event("e3", "erb", "erx")])
        server.wait_visible(recorded.log_position)
        assert found(server, "zq-era") and "ery" in recommend(server, "erb")

        erased = delete(server, "zq-era")
        assert erased.found and erased.log_position
        server.wait_visible(erased.log_position)
        for stub in fresh_connections(server, erased.log_position):  # on every worker
            described = stub.DescribeUser(pb.DescribeUserRequest(user_id="zq-era"),
                                          timeout=CALL_TIMEOUT_S)
            assert not described.found and not described.edges
        assert "ery" not in recommend(server, "erb")  # zq-era's events no longer count
        again = delete(server, "zq-era")  # idempotent: already erased
        assert not again.found and again.log_position > erased.log_position

        crash(server)  # no checkpoint at all: the restart replays the log, erasure included
        assert not list((data / "checkpoints").glob("ckpt-*"))
        restarted = Server(config, *args).wait_serving()
        assert "event log replayed: 3 events" in restarted.output
        assert not found(restarted, "zq-era") and "ery" not in recommend(restarted, "erb")
        # The user id can come back: a new, empty profile from the events after the erasure.
        back = restarted.record([event("e4", "zq-era", "erz")])
        restarted.wait_visible(back.log_position)
        edges = restarted.stub.DescribeUser(pb.DescribeUserRequest(user_id="zq-era"),
                                            timeout=CALL_TIMEOUT_S)
        assert {e.item_id for e in edges.edges} == {"erz"}
        assert restarted.stop() == 0  # a clean stop: the final checkpoint holds the erasure

        restarted = Server(config, *args).wait_serving()
        assert "event log replayed: 0 events" in restarted.output  # all from the checkpoint
        assert "ery" not in recommend(restarted, "erb")
        edges = restarted.stub.DescribeUser(pb.DescribeUserRequest(user_id="erb"),
                                            timeout=CALL_TIMEOUT_S)
        assert {e.item_id for e in edges.edges} == {"erx"}
        assert restarted.stop() == 0
        # The event log still holds the erased events (until its segments are deleted behind
        # a checkpoint), snapshot folders from before the erasure too until they are collected
        # (seconds after no manifest names them); the checkpoint holds the id once: the new
        # profile's (the erased one is a placeholder now).
        holding = files_holding(data, b"zq-era")
        assert any(path.startswith("log/") for path in holding), holding
        assert all(path.startswith(("log/", "checkpoints/", "run/snapshots/"))
                   for path in holding), holding
        checkpoints = [path for path in holding if path.startswith("checkpoints/")]
        assert [path.rsplit("/", 1)[1] for path in checkpoints] == ["users.blob"]
        assert (data / checkpoints[0]).read_bytes().count(b"zq-era") == 1
    finally:
        server.kill()
        if restarted is not None:
            restarted.kill()


def test_bad_delete_requests_say_what_to_fix(tmp_path: Path) -> None:
    config = erasure_config(tmp_path / "config.yaml")
    server = Server(config, "--data-dir", str(tmp_path / "data"), "--workers", "1")
    try:
        server.wait_serving()
        for user, fix in (("", "user_id is empty"), ("   ", "user_id is blank"),
                          ("x" * 5000, "ingest.max_id_chars")):
            with pytest.raises(grpc.RpcError) as err:
                delete(server, user)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert fix in (err.value.details() or "")
        unknown = delete(server, "never-seen")
        assert not unknown.found and unknown.log_position  # recorded all the same
    finally:
        server.kill()


@pytest.fixture()
def replica_config(tmp_path: Path) -> Path:
    return erasure_config(
        tmp_path / "config.yaml",
        redis={"stream_key": "test:erasure", "timeout_ms": 500},
        checkpoint={"interval_s": 3600},
    )


def test_a_replica_down_during_the_erasure_applies_it_when_it_returns(
    redis_server: RedisServer,  # noqa: F811
    replica_config: Path,
    tmp_path: Path,
) -> None:
    def start(name: str) -> Server:
        return Server(replica_config, "--event-log-url", redis_server.url, "--data-dir",
                      str(tmp_path / name), "--workers", "1").wait_serving()

    a = start("a")
    b = start("b")
    try:
        recorded = a.record([event("r1", "rpa", "rpx"), event("r2", "rpa", "rpy"),
                             event("r3", "rpb", "rpx")])
        b.wait_visible(recorded.log_position)
        assert found(b, "rpa") and "rpy" in recommend(b, "rpb")
        assert b.stop() == 0  # its last checkpoint still holds rpa

        erased = delete(a, "rpa")
        assert erased.found
        a.wait_visible(erased.log_position)
        assert not found(a, "rpa")

        b = start("b")  # restores the checkpoint from before, then replays the stream
        b.wait_visible(erased.log_position)
        assert not found(b, "rpa") and "rpy" not in recommend(b, "rpb")
    finally:
        a.kill()
        b.kill()


def test_an_erased_users_precomputed_results_leave_redis(
    redis_server: RedisServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    redis_server.flush()
    config = erasure_config(tmp_path / "config.yaml", ann=True)
    server = Server(config, "--data-dir", str(tmp_path / "data"), "--redis-url",
                    redis_server.url, "--workers", "1")
    client = redis_server.client()
    try:
        server.wait_serving()
        deadline = time.monotonic() + 60
        while client.get("recserver:ann:ptr") is None:  # the first ANN build has published
            assert time.monotonic() < deadline, "no ANN version published"
            time.sleep(0.1)
        version = int(client.get("recserver:ann:ptr"))
        user_key, other_key = (f"recserver:ann:{version}:u:{u}" for u in ("u1", "u2"))
        assert client.exists(user_key) and client.exists(other_key)
        erased = delete(server, "u1")
        assert erased.found
        server.wait_visible(erased.log_position)
        deadline = time.monotonic() + 10
        while client.exists(user_key):
            assert time.monotonic() < deadline, "the erased user's results are still cached"
            time.sleep(0.05)
        recommend(server, "u1")  # now an unknown user: nothing is read or written back for it
        time.sleep(3.0)  # past the purge repeated after the publish
        assert not client.exists(user_key) and client.exists(other_key)
    finally:
        server.kill()
        client.close()
