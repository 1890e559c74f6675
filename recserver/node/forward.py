"""A serving worker's ingest RPCs: writes go to the builder, reads come from the mapped graph.

The builder is the node's single writer, so a worker forwards ``RecordEvents``, ``UpdateItems``
and ``DeleteUser`` (and ``GetIngestStatus``) to the builder's local endpoint over a Unix socket
and relays the answer; acknowledgement keeps its meaning (an event is ACCEPTED, an item update or
an erasure recorded, once the builder appended it to the event log). ``DescribeUser`` and
``DescribeItems`` read the snapshot this worker serves, like ``Recommend`` does.
A builder that cannot be reached (restarting) makes the call UNAVAILABLE: nothing was
acknowledged, and a retry with the same event ids is safe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import numpy as np

from recserver.catalog.describe import ItemStates, describe_items
from recserver.catalog.items import ItemUpdate
from recserver.catalog.recorder import ItemsOutcome
from recserver.core.errors import (
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
)
from recserver.ingest.recorder import EventRows, RecordOutcome
from recserver.node.mapped import MappedGraph
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc

if TYPE_CHECKING:  # the writer's side (event log, Redis, the live graph) stays out of a
    # worker; the few calls that return its types import them when first made
    from recserver.ingest.eraser import Erasure
    from recserver.ingest.runtime import IngestStatus, UserEdges

_ERRORS = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
}


class ForwardingIngest:
    """``IngestHandler`` for a serving worker (see the module docstring)."""

    def __init__(self, target: str, graph: MappedGraph, *, timeout_s: float = 5.0,
                 max_message_bytes: int = 64 << 20) -> None:
        self.graph = graph
        self.timeout_s = timeout_s
        self._channel = grpc.insecure_channel(target, options=[
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ])
        self._stub = pb_grpc.RecommenderStub(self._channel)

    def _call(self, method: str, request: object) -> object:
        try:
            return getattr(self._stub, method)(request, timeout=self.timeout_s)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
            error = _ERRORS.get(code) if code is not None else None
            if error is not None:
                raise error(details or "") from None
            raise Unavailable(f"the node's builder is not reachable ({details}); nothing was "
                              "acknowledged, retry with the same event ids") from None

    def record_events(self, rows: EventRows) -> RecordOutcome:
        events = [
            pb.Event(event_id=eid, user_id=user, item_id=item, event=kind, weight=weight,
                     timestamp=ts)
            for eid, user, item, kind, weight, ts in zip(
                rows.event_ids, rows.user_ids, rows.item_ids, rows.events, rows.weights,
                rows.timestamps, strict=True)
        ]
        response = self._call("RecordEvents", pb.RecordEventsRequest(events=events))
        assert isinstance(response, pb.RecordEventsResponse)
        status = np.array([r.status for r in response.results], dtype=np.int8)
        reasons = {i: r.reason for i, r in enumerate(response.results) if r.reason}
        return RecordOutcome(status=status, reasons=reasons, position=response.log_position)

    def update_items(self, updates: list[ItemUpdate]) -> ItemsOutcome:
        items = []
        for u in updates:
            info = pb.ItemInfo(item_id=u.item_id, categories=list(u.categories or ()),
                               clear_categories=u.categories == ())
            if u.hidden is not None:
                info.hidden = u.hidden
            if u.expires_at is not None:
                info.expires_at = u.expires_at
            items.append(info)
        response = self._call("UpdateItems", pb.UpdateItemsRequest(items=items))
        assert isinstance(response, pb.UpdateItemsResponse)
        return ItemsOutcome(response.accepted, response.log_position)

    def delete_user(self, user_id: str) -> Erasure:
        from recserver.ingest.eraser import Erasure

        response = self._call("DeleteUser", pb.DeleteUserRequest(user_id=user_id))
        assert isinstance(response, pb.DeleteUserResponse)
        return Erasure(found=response.found, position=response.log_position)

    def status(self) -> IngestStatus:
        from recserver.ingest.runtime import IngestStatus

        s = self._call("GetIngestStatus", pb.GetIngestStatusRequest())
        assert isinstance(s, pb.GetIngestStatusResponse)
        mapped = self.graph.current.version if self.graph.ready else 0
        return IngestStatus(
            backend=s.backend, where=s.where, ready=s.ready, applied_position=s.applied_position,
            visible_position=self.graph.visible_position or s.visible_position,
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
