"""The service's full name and the method paths the transport tells apart, from the protos
(imports no handler, so the admission step, the servicer and the outcome counter can share it)."""

from __future__ import annotations

from recserver.proto.recserver.v1 import recommender_pb2 as pb

#: Full name of the service, as health checks and reflection name it.
SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["Recommender"].full_name
#: The gRPC method path of ``Recommend`` (what interceptors see).
RECOMMEND_METHOD = f"/{SERVICE_NAME}/Recommend"
