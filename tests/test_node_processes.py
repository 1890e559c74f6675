"""The node as real processes: ``recserver serve`` = a supervisor, one builder, two workers.

Each test starts the real command line and kills what it started whatever happens. Workers and
the builder are found by their ready markers and ``builder.json`` in the run directory.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc
from tests.process_output import CollectedProcess
from tests.server_fixtures import KNOWN_USER, config_document, write_config

STARTUP_S = 90.0
RPC_TIMEOUT_S = 10.0


class Node(CollectedProcess):
    def __init__(self, tmp: Path, workers: int = 2, env: dict[str, str] | None = None,
                 **server: object) -> None:
        self.data = tmp / "data"
        document = config_document()
        document["server"].update(server)
        self.config = write_config(tmp / "config.yaml", document)
        super().__init__(self.argv(workers), env)
        self.address = self.wait_for(r"recserver starting on (\S+) ", STARTUP_S).group(1)
        self.wait_for(r"^recserver serving on ", STARTUP_S)

    def argv(self, workers: int) -> list[str]:
        """``recserver serve`` on this node's data directory and config (port 0)."""
        return [sys.executable, "-m", "recserver", "serve", "--port", "0", "--metrics-port", "0",
                "--synthetic", "5000", "--workers", str(workers), "--data-dir", str(self.data),
                "--config", str(self.config)]

    @property
    def run(self) -> Path:
        return self.data / "run"

    def worker_pids(self) -> dict[str, int]:
        ready = self.run / "ready"
        out = {}
        for marker in ready.iterdir() if ready.exists() else ():
            name, pid = marker.name.rsplit(".", 1)
            out[name] = int(pid)
        return out

    def builder_pid(self) -> int:
        return int(json.loads((self.run / "builder.json").read_text())["pid"])

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    started = Node(tmp_path)
    try:
        yield started
    finally:
        if started.proc.poll() is None:
            started.proc.kill()  # children follow (they die with their parent)
            started.proc.wait(30)


