"""The trending tier on a real node (supervisor, builder, a worker) over the churn workload.

A burst of clicks on a brand-new item, recorded through the node's gRPC API, must lead the
answers of a surface whose fallback is ``trending`` within a publish, served by the worker from
the builder's published counts, while ``popular`` keeps its all-time answer; after a graceful
restart (checkpoint, then the log) the burst still leads.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import grpc

from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc
from tests.process_output import CollectedProcess
from tests.server_fixtures import write_config

STARTUP_S = 120.0
RPC_S = 10.0


def surface(tiers: list[str]) -> dict[str, object]:
    return {"budget_ms": 300, "sla_p99_ms": 400, "k_default": 10, "k_max": 50,
            "walk": {"steps": 1, "n_p": 0}, "trending": {"half_life_minutes": 10},
            "fallback": {"tiers": tiers, "blend": {"pool_complete_walk": None}}}


DOCUMENT = {
    "surfaces": {"news": surface(["trending", "popular"]), "popular": surface(["popular"])},
    "graph": {"publish_interval_s": 0.5},
    "server": {"reload_poll_s": 60.0, "metrics_port": 0},
}


class Node(CollectedProcess):
    def __init__(self, tmp: Path) -> None:
        config = write_config(tmp / "config.yaml", DOCUMENT)
        super().__init__([sys.executable, "-m", "recserver", "serve", "--port", "0",
                          "--metrics-port", "0", "--synthetic", "churn:20000", "--workers", "1",
                          "--data-dir", str(tmp / "data"), "--config", str(config)])
        self.address = self.wait_for(r"recserver starting on (\S+) ", STARTUP_S).group(1)
        self.wait_for(r"^recserver serving on ", STARTUP_S)
        self.channel = grpc.insecure_channel(self.address)
        self.stub = pb_grpc.RecommenderStub(self.channel)

    def ask(self, surface: str) -> pb.RecommendResponse:
        response: pb.RecommendResponse = self.stub.Recommend(
            pb.RecommendRequest(user_id="newcomer", surface=surface, k=10), timeout=RPC_S)
        return response

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(60)


def leads_within(node: Node, item: str, seconds: float) -> pb.RecommendResponse:
    deadline = time.monotonic() + seconds
    while True:
        answer = node.ask("news")
        if answer.items and answer.items[0].item_id == item:
            return answer
        assert time.monotonic() < deadline, [i.item_id for i in answer.items]
        time.sleep(0.1)


def test_a_burst_on_a_new_item_leads_trending_on_the_worker_and_survives_restart(
        tmp_path: Path) -> None:
    node = Node(tmp_path)
    try:
        before = node.ask("news")
        assert before.source == pb.TRENDING and len(before.items) == 10
        assert all(item.source == pb.TRENDING for item in before.items)
        now = time.time()
        burst = [pb.Event(event_id=f"burst-{n}", user_id=f"reader{n}", item_id="breaking",
                          event="click", timestamp=now - 60 + n) for n in range(30)]
        recorded = node.stub.RecordEvents(pb.RecordEventsRequest(events=burst), timeout=RPC_S)
        assert recorded.accepted == 30
        answer = leads_within(node, "breaking", 5.0)
        assert answer.source == pb.TRENDING
        popular = [item.item_id for item in node.ask("popular").items]
        assert "breaking" not in popular[:1]  # popular: all-time weight, not the last minutes
    finally:
        node.stop()
    assert node.proc.returncode == 0, node.output
    restarted = Node(tmp_path)
    try:
        assert "checkpoint" in restarted.output
        leads_within(restarted, "breaking", 5.0)
    finally:
        restarted.stop(signal.SIGKILL)
