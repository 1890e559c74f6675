"""Online quality on a real node: workers report what they served, the builder matches events.

A node (supervisor, builder, two worker processes) runs with every answer sampled and a short
window. Users are answered by the workers; some then click an answered item through the node's
``RecordEvents``, some never act, some ask twice. The builder's ``/metrics`` (the node's one)
must count the hits, the misses once the window passed, and the overlap of the repeat answers;
a real Prometheus scraping it must give the dashboard's online hit rate and stability panels a
value (each round adds to counters Prometheus has already seen, so their rates are not zero).
"""

from __future__ import annotations

import json
import math
import re
import signal
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc
from tests.process_output import CollectedProcess
from tests.prometheus_fixture import DASHBOARD, PROMETHEUS, Prometheus
from tests.server_fixtures import config_document, write_config

STARTUP_S = 120.0
RPC_S = 10.0
WAIT_S = 30.0
ROUNDS = 3
HIT_PANEL = "Online hit rate by surface and serving tier (1h)"
STABILITY_PANEL = "Answer stability: overlap@k of consecutive answers (1h)"


class Node(CollectedProcess):
    def __init__(self, tmp: Path) -> None:
        document = config_document()
        document["graph"] = {"publish_interval_s": 0.5}
        document["online_quality"] = {"sample_rate": 1.0, "window_s": 2.0, "late_s": 0.5}
        config = write_config(tmp / "config.yaml", document)
        super().__init__([sys.executable, "-m", "recserver", "serve", "--port", "0",
                          "--metrics-port", "0", "--synthetic", "5000", "--workers", "2",
                          "--data-dir", str(tmp / "data"), "--config", str(config)])
        self.address = self.wait_for(r"recserver starting on (\S+) ", STARTUP_S).group(1)
        self.metrics_url = self.wait_for(r"recserver metrics on (\S+) ", STARTUP_S).group(1)
        self.wait_for(r"^recserver serving on ", STARTUP_S)
        self.channel = grpc.insecure_channel(self.address)
        self.stub = pb_grpc.RecommenderStub(self.channel)

    def ask(self, user: str) -> pb.RecommendResponse:
        answer: pb.RecommendResponse = self.stub.Recommend(
            pb.RecommendRequest(user_id=user, surface="home", k=10), timeout=RPC_S)
        assert answer.items
        return answer

    def click(self, user: str, item: str) -> None:
        event = pb.Event(event_id=f"{user}-{item}", user_id=user, item_id=item, event="click",
                         timestamp=time.time())
        done = self.stub.RecordEvents(pb.RecordEventsRequest(events=[event]), timeout=RPC_S)
        assert done.accepted == 1

    def metric(self, name: str) -> float:
        """The sum of ``name``'s samples on the node's /metrics (0 when absent)."""
        with urllib.request.urlopen(self.metrics_url, timeout=RPC_S) as resp:
            text = resp.read().decode()
        return sum(s.value for family in text_string_to_metric_families(text)
                   for s in family.samples if s.name == name)

    def wait_metric(self, name: str, at_least: float) -> float:
        deadline = time.monotonic() + WAIT_S
        while (value := self.metric(name)) < at_least:
            assert time.monotonic() < deadline, (name, value, at_least)
            time.sleep(0.2)
        return value

    def stop(self) -> None:
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    started = Node(tmp_path)
    try:
        yield started
    finally:
        started.stop()


def panel_exprs(title: str) -> list[str]:
    panels = {p["title"]: p for p in json.loads(DASHBOARD.read_text())["panels"]}
    return [re.sub(r'=~"\$surface"', '=~".*"', t["expr"]) for t in panels[title]["targets"]]


def one_round(node: Node, n: int) -> None:
    """A user who clicks an answered item, one who never acts, one who asks twice."""
    sampled = node.metric("recserver_online_answers_sampled_total")
    answer = node.ask(f"clicker{n}")
    node.ask(f"idle{n}")
    node.ask(f"twice{n}")
    node.ask(f"twice{n}")
    # The click comes once the builder holds the answer (a person takes longer than a report).
    node.wait_metric("recserver_online_answers_sampled_total", sampled + 4)
    hits = node.metric("recserver_online_answers_hit_total")
    node.click(f"clicker{n}", answer.items[0].item_id)
    node.wait_metric("recserver_online_answers_hit_total", hits + 1)


def test_the_node_metrics_carry_online_hit_rate_and_stability(node: Node, tmp_path: Path
                                                               ) -> None:
    for n in range(ROUNDS):
        one_round(node, n)
    # The idle users' answers (and the repeat asker's) miss once the window and late_s passed.
    assert node.wait_metric("recserver_online_answers_missed_total", 3 * ROUNDS) >= 3 * ROUNDS
    assert node.metric("recserver_online_answers_hit_total") == ROUNDS
    assert node.metric("recserver_online_stability_overlap_ratio_count") == ROUNDS
    assert node.metric("recserver_online_reports_dropped_total") == 0


@pytest.mark.slow
@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (apt-get install "
                    "prometheus; scripts/test.sh does it)")
def test_the_dashboard_online_panels_have_data_on_the_node(node: Node, tmp_path: Path) -> None:
    prometheus = Prometheus(tmp_path, node.metrics_url.removeprefix("http://")
                            .removesuffix("/metrics"))
    try:
        for n in range(ROUNDS):
            one_round(node, n)
            time.sleep(2.5)  # Prometheus scrapes each step, so the next one is a rise
        hit_rate, stability, stability_p10 = (
            panel_exprs(HIT_PANEL) + panel_exprs(STABILITY_PANEL))
        deadline = time.monotonic() + WAIT_S
        while True:
            rates = {(r["metric"]["surface"], r["metric"]["source"]): float(r["value"][1])
                     for r in prometheus.query(hit_rate)}
            overlaps = {r["metric"]["surface"]: float(r["value"][1])
                        for r in prometheus.query(stability)}
            if (rates and overlaps and not any(map(math.isnan, rates.values()))
                    and not any(map(math.isnan, overlaps.values()))):
                break
            assert time.monotonic() < deadline, (rates, overlaps)
            time.sleep(0.5)
        # A new user is answered from the popular tier; one in four of its answers was clicked.
        assert set(rates) == {("home", "popular")}
        assert 0.0 < rates["home", "popular"] < 1.0
        assert set(overlaps) == {"home"} and 0.0 < overlaps["home"] <= 1.0
        assert prometheus.query(stability_p10)
    finally:
        prometheus.stop()
