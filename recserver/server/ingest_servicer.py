"""The ingest RPCs of the Recommender service: decode, call the ingest runtime, encode.

As thin as ``servicer.py``: no policy here. ``RecordEvents`` turns the request into columns
(one Python list per field, no object per event), hands them to the handler, and writes one
result per event back in request order. Typed errors (``Unavailable`` when the log cannot
append, ``InvalidArgument`` for an oversized batch) become status codes in the interceptor.
A client-streaming variant is not offered: a unary call already carries thousands of events,
and per-call acknowledgement keeps "acknowledged = durable" simple to reason about for clients.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import grpc

from recserver.catalog.describe import ItemStates
from recserver.catalog.items import ItemUpdate
from recserver.catalog.recorder import ItemsOutcome
from recserver.core.echo import shown
from recserver.core.errors import InvalidArgument, Unavailable
from recserver.ingest.recorder import ACCEPTED, DUPLICATE, REJECTED, EventRows, RecordOutcome
from recserver.proto.recserver.v1 import recommender_pb2 as pb

if TYPE_CHECKING:  # types only: a serving worker forwards writes and imports no writer
    from recserver.ingest.eraser import Erasure
    from recserver.ingest.runtime import IngestStatus, UserEdges

_RESULTS = {
    ACCEPTED: pb.EventResult(status=pb.ACCEPTED),
    DUPLICATE: pb.EventResult(status=pb.DUPLICATE),
}


class IngestHandler(Protocol):
    """The domain side of the ingest RPCs (``eventlog.runtime.IngestRuntime``)."""

    def record_events(self, rows: EventRows) -> RecordOutcome: ...
    def delete_user(self, user_id: str) -> Erasure: ...
    def status(self) -> IngestStatus: ...
    def describe_user(self, user_id: str, limit: int = 0) -> UserEdges: ...
    def update_items(self, updates: list[ItemUpdate]) -> ItemsOutcome: ...
    def describe_items(self, item_ids: list[str]) -> ItemStates: ...


def decode_events(request: pb.RecordEventsRequest) -> EventRows:
    """Wire events -> columns (unset weight means 1)."""
    events = list(request.events)
    return EventRows(
        event_ids=[e.event_id for e in events],
        user_ids=[e.user_id for e in events],
        item_ids=[e.item_id for e in events],
        events=[e.event for e in events],
        weights=[e.weight if e.HasField("weight") else 1.0 for e in events],
        timestamps=[e.timestamp for e in events],
    )


def decode_items(request: pb.UpdateItemsRequest) -> list[ItemUpdate]:
    """Wire items -> updates (unset fields and empty categories mean "unchanged")."""
    updates = []
    for pos, info in enumerate(request.items):
        categories: tuple[str, ...] | None = tuple(info.categories) or None
        if info.clear_categories:
            if categories:
                raise InvalidArgument(f"items[{pos}] ({shown(info.item_id)}) sets clear_categories "
                                      "and lists categories; send one or the other")
            categories = ()
        updates.append(ItemUpdate(
            item_id=info.item_id, categories=categories,
            hidden=info.hidden if info.HasField("hidden") else None,
            expires_at=info.expires_at if info.HasField("expires_at") else None,
        ))
    return updates


def encode_items(outcome: ItemsOutcome, request_id: str) -> pb.UpdateItemsResponse:
    """One ACCEPTED result per item (a batch is appended whole or refused whole)."""
    accepted = pb.ItemResult(status=pb.ACCEPTED)
    return pb.UpdateItemsResponse(results=[accepted] * outcome.accepted,
                                  accepted=outcome.accepted, log_position=outcome.position,
                                  request_id=request_id)


def encode_outcome(outcome: RecordOutcome, request_id: str) -> pb.RecordEventsResponse:
    """Per-event results in request order, with counts and the log position."""
    response = pb.RecordEventsResponse(
        accepted=outcome.count(ACCEPTED),
        duplicates=outcome.count(DUPLICATE),
        rejected=outcome.count(REJECTED),
        log_position=outcome.position,
        request_id=request_id,
    )
    reasons = outcome.reasons
    results = []
    for i, status in enumerate(outcome.status.tolist()):
        shared = _RESULTS.get(status)
        if shared is not None:
            results.append(shared)
        else:
            results.append(pb.EventResult(status=pb.REJECTED, reason=reasons.get(i, "")))
    response.results.extend(results)
    return response


class IngestEndpoints:
    """``RecordEvents``, ``UpdateItems``, ``DeleteUser``, ``GetIngestStatus``,
    ``DescribeUser`` and ``DescribeItems``; mixed into the servicer."""

    _ingest: IngestHandler | None

    def _ingest_handler(self) -> IngestHandler:
        if self._ingest is None:
            raise Unavailable("this server has no ingest runtime")
        return self._ingest

    def RecordEvents(
        self, request: pb.RecordEventsRequest, context: grpc.ServicerContext
    ) -> pb.RecordEventsResponse:
        outcome = self._ingest_handler().record_events(decode_events(request))
        return encode_outcome(outcome, request.request_id)

    def UpdateItems(
        self, request: pb.UpdateItemsRequest, context: grpc.ServicerContext
    ) -> pb.UpdateItemsResponse:
        outcome = self._ingest_handler().update_items(decode_items(request))
        return encode_items(outcome, request.request_id)

    def DeleteUser(
        self, request: pb.DeleteUserRequest, context: grpc.ServicerContext
    ) -> pb.DeleteUserResponse:
        erased = self._ingest_handler().delete_user(request.user_id)
        return pb.DeleteUserResponse(found=erased.found, log_position=erased.position)

    def GetIngestStatus(
        self, request: pb.GetIngestStatusRequest, context: grpc.ServicerContext
    ) -> pb.GetIngestStatusResponse:
        s = self._ingest_handler().status()
        return pb.GetIngestStatusResponse(
            backend=s.backend, where=s.where, ready=s.ready, applied_position=s.applied_position,
            visible_position=s.visible_position, events_applied=s.events_applied,
            snapshot_version=s.snapshot_version, apply_lag_seconds=s.apply_lag_s,
            last_error=s.last_error, checkpoint_position=s.checkpoint_position,
            checkpoint_at=s.checkpoint_at,
        )

    def DescribeUser(
        self, request: pb.DescribeUserRequest, context: grpc.ServicerContext
    ) -> pb.DescribeUserResponse:
        edges = self._ingest_handler().describe_user(request.user_id, max(request.limit, 0))
        return pb.DescribeUserResponse(
            found=edges.found,
            edges=[pb.UserEdge(item_id=i, weight=w)
                   for i, w in zip(edges.item_ids, edges.weights, strict=True)],
            snapshot_version=edges.snapshot_version,
        )

    def DescribeItems(
        self, request: pb.DescribeItemsRequest, context: grpc.ServicerContext
    ) -> pb.DescribeItemsResponse:
        states = self._ingest_handler().describe_items(list(request.item_ids))
        return pb.DescribeItemsResponse(
            items=[pb.ItemState(item_id=s.item_id, found=s.found, hidden=s.hidden,
                                expires_at=s.expires_at, categories=list(s.categories),
                                degree=s.degree)
                   for s in states.items],
            snapshot_version=states.snapshot_version,
        )
