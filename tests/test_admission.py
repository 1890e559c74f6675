"""Refusal at the door: past capacity a call is refused at once, never answered late.

A real gRPC server whose handler is slowed on purpose (one handler thread, each answer takes
``HOLD_S``): calls beyond what the queue may hold are refused with RESOURCE_EXHAUSTED while the
handler is still busy, and the refusal is counted by reason.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from load.common.empty_server import EmptyHandler
from recserver.config import ServerSection
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc
from recserver.server.admission import AdmissionExecutor
from recserver.server.grpc_server import GrpcServer
from recserver.service.types import Recommendation, RecommendQuery

HOLD_S = 0.4


class SlowHandler(EmptyHandler):
    """Every answer takes ``HOLD_S`` of wall time (an injected stall)."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def recommend(self, query: RecommendQuery, *, arrival: float,
                  client_remaining_s: float | None) -> Recommendation:
        with self._lock:
            self.calls += 1
        time.sleep(HOLD_S)
        return super().recommend(query, arrival=arrival, client_remaining_s=client_remaining_s)


@pytest.fixture
def slow_server() -> Iterator[tuple[GrpcServer, SlowHandler, list[str]]]:
    handler = SlowHandler()
    refused: list[str] = []
    server = GrpcServer(handler, ServerSection(max_workers=1, max_queued_calls=2,
                                               queue_target_ms=None),
                        port=0, on_refused=refused.append)
    server.start()
    server.set_serving()
    yield server, handler, refused
    server.stop(2.0)


def test_calls_past_the_queue_are_refused_at_once_and_counted(slow_server) -> None:
    server, handler, refused = slow_server
    outcomes: list[tuple[str, float]] = []
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.RecommenderStub(channel)
        stub.Recommend(pb.RecommendRequest(user_id="warm", surface="home"), timeout=5)

        def call(i: int) -> None:
            started = time.perf_counter()
            try:
                stub.Recommend(pb.RecommendRequest(user_id=f"u{i}", surface="home"), timeout=10)
                outcomes.append(("OK", time.perf_counter() - started))
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "retry on another replica or after a short backoff" in exc.details()
                outcomes.append(("REFUSED", time.perf_counter() - started))

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(call, range(8)))
    ok = [s for code, s in outcomes if code == "OK"]
    refusals = [s for code, s in outcomes if code == "REFUSED"]
    # One runs, two may wait; the other five are refused without waiting for the handler.
    assert len(ok) == 3 and len(refusals) == 5
    assert max(refusals) < HOLD_S / 2, refusals
    assert handler.calls == 1 + 3  # refused calls never reached the domain
    assert refused == ["queue_full"] * 5
    assert server.executor.refused["queue_full"] == 5
    # Refused on the polling thread itself: no request read, no thread, no interceptor.
    assert server.executor.fast_refused == 5


def test_a_health_check_is_answered_while_recommend_calls_are_refused(slow_server) -> None:
    """Only Recommend is refused at the door; a probe arriving while the queue is full runs."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    server, handler, refused = slow_server
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.RecommenderStub(channel)
        stub.Recommend(pb.RecommendRequest(user_id="warm", surface="home"), timeout=5)

        def until(condition: Callable[[], bool]) -> None:
            deadline = time.monotonic() + 5
            while not condition() and time.monotonic() < deadline:
                time.sleep(0.005)
            assert condition()

        def ask(i: int) -> grpc.Future:
            return stub.Recommend.future(pb.RecommendRequest(user_id=f"u{i}", surface="home"),
                                         timeout=10)

        busy = [ask(0)]
        until(lambda: handler.calls == 2)  # the warm-up and u0 ran: u0 holds the one thread
        busy += [ask(1), ask(2)]
        until(lambda: server.executor.queued == 2)  # two wait: the queue is full
        with pytest.raises(grpc.RpcError) as info:
            stub.Recommend(pb.RecommendRequest(user_id="late", surface="home"), timeout=5)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        for future in busy:
            future.result(10)
    assert refused == ["queue_full"]  # the late Recommend; the probe ran beside the queue
    assert server.executor.fast_refused == 1


def test_a_slow_queue_refuses_newcomers_until_it_drains() -> None:
    pool = AdmissionExecutor(1, max_queued=None, target_wait_s=0.05)
    gate = threading.Event()
    try:
        pool.submit(gate.wait, 5)  # occupies the only thread
        first = pool.submit(time.sleep, 0.3)  # queued: will wait ~0.1 s, then hold 0.3 s
        second = pool.submit(time.sleep, 0)  # queued behind it
        time.sleep(0.1)
        gate.set()
        time.sleep(0.05)  # ``first`` started, having waited past the target; ``second`` waits
        refused = pool.submit(time.sleep, 0)
        assert pool.refused["queue_slow"] == 1
        refused.result(5)  # a refused call still runs (on the refusal thread), to answer
        first.result(5)
        second.result(5)
        # Drained: a call that starts at once reopens the door for the ones after it.
        pool.submit(time.sleep, 0).result(5)
        pool.submit(time.sleep, 0).result(5)
        assert pool.refused == {"queue_full": 0, "queue_slow": 1}
    finally:
        gate.set()
        pool.shutdown(wait=True)


def test_admission_off_queues_everything() -> None:
    pool = AdmissionExecutor(1, max_queued=None, target_wait_s=None)
    futures = [pool.submit(time.sleep, 0.01) for _ in range(20)]
    for future in futures:
        future.result(5)
    assert pool.refused == {"queue_full": 0, "queue_slow": 0}
    pool.shutdown()


def test_one_late_start_does_not_refuse_but_a_standing_queue_does() -> None:
    pool = AdmissionExecutor(1, max_queued=None, target_wait_s=0.02, interval_s=0.3)
    gate = threading.Event()
    try:
        pool.submit(gate.wait, 5)
        late = pool.submit(time.sleep, 0.05)  # will start ~0.1 s late
        behind = pool.submit(time.sleep, 0)  # still queued when the newcomer comes
        time.sleep(0.1)
        gate.set()
        time.sleep(0.02)  # one start past the target (interval 0 would refuse now)
        newcomer = pool.submit(time.sleep, 0)
        assert pool.refused["queue_slow"] == 0
        for future in (late, behind, newcomer):
            future.result(5)

        # Starts stay late for longer than the interval: newcomers are refused.
        gate.clear()
        pool.submit(gate.wait, 5)
        queued = [pool.submit(time.sleep, 0.2) for _ in range(4)]
        time.sleep(0.05)
        gate.set()  # starts at +0, +0.2 and +0.4 s, all late; the fourth still waits
        time.sleep(0.5)
        pool.submit(time.sleep, 0).result(5)
        assert pool.refused["queue_slow"] == 1
        for future in queued:
            future.result(5)
    finally:
        gate.set()
        pool.shutdown(wait=True)