#: What a client of a node should set: a worker killed mid-connection resets what its listen
#: queue held; with retries and wait_for_ready gRPC reconnects (to a live worker) instead of
#: failing fast while the channel backs off.
RETRY = json.dumps({"methodConfig": [{
    "name": [{"service": "recserver.v1.Recommender"}],
    "retryPolicy": {"maxAttempts": 4, "initialBackoff": "0.05s", "maxBackoff": "0.5s",
                    "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]},
}]})


def recommend(address: str, user: str = KNOWN_USER) -> pb.RecommendResponse:
    options = [("grpc.enable_retries", 1), ("grpc.service_config", RETRY)]
    with grpc.insecure_channel(address, options=options) as channel:
        return pb_grpc.RecommenderStub(channel).Recommend(
            pb.RecommendRequest(user_id=user, surface="home"), timeout=RPC_TIMEOUT_S,
            wait_for_ready=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_until(check, timeout_s: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_workers_answer_and_a_killed_worker_is_replaced(node: Node) -> None:
    pids = node.worker_pids()
    assert set(pids) == {"worker-0", "worker-1"} and node.builder_pid() not in pids.values()
    assert len(recommend(node.address).items) == 10
    os.kill(pids["worker-0"], signal.SIGKILL)
    # The other worker keeps answering while the supervisor starts a new one.
    for _ in range(5):
        assert len(recommend(node.address).items) == 10
    assert wait_until(lambda: node.worker_pids().get("worker-0") not in (None, pids["worker-0"]))
    assert "worker-0" in node.output and "restarting" in node.output
    # The new worker-0 took its own port back: the node's round_robin target stays valid.
    own = json.loads((node.run / "ports.json").read_text())["workers"][0]
    assert len(recommend(f"127.0.0.1:{own}").items) == 10
    assert node.stop() == 0
    assert "Traceback" not in node.output


def test_an_event_recorded_on_any_worker_is_visible_on_every_worker(node: Node) -> None:
    channels = [grpc.insecure_channel(node.address,
                                      options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(6)]  # separate connections: the kernel spreads them over workers
    try:
        stubs = [pb_grpc.RecommenderStub(c) for c in channels]
        event = pb.Event(event_id="visible-1", user_id="fresh-user", item_id="i3",
                         event="purchase")
        recorded = stubs[0].RecordEvents(pb.RecordEventsRequest(events=[event]),
                                         timeout=RPC_TIMEOUT_S)
        assert recorded.accepted == 1
        again = stubs[1].RecordEvents(pb.RecordEventsRequest(events=[event]),
                                      timeout=RPC_TIMEOUT_S)
        assert again.duplicates == 1  # one log, one dedup, whichever worker took it

        # Every worker, each asked on its own port.
        own = json.loads((node.run / "ports.json").read_text())["workers"]
        channels += [grpc.insecure_channel(f"127.0.0.1:{port}") for port in own]
        workers = [pb_grpc.RecommenderStub(c) for c in channels[-len(own):]]

        def everywhere() -> bool:
            return all(s.DescribeUser(pb.DescribeUserRequest(user_id="fresh-user"),
                                      timeout=RPC_TIMEOUT_S).found for s in workers)

        assert len(workers) == 2 and wait_until(everywhere, 10.0)
        status = stubs[2].GetIngestStatus(pb.GetIngestStatusRequest(), timeout=RPC_TIMEOUT_S)
        assert status.backend == "file" and status.events_applied >= 5000
    finally:
        for channel in channels:
            channel.close()


def worker_answers(node: Node) -> dict[str, float]:
    """Answers per worker, as the node's ``/metrics`` counts them."""
    url = json.loads((node.run / "builder.json").read_text())["metrics_url"]
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    found = re.findall(r'recserver_worker_answers_total\{worker="([^"]+)"\} (\S+)', text)
    return {name: float(value) for name, value in found}


def test_one_channel_over_the_worker_ports_is_answered_by_every_worker(node: Node) -> None:
    ports = json.loads((node.run / "ports.json").read_text())
    assert len(ports["workers"]) == 2 and ports["node"] not in ports["workers"]
    assert f"one channel to {ports['round_robin_target']}" in node.output
    before = worker_answers(node)
    options = [("grpc.lb_policy_name", "round_robin")]
    with grpc.insecure_channel(ports["round_robin_target"], options=options) as channel:
        stub = pb_grpc.RecommenderStub(channel)
        for _ in range(40):
            stub.Recommend(pb.RecommendRequest(user_id=KNOWN_USER, surface="home"),
                           timeout=RPC_TIMEOUT_S, wait_for_ready=True)
    after = worker_answers(node)
    got = {name: after[name] - before.get(name, 0.0) for name in after}
    # round_robin: one channel, calls taken in turn by every worker.
    assert set(got) == {"worker-0", "worker-1"}
    assert min(got.values()) >= 15 and sum(got.values()) == 40


def test_the_sync_door_still_serves_a_node(tmp_path: Path) -> None:
    """``server.door: sync`` (the baseline the door benchmark measures) runs the same node."""
    node = Node(tmp_path, workers=1, door="sync")
    try:
        assert "asyncio door" not in node.output
        own = json.loads((node.run / "ports.json").read_text())["workers"][0]
        assert len(recommend(node.address).items) == 10
        assert len(recommend(f"127.0.0.1:{own}").items) == 10
        assert node.stop() == 0
    finally:
        if node.proc.poll() is None:
            node.proc.kill()
            node.proc.wait(30)


def test_workers_serve_through_a_builder_crash_and_versions_keep_growing(node: Node) -> None:
    before = recommend(node.address).snapshot_version
    builder = node.builder_pid()
    os.kill(builder, signal.SIGKILL)
    assert len(recommend(node.address).items) == 10  # no builder: the last snapshot serves
    assert wait_until(lambda: (node.run / "builder.json").exists() and
                      node.builder_pid() != builder, 60.0)
    with grpc.insecure_channel(node.address) as channel:
        stub = pb_grpc.RecommenderStub(channel)
        stub.RecordEvents(pb.RecordEventsRequest(events=[pb.Event(
            event_id="after-crash", user_id="u9", item_id="i9", event="purchase")]),
            timeout=RPC_TIMEOUT_S)
    assert wait_until(lambda: recommend(node.address).snapshot_version > before, 30.0)


def test_sigkill_of_the_supervisor_takes_its_children_along(node: Node) -> None:
    children = [node.builder_pid(), *node.worker_pids().values()]
    node.proc.kill()
    node.proc.wait(10)
    assert wait_until(lambda: not any(alive(pid) for pid in children), 60.0)


def mapped_files(pid: int) -> set[str]:
    """Paths of the files ``pid`` maps (``/proc/PID/maps``)."""
    lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return {line.split(None, 5)[5] for line in lines if len(line.split(None, 5)) == 6}


def test_the_builder_maps_the_base_it_published_like_the_workers(node: Node) -> None:
    base = json.loads((node.run / "snapshots" / "MANIFEST.json").read_text())["base"]
    packed = str((node.run / "snapshots" / base / "base_users.packed.npy").resolve())
    # The builder serves its base from the published files (one copy of its pages on the
    # machine, shared with every worker), not from a private copy beside them.
    assert wait_until(lambda: packed in mapped_files(node.builder_pid()), 10.0), packed
    for pid in node.worker_pids().values():
        assert packed in mapped_files(pid)
