"""The gRPC transport: servicer, error interceptor, server lifecycle, CLI client.

Thin by design: it converts between the wire and ``recserver.service.types`` and calls the domain
through :class:`~recserver.server.servicer.RecommendHandler`; policy lives in the domain.
"""

from recserver.server.grpc_server import BindError, GrpcServer
from recserver.server.methods import SERVICE_NAME
from recserver.server.servicer import RecommenderServicer, RecommendHandler

__all__ = ["SERVICE_NAME", "BindError", "GrpcServer", "RecommendHandler", "RecommenderServicer"]
