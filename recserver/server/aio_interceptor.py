"""The asyncio door's one interceptor: arrival stamp, refusal at the door, token, status codes.

The same policy as the sync server's interceptors (``interceptor``, ``auth``), on grpc.aio:

* the call is stamped (``arrival.ARRIVAL``) before its request is read: the earliest moment
  Python sees it, moved back to the loop's last wake-up when the loop has been busy since
  (``loop_lag.WakeClock``: calls of a burst waited for the ones ahead), so its budget counts
  that wait too;
* while the door is shut (``loop_lag``: a standing backlog on the event loop), a Recommend
  call is refused RESOURCE_EXHAUSTED at once, its request bytes never parsed; health and
  ingest calls are never refused here;
* the bearer token is checked by method name (``auth.AuthInterceptor.check``);
* typed domain errors become their status codes (``interceptor.status_for``), messages capped
  (``core.echo.bounded_message``); anything else is INTERNAL with a request id, the traceback
  logged under it;
* every finished unary call is reported to the observer (metrics count Recommend outcomes).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from recserver.core.echo import bounded_message
from recserver.core.errors import RecServerError
from recserver.server.admission import refusal_message
from recserver.server.arrival import ARRIVAL
from recserver.server.auth import AuthInterceptor
from recserver.server.interceptor import (
    MalformedRequest,
    RpcObserver,
    request_id_of,
    status_for,
    tolerant_deserializer,
)
from recserver.server.methods import RECOMMEND_METHOD

log = logging.getLogger(__name__)

#: Why a Recommend call arriving now must be refused, or None to let it in.
Refusal = Callable[[float], str | None]


def _raw(data: bytes) -> bytes:
    return data  # a refused call's request is never parsed


class AioErrorInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every unary-unary handler (see the module docstring)."""

    def __init__(self, observer: RpcObserver | None = None, *,
                 auth: AuthInterceptor | None = None, refusal: Refusal | None = None,
                 on_refused: Callable[[str], None] | None = None,
                 arrival: Callable[[float], float] | None = None) -> None:
        """``arrival(stamp)``: the earliest the call stamped then can have arrived (the door's
        ``loop_lag.WakeClock``); the stamp itself when not given."""
        self._observer = observer
        self._auth = auth
        self._refusal = refusal
        self._on_refused = on_refused
        self._arrival = arrival
        self.refused = 0

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        arrival = time.perf_counter()
        if self._arrival is not None:
            arrival = self._arrival(arrival)
        handler = await continuation(handler_call_details)
        # Streaming handlers (health Watch, reflection) are grpc's own and left alone.
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method
        if method == RECOMMEND_METHOD and self._refusal is not None:
            reason = self._refusal(arrival)
            if reason is not None:
                return self._refusing(reason, handler)
        return grpc.unary_unary_rpc_method_handler(
            self._guard(method, handler.unary_unary, handler_call_details.invocation_metadata,
                        arrival),
            request_deserializer=tolerant_deserializer(method, handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )

    def _refusing(self, reason: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        self.refused += 1
        if self._on_refused is not None:
            self._on_refused(reason)

        # Counted by the refusal counter (on_refused), as the sync door's refusals are.
        async def refuse(request: bytes, context: grpc.aio.ServicerContext) -> Any:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal_message(reason))

        return grpc.unary_unary_rpc_method_handler(
            refuse, request_deserializer=_raw, response_serializer=handler.response_serializer)

    def _guard(self, method: str, behaviour: Callable[..., Any], metadata: Any,
               arrival: float) -> Callable[..., Awaitable[Any]]:
        observer, auth = self._observer, self._auth

        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
            ARRIVAL.set(arrival)  # this task's context: the handler below reads it
            code, response = grpc.StatusCode.OK, None
            try:
                if isinstance(request, MalformedRequest):
                    raise request.invalid()
                if auth is not None:
                    auth.check(method, metadata)
                # ``response`` is set only once there is one: a handler that fails while
                # awaited must be reported as unanswered, not as its coroutine.
                result = behaviour(request, context)
                if inspect.isawaitable(result):
                    result = await result
                response = result
                return response
            except RecServerError as exc:
                code = status_for(exc)
                log.debug("%s -> %s: %s", method, code.name, exc)
                await context.abort(code, bounded_message(str(exc)))
            except grpc.aio.AbortError:
                # The handler chose its status with context.abort: keep it.
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except Exception:
                code = grpc.StatusCode.INTERNAL
                rid = request_id_of(request)
                log.exception("%s failed (request_id %s)", method, rid)
                await context.abort(grpc.StatusCode.INTERNAL, f"internal error (request_id {rid})")
            finally:
                if observer is not None:
                    observer.rpc_finished(method, request, response, code)

        return guarded
