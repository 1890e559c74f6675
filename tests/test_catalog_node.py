"""The catalogue on a real node (supervisor, builder, two workers) with a real Redis.

One node answers four surfaces that each exercise one tier: ``graph`` (a complete walk,
answering alone), ``partial`` (a walk cut by its deadline), ``ann`` (a one-step walk, so the
ANN results cached in Redis answer) and ``popular`` (a one-step walk, popular items only).
Items hidden through ``UpdateItems`` must leave every tier's answers on every worker within the
publish interval, including the ANN results Redis cached before the item was hidden;
categories loaded with ``--items`` must hold on every tier; both must survive SIGKILL and a
restart; bad input is INVALID_ARGUMENT.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from recserver.ann.codec import Keys, parse_pointer
from recserver.eventlog.base import Position
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc
from tests.ann_helpers import TEST_ANN
from tests.process_output import CollectedProcess
from tests.redis_fixture import RedisServer, own_redis  # noqa: F401
from tests.server_fixtures import write_config

PUBLISH_S = 0.5
#: Beyond the publish interval: the worker's manifest poll (20 ms), mapping, a loaded machine.
SLACK_S = 0.5
STARTUP_S = 120.0
RPC_S = 10.0
N_ITEMS = 3_000  # covers the synthetic catalogue's ids i0..


def surface(steps: int, tiers: list[str], **extra: object) -> dict[str, object]:
    return {"budget_ms": 300, "sla_p99_ms": 400, "k_default": 10, "k_max": 50,
            "walk": {"steps": steps, "n_p": 0},
            "fallback": {"tiers": tiers, "blend": {"pool_complete_walk": None}}, **extra}


DOCUMENT = {
    "surfaces": {
        "graph": surface(20_000, ["popular"]),
        # Far more steps than 15 ms allow: the walk is cut by its deadline.
        "partial": surface(2_000_000, ["popular"], budget_ms=15, sla_p99_ms=100),
        "ann": surface(1, ["ann", "popular"]),
        "popular": surface(1, ["popular"]),
        "odd_only": surface(20_000, ["ann", "popular"], filters={"categories": ["odd"]}),
    },
    "graph": {"publish_interval_s": PUBLISH_S},
    "server": {"reload_poll_s": 60.0, "metrics_port": 0},
    "ann": TEST_ANN,
}
TIERS = {"graph": pb.GRAPH, "partial": pb.GRAPH_PARTIAL, "ann": pb.ANN_FALLBACK,
         "popular": pb.POPULAR}


def number(item: str) -> int:
    return int(item[1:])


class Node(CollectedProcess):
    def __init__(self, tmp: Path, redis_url: str, items: Path) -> None:
        config = write_config(tmp / "config.yaml", DOCUMENT)
        super().__init__([sys.executable, "-m", "recserver", "serve", "--port", "0",
                          "--metrics-port", "0", "--synthetic", "20000", "--workers", "2",
                          "--data-dir", str(tmp / "data"), "--config", str(config),
                          "--redis-url", redis_url, "--items", str(items)])
        self.address = address = self.wait_for(r"recserver starting on (\S+) ",
                                               STARTUP_S).group(1)
        self.wait_for(r"^recserver serving on ", STARTUP_S)
        # Several connections, so the answers come from both workers.
        local = [("grpc.use_local_subchannel_pool", 1)]  # one connection per channel
        self.channels = [grpc.insecure_channel(address, options=local) for _ in range(4)]
        self.stubs = [pb_grpc.RecommenderStub(c) for c in self.channels]

    def ask(self, surface: str, user: str = "u1", stub: int = 0,
            categories: tuple[str, ...] = ()) -> pb.RecommendResponse:
        response: pb.RecommendResponse = self.stubs[stub].Recommend(
            pb.RecommendRequest(user_id=user, surface=surface, k=10, categories=categories),
            timeout=RPC_S)
        return response

    def everywhere(self, user: str = "u1", categories: tuple[str, ...] = ()) -> set[str]:
        """Items of every tier's answer on every connection."""
        return {item.item_id for surface in TIERS for stub in range(len(self.stubs))
                for item in self.ask(surface, user, stub, categories).items}

    def close(self) -> None:
        for channel in self.channels:
            channel.close()
        if self.proc.poll() is None:
            self.proc.kill()  # SIGKILL: the builder and workers die with the supervisor
            self.proc.wait(30)


