"""``recserver delete-user``: erase a user from a running server's graph and caches (exit 0
done, 1 the call failed, 2 refused as invalid or unauthenticated)."""

from __future__ import annotations

import argparse
import sys

import grpc

from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.server.admin_client import (
    add_target_args,
    rpc_failed,
    wait_visible,
)
from recserver.server.client import client_from_args

NAME = "delete-user"
HELP = "erase a user from a running server's graph and caches"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", required=True, help="the user id to erase")
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="then wait up to this long until the replica answered from no "
                             "longer shows the user (default 0: do not wait)")
    add_target_args(parser)


def run(args: argparse.Namespace) -> int:
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
