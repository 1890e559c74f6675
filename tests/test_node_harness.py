"""The in-process node itself: two workers on one port, each mapping what the builder publishes.

An event recorded through the node's port (whichever worker the kernel picked) is appended by
the builder, published as files, and then found in both workers' mapped snapshots.
"""

from __future__ import annotations

import time
from pathlib import Path

import grpc

from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc
from tests.node_harness import DataSource, InProcessNode
from tests.server_fixtures import SYNTHETIC_SIZE, config_document, write_config

WAIT_S = 30.0


def test_two_workers_share_the_port_and_map_the_builders_publishes(tmp_path: Path) -> None:
    document = config_document()
    document["graph"] = {"publish_interval_s": 0.1}
    with InProcessNode(write_config(tmp_path / "config.yaml", document), tmp_path,
                       workers=2) as node:
        port = node.start(DataSource(synthetic=SYNTHETIC_SIZE))
        assert [w.server.port for w in node.workers] == [port, port]
        with grpc.insecure_channel(node.address) as channel:
            done = pb_grpc.RecommenderStub(channel).RecordEvents(pb.RecordEventsRequest(events=[
                pb.Event(event_id="h-1", user_id="harness-user", item_id="i1", event="view")]),
                timeout=10)
        assert done.accepted == 1
        deadline = time.monotonic() + WAIT_S
        while not all(w.graph.current.users.get("harness-user") is not None
                      for w in node.workers):
            assert time.monotonic() < deadline, "a worker never mapped the recorded event"
            time.sleep(0.05)
        assert node.graph.current.users.get("harness-user") is not None  # the builder's