@pytest.fixture
def items_file(tmp_path: Path) -> Path:
    path = tmp_path / "items.csv"
    rows = [f"i{i},,{'odd' if i % 2 else 'even'}|all," for i in range(N_ITEMS)]
    path.write_text("item_id,hidden,categories,expires_at\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture
def node(tmp_path: Path, own_redis: RedisServer, items_file: Path) -> Iterator[Node]:  # noqa: F811
    started = Node(tmp_path, own_redis.url, items_file)
    try:
        yield started
    finally:
        started.close()


def first_of(response: pb.RecommendResponse, source: int) -> str:
    found = [item.item_id for item in response.items if item.source == source]
    assert found, f"no item from source {source}: {response}"
    return found[0]


def wait_for_ann(node: Node) -> pb.RecommendResponse:
    deadline = time.monotonic() + STARTUP_S
    while True:
        response = node.ask("ann")
        if any(item.source == pb.ANN_FALLBACK for item in response.items):
            return response
        assert time.monotonic() < deadline, f"the ANN tier never answered: {response}"
        time.sleep(0.2)


def cached_payload(redis: RedisServer, user: str) -> bytes:
    client = redis.client()
    deadline = time.monotonic() + 30
    while True:
        version = parse_pointer(client.get(Keys("recserver:ann").pointer))
        payload = client.get(Keys("recserver:ann", version).user(user)) if version else None
        if payload:
            return bytes(payload)
        assert time.monotonic() < deadline, "no cached ANN entry for the user"
        time.sleep(0.1)


def test_hidden_items_leave_every_tier_on_every_worker_within_the_publish_interval(
    node: Node, own_redis: RedisServer,  # noqa: F811
) -> None:
    ann_answer = wait_for_ann(node)
    before = cached_payload(own_redis, "u1")
    hidden = {first_of(ann_answer, pb.ANN_FALLBACK), first_of(node.ask("graph"), pb.GRAPH),
              first_of(node.ask("popular"), pb.POPULAR)}
    assert hidden <= node.everywhere()
    # A walk cut by its deadline finds what its time allowed: its top item, whatever it is.
    hidden.add(first_of(node.ask("partial"), pb.GRAPH_PARTIAL))
    sent = time.monotonic()
    response = node.stubs[0].UpdateItems(pb.UpdateItemsRequest(
        items=[pb.ItemInfo(item_id=i, hidden=True) for i in sorted(hidden)]), timeout=RPC_S)
    assert response.accepted == len(hidden) and response.log_position
    assert [r.status for r in response.results] == [pb.ACCEPTED] * len(hidden)
    while hidden & node.everywhere():
        assert time.monotonic() - sent < 10, "hidden items still served after 10 s"
    took = time.monotonic() - sent
    assert took <= PUBLISH_S + SLACK_S, f"hidden after {took:.2f}s"
    # The Redis entry computed before the hide still lists its item: the answer filtered it.
    assert cached_payload(own_redis, "u1") == before
    for surface in TIERS:
        assert len(node.ask(surface).items) == 10  # topped up, never short
    # Shown again, it may come back.
    node.stubs[1].UpdateItems(pb.UpdateItemsRequest(
        items=[pb.ItemInfo(item_id=i, hidden=False) for i in hidden]), timeout=RPC_S)
    deadline = time.monotonic() + 10
    while not hidden & node.everywhere():
        assert time.monotonic() < deadline, "shown items never came back"


def test_categories_hold_on_every_tier_and_everything_survives_sigkill(
    tmp_path: Path, node: Node, own_redis: RedisServer, items_file: Path,  # noqa: F811
) -> None:
    wait_for_ann(node)
    for user in ("u1", "u2", "u3"):
        for surface, source in TIERS.items():
            odd = node.ask(surface, user, categories=("odd",))
            assert len(odd.items) == 10, odd
            assert all(number(item.item_id) % 2 == 1 for item in odd.items), odd
            assert any(item.source == source for item in odd.items), (surface, odd)
        default = node.ask("odd_only", user)
        assert default.items and all(number(i.item_id) % 2 == 1 for i in default.items)
        either = node.ask("graph", user, categories=("odd", "even"))
        assert {number(i.item_id) % 2 for i in either.items} == {0, 1}
    hidden = sorted(node.everywhere("u2"))[:3]
    response = node.stubs[0].UpdateItems(pb.UpdateItemsRequest(
        items=[pb.ItemInfo(item_id=i, hidden=True) for i in hidden]), timeout=RPC_S)
    position = Position.parse(response.log_position)
    deadline = time.monotonic() + 10
    while set(hidden) & node.everywhere("u2"):
        assert time.monotonic() < deadline
    # A crash: the supervisor, builder and workers die at once; the restart replays the log.
    node.proc.send_signal(signal.SIGKILL)
    node.close()
    # The same items file (a changed one is refused: the data dir remembers its source); the
    # items hidden since are in no file, so seeing them hidden shows the catalogue was restored.
    again = Node(tmp_path, own_redis.url, items_file)
    try:
        status = again.stubs[0].GetIngestStatus(pb.GetIngestStatusRequest(), timeout=RPC_S)
        assert Position.parse(status.applied_position) >= position
        assert not set(hidden) & again.everywhere("u2")
        odd = again.ask("popular", "u2", categories=("odd",))
        assert len(odd.items) == 10 and all(number(i.item_id) % 2 for i in odd.items)
    finally:
        again.close()


def items_cli(node: Node, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recserver", "items", *args, "--target",
                           node.address], capture_output=True, text=True, timeout=60)


