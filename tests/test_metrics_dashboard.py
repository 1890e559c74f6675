"""deploy/grafana: the dashboard parses and asks only for series that exist.

Every metric name in a PromQL expression must be one the server exports (its registry, with the
suffixes Prometheus adds) or a recording rule of deploy/prometheus/rules; every label matched on
a raw metric must be one of that metric's labels. (The integration test runs the same
expressions against a real Prometheus.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from prometheus_client import CollectorRegistry

from recserver.config import load_config
from recserver.metrics import Metrics
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.server.outcomes import RECOMMEND_METHOD, RecommendOutcomes
from recserver.service.types import SOURCES, Recommendation
from tests.service_fixtures import clustered_graph

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "recserver-dashboard.json"
RULES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))

#: Series Prometheus itself provides.
BUILTIN = {"ALERTS", "ALERTS_FOR_STATE", "up"}
_NAME = re.compile(r"\b(recserver_[a-z0-9_]+|[a-z_]+:recserver_[a-z0-9_]+:[a-z0-9_]+|ALERTS)\b")
_SELECTOR = re.compile(r"\b(recserver_[a-z0-9_]+)\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")


def exprs(node: Any) -> Iterator[str]:
    """Every PromQL string in the dashboard (targets, template queries, annotations)."""
    if isinstance(node, dict):
        for key, val in node.items():
            promql = key in ("expr", "definition") or (key == "query" and "(" in str(val))
            if promql and isinstance(val, str):
                yield val
            else:
                yield from exprs(val)
    elif isinstance(node, list):
        for item in node:
            yield from exprs(item)


def exported_labels() -> dict[str, set[str]]:
    """Sample name -> label names, from a registry where every metric has been exercised."""
    config = load_config(None)
    metrics = Metrics(config, CollectorRegistry())
    metrics.serve_as("worker-0")
    metrics.watch_graph(clustered_graph())

    class Holder:
        reloads_ok, reloads_failed, last_error = 0, 0, None
        restart_pending: tuple[str, ...] = ()

    metrics.watch_config(Holder())
    for surface in config.surfaces:
        for source in SOURCES:
            metrics.request_finished(surface, Recommendation(
                items=[], source=source, degraded=True, degraded_reasons=["deadline"],
                coverage=0.5, budget_ms=1.0, server_elapsed_ms=2.0, snapshot_version=1,
                stage_ms={"walk": 1.0}))
    RecommendOutcomes(metrics).rpc_finished(
        RECOMMEND_METHOD, pb.RecommendRequest(surface="home"), None, grpc.StatusCode.INTERNAL)
    metrics.cache.error("get")
    metrics.cache.lookup("hit", 0.0001)
    metrics.cache.breaker("open")
    metrics.record_ingest(1, 1, 1)
    metrics.online.hit("home", "graph")
    metrics.online.missed("home", "graph")
    metrics.stability.overlap("home", 0.5)
    labels: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    return labels


def recording_rules() -> dict[str, set[str]]:
    """Recording rule name -> its labels (the level part of level:metric:operations)."""
    names: dict[str, set[str]] = {}
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    level = rule["record"].split(":")[0]
                    names[rule["record"]] = set(level.split("_"))
    return names


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def test_the_dashboard_has_the_panels_sres_need(dashboard: dict[str, Any]) -> None:
    titles = " | ".join(p["title"] for p in dashboard["panels"])
    for wanted in ("p99 vs SLA", "stage", "reason", "coverage", "Requests per second",
                   "Snapshot age", "Circuit breaker", "Cache errors", "Refused at the door"):
        assert wanted.lower() in titles.lower(), wanted
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    surface = next(v for v in dashboard["templating"]["list"] if v["name"] == "surface")
    assert surface["multi"] and surface["includeAll"]


def test_online_hit_rate_by_surface_and_tier_sits_next_to_stability(
    dashboard: dict[str, Any]
) -> None:
    panels = {p["title"]: p for p in dashboard["panels"]}
    hits = panels["Online hit rate by surface and serving tier (1h)"]
    stable = panels["Answer stability: overlap@k of consecutive answers (1h)"]
    assert hits["gridPos"]["y"] == stable["gridPos"]["y"]  # one row, side by side
    assert hits["gridPos"]["x"] + hits["gridPos"]["w"] <= stable["gridPos"]["x"]
    hit_expr = hits["targets"][0]["expr"]
    assert "sum by (surface, source)" in hit_expr
    assert "recserver_online_answers_hit_total" in hit_expr
    assert "recserver_online_answers_missed_total" in hit_expr
    exprs_ = " ".join(t["expr"] for t in stable["targets"])
    assert "recserver_online_stability_overlap_ratio_sum" in exprs_
    assert "recserver_online_stability_overlap_ratio_count" in exprs_


def test_every_expression_names_existing_series_and_labels(dashboard: dict[str, Any]) -> None:
    exported = exported_labels()
    rules = recording_rules()
    known = set(exported) | set(rules) | BUILTIN
    found = list(exprs(dashboard))
    assert len(found) > 20
    for expr in found:
        names = _NAME.findall(expr)
        assert names, f"no metric in {expr!r}"
        unknown = set(names) - known
        assert not unknown, f"{expr!r} asks for {unknown}, which nothing exports"
        for name, body in _SELECTOR.findall(expr):
            used = set(_MATCHER.findall(body))
            assert used <= exported.get(name, set()) | rules.get(name, set()), (name, used)
    # The rules themselves read only exported series.
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                unknown = set(_NAME.findall(rule["expr"])) - known
                assert not unknown, f"{path.name}: {rule.get('record') or rule.get('alert')} "\
                    f"reads {unknown}"
