"""``recserver ingest-status``: show a running server's ingest state."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import grpc

from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.server.admin_client import (
    add_target_args,
    ingest_status,
    rpc_failed,
)
from recserver.server.client import client_from_args

NAME = "ingest-status"
HELP = "show a running server's ingest state"


_STATUS_FIELDS = ("backend", "where", "ready", "applied_position", "visible_position",
                  "events_applied", "snapshot_version", "apply_lag_seconds", "last_error",
                  "checkpoint_position", "checkpoint_at")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of lines")
    add_target_args(parser)


def status_fields(response: pb.GetIngestStatusResponse) -> dict[str, Any]:
    return {name: getattr(response, name) for name in _STATUS_FIELDS}


def run(args: argparse.Namespace) -> int:
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
