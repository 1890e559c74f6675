"""Bearer-token access control: one interceptor, keyed by method name.

Which methods need the token is a table (:func:`protected_methods`), not code in each handler:
writes (``RecordEvents``, ``UpdateItems``, ``DeleteUser``) and the admin/introspection RPCs
(``GetIngestStatus``, ``DescribeUser``, ``DescribeItems``) always, when a token is configured;
``Recommend`` only with ``auth.require_for_recommend``. Health and reflection stay open (probes
carry no token).

The client sends ``authorization: Bearer <token>`` metadata. The comparison is constant-time
(``hmac.compare_digest`` over bytes), the token is never logged, and a missing or wrong token
raises :class:`~recserver.core.errors.Unauthenticated` inside the handler, so the error
interceptor (outside this one) maps it to UNAUTHENTICATED and counts it like any other status.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

import grpc

from recserver.core.errors import Unauthenticated
from recserver.proto.recserver.v1 import recommender_pb2 as pb

_SERVICE = pb.DESCRIPTOR.services_by_name["Recommender"].full_name
#: Methods that need the token whenever one is configured.
ALWAYS_PROTECTED: tuple[str, ...] = (
    "RecordEvents", "GetIngestStatus", "DescribeUser", "DescribeItems", "UpdateItems",
    "DeleteUser",
)
AUTH_HEADER = "authorization"
_SCHEME = "bearer "


def method_path(name: str) -> str:
    """``RecordEvents`` -> ``/recserver.v1.Recommender/RecordEvents`` (gRPC's method path)."""
    return f"/{_SERVICE}/{name}"


def protected_methods(require_for_recommend: bool) -> frozenset[str]:
    names = ALWAYS_PROTECTED + (("Recommend",) if require_for_recommend else ())
    return frozenset(method_path(n) for n in names)


def bearer_metadata(token: str) -> tuple[tuple[str, str], ...]:
    """The call metadata a client sends (see ``recserver.server.client``)."""
    return ((AUTH_HEADER, f"Bearer {token}"),)


def _presented(metadata: Any) -> bytes | None:
    for key, value in metadata or ():
        if key == AUTH_HEADER:
            text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
            if text[: len(_SCHEME)].lower() != _SCHEME:
                return None
            return text[len(_SCHEME):].strip().encode()
    return None


class AuthInterceptor(grpc.ServerInterceptor):
    """Refuses calls to protected methods without the right bearer token (UNAUTHENTICATED)."""

    def __init__(self, token: str, methods: frozenset[str]) -> None:
        self._token = token.encode()
        self._methods = methods

    def check(self, method: str, metadata: Any) -> None:
        """Raise ``Unauthenticated`` unless ``method`` is open or the token matches."""
        if method not in self._methods:
            return
        presented = _presented(metadata)
        name = method.rsplit("/", 1)[-1]
        if presented is None:
            raise Unauthenticated(
                f"{name} needs a bearer token: send metadata 'authorization: Bearer <token>' "
                "(recserver CLI: --token-file or RECSERVER_TOKEN)"
            )
        if not hmac.compare_digest(presented, self._token):
            raise Unauthenticated(f"{name}: the bearer token is wrong; check the token you send")

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or handler.unary_unary is None or method not in self._methods:
            return handler
        behaviour = handler.unary_unary
        metadata = handler_call_details.invocation_metadata
        check = self.check

        def guarded(request: Any, context: grpc.ServicerContext) -> Any:
            check(method, metadata)  # raised inside the handler: the error interceptor maps it
            return behaviour(request, context)

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
