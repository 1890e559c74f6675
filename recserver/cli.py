"""The ``recserver`` command line: one program, a subcommand per task (``recserver -h``)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from recserver import __version__
from recserver.ann.cli import add_build_ann_args, cmd_build_ann
from recserver.config import load_config
from recserver.eval.commands import add_eval_commands
from recserver.graph.bootstrap import BuildReport, build_graph
from recserver.graph.live import LiveGraph
from recserver.graph.persist import save_snapshot
from recserver.node.commands import add_role_commands
from recserver.node.serve_args import add_serve_args
from recserver.node.serve_args import add_source_args as _add_source_args
from recserver.serve import cmd_serve
from recserver.server.admin_cli import add_admin_commands
from recserver.server.client import (
    add_check_config_args,
    add_recommend_args,
    cmd_check_config,
    cmd_recommend,
)


def format_graph_stats(graph: LiveGraph, report: BuildReport) -> str:
    """A readable summary of a freshly built graph."""
    snap = graph.current
    edges = max(snap.n_edges, 1)
    lines = [
        f"source          {report.source}",
        f"events          {report.events_read:,} read, {report.events_accepted:,} applied, "
        f"{report.duplicates:,} duplicates, {report.rejected:,} rejected",
        f"graph           {snap.n_users:,} users, {snap.n_items:,} items, "
        f"{snap.n_edges:,} edges (version {snap.version})",
        f"pruning         {graph.last_prune.summary()}",
        f"snapshot        {snap.nbytes() / 2**20:,.1f} MiB, {snap.nbytes() / edges:.1f} bytes/edge",
        f"time            load {report.load_seconds:.2f}s, build {report.build_seconds:.2f}s",
    ]
    if report.rejection_summary:
        lines.append("rejected rows   " + report.rejection_summary.replace("\n", "\n" + " " * 16))
    return "\n".join(lines)


def cmd_build(args: argparse.Namespace) -> int:
    config = load_config(args.config)  # its graph section: event weights, decay, pruning
    graph, report = build_graph(
        config.graph, events=args.events, synthetic=args.synthetic, strict=args.strict
    )
    print(format_graph_stats(graph, report))
    if args.out is not None:
        path = save_snapshot(graph.current, args.out)
        print(f"saved           {path}")
    return 0


DESCRIPTION = """\
recserver: real-time recommendations from a live behavioural graph, each answered inside a
per-request latency budget (a random walk, topped up from fallback tiers when time runs out).
"""

EPILOG = """\
start here:
  recserver serve                                  serve the embedded default (synthetic data)
  recserver recommend --target HOST:PORT --user u12 --surface home
  recserver check-config deploy/config.example.yaml
  recserver evaluate --events FILE                 offline quality of each strategy

"recserver COMMAND -h" shows a command's options and their defaults.
"""


def _add_verbose(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """``-v`` before or after the subcommand; SUPPRESS keeps a subcommand from resetting it."""
    parser.add_argument("-v", "--verbose", action="store_true",
                        default=False if top else argparse.SUPPRESS,
                        help="debug logging (default: info)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recserver", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"recserver {__version__}")
    _add_verbose(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    build = sub.add_parser("build", help="build the graph, print its stats, optionally save it")
    _add_source_args(build)
    build.add_argument("--config", type=Path,
                       help="YAML config whose graph section is used (default: the embedded one)")
    build.add_argument("--out", type=Path,
                       help="save the snapshot to this folder (default: do not save)")
    build.set_defaults(func=cmd_build)

    serve = sub.add_parser("serve", help="run the recommendation server")
    _add_source_args(serve)
    add_serve_args(serve)
    serve.set_defaults(func=cmd_serve)

    check = sub.add_parser("check-config", help="validate a config file")
    add_check_config_args(check)
    check.set_defaults(func=cmd_check_config)

    build_ann = sub.add_parser(
        "build-ann", help="build ANN results (embeddings, index, top-K) and publish them"
    )
    _add_source_args(build_ann)
    add_build_ann_args(build_ann)
    build_ann.set_defaults(func=cmd_build_ann)

    recommend = sub.add_parser("recommend", help="ask a running server, print a table")
    add_recommend_args(recommend)
    recommend.set_defaults(func=cmd_recommend)

    add_role_commands(sub, _add_source_args)  # builder, worker
    add_admin_commands(sub)  # record, delete-user, describe-user, ingest-status
    add_eval_commands(sub, _add_source_args)  # evaluate, tune, compare
    for command in sub.choices.values():
        _add_verbose(command, top=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except (ValueError, OSError) as exc:  # ConfigError and bad inputs: a message, not a trace
        print(f"recserver: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
