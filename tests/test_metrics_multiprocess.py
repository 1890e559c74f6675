"""Several worker processes, one ``/metrics``: prometheus_client's multi-process mode.

Each process here is a real interpreter started with ``PROMETHEUS_MULTIPROC_DIR`` set before it
imports prometheus_client (as a process manager would start workers). Two "workers" record
requests into the shared directory and exit; a third builds the registry ``/metrics`` serves
(``recserver.metrics.http.serving_registry``) and renders it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

WORKER = """
import sys
from prometheus_client import CollectorRegistry
from recserver.config import load_config
from recserver.metrics import Metrics
from recserver.service.types import Recommendation

metrics = Metrics(load_config(None), CollectorRegistry())
for _ in range(int(sys.argv[1])):
    metrics.request_finished("home", Recommendation(
        items=[], source="graph", degraded=False, degraded_reasons=[], coverage=1.0,
        budget_ms=60.0, server_elapsed_ms=12.0, snapshot_version=1, stage_ms={"walk": 11.0}))
if sys.argv[2] == "open":
    metrics.cache.breaker("open")
"""

SERVER = """
from prometheus_client import CollectorRegistry, generate_latest
from recserver.config import load_config
from recserver.metrics import Metrics
from recserver.metrics.http import multiprocess_dir, serving_registry

metrics = Metrics(load_config(None), CollectorRegistry())
assert multiprocess_dir() is not None
print(generate_latest(serving_registry(metrics)).decode())
"""


def run(code: str, *args: str, multiproc_dir: Path) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir)}
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_two_workers_are_served_as_one(tmp_path: Path) -> None:
    run(WORKER, "7", "closed", multiproc_dir=tmp_path)
    run(WORKER, "5", "open", multiproc_dir=tmp_path)
    assert len(list(tmp_path.glob("*.db"))) >= 2  # the workers' memory-mapped files

    text = run(SERVER, multiproc_dir=tmp_path)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    def get(name: str, **labels: str) -> float | None:
        return samples.get((name, tuple(sorted(labels.items()))))

    assert get("recserver_request_duration_seconds_count", surface="home", source="graph") == 12
    assert get("recserver_request_stage_duration_seconds_count", surface="home",
               stage="walk") == 12
    assert get("recserver_request_duration_seconds_bucket", surface="home", source="graph",
               le="0.015") == 12
    # Config gauges merge to one value (no pid label); the breaker reports the worst worker.
    assert get("recserver_surface_budget_seconds", surface="home") == 0.06
    assert get("recserver_surface_sla_boundary_info", surface="home", le="0.08") == 1
    assert get("recserver_cache_breaker_state") == 2
    assert not any("pid" in dict(labels) for _, labels in samples)
    assert any(name == "process_cpu_seconds_total" for name, _ in samples)
