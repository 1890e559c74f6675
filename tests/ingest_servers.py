"""Real ``recserver serve`` processes for the ingest tests (replicas, SIGKILL recovery).

Each server runs on a free port with its output collected by a thread; every wait is bounded
and each process is killed in a ``finally`` whatever happens.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import yaml

from recserver.eventlog.base import Position
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc
from tests.process_output import CollectedProcess
from tests.server_fixtures import config_document

REPO = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 90.0
CALL_TIMEOUT_S = 20.0
VISIBLE_TIMEOUT_S = 30.0
#: Small synthetic data: each server loads it in well under a second.
SYNTHETIC = "5000"


#: A node refuses a Recommend at once (RESOURCE_EXHAUSTED) while its event loop runs late, which
#: two nodes on a 2-core machine can make each other do; its message says to retry after a short
#: backoff, and these tests' clients do, as a production client would (gRPC's retry policy).
RETRY_REFUSALS = [("grpc.service_config", json.dumps({"methodConfig": [{
    "name": [{"service": "recserver.v1.Recommender", "method": "Recommend"}],
    "retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.05s", "maxBackoff": "0.5s",
                    "backoffMultiplier": 2, "retryableStatusCodes": ["RESOURCE_EXHAUSTED"]},
}]}))]


def write_ingest_config(path: Path, **ingest: Any) -> Path:
    """A server config with exact edge weights (linear, no decay, no hub sampling)."""
    doc = config_document()
    doc["graph"] = {
        "publish_interval_s": 0.2,
        "event_weights": {"transform": "linear", "half_life_days": None},
        "prune": {"hub_percentile": None},
    }
    doc["ingest"] = ingest
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class Server(CollectedProcess):
    """``recserver serve`` in a subprocess."""

    def __init__(self, config: Path, *args: str) -> None:
        super().__init__([sys.executable, "-m", "recserver.cli", "serve", "--port", "0",
                          "--metrics-port", "0", "--synthetic", SYNTHETIC, "--config", str(config),
                          *args])
        self.address = ""
        self._channel: grpc.Channel | None = None
        self.stub: Any = None

    def wait_for(self, pattern: str, timeout: float = STARTUP_TIMEOUT_S) -> re.Match[str]:
        return super().wait_for(pattern, timeout)

    def wait_serving(self) -> Server:
        self.address = self.wait_for(r"recserver starting on (\S+) \(port")[1]
        self.wait_for(r"^recserver serving on ")
        self._channel = grpc.insecure_channel(self.address, options=RETRY_REFUSALS)
        self.stub = pb_grpc.RecommenderStub(self._channel)
        return self

    def record(self, events: list[pb.Event]) -> pb.RecordEventsResponse:
        response: pb.RecordEventsResponse = self.stub.RecordEvents(
            pb.RecordEventsRequest(events=events), timeout=CALL_TIMEOUT_S)
        return response

    def status(self) -> pb.GetIngestStatusResponse:
        response: pb.GetIngestStatusResponse = self.stub.GetIngestStatus(
            pb.GetIngestStatusRequest(), timeout=CALL_TIMEOUT_S)
        return response

    def edges(self, user_id: str) -> dict[str, float]:
        response = self.stub.DescribeUser(pb.DescribeUserRequest(user_id=user_id),
                                          timeout=CALL_TIMEOUT_S)
        return {e.item_id: e.weight for e in response.edges}

    def wait_visible(self, position: str, timeout: float = VISIBLE_TIMEOUT_S) -> None:
        """Until this server's snapshot holds everything up to ``position``."""
        target = Position.parse(position)
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if status.visible_position and Position.parse(status.visible_position) >= target:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{position} not visible on {self.address}: {status}")
            time.sleep(0.02)

    def close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        self.close_channel()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
        self._reader.join(30)

    def stop(self) -> int:
        """SIGTERM and wait (a clean stop: drain, final checkpoint)."""
        self.close_channel()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self._reader.join(30)
        return self.proc.returncode
