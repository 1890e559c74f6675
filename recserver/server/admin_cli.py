"""Operator commands against a running server: ``delete-user``, ``describe-user``,
``ingest-status`` (``record`` lives in ``eventlog.record_cli``).

Each takes the same ``--target`` and TLS/token options as ``recommend`` (the token from
``--token-file`` or ``$RECSERVER_TOKEN``; these RPCs need it whenever the server has one).
Exit status: 0 done, 1 the call failed (unreachable, UNAVAILABLE, not found for
``describe-user``), 2 the request was refused as invalid or unauthenticated.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import grpc

from recserver.eventlog.base import Position
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.server.client import (
    DEFAULT_TARGET,
    RecommendClient,
    add_connection_args,
    client_from_args,
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


def add_delete_user_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", required=True, help="the user id to erase")
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="then wait up to this long until the replica answered from no "
                             "longer shows the user (default 0: do not wait)")
    add_target_args(parser)


def cmd_delete_user(args: argparse.Namespace) -> int:
    with client_from_args(args) as client:
        try:
            response = client.call("DeleteUser", pb.DeleteUserRequest(user_id=args.user),
                                   timeout_s=args.timeout)
            assert isinstance(response, pb.DeleteUserResponse)
            known = ("was in this replica's graph" if response.found
                     else "was not in this replica's graph; recorded all the same")
            print(f"erasure of {args.user!r} recorded at log position {response.log_position} "
                  f"({known})")
            if args.wait > 0:
                if not wait_visible(client, response.log_position, timeout_s=args.wait,
                                    call_timeout_s=args.timeout):
                    print(f"recserver: not visible on {args.target} after {args.wait:g}s; the "
                          "erasure is recorded and applies as the replica catches up",
                          file=sys.stderr)
                    return 1
                print(f"visible on {args.target}: the user is gone from its answers")
        except grpc.RpcError as exc:
            return rpc_failed(exc)
    return 0


# -- describe-user -----------------------------------------------------------------------------


def add_describe_user_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", required=True, help="the user id")
    parser.add_argument("--limit", type=int, default=20,
                        help="at most this many edges, strongest first (0: all; default 20)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_target_args(parser)


def cmd_describe_user(args: argparse.Namespace) -> int:
    """The user's edges as the replica's snapshot holds them; exit 1 when not found."""
    with client_from_args(args) as client:
        try:
            response = client.call(
                "DescribeUser", pb.DescribeUserRequest(user_id=args.user, limit=args.limit),
                timeout_s=args.timeout)
        except grpc.RpcError as exc:
            return rpc_failed(exc)
    assert isinstance(response, pb.DescribeUserResponse)
    if args.json:
        print(json.dumps({"user_id": args.user, "found": response.found,
                          "snapshot_version": response.snapshot_version,
                          "edges": [{"item_id": e.item_id, "weight": e.weight}
                                    for e in response.edges]}))
    elif not response.found:
        print(f"user {args.user!r} is not in the graph (snapshot {response.snapshot_version})")
    else:
        width = max([len("item"), *(len(e.item_id) for e in response.edges)])
        lines = [f"{'item':<{width}}  {'weight':>12}"]
        lines += [f"{e.item_id:<{width}}  {e.weight:>12.6g}" for e in response.edges]
        lines.append(f"\n{len(response.edges)} edges shown; snapshot "
                     f"{response.snapshot_version}")
        print("\n".join(lines))
    return 0 if response.found else 1


# -- ingest-status -----------------------------------------------------------------------------


_STATUS_FIELDS = ("backend", "where", "ready", "applied_position", "visible_position",
                  "events_applied", "snapshot_version", "apply_lag_seconds", "last_error",
                  "checkpoint_position", "checkpoint_at")


def add_ingest_status_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of lines")
    add_target_args(parser)


def status_fields(response: pb.GetIngestStatusResponse) -> dict[str, Any]:
    return {name: getattr(response, name) for name in _STATUS_FIELDS}


def cmd_ingest_status(args: argparse.Namespace) -> int:
    with client_from_args(args) as client:
        try:
            response = ingest_status(client, args.timeout)
        except grpc.RpcError as exc:
            return rpc_failed(exc)
    fields = status_fields(response)
    if args.json:
        print(json.dumps(fields))
        return 0
    if fields["checkpoint_at"]:
        fields["checkpoint_at"] = time.strftime("%Y-%m-%d %H:%M:%S UTC",
                                                time.gmtime(fields["checkpoint_at"]))
    fields["last_error"] = fields["last_error"] or "-"
    width = max(map(len, fields))
    print("\n".join(f"{name:<{width}}  {value}" for name, value in fields.items()))
    return 0


def add_admin_commands(sub: Any) -> None:
    """Register ``record``, ``delete-user``, ``describe-user`` and ``ingest-status``."""
    from recserver.eventlog.record_cli import add_record_args, cmd_record

    for name, help_text, add, run in (
        ("record", "send events from a file to a running server", add_record_args, cmd_record),
        ("delete-user", "erase a user from a running server's graph and caches",
         add_delete_user_args, cmd_delete_user),
        ("describe-user", "show a user's edges on a running server", add_describe_user_args,
         cmd_describe_user),
        ("ingest-status", "show a running server's ingest state", add_ingest_status_args,
         cmd_ingest_status),
    ):
        parser = sub.add_parser(name, help=help_text)
        add(parser)
        parser.set_defaults(func=run)
