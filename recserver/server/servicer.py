"""The gRPC servicer: decode the request, call one domain function, encode the answer.

Deliberately thin (as KServe's servicer in front of its data plane): no validation beyond type
conversion, no error handling. The domain validates field values and raises the typed errors of
``recserver.core.errors``; ``interceptor.ErrorInterceptor`` turns them into status codes. That
keeps every policy decision (what k means, which surface exists, how budgets combine) in the
domain, where it is tested without a network.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Protocol

import grpc

from recserver.core.errors import ResourceExhausted
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc
from recserver.server.admission import current_refusal, refusal_message
from recserver.server.arrival import current_arrival
from recserver.server.ingest_servicer import IngestEndpoints, IngestHandler
from recserver.service.types import SOURCES, Recommendation, RecommendQuery, Source

#: Domain source names -> wire enum. The names match the enum's, upper-cased.
SOURCE_TO_PROTO: dict[Source, pb.Source.ValueType] = {
    source: pb.Source.Value(source.upper()) for source in SOURCES
}

# grpc reports "no deadline" as a remaining time of decades (an infinite-future deadline minus
# now) rather than None; anything beyond a day cannot be a real client deadline.
_NO_DEADLINE_S = 86_400.0

#: Told ``(surface, seconds)`` after each response is encoded (the ``encode`` stage metric).
EncodeObserver = Callable[[str, float], None]


class RecommendHandler(Protocol):
    """The domain entry point the servicer calls (the recommender implements it)."""

    def recommend(
        self, query: RecommendQuery, *, arrival: float, client_remaining_s: float | None
    ) -> Recommendation:
        """Answer ``query``.

        ``arrival`` is ``time.perf_counter()`` when the request reached the server (queueing
        included); ``client_remaining_s`` is the time left before the client's gRPC deadline, or
        ``None`` when the client set none.
        """
        ...


def decode_request(request: pb.RecommendRequest) -> RecommendQuery:
    """Wire request -> domain query (types only; values are the domain's to judge)."""
    return RecommendQuery(
        user_id=request.user_id,
        surface=request.surface,
        k=request.k,
        context_item_ids=tuple(request.context_item_ids),
        exclude_item_ids=tuple(request.exclude_item_ids),
        # proto3 `optional`: unset means "the surface's budget", which 0 could not express.
        budget_ms=request.budget_ms if request.HasField("budget_ms") else None,
        request_id=request.request_id,
        debug=request.debug,
        categories=tuple(request.categories),
    )


def encode_response(rec: Recommendation, query: RecommendQuery) -> pb.RecommendResponse:
    """Domain answer -> wire response (echoes the request id; stage timings only on debug)."""
    response = pb.RecommendResponse(
        items=[
            pb.Item(item_id=item.item_id, score=item.score, source=SOURCE_TO_PROTO[item.source])
            for item in rec.items
        ],
        source=SOURCE_TO_PROTO[rec.source],
        degraded=rec.degraded,
        degraded_reasons=rec.degraded_reasons,
        coverage=rec.coverage,
        budget_ms=rec.budget_ms,
        budget_limited_by=rec.budget_limited_by,
        server_elapsed_ms=rec.server_elapsed_ms,
        snapshot_version=rec.snapshot_version,
        request_id=query.request_id,
        steps_done=rec.steps_done,
        steps_planned=rec.steps_planned,
    )
    if query.debug:
        response.stage_ms.update(rec.stage_ms)
    return response


def encode_observed(rec: Recommendation, query: RecommendQuery,
                    on_encoded: EncodeObserver | None) -> pb.RecommendResponse:
    """``encode_response``, its time told to ``on_encoded`` (the ``encode`` stage metric)."""
    if on_encoded is None:
        return encode_response(rec, query)
    started = time.perf_counter()
    response = encode_response(rec, query)
    on_encoded(query.surface, time.perf_counter() - started)
    return response


def client_remaining_s(context: grpc.ServicerContext | grpc.aio.ServicerContext[Any, Any]
                       ) -> float | None:
    """Seconds left before the client's deadline, or ``None`` when it set no deadline."""
    remaining = context.time_remaining()
    if remaining is None or not math.isfinite(remaining) or remaining > _NO_DEADLINE_S:
        return None
    return float(remaining)


class RecommenderServicer(IngestEndpoints, pb_grpc.RecommenderServicer):
    """``recserver.v1.Recommender`` over a :class:`RecommendHandler` (and an ingest handler for
    ``RecordEvents`` and friends, see ``ingest_servicer``)."""

    def __init__(
        self,
        handler: RecommendHandler,
        on_encoded: EncodeObserver | None = None,
        ingest: IngestHandler | None = None,
    ) -> None:
        self._handler = handler
        self._on_encoded = on_encoded
        self._ingest = ingest

    def Recommend(
        self, request: pb.RecommendRequest, context: grpc.ServicerContext
    ) -> pb.RecommendResponse:
        # Taken first: the pool's submission stamp when there is one, else the earliest we can.
        refusal = current_refusal()
        if refusal is not None:
            raise ResourceExhausted(refusal_message(refusal))
        arrival = current_arrival()
        if arrival is None:
            arrival = time.perf_counter()
        query = decode_request(request)
        rec = self._handler.recommend(
            query, arrival=arrival, client_remaining_s=client_remaining_s(context)
        )
        return encode_observed(rec, query, self._on_encoded)
