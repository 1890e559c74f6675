"""``RecordEvents``: per-event results, duplicates, validation, the log's durability contract.

The recorder is tested in process against a real file log; then an in-process node (a worker
relaying to a builder with a file log, ``tests.node_harness``) is called over gRPC on loopback.
Visibility is awaited through ``GetIngestStatus`` (the visible log position) with a bounded wait;
nothing asserts how fast the machine is.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from recserver.config_reload import ConfigHolder
from recserver.core.errors import FailedPrecondition, InvalidArgument, Unavailable
from recserver.eventlog.base import START, LogRecord, LogUnavailable, Position
from recserver.eventlog.codec import decode_batch
from recserver.eventlog.file_log import FileEventLog
from recserver.graph.config import EventWeightsConfig, GraphConfig, PruneConfig
from recserver.graph.live import LiveGraph
from recserver.ingest.recorder import (
    ACCEPTED,
    DUPLICATE,
    REJECTED,
    EventRecorder,
    EventRows,
)
from recserver.ingest.tailer import LogTailer
from recserver.node.single import App, DataSource
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc
from tests.node_harness import InProcessNode
from tests.server_fixtures import SYNTHETIC_SIZE, config_document, write_config

NOW = 1_700_000_000.0
CALL_TIMEOUT_S = 20.0
VISIBLE_WAIT_S = 30.0


def rows(*events: tuple[str, str, str, str, float, float]) -> EventRows:
    """(event_id, user, item, type, weight, timestamp) tuples as request columns."""
    return EventRows(
        event_ids=[e[0] for e in events], user_ids=[e[1] for e in events],
        item_ids=[e[2] for e in events], events=[e[3] for e in events],
        weights=[e[4] for e in events], timestamps=[e[5] for e in events],
    )


class FailingLog:
    """A log whose appends always fail (Redis down, disk full)."""

    name = "failing"
    where = "nowhere"

    def __init__(self) -> None:
        self.appends = 0

    def append(self, payload: bytes) -> Position:
        self.appends += 1
        raise LogUnavailable("the event log is unavailable: ConnectionError")

    def read(self, after: Position, max_records: int, timeout_s: float) -> list[LogRecord]:
        return []

    def check_position(self, position: Position) -> str | None:
        return None

    def trim_before(self, position: Position) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[EventRecorder, FileEventLog, LiveGraph, LogTailer]]:
    cfg = GraphConfig(event_weights=EventWeightsConfig(transform="linear", half_life_days=None),
                      prune=PruneConfig(hub_percentile=None))
    graph = LiveGraph(cfg)
    log = FileEventLog(tmp_path / "log")
    tailer = LogTailer(log, graph)
    recorder = EventRecorder(graph, log, weights=cfg.event_weights, max_batch=100,
                             max_id_chars=16, applied_position=lambda: tailer.position,
                             origin="test", clock=lambda: NOW)
    recorder.ready = True
    try:
        yield recorder, log, graph, tailer
    finally:
        log.close()


def logged(log: FileEventLog) -> list[Any]:
    return [decode_batch(r.payload) for r in log.read(START, 1000, 0.0)]


def test_a_bad_event_is_rejected_with_its_reason_and_the_rest_accepted(setup: Any) -> None:
    recorder, log, _, _ = setup
    outcome = recorder.record(rows(
        ("e1", "u1", "i1", "view", 1.0, NOW - 10),
        ("e2", "u1", "i2", "teleport", 1.0, NOW - 10),
        ("e3", "", "i2", "view", 1.0, NOW - 10),
        ("e4", "u2", "i2", "click", -1.0, NOW - 10),
        ("e5", "u2", "i3", "click", 1.0, NOW + 10 * 86_400),
        ("e6", "u2", "i4", "purchase", 2.0, NOW - 5),
    ))
    assert outcome.status.tolist() == [ACCEPTED, REJECTED, REJECTED, REJECTED, REJECTED, ACCEPTED]
    assert "unknown event type 'teleport'" in outcome.reasons[1]
    assert outcome.reasons[2] == "empty user_id"
    assert "weight is negative" in outcome.reasons[3]
    assert "far-future timestamp" in outcome.reasons[4]
    assert set(outcome.reasons) == {1, 2, 3, 4}
    [batch] = logged(log)  # one record for the batch, holding only the accepted events
    assert [(e.user_id, e.item_id) for e in batch.cols.to_events()] == [("u1", "i1"), ("u2", "i4")]
    assert outcome.position == str(log.end)


def test_duplicates_in_the_batch_in_flight_and_in_the_graph(setup: Any) -> None:
    recorder, log, graph, tailer = setup
    first = recorder.record(rows(("a", "u1", "i1", "view", 1.0, NOW), ("a", "u1", "i1", "view",
                                 1.0, NOW), ("", "u2", "i1", "view", 1.0, NOW),
                                 ("", "u2", "i1", "view", 1.0, NOW)))
    assert first.status.tolist() == [ACCEPTED, DUPLICATE, ACCEPTED, DUPLICATE]
    # Appended but not applied yet: still known as in flight.
    again = recorder.record(rows(("a", "u1", "i1", "view", 1.0, NOW)))
    assert again.status.tolist() == [DUPLICATE] and again.position == ""
    tailer.catch_up()
    # Applied: the graph's dedup index knows both the id and the id-less tuple.
    later = recorder.record(rows(("a", "u9", "i9", "view", 1.0, NOW),
                                 ("", "u2", "i1", "view", 1.0, NOW),
                                 ("b", "u1", "i1", "view", 1.0, NOW)))
    assert later.status.tolist() == [DUPLICATE, DUPLICATE, ACCEPTED]
    assert sum(len(b.cols) for b in logged(log)) == 3
    assert graph.events_applied == 2


def test_timestamp_zero_is_fixed_before_the_append(setup: Any) -> None:
    recorder, log, _, _ = setup
    recorder.record(rows(("t", "u1", "i1", "view", 1.0, 0.0)))
    [batch] = logged(log)
    assert batch.cols.timestamp.tolist() == [NOW]


def test_ids_longer_than_the_limit_are_rejected(setup: Any) -> None:
    recorder, _, _, _ = setup
    outcome = recorder.record(rows(("x" * 17, "u1", "i1", "view", 1.0, NOW),
                                   ("ok", "u" * 40, "i1", "view", 1.0, NOW),
                                   ("ok2", "u1", "i1", "view", 1.0, NOW)))
    assert outcome.status.tolist() == [REJECTED, REJECTED, ACCEPTED]
    assert "event_id is 17 characters long" in outcome.reasons[0]
    assert "user_id is 40 characters long" in outcome.reasons[1]


def test_an_oversized_batch_is_invalid(setup: Any) -> None:
    recorder, log, _, _ = setup
    with pytest.raises(InvalidArgument, match="max_batch_events = 100"):
        recorder.record(rows(*[(f"e{i}", "u", "i", "view", 1.0, NOW) for i in range(101)]))
    assert logged(log) == []


def test_when_the_log_cannot_append_nothing_is_acknowledged() -> None:
    cfg = GraphConfig()
    graph = LiveGraph(cfg)
    failing = FailingLog()
    recorder = EventRecorder(graph, failing, weights=cfg.event_weights, max_batch=10,
                             max_id_chars=64, applied_position=lambda: START, origin="t")
    recorder.ready = True
    with pytest.raises(Unavailable, match="unavailable"):
        recorder.record(rows(("a", "u1", "i1", "view", 1.0, NOW)))
    assert failing.appends == 1
    # The failed event is not remembered as in flight: a retry is judged afresh.
    with pytest.raises(Unavailable):
        recorder.record(rows(("a", "u1", "i1", "view", 1.0, NOW)))
    assert failing.appends == 2


def test_ingest_off_is_a_failed_precondition_and_not_ready_is_unavailable() -> None:
    cfg = GraphConfig()
    off = EventRecorder(LiveGraph(cfg), None, weights=cfg.event_weights, max_batch=10,
                        max_id_chars=64, applied_position=lambda: START, origin="t",
                        off_reason="RecordEvents is off on this server (no data_dir)")
    with pytest.raises(FailedPrecondition, match="no data_dir"):  # retrying cannot help
        off.record(rows(("a", "u1", "i1", "view", 1.0, NOW)))
    loading = EventRecorder(LiveGraph(cfg), FailingLog(), weights=cfg.event_weights,
                            max_batch=10, max_id_chars=64, applied_position=lambda: START,
                            origin="t")
    with pytest.raises(Unavailable, match="loading"):
        loading.record(rows(("a", "u1", "i1", "view", 1.0, NOW)))


# -- over gRPC, an in-process node: a worker relays to the builder, which has a file log -------


def ingest_document(**ingest: Any) -> dict[str, Any]:
    doc = config_document()
    doc["graph"] = {
        "publish_interval_s": 0.1,
        "event_weights": {"transform": "linear", "half_life_days": None},
        "prune": {"hub_percentile": None},
    }
    doc["ingest"] = {"checkpoint": {"interval_s": 3600}, **ingest}
    return doc


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[InProcessNode, Any]]:
    root = tmp_path_factory.mktemp("record")
    path = write_config(root / "config.yaml", ingest_document(max_batch_events=50))
    app = InProcessNode(path, root)
    try:
        app.start(DataSource(synthetic=SYNTHETIC_SIZE))
        channel = grpc.insecure_channel(app.address)
        yield app, pb_grpc.RecommenderStub(channel)
        channel.close()
    finally:
        app.stop(grace=1.0)


def wait_visible(stub: Any, position: str) -> pb.GetIngestStatusResponse:
    target = Position.parse(position)
    deadline = time.monotonic() + VISIBLE_WAIT_S
    while True:
        status = stub.GetIngestStatus(pb.GetIngestStatusRequest(), timeout=CALL_TIMEOUT_S)
        if status.visible_position and Position.parse(status.visible_position) >= target:
            return status
        assert time.monotonic() < deadline, f"{position} not visible: {status}"
        time.sleep(0.02)


def event(**fields: Any) -> pb.Event:
    fields.setdefault("event", "purchase")
    return pb.Event(**fields)


def test_recorded_events_show_up_in_recommendations(served: Any) -> None:
    _, stub = served
    response = stub.RecordEvents(pb.RecordEventsRequest(request_id="r1", events=[
        event(event_id="g1", user_id="grpc-a", item_id="grpc-x"),
        event(event_id="g2", user_id="grpc-a", item_id="grpc-y"),
        event(event_id="g3", user_id="grpc-b", item_id="grpc-x"),
    ]), timeout=CALL_TIMEOUT_S)
    assert [r.status for r in response.results] == [pb.ACCEPTED] * 3
    assert (response.accepted, response.duplicates, response.rejected) == (3, 0, 0)
    assert response.request_id == "r1" and response.log_position
    status = wait_visible(stub, response.log_position)
    assert status.backend == "file" and status.ready
    edges = stub.DescribeUser(pb.DescribeUserRequest(user_id="grpc-a"), timeout=CALL_TIMEOUT_S)
    assert edges.found and {e.item_id: e.weight for e in edges.edges} == {
        "grpc-x": 8.0, "grpc-y": 8.0}  # purchase 8 x weight 1 (unset weight means 1)
    answer = stub.Recommend(pb.RecommendRequest(user_id="grpc-b", surface="home", k=5),
                            timeout=CALL_TIMEOUT_S)
    assert answer.items[0].item_id == "grpc-y"  # reached only through grpc-a's new edges


def test_a_bad_event_in_a_batch_over_grpc(served: Any) -> None:
    _, stub = served
    response = stub.RecordEvents(pb.RecordEventsRequest(events=[
        event(event_id="h1", user_id="grpc-c", item_id="grpc-x"),
        event(event_id="h2", user_id="grpc-c", item_id="grpc-z", event="unknown-type"),
        event(event_id="h3", user_id="grpc-c", item_id="grpc-z", weight=float("nan")),
        event(event_id="h1", user_id="grpc-c", item_id="grpc-x"),
        event(event_id="h4", user_id="grpc-c", item_id="grpc-w", event="view", weight=2.0),
    ]), timeout=CALL_TIMEOUT_S)
    assert [r.status for r in response.results] == [
        pb.ACCEPTED, pb.REJECTED, pb.REJECTED, pb.DUPLICATE, pb.ACCEPTED]
    assert "unknown event type 'unknown-type'" in response.results[1].reason
    assert "weight is not finite" in response.results[2].reason
    assert [r.reason for i, r in enumerate(response.results) if i in (0, 3, 4)] == ["", "", ""]
    wait_visible(stub, response.log_position)
    edges = stub.DescribeUser(pb.DescribeUserRequest(user_id="grpc-c"), timeout=CALL_TIMEOUT_S)
    assert {e.item_id: e.weight for e in edges.edges} == {"grpc-x": 8.0, "grpc-w": 2.0}
    # Retrying the whole batch: nothing is accepted twice.
    retry = stub.RecordEvents(pb.RecordEventsRequest(events=[
        event(event_id="h1", user_id="grpc-c", item_id="grpc-x"),
        event(event_id="h4", user_id="grpc-c", item_id="grpc-w", event="view", weight=2.0),
    ]), timeout=CALL_TIMEOUT_S)
    assert [r.status for r in retry.results] == [pb.DUPLICATE, pb.DUPLICATE]
    assert retry.log_position == ""


def test_an_oversized_batch_is_invalid_argument(served: Any) -> None:
    _, stub = served
    events = [event(event_id=f"big{i}", user_id="u", item_id="i") for i in range(51)]
    with pytest.raises(grpc.RpcError) as err:
        stub.RecordEvents(pb.RecordEventsRequest(events=events), timeout=CALL_TIMEOUT_S)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_batch_events = 50" in str(err.value.details())


def test_ingest_metrics_are_exported(served: Any) -> None:
    app, stub = served
    response = stub.RecordEvents(pb.RecordEventsRequest(events=[
        event(event_id="m1", user_id="grpc-m", item_id="grpc-x")]), timeout=CALL_TIMEOUT_S)
    wait_visible(stub, response.log_position)
    registry = app.builder.metrics.registry  # the process that appends and applies

    def value(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    assert value("recserver_ingest_events_total", outcome="accepted") >= 1
    assert value("recserver_ingest_applied_events_total", outcome="applied") >= 1
    assert value("recserver_ingest_log_append_duration_seconds_count") >= 1
    assert value("recserver_ingest_visible_delay_seconds_count") >= 1
    assert value("recserver_ingest_apply_delay_seconds_count") >= 1
    assert registry.get_sample_value("recserver_ingest_apply_lag_seconds") is not None


def test_a_server_without_a_log_says_why(tmp_path: Path) -> None:
    # Single-process on purpose: only ``serve --single-process`` without a data dir runs with
    # no event log (a node's builder always has one: ``--data-dir`` defaults to var/recserver).
    path = write_config(tmp_path / "config.yaml", config_document())
    app = App(ConfigHolder(path), port=0, metrics_port=0)
    try:
        app.start(DataSource(synthetic=SYNTHETIC_SIZE), watch_config=False)
        with grpc.insecure_channel(app.server.address) as channel:
            stub = pb_grpc.RecommenderStub(channel)
            with pytest.raises(grpc.RpcError) as err:
                stub.RecordEvents(pb.RecordEventsRequest(events=[event(user_id="u", item_id="i")]),
                                  timeout=CALL_TIMEOUT_S)
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION  # retrying cannot help
            assert "--data-dir" in str(err.value.details())
            status = stub.GetIngestStatus(pb.GetIngestStatusRequest(), timeout=CALL_TIMEOUT_S)
            assert status.backend == "off" and not status.ready
    finally:
        app.stop(grace=1.0)


def test_describe_user_of_a_stranger(served: Any) -> None:
    _, stub = served
    edges = stub.DescribeUser(pb.DescribeUserRequest(user_id="never-seen"),
                              timeout=CALL_TIMEOUT_S)
    assert not edges.found and list(edges.edges) == [] and edges.snapshot_version > 0
    assert np.isfinite(edges.snapshot_version)
