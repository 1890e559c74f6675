"""A serving worker's ingest RPCs: writes go to the builder, reads come from the mapped graph.

The builder is the node's single writer, so a worker relays ``RecordEvents``, ``UpdateItems``
and ``DeleteUser`` to the builder's local endpoint over a Unix socket as the bytes the client
sent (``server.proxy``: nothing is decoded here), with the client's deadline and metadata, and
answers with the builder's bytes or status code and details, unchanged. Acknowledgement keeps
its meaning (an event is ACCEPTED, an item update or an erasure recorded, once the builder
appended it to the event log). ``GetIngestStatus`` asks the builder and adds what this worker
maps; ``DescribeUser`` and ``DescribeItems`` read the snapshot this worker serves, like
``Recommend`` does. A builder that cannot be reached (restarting) makes the call UNAVAILABLE:
nothing was acknowledged, and a retry with the same event ids is safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import grpc

from recserver.catalog.describe import ItemStates, describe_items
from recserver.catalog.items import ItemUpdate
from recserver.catalog.recorder import ItemsOutcome
from recserver.core.errors import Unavailable
from recserver.ingest.recorder import EventRows, RecordOutcome
from recserver.node.mapped import MappedGraph
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.server.methods import SERVICE_NAME
from recserver.server.proxy import ForwardFailed

if TYPE_CHECKING:  # the writer's side (event log, Redis, the live graph) stays out of a
    # worker; the few calls that return its types import them when first made
    from recserver.ingest.eraser import Erasure
    from recserver.ingest.runtime import IngestStatus, UserEdges

#: Said with UNAVAILABLE, the code a builder that is down or cannot append answers with.
_RETRY = "nothing was acknowledged, retry with the same event ids"


class ForwardingIngest:
    """A worker's ``IngestHandler`` and its ``RawForwarder`` to the builder (see the module
    docstring). ``timeout_s`` bounds a relayed call whose client set no deadline."""

    def __init__(self, target: str, graph: MappedGraph, *, timeout_s: float = 5.0,
                 max_message_bytes: int = 64 << 20) -> None:
        self.graph = graph
        self.timeout_s = timeout_s
        self._channel = grpc.insecure_channel(target, options=[
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ])
        # Identity (de)serializers: bytes in, bytes out.
        self._methods = {name: self._channel.unary_unary(f"/{SERVICE_NAME}/{name}", None, None)
                         for name in ("RecordEvents", "UpdateItems", "DeleteUser",
                                      "GetIngestStatus")}

    def call(self, method: str, request: bytes, *, metadata: Sequence[tuple[str, Any]] = (),
             timeout_s: float | None = None) -> bytes:
        """Relay ``request`` (bytes) to the builder's ``method``; its response bytes, or
        ``ForwardFailed`` with the status it answered (``server.proxy.RawForwarder``)."""
        try:
            reply: bytes = self._methods[method](
                request, timeout=self.timeout_s if timeout_s is None else timeout_s,
                metadata=tuple(metadata))
            return reply
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNAVAILABLE
            details = (exc.details() if isinstance(exc, grpc.Call) else str(exc)) or ""
            if code == grpc.StatusCode.UNAVAILABLE:
                details = f"the node's builder: {details}; {_RETRY}"
            raise ForwardFailed(code, details) from None

    # Never called: the worker's server relays these three as bytes (``forward=self``);
    # present so this stays a whole ``IngestHandler``.
    def record_events(self, rows: EventRows) -> RecordOutcome:
        _relayed("RecordEvents")

    def update_items(self, updates: list[ItemUpdate]) -> ItemsOutcome:
        _relayed("UpdateItems")

    def delete_user(self, user_id: str) -> Erasure:
        _relayed("DeleteUser")

    def status(self) -> IngestStatus:
        from recserver.ingest.runtime import IngestStatus

        try:
            raw = self.call("GetIngestStatus", pb.GetIngestStatusRequest().SerializeToString())
        except ForwardFailed as failed:
            raise Unavailable(failed.details) from None
        s = pb.GetIngestStatusResponse.FromString(raw)
        mapped = self.graph.current.version if self.graph.ready else 0
        return IngestStatus(
            backend=s.backend, where=s.where, ready=s.ready, applied_position=s.applied_position,
            # What this worker answers from, never the builder's: a client waiting to read
            # its writes must not be told they are visible before this worker maps them ("":
            # the mapped snapshot shows nothing of the log yet).
            visible_position=self.graph.visible_position,
            events_applied=s.events_applied,
            snapshot_version=mapped, apply_lag_s=s.apply_lag_seconds, last_error=s.last_error,
            checkpoint_position=s.checkpoint_position, checkpoint_at=s.checkpoint_at,
        )

    def describe_user(self, user_id: str, limit: int = 0) -> UserEdges:
        from recserver.ingest.runtime import describe_user

        return describe_user(self.graph, user_id, limit)

    def describe_items(self, item_ids: list[str]) -> ItemStates:
        return describe_items(self.graph, item_ids)

    def close(self) -> None:
        self._channel.close()


def _relayed(method: str) -> NoReturn:
    raise Unavailable(f"{method} is relayed to the node's builder as bytes, not decoded here")
