"""Methods a server relays as bytes to another server (a node's worker to its builder).

A serving worker does not decode the writes it cannot apply: ``RecordEvents``, ``UpdateItems``
and ``DeleteUser`` reach the builder as the very bytes the client sent, with the client's
deadline and metadata (the bearer token, any request id), and the builder's answer or status
(code and details) goes back unchanged. Only the transport's own interceptors still run on the
worker (the token check, the outcome count), as for every other method.

``add_recommender`` registers the Recommender service with some methods' handlers replaced by
such relays, on a sync or an asyncio server; the relay itself (``RawForwarder``) is the
caller's: ``recserver.node.forward`` dials the builder's Unix socket.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import grpc

from recserver.core.job_threads import JobThreads
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc
from recserver.server.methods import SERVICE_NAME

#: The write methods a worker relays to its builder, by name.
FORWARDED_METHODS: tuple[str, ...] = ("RecordEvents", "UpdateItems", "DeleteUser")

#: Call metadata that belongs to one hop and is never relayed (grpc sets its own).
_HOP_KEYS = ("user-agent", "content-type", "te")


class ForwardFailed(Exception):
    """The relayed call ended with a status: the code and details to answer with, as is."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class RawForwarder(Protocol):
    """Relays one call's request bytes and returns the response bytes."""

    def call(self, method: str, request: bytes, *, metadata: Sequence[tuple[str, Any]],
             timeout_s: float | None) -> bytes:
        """Raise ``ForwardFailed`` with the status the far side answered (or the transport's)."""
        ...


def relayed_metadata(metadata: Iterable[tuple[str, Any]] | None) -> list[tuple[str, Any]]:
    """The client's call metadata minus what belongs to this hop (pseudo-headers, grpc-*)."""
    return [(k, v) for k, v in metadata or ()
            if not k.startswith((":", "grpc-")) and k not in _HOP_KEYS]


def sync_relay(forwarder: RawForwarder, method: str) -> grpc.RpcMethodHandler:
    """A sync server's handler for ``method``: identity (de)serializers, the call relayed."""

    def relay(request: bytes, context: grpc.ServicerContext) -> bytes:
        try:
            return forwarder.call(method, request,
                                  metadata=relayed_metadata(context.invocation_metadata()),
                                  timeout_s=context.time_remaining())
        except ForwardFailed as failed:
            context.abort(failed.code, failed.details)
            raise  # not reached: abort raises

    return grpc.unary_unary_rpc_method_handler(relay)


def aio_relay(forwarder: RawForwarder, method: str, blocking: JobThreads
              ) -> grpc.RpcMethodHandler:
    """An asyncio server's handler for ``method``: the blocking relay runs on ``blocking``
    (never on the event loop); the status it ends with is the call's."""

    async def relay(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        metadata = relayed_metadata(context.invocation_metadata())
        timeout_s = context.time_remaining()
        try:
            reply: bytes = await blocking.run(lambda: forwarder.call(
                method, request, metadata=metadata, timeout_s=timeout_s))
        except ForwardFailed as failed:
            await context.abort(failed.code, failed.details)
            raise  # not reached: abort raises
        return reply

    return grpc.unary_unary_rpc_method_handler(relay)


class _Capture:
    """Stands in for a server to read the generated handler table."""

    handlers: dict[str, grpc.RpcMethodHandler]

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        pass

    def add_registered_method_handlers(self, service: str,
                                       handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        self.handlers = dict(handlers)


def add_recommender(server: Any, servicer: pb_grpc.RecommenderServicer,
                    replaced: Mapping[str, grpc.RpcMethodHandler]) -> None:
    """``add_RecommenderServicer_to_server`` with the ``replaced`` methods' handlers swapped
    (both tables grpc consults: registered methods win over generic handlers, so a generic
    relay added beside the servicer would never be asked)."""
    capture = _Capture()
    pb_grpc.add_RecommenderServicer_to_server(servicer, capture)  # type: ignore[arg-type]
    unknown = set(replaced) - set(capture.handlers)
    if unknown:
        raise ValueError(f"not methods of {SERVICE_NAME}: {', '.join(sorted(unknown))}")
    handlers = {**capture.handlers, **replaced}
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)
