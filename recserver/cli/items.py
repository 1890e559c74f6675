"""``recserver items``: hide, unhide, categorise and inspect catalogue items on a running server.

::

    recserver items update --target HOST:PORT --file items.csv          # a catalogue file
    recserver items update --target HOST:PORT i1 i2 --categories shoes sale --expires-at 0
    recserver items hide --target HOST:PORT i1 i2 --wait 10               # never recommend
    recserver items unhide --target HOST:PORT i1                           # recommend again
    recserver items state --target HOST:PORT i1 i2                         # what the replica holds

Each change is one ``UpdateItems`` batch (a file goes in batches of ``MAX_BATCH_ITEMS``), with
the TLS and token options of ``recserver recommend``; ``--wait SECONDS`` then waits until the
replica answered from serves the change (like ``record --wait``). ``state`` reads
``DescribeItems``: hidden, expiry, categories and the item's edges in the replica's snapshot.
``show`` is the old name of ``unhide``, kept so scripts keep working (it says so on stderr).
Exit 0 when applied (``state``: every item found), 2 for a refused call (the server's message
says what to fix), 1 for other failures (``state``: an item not found).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid

import grpc

from recserver.catalog.items import MAX_BATCH_ITEMS, ItemUpdate
from recserver.catalog.items_file import read_items
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.server.admin_client import add_target_args, rpc_failed, wait_visible
from recserver.server.client import RecommendClient, client_from_args


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
HELP = "hide, unhide, categorise or inspect catalogue items"
#: ``items show`` was ``unhide`` before it had that name: it still works, with a note.
DEPRECATED = {"show": "unhide"}


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
                       ("unhide", "recommend these items again (undo hide)")):
        action = sub.add_parser(name, help=text)
        action.add_argument("ids", nargs="+", metavar="ID", help="item ids")
    # No help=: argparse leaves a choice without help out of the ACTION list.
    sub.add_parser("show").add_argument("ids", nargs="+", metavar="ID", help="item ids")
    for action in sub.choices.values():
        action.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                            help="then wait up to this long until the replica serves the "
                                 "change (default 0: do not wait)")
    state = sub.add_parser("state", help="show items as the replica holds them: hidden, "
                                         "expiry, categories, edges in the graph")
    state.add_argument("ids", nargs="+", metavar="ID", help="item ids")
    state.add_argument("--json", action="store_true", help="print JSON instead of a table")
    for action in sub.choices.values():
        add_target_args(action)


def updates_from_args(args: argparse.Namespace) -> list[ItemUpdate]:
    """The batch the command line describes; raises ``ValueError`` for a bad combination."""
    action = DEPRECATED.get(args.items_action, args.items_action)
    if action in ("hide", "unhide"):
        return [ItemUpdate(item_id=i, hidden=action == "hide") for i in args.ids]
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
    """``state`` prints the items; the other actions send updates, then maybe wait."""
    if args.items_action == "state":
        return show_state(args)
    if args.items_action in DEPRECATED:
        print(f"recserver: 'items {args.items_action}' is deprecated; use "
              f"'items {DEPRECATED[args.items_action]}'", file=sys.stderr)
    updates = updates_from_args(args)
    with client_from_args(args) as client:
        return send_updates(client, updates, args)


def send_updates(client: RecommendClient, updates: list[ItemUpdate],
                 args: argparse.Namespace) -> int:
    """Send the updates, one batch at a time; print what was applied; ``--wait`` for it."""
    accepted, position = 0, ""
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
    if args.wait <= 0:
        print(f"{accepted} items applied (event log position {position}); every replica shows "
              "them within its publish interval")
        return 0
    print(f"{accepted} items applied (event log position {position})")
    try:
        if not wait_visible(client, position, timeout_s=args.wait, call_timeout_s=args.timeout):
            print(f"recserver: not visible on {args.target} after {args.wait:g}s; the change is "
                  "recorded and applies as the replica catches up", file=sys.stderr)
            return 1
    except grpc.RpcError as exc:
        return rpc_failed(exc)
    print(f"visible on {args.target}: its answers follow the new state")
    return 0


def _expiry(expires_at: float, now: float) -> str:
    if expires_at <= 0:
        return "never"
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires_at))
    return f"{when} (expired)" if expires_at <= now else when


def show_state(args: argparse.Namespace) -> int:
    """Print each item's catalogue state in the replica's snapshot; exit 1 if one is unknown."""
    with client_from_args(args) as client:
        try:
            response = client.call("DescribeItems", pb.DescribeItemsRequest(item_ids=args.ids),
                                   timeout_s=args.timeout)
        except grpc.RpcError as exc:
            return rpc_failed(exc)
    assert isinstance(response, pb.DescribeItemsResponse)
    items = list(response.items)
    if args.json:
        print(json.dumps({"snapshot_version": response.snapshot_version, "items": [
            {"item_id": s.item_id, "found": s.found, "hidden": s.hidden,
             "expires_at": s.expires_at, "categories": list(s.categories), "degree": s.degree}
            for s in items]}))
    else:
        now = time.time()
        rows = [("item", "found", "hidden", "expires", "edges", "categories")]
        rows += [(s.item_id, "yes" if s.found else "no",
                  ("yes" if s.hidden else "no") if s.found else "-",
                  _expiry(s.expires_at, now) if s.found else "-",
                  str(s.degree) if s.found else "-", ",".join(s.categories) or "-")
                 for s in items]
        widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]) - 1)]
        print("\n".join("  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)),
                                   r[-1]]) for r in rows))
        print(f"\nsnapshot {response.snapshot_version}")
    return 0 if all(s.found for s in items) else 1
