"""A worker relays writes to its builder as bytes: request, status, deadline and metadata.

Real gRPC on both sides: a stand-in builder (a grpc server on a Unix socket that records what
reaches it and answers as told) behind a worker's real server (``GrpcServer`` or the asyncio
door, ``forward=ForwardingIngest``), called by a real client on TCP.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import grpc
import pytest

from recserver.config import ServerSection
from recserver.node.forward import ForwardingIngest
from recserver.node.mapped import MappedGraph
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.server.aio_server import AioGrpcServer
from recserver.server.grpc_server import GrpcServer
from recserver.server.methods import SERVICE_NAME
from recserver.service.types import Recommendation, RecommendQuery

TOKEN = "t" * 40
#: An unknown field (number 999, bytes "keep-me"): a decode and re-encode would drop it.
UNKNOWN_FIELD = bytes([0xBA, 0x3E, 7]) + b"keep-me"


class FakeBuilder:
    """Answers every method of the service from ``reply`` (bytes, or a (code, details) to
    abort with); records each call's method, bytes, metadata and time remaining."""

    def __init__(self, socket: Path) -> None:
        self.calls: list[tuple[str, bytes, dict[str, str], float | None]] = []
        self.reply: bytes | tuple[grpc.StatusCode, str] = b""
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(2))
        self._server.add_generic_rpc_handlers((self,))
        self._server.add_insecure_port(f"unix:{socket}")
        self.target = f"unix://{socket}"

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = details.method

        def answer(request: bytes, context: grpc.ServicerContext) -> bytes:
            with self._lock:
                self.calls.append((method, request, dict(context.invocation_metadata()),
                                   context.time_remaining()))
            if isinstance(self.reply, tuple):
                context.abort(*self.reply)
            return self.reply

        return grpc.unary_unary_rpc_method_handler(answer)

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop(0).wait()


class _NoRecommend:
    def recommend(self, query: RecommendQuery, *, arrival: float,
                  client_remaining_s: float | None) -> Recommendation:
        raise AssertionError("not asked")


@pytest.fixture(params=["sync", "aio"])
def node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[FakeBuilder, Any]]:
    """(the stand-in builder, a client channel to a worker relaying to it)."""
    builder = FakeBuilder(tmp_path / "builder.sock")
    builder.start()
    link = ForwardingIngest(builder.target, cast(MappedGraph, None))
    settings = ServerSection.model_validate({"host": "127.0.0.1", "auth": {"token": TOKEN}})
    server: GrpcServer | AioGrpcServer
    if request.param == "sync":
        server = GrpcServer(_NoRecommend(), settings, port=0, ingest=link, forward=link)
    else:
        server = AioGrpcServer(cast(Any, _NoRecommend()), settings, port=0, ingest=link,
                               forward=link)
    port = server.start()
    server.set_serving()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield builder, channel
    finally:
        channel.close()
        server.stop(0)
        link.close()
        builder.stop()


def raw_call(channel: grpc.Channel, method: str, data: bytes, **kwargs: Any) -> bytes:
    reply: bytes = channel.unary_unary(f"/{SERVICE_NAME}/{method}")(data, **kwargs)
    return reply


AUTH = (("authorization", f"Bearer {TOKEN}"), ("x-request-id", "req-42"))


def test_request_and_response_bytes_pass_unchanged(node: tuple[FakeBuilder, Any]) -> None:
    builder, channel = node
    request = pb.RecordEventsRequest(
        events=[pb.Event(event_id="e1", user_id="u1", item_id="i1", event="click", weight=2.0,
                         timestamp=1.0)], request_id="rid-1").SerializeToString() + UNKNOWN_FIELD
    response = pb.RecordEventsResponse(accepted=1, log_position="7-0", request_id="rid-1",
                                       results=[pb.EventResult(status=pb.ACCEPTED)])
    builder.reply = response.SerializeToString() + UNKNOWN_FIELD
    got = raw_call(channel, "RecordEvents", request, metadata=AUTH, timeout=30)
    assert got == builder.reply  # the builder's bytes, unknown field included
    method, seen, _, _ = builder.calls[-1]
    assert method == f"/{SERVICE_NAME}/RecordEvents"
    assert seen == request


@pytest.mark.parametrize("method", ["RecordEvents", "UpdateItems", "DeleteUser"])
def test_deadline_and_metadata_reach_the_builder(node: tuple[FakeBuilder, Any],
                                                 method: str) -> None:
    builder, channel = node
    raw_call(channel, method, b"", metadata=AUTH, timeout=60)
    _, _, metadata, remaining = builder.calls[-1]
    assert metadata["authorization"] == f"Bearer {TOKEN}"
    assert metadata["x-request-id"] == "req-42"
    # The client's minute, not a fixed relay timeout of a few seconds.
    assert remaining is not None and 30 < remaining < 90


@pytest.mark.parametrize("code", [grpc.StatusCode.PERMISSION_DENIED,
                                  grpc.StatusCode.DEADLINE_EXCEEDED,
                                  grpc.StatusCode.INTERNAL,
                                  grpc.StatusCode.INVALID_ARGUMENT])
def test_the_builders_status_passes_unchanged(node: tuple[FakeBuilder, Any],
                                              code: grpc.StatusCode) -> None:
    builder, channel = node
    builder.reply = (code, f"the builder says {code.name} (request_id abc)")
    with pytest.raises(grpc.RpcError) as err:
        raw_call(channel, "UpdateItems", b"", metadata=AUTH, timeout=30)
    assert err.value.code() == code
    assert err.value.details() == f"the builder says {code.name} (request_id abc)"


def test_the_workers_own_token_check_still_runs(node: tuple[FakeBuilder, Any]) -> None:
    builder, channel = node
    with pytest.raises(grpc.RpcError) as err:
        raw_call(channel, "DeleteUser", b"", timeout=30)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert builder.calls == []  # refused before any relay


def test_a_builder_down_is_unavailable_and_says_retry(node: tuple[FakeBuilder, Any]) -> None:
    builder, channel = node
    builder.stop()
    with pytest.raises(grpc.RpcError) as err:
        raw_call(channel, "RecordEvents", b"", metadata=AUTH, timeout=30)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "retry with the same event ids" in (err.value.details() or "")


class _Mapped:
    """A worker's mapped graph that shows nothing of the log yet (its first snapshot)."""

    ready = True
    visible_position = ""

    current = SimpleNamespace(version=1)


def test_status_reports_what_this_worker_maps_not_the_builders_position(
        tmp_path: Path) -> None:
    # The builder has published the writes (its visible position), this worker has not mapped
    # that snapshot yet: a client waiting to read its writes here must keep waiting.
    builder = FakeBuilder(tmp_path / "builder.sock")
    builder.reply = pb.GetIngestStatusResponse(
        backend="file", ready=True, visible_position="0000000001-0000000009",
        applied_position="0000000001-0000000009").SerializeToString()
    builder.start()
    link = ForwardingIngest(builder.target, cast(MappedGraph, _Mapped()))
    try:
        status = link.status()
    finally:
        link.close()
        builder.stop()
    assert status.applied_position == "0000000001-0000000009"  # the builder's, relayed
    assert status.visible_position == "" and status.snapshot_version == 1
