"""The Recommender service on the asyncio door: decode, decide where the answer is made, encode.

As thin as the sync servicer, with one decision added, because on this door it must be made
before any work is queued: **walk, or degrade now?** ``Recommender.begin`` (validation,
deadline, snapshot; tens of microseconds) runs on the event loop; then

* when a walk submitted now is expected to finish by the walk's deadline
  (``WalkAdmission.admit``: the walk threads' predicted start plus the surface's recent walk
  time), the answer is made on a walk thread and awaited;
* otherwise the fallback answers at once, on the loop, flagged ``overloaded`` (well under a
  millisecond): degrade before refusing. Refusal happens only at the door, when the loop
  itself runs behind (``aio_interceptor``).

The ingest and admin RPCs block (a forward to the builder, a log append), so they run on the
door's blocking-call thread, never on the loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from recserver.core.job_threads import JobThreads
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc
from recserver.server.arrival import current_arrival
from recserver.server.ingest_servicer import IngestHandler
from recserver.server.servicer import (
    EncodeObserver,
    RecommenderServicer,
    client_remaining_s,
    decode_request,
    encode_observed,
)
from recserver.service.types import Recommendation, RecommendQuery
from recserver.service.walk_admission import DoorHandler, WalkAdmission

_Reply = TypeVar("_Reply")


class _NoRecommend:
    """The sync servicer lent for the ingest endpoints never answers Recommend here."""

    def recommend(self, query: RecommendQuery, *, arrival: float,
                  client_remaining_s: float | None) -> Recommendation:
        raise AssertionError("Recommend is answered by the asyncio servicer")


class AioRecommenderServicer(pb_grpc.RecommenderServicer):
    """``recserver.v1.Recommender`` for ``grpc.aio`` (see the module docstring)."""

    def __init__(self, recommender: DoorHandler, walks: WalkAdmission, blocking: JobThreads, *,
                 on_encoded: EncodeObserver | None = None,
                 ingest: IngestHandler | None = None) -> None:
        self._recommender = recommender
        self._walks = walks
        self._blocking = blocking
        self._on_encoded = on_encoded
        # The ingest endpoints are the sync servicer's own, run on the blocking-call thread.
        self._sync = RecommenderServicer(_NoRecommend(), ingest=ingest)

    async def Recommend(self, request: pb.RecommendRequest,
                        context: grpc.aio.ServicerContext) -> pb.RecommendResponse:
        arrival = current_arrival()
        if arrival is None:
            arrival = time.perf_counter()
        query = decode_request(request)
        ask = self._recommender.begin(query, arrival=arrival,
                                      client_remaining_s=client_remaining_s(context))
        if self._walks.admit(ask):
            rec = await self._walks.answer(ask)
        else:
            rec = self._recommender.answer(ask, walk=False)
        return encode_observed(rec, query, self._on_encoded)

    async def _off_loop(self, method: Callable[[Any, Any], _Reply], request: Any,
                        context: grpc.aio.ServicerContext) -> _Reply:
        reply: _Reply = await self._blocking.run(lambda: method(request, context))
        return reply

    async def RecordEvents(self, request: pb.RecordEventsRequest,
                           context: grpc.aio.ServicerContext) -> pb.RecordEventsResponse:
        return await self._off_loop(self._sync.RecordEvents, request, context)

    async def UpdateItems(self, request: pb.UpdateItemsRequest,
                          context: grpc.aio.ServicerContext) -> pb.UpdateItemsResponse:
        return await self._off_loop(self._sync.UpdateItems, request, context)

    async def DeleteUser(self, request: pb.DeleteUserRequest,
                         context: grpc.aio.ServicerContext) -> pb.DeleteUserResponse:
        return await self._off_loop(self._sync.DeleteUser, request, context)

    async def GetIngestStatus(self, request: pb.GetIngestStatusRequest,
                              context: grpc.aio.ServicerContext) -> pb.GetIngestStatusResponse:
        return await self._off_loop(self._sync.GetIngestStatus, request, context)

    async def DescribeUser(self, request: pb.DescribeUserRequest,
                           context: grpc.aio.ServicerContext) -> pb.DescribeUserResponse:
        return await self._off_loop(self._sync.DescribeUser, request, context)

    async def DescribeItems(self, request: pb.DescribeItemsRequest,
                            context: grpc.aio.ServicerContext) -> pb.DescribeItemsResponse:
        return await self._off_loop(self._sync.DescribeItems, request, context)
