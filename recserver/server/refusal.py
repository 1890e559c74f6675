"""Refusing a Recommend call on the gRPC server's polling thread, before any handler runs.

The sync server hands each call to its pool as ``context.run(_unary_response_in_pool, rpc_event,
rpc_state, ...)``. A call refused at the door needs none of that: only the status sent back. So
:func:`fast_refuse` recognises that shape and sends RESOURCE_EXHAUSTED with grpc's own abort
step, exactly what the pool thread would do after the servicer raised, minus reading and
decoding the request, the interceptors, and the wait for a thread. It relies on grpc internals,
so it checks the shape first and returns None (the caller then refuses the slow way) whenever
the installed grpcio differs.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


try:  # grpc internals; absent or renamed in another grpcio: the slow path refuses instead
    from grpc import _server as _grpc_server
    from grpc._cython import cygrpc as _cygrpc  # type: ignore[attr-defined]

    _IN_POOL: Any = _grpc_server._unary_response_in_pool
    _ABORT: Any = _grpc_server._abort
    _EXHAUSTED: Any = _cygrpc.StatusCode.resource_exhausted
except (ImportError, AttributeError):  # pragma: no cover - depends on the grpcio release
    _IN_POOL = _ABORT = _EXHAUSTED = None


def call_method(args: tuple[Any, ...]) -> str | None:
    """The full method name of the unary call the pool is asked to run, or None when the call
    does not have the expected shape (another grpcio, a handler not wrapped by the error
    interceptor, which names the method on the handler: registered methods do not carry it in
    the call details)."""
    if _IN_POOL is None or len(args) < 4 or args[0] is not _IN_POOL:
        return None
    method = getattr(args[3], "rpc_method", None)
    return method if isinstance(method, str) else None


def fast_refuse(args: tuple[Any, ...], message: str) -> bool:
    """Send RESOURCE_EXHAUSTED with ``message`` for the call ``args`` describe (checked by
    :func:`call_method`); False when that failed and the caller must refuse another way."""
    rpc_event, rpc_state = args[1], args[2]
    try:
        with rpc_state.condition:
            _ABORT(rpc_state, rpc_event.call, _EXHAUSTED, message.encode())
    except Exception:  # never let the fast path fail a call: the caller falls back
        log.debug("fast refusal unavailable; refusing on a thread", exc_info=True)
        return False
    return True
