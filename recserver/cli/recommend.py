"""``recserver recommend``: ask a running server, print the answer as a table for a person at a
terminal (with a footer on how it was produced)."""

from __future__ import annotations

import argparse
import sys
import uuid

import grpc

from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.server.client import DEFAULT_TARGET, add_connection_args, client_from_args

NAME = "recommend"
HELP = "ask a running server, print a table"
#: The pipeline's stages in request order (proto maps are unordered).
_STAGE_ORDER = {
    name: i for i, name in enumerate(("queue", "admit", "seeds", "walk", "fallback", "rank"))
}


def _source_name(value: int) -> str:
    return pb.Source.Name(value).lower()  # type: ignore[arg-type]  # int is a valid enum value


#: An item's column names the tier that found it. The wire's names describe a whole answer
#: ("ann_fallback": the fallback answered); on an item of a complete walk pooled with the ANN
#: tier they read as failures. Whether the walk was cut short is the footer's to say.
_ITEM_SOURCE = {pb.GRAPH: "graph", pb.GRAPH_PARTIAL: "graph", pb.ANN_FALLBACK: "ann",
                pb.POPULAR: "popular"}


def item_source(value: int) -> str:
    """The tier that found an item, as the table shows it."""
    return _ITEM_SOURCE.get(value) or _source_name(value)  # type: ignore[call-overload]


def degraded_line(resp: pb.RecommendResponse) -> str:
    """Whether the answer is degraded, and why."""
    if not resp.degraded:
        return "degraded   no"
    return f"degraded   yes: {', '.join(resp.degraded_reasons) or 'no reason given'}"


def score_line() -> str:
    """What the score column means (``recserver.service.merge``). The response does not say
    whether the walk was pooled with the ANN tier (even an all-graph answer may have been), so
    the line names both cases rather than guess."""
    return ("score      orders this answer only: a tier's own score (walk visits, popularity: "
            "1.0 = its best; ann: vector similarity), or walk and ann fused (by rank or "
            "normalised score) where the two were pooled")


def budget_line(resp: pb.RecommendResponse, asked_ms: float | None = None) -> str:
    """How long the answer took, of what budget, and which limit set that budget."""
    line = f"time       {resp.server_elapsed_ms:.2f} ms of a {resp.budget_ms:.1f} ms budget"
    limit = resp.budget_limited_by or "surface"
    if asked_ms is not None and asked_ms > resp.budget_ms and limit == "surface":
        line += f" (the surface's; the asked {asked_ms:g} ms can only lower it)"
    else:
        line += f" (set by the {limit})"
    over_ms = resp.server_elapsed_ms - resp.budget_ms
    if over_ms > 0:
        line += f"; OVER BUDGET by {over_ms:.2f} ms"
    return line


def format_table(resp: pb.RecommendResponse, asked_budget_ms: float | None = None) -> str:
    """The answer as a readable table, then a footer on how it was produced.

    ``asked_budget_ms``: the request's ``budget_ms``, to say when the surface's budget was used
    instead of a larger one.
    """
    width = max([len("item"), *(len(item.item_id) for item in resp.items)])
    lines = [f"{'rank':>4}  {'item':<{width}}  {'score':>10}  source"]
    for rank, item in enumerate(resp.items, start=1):
        lines.append(
            f"{rank:>4}  {item.item_id:<{width}}  {item.score:>10.4g}  {item_source(item.source)}"
        )
    if not resp.items:
        lines.append("   (no items)")
    lines += [
        "",
        f"source     {_source_name(resp.source)}",
        degraded_line(resp),
        *([score_line()] if resp.items else []),
        f"coverage   {resp.coverage:.1%}  ({resp.steps_done:,} of {resp.steps_planned:,} steps)",
        budget_line(resp, asked_budget_ms),
        f"snapshot   version {resp.snapshot_version}",
        f"request    {resp.request_id or '-'}",
    ]
    if resp.stage_ms:
        # Proto maps are unordered: show the pipeline's stages in request order, others after.
        names = sorted(resp.stage_ms, key=lambda n: (_STAGE_ORDER.get(n, len(_STAGE_ORDER)), n))
        stages = "  ".join(f"{name} {resp.stage_ms[name]:.2f}" for name in names)
        lines.append(f"stages ms  {stages}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``recserver recommend``."""
    parser.add_argument("--user", default="",
                        help="user id (default: none, which needs --context)")
    parser.add_argument("--surface", required=True, help="surface, e.g. home, item_page, search")
    parser.add_argument("--k", type=int, default=0, help="items wanted (0: surface default)")
    parser.add_argument("--context", nargs="*", default=[], metavar="ID",
                        help="items the user is looking at now (default: none)")
    parser.add_argument("--exclude", nargs="*", default=[], metavar="ID",
                        help="items never to recommend (default: none)")
    parser.add_argument("--categories", nargs="*", default=[], metavar="NAME",
                        help="only items in any of these categories (default: the surface's)")
    parser.add_argument(
        "--budget-ms", type=float, default=None,
        help="lower the surface's budget to this many ms; a larger value runs under the "
             "surface's budget and the answer says so (default: the surface's)",
    )
    parser.add_argument("--target", default=DEFAULT_TARGET,
                        help=f"server host:port (default {DEFAULT_TARGET})")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="client deadline in seconds (default 5)")
    parser.add_argument("--debug", action="store_true", help="show stage timings")
    add_connection_args(parser)


def run(args: argparse.Namespace) -> int:
    """Call the server and print the table; 2 for a bad request, 1 for other RPC failures."""
    with client_from_args(args) as client:
        try:
            resp = client.recommend(
                args.user,
                args.surface,
                k=args.k,
                context_item_ids=args.context,
                exclude_item_ids=args.exclude,
                budget_ms=args.budget_ms,
                request_id=uuid.uuid4().hex[:16],
                debug=args.debug,
                timeout_s=args.timeout,
                categories=args.categories,
            )
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
            details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
            print(f"recserver: {code.name}: {details}", file=sys.stderr)
            return 2 if code == grpc.StatusCode.INVALID_ARGUMENT else 1
    print(format_table(resp, args.budget_ms))
    return 0