def test_the_items_command_hides_unhides_and_updates(node: Node, tmp_path: Path) -> None:
    item = first_of(node.ask("graph"), pb.GRAPH)
    done = items_cli(node, "hide", item)
    assert done.returncode == 0 and "1 items applied" in done.stdout, done.stderr
    deadline = time.monotonic() + 10
    while item in node.everywhere():
        assert time.monotonic() < deadline
    assert items_cli(node, "unhide", item).returncode == 0
    while item not in node.everywhere():
        assert time.monotonic() < deadline
    # Moved to a category of its own: asking for it gives that item only.
    done = items_cli(node, "update", item, "--categories", "solo")
    assert done.returncode == 0, done.stderr
    while [i.item_id for i in node.ask("popular", categories=("solo",)).items] != [item]:
        assert time.monotonic() < deadline
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"item_id": "i1", "categories": ["no spaces"]}\n')
    done = items_cli(node, "update", "--file", str(bad))
    assert done.returncode == 2 and "letters, digits" in done.stderr


def test_bad_input_is_invalid_argument_with_a_fix(node: Node) -> None:
    def update(*items: pb.ItemInfo) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as raised:
            node.stubs[0].UpdateItems(pb.UpdateItemsRequest(items=items), timeout=RPC_S)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        return raised.value

    assert "item_id is empty" in update(pb.ItemInfo(item_id="")).details()
    assert "letters, digits" in update(pb.ItemInfo(item_id="i1", categories=["a b"])).details()
    assert "split the batch" in update(*[pb.ItemInfo(item_id="i1")] * 10_001).details()
    assert "one or the other" in update(pb.ItemInfo(item_id="i1", categories=["a"],
                                                    clear_categories=True)).details()
    with pytest.raises(grpc.RpcError) as raised:
        node.ask("graph", categories=("no spaces allowed",))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "letters, digits" in (raised.value.details() or "")
