"""``recserver describe-user``: show a user's edges on a running server (exit 1 when not found)."""

from __future__ import annotations

import argparse
import json

import grpc

from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.server.admin_client import (
    add_target_args,
    rpc_failed,
)
from recserver.server.client import client_from_args

NAME = "describe-user"
HELP = "show a user's edges on a running server"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", required=True, help="the user id")
    parser.add_argument("--limit", type=int, default=20,
                        help="at most this many edges, strongest first (0: all; default 20)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_target_args(parser)


def run(args: argparse.Namespace) -> int:
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
