"""The asyncio door, served for real (grpc.aio on a port) around a real Recommender.

Slowness is injected between walk batches, never measured: the assertions are about what each
call got (answered from a walk or from the fallback, flagged, refused, which status code).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from recserver.config import ServerSection, config_from_document
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc
from recserver.server.aio_server import AioGrpcServer
from tests.server_fixtures import SwitchableWalkHook
from tests.service_fixtures import clustered_graph, make_recommender

TOKEN = "a-test-token-of-enough-length"


@pytest.fixture(scope="module")
def door() -> Iterator[tuple[AioGrpcServer, SwitchableWalkHook, list[str]]]:
    config = config_from_document({"surfaces": {"home": {
        "budget_ms": 40, "sla_p99_ms": 80, "k_default": 5, "k_max": 20,
        "walk": {"steps": 20_000, "batch_steps": 256, "n_p": 0}}},
        "server": {"auth": {"token": TOKEN}}})
    hook = SwitchableWalkHook()
    recommender = make_recommender(clustered_graph(), config, walk_hook=hook)
    refused: list[str] = []
    settings = ServerSection.model_validate(
        {"port": 0, "auth": {"token": TOKEN}, "max_concurrent_walks": 1})
    server = AioGrpcServer(recommender, settings, on_refused=refused.append)
    server.start()
    server.set_serving()
    try:
        yield server, hook, refused
    finally:
        server.stop(1.0)


def stub_for(server: AioGrpcServer) -> tuple[grpc.Channel, pb_grpc.RecommenderStub]:
    channel = grpc.insecure_channel(server.address)
    return channel, pb_grpc.RecommenderStub(channel)


def test_it_answers_and_says_how(door: tuple[AioGrpcServer, SwitchableWalkHook, list[str]]
                                 ) -> None:
    server, _, _ = door
    channel, stub = stub_for(server)
    with channel:
        reply = stub.Recommend(pb.RecommendRequest(user_id="u0", surface="home", debug=True),
                               timeout=5)
    assert len(reply.items) == 5 and reply.source == pb.GRAPH and not reply.degraded
    assert reply.server_elapsed_ms > 0 and {"queue", "seeds", "walk"} <= set(reply.stage_ms)


def test_walks_that_cannot_finish_in_time_are_answered_from_the_fallback_not_refused(
        door: tuple[AioGrpcServer, SwitchableWalkHook, list[str]]) -> None:
    server, hook, refused = door
    before = len(refused)
    channel, stub = stub_for(server)

    def call(i: int) -> pb.RecommendResponse:
        return stub.Recommend(pb.RecommendRequest(user_id=f"u{i % 40}", surface="home"),
                              timeout=5)

    # Injected batches make every walk run to its deadline: one walk thread fits about one
    # walk per budget. The first call teaches the door how long walks now take.
    hook.delay_s = 0.002
    try:
        with channel, ThreadPoolExecutor(12) as pool:
            assert call(0).source in (pb.GRAPH_PARTIAL, pb.BLENDED, pb.GRAPH)
            replies = list(pool.map(call, range(12)))
    finally:
        hook.delay_s = 0.0
    overloaded = [r for r in replies if "overloaded" in r.degraded_reasons]
    assert len(refused) == before  # nobody was refused
    assert all(len(r.items) == 5 for r in replies)  # everybody got a full answer
    assert overloaded, "a queue of slow walks must send later calls to the fallback"
    assert all(r.source in (pb.POPULAR, pb.ANN_FALLBACK) and r.degraded for r in overloaded)
    # Answered at once, not after the walks ahead of them.
    assert all(r.server_elapsed_ms < 20 for r in overloaded)


def test_a_standing_backlog_on_the_loop_refuses_recommend_at_once_but_not_health(
        door: tuple[AioGrpcServer, SwitchableWalkHook, list[str]]) -> None:
    server, _, refused = door
    before = len(refused)
    channel, stub = stub_for(server)
    with channel:
        target = server.lag.target_s
        server.lag.target_s = -1.0  # every probe now counts as late: a standing backlog
        try:
            deadline = time.monotonic() + 5
            while not server.lag.shut and time.monotonic() < deadline:
                time.sleep(0.001)
            with pytest.raises(grpc.RpcError) as info:
                stub.Recommend(pb.RecommendRequest(user_id="u0", surface="home"), timeout=5)
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=5)
        finally:
            server.lag.target_s = target  # caught up: the next probe opens the door again
        time.sleep(0.05)
        again = stub.Recommend(pb.RecommendRequest(user_id="u0", surface="home"), timeout=5)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "retry on another replica" in (info.value.details() or "")
    assert refused[before:] == ["queue_slow"]
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert len(again.items) == 5


def test_bad_input_is_invalid_argument_with_a_bounded_message(
        door: tuple[AioGrpcServer, SwitchableWalkHook, list[str]]) -> None:
    server, _, _ = door
    channel, stub = stub_for(server)
    with channel, pytest.raises(grpc.RpcError) as info:
        stub.Recommend(pb.RecommendRequest(user_id="u0", surface="s" * 10_000, k=0),
                       timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = info.value.details() or ""
    assert "10,000 characters" in details and len(details) < 600


def test_an_unexpected_error_is_internal_with_a_request_id(
        door: tuple[AioGrpcServer, SwitchableWalkHook, list[str]]) -> None:
    server, hook, _ = door
    channel, stub = stub_for(server)
    hook.error = RuntimeError("a bug in a walk")
    try:
        with channel, pytest.raises(grpc.RpcError) as info:
            stub.Recommend(pb.RecommendRequest(user_id="u0", surface="home",
                                               request_id="rid-7"), timeout=5)
    finally:
        hook.error = None
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert info.value.details() == "internal error (request_id rid-7)"


def test_writes_need_the_token_and_run_off_the_loop(
        door: tuple[AioGrpcServer, SwitchableWalkHook, list[str]]) -> None:
    server, _, _ = door
    channel, stub = stub_for(server)
    with channel:
        with pytest.raises(grpc.RpcError) as missing:
            stub.GetIngestStatus(pb.GetIngestStatusRequest(), timeout=5)
        with pytest.raises(grpc.RpcError) as no_ingest:
            stub.GetIngestStatus(pb.GetIngestStatusRequest(), timeout=5,
                                 metadata=(("authorization", f"Bearer {TOKEN}"),))
    assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # This door has no ingest runtime: the blocking-call thread ran the endpoint and said so.
    assert no_ingest.value.code() == grpc.StatusCode.UNAVAILABLE


def test_stop_drains_in_flight_calls_and_goes_not_serving() -> None:
    config = config_from_document({"surfaces": {"home": {
        "budget_ms": 400, "sla_p99_ms": 800, "k_default": 5,
        "walk": {"steps": 20_000, "batch_steps": 256, "n_p": 0}}}})
    hook = SwitchableWalkHook()
    server = AioGrpcServer(make_recommender(clustered_graph(), config, walk_hook=hook),
                           ServerSection(port=0))
    server.start()
    server.set_serving()
    channel, stub = stub_for(server)
    hook.delay_s = 0.01
    got: list[pb.RecommendResponse] = []
    caller = threading.Thread(target=lambda: got.append(stub.Recommend(
        pb.RecommendRequest(user_id="u0", surface="home"), timeout=10)))
    caller.start()
    time.sleep(0.1)  # the walk is under way
    server.stop(5.0)
    caller.join(10)
    channel.close()
    assert got and len(got[0].items) == 5
    assert server.wait_for_termination(1.0)


class _Outcomes:
    """A transport observer that keeps each finished Recommend call's (surface, source, code)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, str]] = []

    def recommend_call_finished(self, surface: str, source: str | None, code: str) -> None:
        self.calls.append((surface, source, code))

    def encode_finished(self, surface: str, seconds: float) -> None:
        pass


def test_a_failed_recommend_is_counted_with_its_code() -> None:
    # A handler that fails while awaited was once reported with its coroutine as the answer:
    # the observer raised and the call went uncounted.
    config = config_from_document({"surfaces": {"home": {"budget_ms": 40, "sla_p99_ms": 80}}})
    outcomes = _Outcomes()
    server = AioGrpcServer(make_recommender(clustered_graph(), config),
                           ServerSection.model_validate({"port": 0}), observer=outcomes)
    server.start()
    server.set_serving()
    try:
        channel, stub = stub_for(server)
        with channel, pytest.raises(grpc.RpcError) as info:
            stub.Recommend(pb.RecommendRequest(user_id="u0", surface="nope"), timeout=5)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        deadline = time.monotonic() + 5.0  # reported after the status went out
        while not outcomes.calls and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        server.stop(1.0)
    assert outcomes.calls == [("nope", None, "INVALID_ARGUMENT")]
