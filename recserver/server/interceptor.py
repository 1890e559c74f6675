"""The one place where domain errors become gRPC status codes.

Each typed error of ``recserver.core.errors`` has its own code and a message written for the
client (what to fix), so it is passed through as is. Anything else is a bug or an outage the
client cannot act on: it gets INTERNAL with a generic message carrying a request id, and the
detail (with the traceback) goes to the log under the same id, so nothing about the server's
internals leaks to callers while an operator can still find the cause.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import grpc

from recserver.core.echo import bounded_message
from recserver.core.errors import (
    FailedPrecondition,
    InvalidArgument,
    RecServerError,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)

log = logging.getLogger(__name__)

#: Typed domain error -> status code. A subclass maps as its nearest listed base.
ERROR_CODES: dict[type[RecServerError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
}


def status_for(exc: RecServerError) -> grpc.StatusCode:
    """The status code of a typed error (INTERNAL for a base-class error nobody mapped)."""
    for cls in type(exc).__mro__:
        code = ERROR_CODES.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


class MalformedRequest:
    """Stands in for a request whose bytes did not parse (the handler is never called)."""

    def __init__(self, method: str, error: Exception) -> None:
        self.method = method
        self.error = error

    def invalid(self) -> InvalidArgument:
        """The error the client gets: what was wrong, and how to send it right."""
        name = self.method.rsplit("/", 1)[-1]
        return InvalidArgument(
            f"the {name} request is not a valid protobuf message ({type(self.error).__name__}); "
            "encode it with the recserver.v1 protos (string fields must be valid UTF-8)"
        )


def tolerant_deserializer(
    method: str, deserialize: Callable[[bytes], Any] | None
) -> Callable[[bytes], Any] | None:
    """``deserialize`` that returns a :class:`MalformedRequest` instead of raising.

    grpc answers a request that fails to parse (bad protobuf, invalid UTF-8 in a string field)
    with INTERNAL "Exception deserializing request!"; it is the client's fault, so it must be
    INVALID_ARGUMENT with a message saying what to fix.
    """
    if deserialize is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as exc:  # DecodeError, UnicodeDecodeError, ...
            return MalformedRequest(method, exc)

    return parse


def request_id_of(request: Any) -> str:
    # The client's id when it sent one (so its own logs line up), else a fresh one.
    # A client's id longer than any sane one is not echoed (it would be another unbounded echo).
    rid = getattr(request, "request_id", "")
    return rid if isinstance(rid, str) and 0 < len(rid) <= 64 else uuid.uuid4().hex[:16]


class RpcObserver(Protocol):
    """Told the outcome of every unary call (metrics count requests by status code)."""

    def rpc_finished(
        self, method: str, request: Any, response: Any, code: grpc.StatusCode
    ) -> None: ...


class ErrorInterceptor(grpc.ServerInterceptor):
    """Wraps every unary-unary handler: typed errors -> their code, the rest -> INTERNAL."""

    def __init__(self, observer: RpcObserver | None = None) -> None:
        self._observer = observer

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        # Streaming handlers (health Watch, reflection) are grpc's own and left alone.
        if handler is None or handler.unary_unary is None:
            return handler
        behaviour = handler.unary_unary
        method = handler_call_details.method
        observer = self._observer

        def guarded(request: Any, context: grpc.ServicerContext) -> Any:
            code, response = grpc.StatusCode.OK, None
            try:
                if isinstance(request, MalformedRequest):
                    raise request.invalid()
                response = behaviour(request, context)
                return response
            except RecServerError as exc:
                code = status_for(exc)
                log.debug("%s -> %s: %s", method, code.name, exc)
                context.abort(code, bounded_message(str(exc)))
            except Exception:
                if _already_aborted(context):
                    code = context.code()  # type: ignore[attr-defined]  # grpc-stubs lack it
                    raise  # the handler chose its status with context.abort: keep it
                code = grpc.StatusCode.INTERNAL
                rid = request_id_of(request)
                log.exception("%s failed (request_id %s)", method, rid)
                context.abort(grpc.StatusCode.INTERNAL, f"internal error (request_id {rid})")
            finally:
                if observer is not None:
                    observer.rpc_finished(method, request, response, code)

        # Admission at the door tells the methods apart by this (``server.refusal``): registered
        # methods reach the pool without their name in the call details.
        guarded.rpc_method = method  # type: ignore[attr-defined]
        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=tolerant_deserializer(method, handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )


def _already_aborted(context: grpc.ServicerContext) -> bool:
    # context.abort() raises a bare Exception after setting the code; re-aborting would overwrite
    # the handler's deliberate status with INTERNAL.
    code_of = getattr(context, "code", None)
    if code_of is None:
        return False
    code = code_of()
    return code is not None and code != grpc.StatusCode.OK
