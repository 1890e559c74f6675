"""The gRPC transport against a real server on a free port, with a fake domain handler.

The handler is faked so these tests pin the transport alone: field conversion, status codes,
health, reflection, deadlines, arrival time, graceful stop, port exclusivity. They assert order
and outcomes (threading Events), never wall-clock speed.
"""

from __future__ import annotations

import argparse
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from recserver.cli.recommend import add_arguments as add_recommend_args
from recserver.cli.recommend import run as cmd_recommend
from recserver.config import ServerSection
from recserver.core import errors
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc
from recserver.server import SERVICE_NAME, BindError, GrpcServer
from recserver.service.types import SOURCES, Recommendation, RecommendedItem, RecommendQuery


@dataclass
class Seen:
    query: RecommendQuery
    arrival: float
    client_remaining_s: float | None
    entered: float


class FakeHandler:
    """Records each call; answers with ``behaviour(query)`` or a fixed recommendation."""

    def __init__(self) -> None:
        self.calls: list[Seen] = []
        self.behaviour: Callable[[RecommendQuery], Recommendation] | None = None

    def recommend(
        self, query: RecommendQuery, *, arrival: float, client_remaining_s: float | None
    ) -> Recommendation:
        entered = time.perf_counter()
        self.calls.append(Seen(query, arrival, client_remaining_s, entered))
        return self.behaviour(query) if self.behaviour else sample_recommendation()


def sample_recommendation() -> Recommendation:
    return Recommendation(
        items=[RecommendedItem(f"item-{i}", 1.0 / (i + 1), src) for i, src in enumerate(SOURCES)],
        source="blended",
        degraded=True,
        degraded_reasons=["walk stopped at the deadline", "context item x9 unknown"],
        coverage=0.625,
        budget_ms=40.0,
        server_elapsed_ms=12.5,
        snapshot_version=2**40 + 3,
        stage_ms={"seeds": 0.25, "walk": 9.5, "rank": 0.5},
        steps_done=62_500,
        steps_planned=100_000,
    )


@dataclass
class Running:
    server: GrpcServer
    handler: FakeHandler
    channel: grpc.Channel
    stub: pb_grpc.RecommenderStub


def start(max_workers: int = 4) -> Running:
    handler = FakeHandler()
    server = GrpcServer(handler, ServerSection(port=0, max_workers=max_workers))
    server.start()
    channel = grpc.insecure_channel(server.address)
    return Running(server, handler, channel, pb_grpc.RecommenderStub(channel))


@pytest.fixture
def running() -> Iterator[Running]:
    r = start()
    yield r
    r.channel.close()
    r.server.stop(0)


def test_round_trip_of_every_field(running: Running) -> None:
    request = pb.RecommendRequest(
        user_id="u1",
        surface="item_page",
        k=7,
        context_item_ids=["a", "b"],
        exclude_item_ids=["c"],
        budget_ms=12.5,
        request_id="req-1",
        debug=True,
    )
    resp = running.stub.Recommend(request)
    assert running.handler.calls[0].query == RecommendQuery(
        "u1", "item_page", 7, ("a", "b"), ("c",), 12.5, "req-1", True
    )
    want = sample_recommendation()
    got = [(i.item_id, i.score, pb.Source.Name(i.source).lower()) for i in resp.items]
    assert got == [(i.item_id, pytest.approx(i.score), i.source) for i in want.items]
    assert pb.Source.Name(resp.source) == "BLENDED"
    assert resp.degraded and list(resp.degraded_reasons) == want.degraded_reasons
    assert (resp.coverage, resp.budget_ms, resp.server_elapsed_ms) == (0.625, 40.0, 12.5)
    assert resp.snapshot_version == 2**40 + 3 and resp.request_id == "req-1"
    assert dict(resp.stage_ms) == want.stage_ms
    assert (resp.steps_done, resp.steps_planned) == (62_500, 100_000)


def test_unset_budget_is_none_and_zero_or_negative_pass_through(running: Running) -> None:
    running.stub.Recommend(pb.RecommendRequest(user_id="u", surface="home"))
    running.stub.Recommend(pb.RecommendRequest(user_id="u", surface="home", budget_ms=0))
    running.stub.Recommend(pb.RecommendRequest(user_id="u", surface="home", budget_ms=-3))
    assert [c.query.budget_ms for c in running.handler.calls] == [None, 0.0, -3.0]


def test_stage_timings_only_with_debug(running: Running) -> None:
    resp = running.stub.Recommend(pb.RecommendRequest(user_id="u", surface="home"))
    assert dict(resp.stage_ms) == {} and resp.request_id == ""


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
        (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
        (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    ],
)
def test_typed_errors_become_their_status(
    running: Running, error: type[errors.RecServerError], code: grpc.StatusCode
) -> None:
    def fail(query: RecommendQuery) -> Recommendation:
        raise error("k must be between 1 and 100; got 0")

    running.handler.behaviour = fail
    with pytest.raises(grpc.RpcError) as info:
        running.stub.Recommend(pb.RecommendRequest(user_id="u", surface="home"))
    assert info.value.code() == code
    assert info.value.details() == "k must be between 1 and 100; got 0"


