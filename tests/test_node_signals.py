"""Signals to a running node (supervisor, builder, one worker process): ``recserver serve`` and
the scenario server (``load/scenarios/server.py``, the same node with one hook of its own).

SIGUSR1 reaches the builder, which publishes a compacted snapshot the worker then maps; SIGHUP
reloads the config in the roles and leaves the node up (it once ended the supervisor, and the
node with it); the scenario's SIGUSR2 starts and stops its ingest over ``RecordEvents``; SIGTERM
stops the node cleanly.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc
from tests.process_output import CollectedProcess
from tests.server_fixtures import KNOWN_USER, config_document, write_config

STARTUP_S = 120.0
WAIT_S = 30.0
RPC_S = 10.0


class ScenarioNode(CollectedProcess):
    def __init__(self, root: Path, command: list[str]) -> None:
        self.config = write_config(root / "config.yaml", config_document())
        self.scenario = command[0] == "load.scenarios.server"
        super().__init__([sys.executable, "-m", *command, "--synthetic", "5000",
                          "--port", "0", "--metrics-port", "0", "--workers", "1",
                          "--data-dir", str(root / "data"), "--config", str(self.config)])
        address = self.wait_for(r"recserver starting on (\S+) ", STARTUP_S).group(1)
        self.wait_for(r"^recserver serving on ", STARTUP_S)
        self.channel = grpc.insecure_channel(address)
        self.stub = pb_grpc.RecommenderStub(self.channel)

    def status(self) -> pb.GetIngestStatusResponse:
        reply: pb.GetIngestStatusResponse = self.stub.GetIngestStatus(
            pb.GetIngestStatusRequest(), timeout=RPC_S)
        return reply

    def wait_until(self, what: str, check: object) -> None:
        deadline = time.monotonic() + WAIT_S
        while not check():  # type: ignore[operator]
            assert self.proc.poll() is None, f"the node exited waiting for {what}"
            assert time.monotonic() < deadline, f"{what}: not within {WAIT_S:.0f} s"
            time.sleep(0.1)

    def stop(self) -> int | None:
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(60)
        return self.proc.returncode


@pytest.fixture(params=["serve", "scenario"])
def node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ScenarioNode]:
    command = (["recserver", "serve"] if request.param == "serve" else
               ["load.scenarios.server", "--ingest-rate", "200"])
    started = ScenarioNode(tmp_path, command)
    try:
        yield started
    finally:
        if started.proc.poll() is None:
            started.proc.kill()
            started.proc.wait(30)


def test_signals_reach_the_roles(node: ScenarioNode) -> None:
    # SIGUSR1: the builder's compacting publish (nothing is ingested, so no other publish).
    version = node.status().snapshot_version
    node.proc.send_signal(signal.SIGUSR1)
    node.wait_until("a forced publish mapped by the worker",
                    lambda: node.status().snapshot_version > version)
    node.wait_for(r"forced compacting publish: version \d+", WAIT_S)

    if node.scenario:
        # SIGUSR2: the scenario's events arrive over RecordEvents, then stop.
        applied = node.status().events_applied
        node.proc.send_signal(signal.SIGUSR2)
        node.wait_until("scenario events applied",
                        lambda: node.status().events_applied > applied)
        node.proc.send_signal(signal.SIGUSR2)
        node.wait_for(r"scenario ingest stopped \(\d+ events accepted\)", WAIT_S)

    # SIGHUP: the new file is read by the worker; the node stays up.
    home = pb.RecommendRequest(user_id=KNOWN_USER, surface="home", k=5)
    assert node.stub.Recommend(home, timeout=RPC_S).budget_ms == 60.0
    write_config(node.config, config_document(home={"budget_ms": 45, "sla_p99_ms": 80}))
    node.proc.send_signal(signal.SIGHUP)
    node.wait_until("the reloaded budget",
                    lambda: node.stub.Recommend(home, timeout=RPC_S).budget_ms == 45.0)
    assert node.proc.poll() is None

    assert node.stop() == 0
