"""Metrics wired into the node that ships: ``recserver serve --metrics-port 0`` (a builder and a
worker process), whose one ``/metrics`` (the builder's) carries the worker's request metrics."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc

STARTUP_S = 120.0


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@dataclass
class Served:
    """What ``serve`` printed: its addresses and the edges it loaded."""

    address: str
    port: int
    metrics_url: str
    metrics_port: int
    edges: int


def read_start(proc: subprocess.Popen[str]) -> Served:
    assert proc.stdout is not None
    address, port, url, metrics_port = "", 0, None, 0
    for line in proc.stdout:
        if found := re.search(r"recserver starting on (\S+) \(port (\d+)\)", line):
            address, port = found.group(1), int(found.group(2))
        if found := re.search(r"metrics on (http://127\.0\.0\.1:(\d+)/metrics)", line):
            url, metrics_port = found.group(1), int(found.group(2))
        if found := re.search(r"serving on \S+: [\d,]+ users, [\d,]+ items, ([\d,]+) edges", line):
            assert url is not None, "serve did not print its metrics address"
            return Served(address, port, url, metrics_port, int(found.group(1).replace(",", "")))
    raise AssertionError("serve exited before serving")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the node sets its own, in its run dir
    data = tmp_path_factory.mktemp("metrics-node") / "data"
    proc = subprocess.Popen(
        [sys.executable, "-m", "recserver.cli", "serve", "--synthetic", "20000", "--port", "0",
         "--metrics-port", "0", "--workers", "1", "--data-dir", str(data)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    try:
        yield read_start(proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_the_node_serves_request_metrics_on_its_own_port(served: Served) -> None:
    assert served.metrics_port not in (0, served.port)
    with grpc.insecure_channel(served.address) as channel:
        stub = pb_grpc.RecommenderStub(channel)
        versions = {stub.Recommend(pb.RecommendRequest(user_id=f"u{i}", surface="item_page"),
                                   timeout=5).snapshot_version for i in range(6)}
        with pytest.raises(grpc.RpcError) as err:
            stub.Recommend(pb.RecommendRequest(user_id="u1", surface="no_such"), timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    samples = scrape(served.metrics_url)

    def get(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    ok = sum(v for (name, labels), v in samples.items()
             if name == "recserver_grpc_requests_total" and ("code", "OK") in labels)
    assert ok == 6
    assert sum(v for (name, labels), v in samples.items()
               if name == "recserver_grpc_requests_total" and ("surface", "unknown") in labels
               and ("source", "none") in labels and ("code", "INVALID_ARGUMENT") in labels) == 1
    answered = sum(v for (name, labels), v in samples.items()
                   if name == "recserver_request_duration_seconds_count"
                   and ("surface", "item_page") in labels)
    assert answered == 6
    assert sum(v for (name, labels), v in samples.items()
               if name == "recserver_request_stage_duration_seconds_count"
               and ("surface", "item_page") in labels and ("stage", "encode") in labels) == 6
    assert get("recserver_graph_edges") == served.edges > 0
    (version,) = versions  # nothing was ingested: one snapshot answered every call
    assert get("recserver_graph_snapshot_version") == version
    assert get("recserver_ingest_events_total", outcome="accepted") > 0
    assert get("recserver_surface_sla_seconds", surface="item_page") == 0.06


def test_serve_prints_the_metrics_port_it_picked(served: Served) -> None:
    assert served.metrics_port > 0
    samples = scrape(served.metrics_url)
    assert any(name == "recserver_graph_edges" and v > 0 for (name, _), v in samples.items())