def test_unexpected_error_is_internal_with_a_generic_message(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    def crash(query: RecommendQuery) -> Recommendation:
        raise KeyError("secret-table /var/lib/db row 17")

    running.handler.behaviour = crash
    with pytest.raises(grpc.RpcError) as info:
        running.stub.Recommend(pb.RecommendRequest(surface="home", request_id="r-42"))
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert info.value.details() == "internal error (request_id r-42)"
    # The detail and the traceback are in the server log, under the same request id.
    record = next(r for r in caplog.records if "r-42" in r.getMessage())
    assert record.exc_info is not None and "secret-table" in caplog.text


def health_status(channel: grpc.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return int(stub.Check(health_pb2.HealthCheckRequest(service=service)).status)


def test_health_serving_only_after_set_serving(running: Running) -> None:
    for name in ("", SERVICE_NAME):
        assert health_status(running.channel, name) == health_pb2.HealthCheckResponse.NOT_SERVING
    running.server.set_serving()
    for name in ("", SERVICE_NAME):
        assert health_status(running.channel, name) == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_service(running: Running) -> None:
    database = ProtoReflectionDescriptorDatabase(running.channel)
    assert SERVICE_NAME in database.get_services()
    service = DescriptorPool(database).FindServiceByName(SERVICE_NAME)
    assert [m.name for m in service.methods] == [
        "Recommend", "RecordEvents", "GetIngestStatus", "DescribeUser", "UpdateItems",
        "DescribeItems", "DeleteUser"
    ]


def test_client_deadline_is_passed_through(running: Running) -> None:
    running.stub.Recommend(pb.RecommendRequest(surface="home"), timeout=2.0)
    running.stub.Recommend(pb.RecommendRequest(surface="home"))
    with_deadline, without = (c.client_remaining_s for c in running.handler.calls)
    # gRPC encodes the timeout with a few significant digits, rounding up (about 1%).
    assert with_deadline is not None and 0 < with_deadline <= 2.0 * 1.02
    assert without is None


def test_arrival_is_taken_before_the_handler_and_counts_queueing() -> None:
    r = start(max_workers=1)
    release, first_in = threading.Event(), threading.Event()

    def block_first(query: RecommendQuery) -> Recommendation:
        if query.request_id == "first":
            first_in.set()
            assert release.wait(10)
        return sample_recommendation()

    r.handler.behaviour = block_first
    try:
        first = r.stub.Recommend.future(pb.RecommendRequest(surface="home", request_id="first"))
        assert first_in.wait(10)
        second = r.stub.Recommend.future(pb.RecommendRequest(surface="home", request_id="second"))
        # Wait (bounded) until the second call is queued in the busy one-thread pool.
        queue = r.server._executor._work_queue
        for _ in range(1000):
            if queue.qsize() > 0:
                break
            time.sleep(0.005)
        released_at = time.perf_counter()
        release.set()
        first.result(10)
        second.result(10)
    finally:
        r.channel.close()
        r.server.stop(0)
    calls = {c.query.request_id: c for c in r.handler.calls}
    assert all(c.arrival <= c.entered for c in calls.values())
    # The queued call's arrival predates its wait, not its start: queueing counts.
    assert calls["second"].arrival < released_at < calls["second"].entered


def test_graceful_stop_lets_an_in_flight_request_finish() -> None:
    r = start()
    entered = threading.Event()

    def slow(query: RecommendQuery) -> Recommendation:
        entered.set()
        time.sleep(0.3)
        return sample_recommendation()

    r.handler.behaviour = slow
    in_flight = r.stub.Recommend.future(pb.RecommendRequest(surface="home", request_id="slow"))
    assert entered.wait(10)
    r.server.stop(grace=2)  # blocks until drained
    assert in_flight.result(10).request_id == "slow"
    with pytest.raises(grpc.RpcError) as info:
        r.stub.Recommend(pb.RecommendRequest(surface="home"), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    r.channel.close()


def test_two_servers_cannot_share_a_port(running: Running) -> None:
    second = GrpcServer(FakeHandler(), ServerSection(port=running.server.port))
    with pytest.raises(BindError):
        second.start()
    second.stop(0)


def test_recommend_command_prints_a_table(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    add_recommend_args(parser)
    args = parser.parse_args(
        [
            "--user",
            "u1",
            "--surface",
            "home",
            "--k",
            "5",
            "--debug",
            "--target",
            running.server.address,
            "--context",
            "a",
            "b",
        ]
    )
    assert cmd_recommend(args) == 0
    out = capsys.readouterr().out
    assert "item-0" in out and re.search(r"item-\d+\s+\S+\s+ann$", out, re.MULTILINE)
    assert "source     blended\ndegraded   yes: walk stopped at the deadline" in out
    assert "62.5%" in out
    assert "seeds 0.25  walk 9.50  rank 0.50" in out
    query = running.handler.calls[0].query
    assert (query.user_id, query.k, query.context_item_ids, query.debug) == (
        "u1",
        5,
        ("a", "b"),
        True,
    )


def test_recommend_command_reports_a_bad_request(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    def reject(query: RecommendQuery) -> Recommendation:
        raise errors.InvalidArgument("unknown surface 'hom'; known: home, search")

    running.handler.behaviour = reject
    parser = argparse.ArgumentParser()
    add_recommend_args(parser)
    args = parser.parse_args(["--surface", "hom", "--target", running.server.address])
    assert cmd_recommend(args) == 2
    assert "INVALID_ARGUMENT: unknown surface 'hom'" in capsys.readouterr().err
