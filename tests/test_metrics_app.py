"""Metrics wired into the real server: the App, and ``recserver serve --metrics-port 0``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from recserver.config_reload import ConfigHolder
from recserver.metrics import Metrics
from recserver.node.single import App, DataSource
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture(scope="module")
def app() -> Iterator[App]:
    holder = ConfigHolder(None)
    app = App(holder, port=0, metrics_port=0, metrics=Metrics(holder.current, CollectorRegistry()))
    app.start(DataSource(synthetic="20000"), watch_config=False)
    yield app
    app.stop(0)


def test_the_app_serves_request_metrics_on_its_own_port(app: App) -> None:
    assert app.metrics_server.port not in (0, app.server.port)
    with grpc.insecure_channel(app.server.address) as channel:
        stub = pb_grpc.RecommenderStub(channel)
        for i in range(6):
            stub.Recommend(pb.RecommendRequest(user_id=f"u{i}", surface="item_page"), timeout=5)
        with pytest.raises(grpc.RpcError) as err:
            stub.Recommend(pb.RecommendRequest(user_id="u1", surface="no_such"), timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    samples = scrape(app.metrics_server.url)

    def get(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    ok = sum(v for (name, labels), v in samples.items()
             if name == "recserver_grpc_requests_total" and ("code", "OK") in labels)
    assert ok == 6
    assert get("recserver_grpc_requests_total", surface="unknown", source="none",
               code="INVALID_ARGUMENT") == 1
    answered = sum(v for (name, labels), v in samples.items()
                   if name == "recserver_request_duration_seconds_count"
                   and ("surface", "item_page") in labels)
    assert answered == 6
    assert get("recserver_request_stage_duration_seconds_count",
               surface="item_page", stage="encode") == 6
    assert get("recserver_graph_edges") == app.graph.current.n_edges > 0
    assert get("recserver_graph_snapshot_version") == app.graph.current.version
    assert get("recserver_ingest_events_total", outcome="accepted") > 0
    assert get("recserver_surface_sla_seconds", surface="item_page") == 0.06


def test_serve_prints_the_metrics_port_it_picked(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "recserver.cli", "serve", "--synthetic", "20000", "--port", "0",
         "--metrics-port", "0", "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        url = None
        for line in proc.stdout:
            found = re.search(r"metrics on (http://127\.0\.0\.1:(\d+)/metrics)", line)
            if found:
                url = found.group(1)
                assert int(found.group(2)) > 0
            if "serving on" in line:
                break
        assert url is not None, "serve did not print its metrics address"
        samples = scrape(url)
        assert any(name == "recserver_graph_edges" and v > 0 for (name, _), v in samples.items())
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
