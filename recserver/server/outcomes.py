"""Recommend call outcomes, decoded from the transport's messages into domain terms.

The metrics package never imports gRPC or the protos: the error interceptor reports every unary
call here, and this adapter turns a finished Recommend call into (surface, serving tier, status
code name) for whatever counts them.
"""

from __future__ import annotations

from typing import Any, Protocol

import grpc

from recserver.server.methods import RECOMMEND_METHOD
from recserver.server.servicer import SOURCE_TO_PROTO

__all__ = ["RECOMMEND_METHOD", "RecommendOutcomes", "TransportObserver"]
_PROTO_TO_SOURCE: dict[int, str] = {int(v): s for s, v in SOURCE_TO_PROTO.items()}


class TransportObserver(Protocol):
    """What the transport reports to metrics: Recommend outcomes and encode time."""

    def recommend_call_finished(self, surface: str, source: str | None, code: str) -> None: ...

    def encode_finished(self, surface: str, seconds: float) -> None: ...


class RecommendOutcomes:
    """The interceptor's observer: forwards finished Recommend calls, ignores other methods."""

    def __init__(self, sink: TransportObserver) -> None:
        self._sink = sink

    def rpc_finished(self, method: str, request: Any, response: Any,
                     code: grpc.StatusCode) -> None:
        if method != RECOMMEND_METHOD:
            return
        surface = getattr(request, "surface", "")
        source = None if response is None else _PROTO_TO_SOURCE.get(response.source)
        self._sink.recommend_call_finished(surface if isinstance(surface, str) else "", source,
                                           code.name)
