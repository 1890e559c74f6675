"""``recserver items``: describe, hide and show catalogue items on a running server.

::

    recserver items update --target HOST:PORT --file items.csv          # a catalogue file
    recserver items update --target HOST:PORT i1 i2 --categories shoes sale --expires-at 0
    recserver items hide --target HOST:PORT i1 i2                          # never recommend
    recserver items show --target HOST:PORT i1                             # recommend again

Each call is one ``UpdateItems`` batch (a file goes in batches of ``MAX_BATCH_ITEMS``), with
the TLS and token options of ``recserver recommend``. Exit 0 when applied, 2 for a refused
batch (the server's message says what to fix), 1 for other failures.
"""

from __future__ import annotations

import argparse
import sys
import uuid

import grpc

from recserver.catalog.items import MAX_BATCH_ITEMS, ItemUpdate
from recserver.catalog.items_file import read_items
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.server.client import DEFAULT_TARGET, add_connection_args, client_from_args


def to_info(update: ItemUpdate) -> pb.ItemInfo:
    """An update as the wire's ``ItemInfo`` (unset fields stay unset)."""
    info = pb.ItemInfo(item_id=update.item_id, categories=list(update.categories or ()),
                       clear_categories=update.categories == ())
    if update.hidden is not None:
        info.hidden = update.hidden
    if update.expires_at is not None:
        info.expires_at = update.expires_at
    return info


NAME = "items"
HELP = "hide, show or categorise catalogue items"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``recserver items``."""
    sub = parser.add_subparsers(dest="items_action", required=True, metavar="ACTION")
    update = sub.add_parser("update", help="set categories, expiry or visibility of items")
    update.add_argument("ids", nargs="*", metavar="ID", help="items to update")
    update.add_argument("--file", help="items file (.csv or .jsonl, see the README)")
    update.add_argument("--categories", nargs="+", metavar="NAME",
                        help="replace the items' categories (default: unchanged)")
    update.add_argument("--clear-categories", action="store_true",
                        help="remove every category of the items")
    update.add_argument("--expires-at", type=float, metavar="UNIX_S",
                        help="never recommend after this time; 0: never expires "
                             "(default: unchanged)")
    visibility = update.add_mutually_exclusive_group()
    visibility.add_argument("--hidden", dest="hidden", action="store_true", default=None,
                            help="hide the items (default: visibility unchanged)")
    visibility.add_argument("--visible", dest="hidden", action="store_false", default=None,
                            help="show the items (default: visibility unchanged)")
    for name, text in (("hide", "never recommend these items"),
                       ("show", "recommend these items again (undo hide)")):
        action = sub.add_parser(name, help=text)
        action.add_argument("ids", nargs="+", metavar="ID", help="item ids")
    for action in sub.choices.values():
        action.add_argument("--target", default=DEFAULT_TARGET,
                            help=f"server host:port (default {DEFAULT_TARGET})")
        action.add_argument("--timeout", type=float, default=10.0,
                            help="client deadline per call in seconds (default 10)")
        add_connection_args(action)


def updates_from_args(args: argparse.Namespace) -> list[ItemUpdate]:
    """The batch the command line describes; raises ``ValueError`` for a bad combination."""
    if args.items_action in ("hide", "show"):
        return [ItemUpdate(item_id=i, hidden=args.items_action == "hide") for i in args.ids]
    if args.categories and args.clear_categories:
        raise ValueError("give --categories or --clear-categories, not both")
    updates = read_items(args.file) if args.file else []
    categories = () if args.clear_categories else (
        tuple(args.categories) if args.categories else None)
    if args.ids and categories is None and args.hidden is None and args.expires_at is None:
        raise ValueError("nothing to change: give --categories, --clear-categories, "
                         "--expires-at, --hidden or --visible")
    updates += [ItemUpdate(item_id=i, hidden=args.hidden, categories=categories,
                           expires_at=args.expires_at) for i in args.ids]
    if not updates:
        raise ValueError("no items: give item ids or --file")
    return updates


def run(args: argparse.Namespace) -> int:
    """Send the updates, one batch at a time; print what was applied."""
    updates = updates_from_args(args)
    accepted, position = 0, ""
    with client_from_args(args) as client:
        for start in range(0, len(updates), MAX_BATCH_ITEMS):
            batch = [to_info(u) for u in updates[start : start + MAX_BATCH_ITEMS]]
            try:
                response = client.update_items(batch, request_id=uuid.uuid4().hex[:16],
                                               timeout_s=args.timeout)
            except grpc.RpcError as exc:
                code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
                details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
                print(f"recserver: {code.name}: {details} ({accepted} items applied before)",
                      file=sys.stderr)
                return 2 if code == grpc.StatusCode.INVALID_ARGUMENT else 1
            accepted += response.accepted
            position = response.log_position
    print(f"{accepted} items applied (event log position {position}); every replica shows "
          "them within its publish interval")
    return 0
