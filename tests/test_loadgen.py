"""The load generator's parts: the open-loop schedule, HDR figures, the workload, the runner.

The runner tests use a real gRPC server on a free port whose handler stalls on purpose: an open
loop keeps sending on schedule while the server stalls (the client's send lag stays small) and
charges the stall to the requests it delayed, measured from their due times.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from load.common.empty_server import EmptyHandler
from load.loadgen.runner import RunConfig, check_loopback, run
from load.loadgen.schedule import Schedule, schedule_offsets
from load.loadgen.stats import PERCENTILES, Bucket, Recorder, phase_summary
from load.loadgen.workload import COLD_PREFIX, Planned, Workload, WorkloadSpec, parse_mix
from recserver.config import ServerSection
from recserver.graph.events import Event, EventColumns
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.server.grpc_server import GrpcServer
from recserver.service.types import Recommendation, RecommendQuery

# -- schedule ---------------------------------------------------------------------------------


def test_constant_schedule_is_evenly_spaced_and_bounded() -> None:
    offsets = schedule_offsets("constant", 100.0, 2.0, 10_000)
    assert offsets.shape[0] == 200
    np.testing.assert_allclose(np.diff(offsets), 0.01)
    assert offsets[0] == 0.0 and offsets[-1] < 2.0
    assert schedule_offsets("constant", 100.0, 2.0, 50).shape[0] == 50  # count bound


def test_poisson_schedule_has_the_offered_rate_and_is_reproducible() -> None:
    offsets = Schedule(2_000.0, 5.0, "poisson", seed=3).offsets()
    assert np.all(np.diff(offsets) >= 0) and offsets[-1] < 5.0
    assert abs(offsets.shape[0] / 5.0 - 2_000.0) < 2_000.0 * 0.05
    gaps = np.diff(offsets)
    assert abs(gaps.std() / gaps.mean() - 1.0) < 0.1  # exponential gaps: CV 1
    np.testing.assert_array_equal(offsets, Schedule(2_000.0, 5.0, "poisson", seed=3).offsets())
    assert Schedule(2_000.0, 5.0, "poisson", max_requests=300).offsets().shape[0] == 300


@pytest.mark.parametrize("kwargs", [{"rate": 0}, {"duration_s": -1}, {"kind": "burst"},
                                    {"max_requests": 0}])
def test_schedule_rejects_bad_arguments(kwargs: dict) -> None:
    args = {"rate": 10.0, "duration_s": 1.0, **kwargs}
    with pytest.raises(ValueError):
        Schedule(**args)


# -- HDR figures ------------------------------------------------------------------------------


def _response(
    ms: float, source: pb.Source.ValueType = pb.GRAPH, degraded: bool = False
) -> pb.RecommendResponse:
    return pb.RecommendResponse(server_elapsed_ms=ms, source=source, degraded=degraded,
                                degraded_reasons=["deadline"] if degraded else [],
                                coverage=0.5 if degraded else 1.0, budget_ms=50.0)


def test_bucket_percentiles_match_the_recorded_values() -> None:
    bucket = Bucket()
    for ms in range(1, 1001):  # 1 .. 1000 ms
        bucket.answered(_response(ms / 2), ms / 1000.0, "graph")
    bucket.failed("DEADLINE_EXCEEDED", 2.0)
    bucket.due = 1001
    out = bucket.summary(window_s=10.0, elapsed_s=10.0)
    lat = out["latency_ms"]
    for q in PERCENTILES:
        expected = np.percentile(np.append(np.arange(1, 1001), 2000.0), q, method="inverted_cdf")
        assert lat[f"p{q:g}"] == pytest.approx(expected, rel=0.002)  # 3 significant digits
    assert lat["max"] == pytest.approx(2000.0)  # exact, errors included at their time
    assert lat["p99.9"] <= lat["max"]
    assert out["server_ms"]["p50"] == pytest.approx(250.0, rel=0.002)
    assert out["errors"] == {"DEADLINE_EXCEEDED": 1} and out["error_count"] == 1
    assert out["offered_rate"] == pytest.approx(100.1) and out["achieved_rate"] == 100.0
    cdf = out["cdf"]
    assert [p for _, p in cdf] == sorted(p for _, p in cdf)
    assert [ms for ms, _ in cdf] == sorted(ms for ms, _ in cdf)


def test_recorder_splits_by_surface_source_and_second() -> None:
    rec = Recorder()
    for i in range(10):
        rec.due("home", i // 5)
        degraded = i % 2 == 0
        rec.answered("home", _response(5.0, pb.BLENDED if degraded else pb.GRAPH, degraded),
                     0.005, 0.0001, i // 5)
    rec.due("search", 1)
    rec.failed("search", "INVALID_ARGUMENT", 0.001, 1)
    out = rec.summary(window_s=2.0, elapsed_s=2.0)
    home = out["surfaces"]["home"]
    assert home["degraded_share"] == 0.5 and home["graph_share"] == 0.5
    assert home["mean_coverage"] == pytest.approx(0.75)
    assert set(home["by_source"]) == {"graph", "blended"}
    assert home["degraded_reasons"] == {"deadline": 5}
    assert out["surfaces"]["search"]["errors"] == {"INVALID_ARGUMENT": 1}
    assert [row["due"] for row in out["timeline"]] == [5, 6]
    phase = phase_summary(rec.timeline, "second 1", 1, 2)
    assert phase["due"] == 6 and phase["errors"] == 1 and phase["ok"] == 5


# -- workload ---------------------------------------------------------------------------------


def _population() -> EventColumns:
    events = [Event(f"u{u}", f"i{(u * 7 + j) % 40}", "purchase", 1.0, 1_000.0 + u * 10 + j)
              for u in range(20) for j in range(5)]
    return EventColumns.from_events(events)


def test_parse_mix_normalises_and_rejects_nonsense() -> None:
    assert parse_mix("home=3,search=1") == {"home": 0.75, "search": 0.25}
    for bad in ("", "home=x", "home=-1", "=1"):
        with pytest.raises(ValueError):
            parse_mix(bad)


def test_workload_replays_users_with_context_on_item_pages() -> None:
    cols = _population()
    spec = WorkloadSpec(mix={"home": 0.5, "item_page": 0.5}, context_items=3, cold_share=0.25,
                        seed=1)
    pool = Workload(cols, spec).build(400)
    assert len(pool) == 400
    assert {p.surface for p in pool} == {"home", "item_page"}
    known = set(cols.user_names)
    for p in pool:
        user = p.request.user_id
        assert (user.startswith(COLD_PREFIX)) == p.cold and (p.cold or user in known)
        if p.surface == "item_page":
            assert 1 <= len(p.request.context_item_ids) <= 3
        else:
            assert not p.request.context_item_ids
    assert 0.15 < sum(p.cold for p in pool) / len(pool) < 0.35
    # Replay order: the n-th request is the n-th event's user.
    first = [p for p in pool[:20] if not p.cold]
    assert all(p.request.user_id == cols.user_names[cols.user_codes[i]]
               for i, p in enumerate(pool[:20]) if not p.cold) and first


# -- runner -----------------------------------------------------------------------------------


def test_only_loopback_targets() -> None:
    for ok in ("127.0.0.1:5", "localhost:5", "[::1]:5", "127.9.9.9:5", "unix:/tmp/x"):
        check_loopback(ok)
    for bad in ("10.0.0.1:5", "example.com:5", "0.0.0.0:5"):
        with pytest.raises(ValueError):
            check_loopback(bad)


class StallingHandler(EmptyHandler):
    """Answers at once, except the first call, which takes ``stall_s``."""

    def __init__(self, stall_s: float) -> None:
        self.stall_s = stall_s
        self.calls = 0
        self._lock = threading.Lock()

    def recommend(self, query: RecommendQuery, *, arrival: float,
                  client_remaining_s: float | None) -> Recommendation:
        with self._lock:
            self.calls += 1
            first = self.calls == 1
        if first:
            time.sleep(self.stall_s)
        if query.surface == "bad":
            from recserver.core.errors import InvalidArgument

            raise InvalidArgument("unknown surface")
        return super().recommend(query, arrival=arrival, client_remaining_s=client_remaining_s)


@pytest.fixture
def stalling() -> Iterator[tuple[GrpcServer, StallingHandler]]:
    handler = StallingHandler(stall_s=0.3)
    # One worker: every request queues behind the stalled one, as on a stalled server with no
    # admission control (which would refuse them instead).
    server = GrpcServer(handler, ServerSection(max_workers=1, max_queued_calls=None,
                                               queue_target_ms=None), port=0)
    server.start()
    server.set_serving()
    yield server, handler
    server.stop(0.5)


def _pool(surfaces: tuple[str, ...] = ("home",)) -> list[Planned]:
    return [Planned(s, pb.RecommendRequest(user_id=f"u{i}", surface=s), False)
            for i in range(50) for s in surfaces]


def test_open_loop_keeps_sending_through_a_stall_and_charges_it(stalling) -> None:
    server, handler = stalling
    cfg = RunConfig(target=server.address, schedule=Schedule(100.0, 1.0, "constant"),
                    channels=2, timeout_s=5.0, progress=False)
    result = run(cfg, _pool())
    total = result["total"]
    # Every scheduled request was sent and answered, though the first answer took 300 ms.
    assert total["requests"] == 100 and total["ok"] == 100 and handler.calls == 100
    # Sent on time (open loop): a closed loop would send the ~30 requests due during the
    # 300 ms stall only after it, late by up to 300 ms. (p99 is bounded loosely: one pause of
    # the shared interpreter, e.g. a collection, can delay a single send on a busy machine.)
    assert result["send_lag_ms"]["p90"] < 50.0
    assert result["send_lag_ms"]["p99"] < 250.0
    # ... and measured from the due time: the first request waited the stall, the ones due
    # during it waited for what was left of it.
    assert total["latency_ms"]["max"] >= 290.0
    assert total["latency_ms"]["p90"] >= 50.0
    assert result["timeline"][0]["due"] == 100
    json.loads(json.dumps(result))  # JSON-ready as is


def test_errors_are_counted_by_status_code_and_the_schema_holds(stalling) -> None:
    server, _ = stalling
    cfg = RunConfig(target=server.address, schedule=Schedule(200.0, 0.5, "poisson", seed=2),
                    channels=3, timeout_s=5.0, progress=False, label="schema",
                    phases=(("all", 0.0, 1.0),))
    result = run(cfg, _pool(("home", "bad")))
    assert result["schema"] == "recserver.loadgen/1" and result["label"] == "schema"
    assert set(result["surfaces"]) == {"home", "bad"}
    bad, home = result["surfaces"]["bad"], result["surfaces"]["home"]
    assert bad["ok"] == 0 and bad["errors"] == {"INVALID_ARGUMENT": bad["requests"]}
    assert home["error_count"] == 0 and home["ok"] == home["requests"]
    for body in (home, result["total"]):
        assert set(body["latency_ms"]) == {"p50", "p90", "p99", "p99.9", "max", "mean"}
        for key in ("requests", "ok", "errors", "offered_rate", "achieved_rate", "server_ms",
                    "degraded_share", "graph_share", "mean_coverage", "sources", "cdf", "hdr"):
            assert key in body, key
    assert set(home["by_source"]) == {"graph"}
    assert result["phases"][0]["due"] == result["total"]["requests"]
    assert {"t", "due", "ok", "errors", "degraded", "sources", "p50_ms", "p99_ms", "max_ms",
            "snapshot"} <= set(result["timeline"][0])
    assert result["config"]["schedule"]["kind"] == "poisson"
