"""The load generator against an in-process node (builder and worker, ``tests.node_harness``)
for a couple of seconds, then its plots and the report tables rendered from its result.

The node and the client share this process (and its GIL), so nothing here judges speed: the
test checks that replayed users reach the walk, every surface of the mix is reported, and the
outputs (JSON, PNGs, markdown) are produced from a real run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from load.loadgen.cli import print_summary, write_result
from load.loadgen.plots import plot_cdf, plot_timeline, plot_vs_load
from load.loadgen.runner import RunConfig, run
from load.loadgen.schedule import Schedule
from load.loadgen.workload import Workload, WorkloadSpec, load_population
from load.scenarios.report import render_scenario
from tests.node_harness import DataSource, InProcessNode
from tests.server_fixtures import SYNTHETIC_SIZE, config_document, write_config


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessNode]:
    root = tmp_path_factory.mktemp("loadgen")
    app = InProcessNode(write_config(root / "config.yaml", config_document()), root)
    try:
        app.start(DataSource(synthetic=SYNTHETIC_SIZE))
        yield app
    finally:
        app.stop(grace=1.0)


@pytest.fixture(scope="module")
def result(app: InProcessNode) -> dict:
    cols = load_population(synthetic=SYNTHETIC_SIZE)  # the server's own users and items
    spec = WorkloadSpec(mix={"home": 0.5, "item_page": 0.3, "search": 0.2}, debug=True)
    pool = Workload(cols, spec).build(500)
    cfg = RunConfig(target=app.address, schedule=Schedule(60.0, 2.0, "poisson"),
                    channels=2, timeout_s=5.0, warmup_s=0.5, progress=False,
                    label="e2e")
    return run(cfg, pool)


def test_replayed_users_are_served_by_the_walk_on_every_surface(result: dict) -> None:
    total = result["total"]
    assert total["requests"] > 60 and total["error_count"] == 0
    assert total["ok"] == total["requests"]
    assert set(result["surfaces"]) == {"home", "item_page", "search"}
    for name, surface in result["surfaces"].items():
        assert surface["budget_ms"] == config_document()["surfaces"][name]["budget_ms"]
        assert surface["sources"], name
        assert "walk" in surface["stage_ms"] and "queue" in surface["stage_ms"]  # debug on
    # Real users with history: most answers come from the walk (the machine may be busy).
    assert total["graph_share"] > 0.5 and total["mean_coverage"] > 0.5


def test_outputs_render_from_a_real_run(result: dict, tmp_path: Path, capsys) -> None:
    print_summary(result)
    assert "item_page" in capsys.readouterr().out
    path = write_result(result, tmp_path)
    assert json.loads(path.read_text())["label"] == "e2e"
    for png in (plot_cdf({"e2e": result}, tmp_path / "cdf.png"),
                plot_timeline(result, tmp_path / "timeline.png"),
                plot_vs_load({"e2e": [result]}, tmp_path / "vs.png")):
        assert png.stat().st_size > 10_000
    payload = {"scenario": "steady", "run": result, "rate": 60.0, "load": 0.5,
               "saturation_rps": 120.0, "saturation_from": "--rate", "verdict": {}}
    markdown = render_scenario("steady", payload)
    assert "| home |" in markdown and "p99" in markdown
