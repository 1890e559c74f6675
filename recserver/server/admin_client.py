"""What the operator commands (``record``, ``delete-user``, ``describe-user``,
``ingest-status`` in ``recserver.cli``) share: target options, exit codes, waiting for a log
position to become visible.

Each takes the same ``--target`` and TLS/token options as ``recommend`` (the token from
``--token-file`` or ``$RECSERVER_TOKEN``; these RPCs need it whenever the server has one).
Exit status: 0 done, 1 the call failed (unreachable, UNAVAILABLE, not found for
``describe-user``), 2 the request was refused as invalid or unauthenticated.
"""

from __future__ import annotations

import argparse
import sys
import time

import grpc

from recserver.eventlog.base import Position
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.server.client import (
    DEFAULT_TARGET,
    RecommendClient,
    add_connection_args,
)

#: Statuses that retrying the same call cannot fix.
_CALLER_ERRORS = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAUTHENTICATED,
                  grpc.StatusCode.FAILED_PRECONDITION)


def add_target_args(parser: argparse.ArgumentParser, *, timeout_s: float = 10.0) -> None:
    parser.add_argument("--target", default=DEFAULT_TARGET,
                        help=f"server host:port (default {DEFAULT_TARGET})")
    parser.add_argument("--timeout", type=float, default=timeout_s,
                        help=f"client deadline per call in seconds (default {timeout_s:g})")
    add_connection_args(parser)


def rpc_failed(exc: grpc.RpcError) -> int:
    """Print the status and its message; the exit status for it."""
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
    print(f"recserver: {code.name}: {details}", file=sys.stderr)
    return 2 if code in _CALLER_ERRORS else 1


def ingest_status(client: RecommendClient, timeout_s: float) -> pb.GetIngestStatusResponse:
    response = client.call("GetIngestStatus", pb.GetIngestStatusRequest(), timeout_s=timeout_s)
    assert isinstance(response, pb.GetIngestStatusResponse)
    return response


def wait_visible(client: RecommendClient, position: str, *, timeout_s: float,
                 call_timeout_s: float) -> bool:
    """Poll ``GetIngestStatus`` until this replica shows ``position``; False on timeout."""
    target = Position.parse(position)
    deadline = time.monotonic() + timeout_s
    while True:
        visible = ingest_status(client, call_timeout_s).visible_position
        if visible and Position.parse(visible) >= target:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


# -- delete-user -------------------------------------------------------------------------------
