"""``recserver build``: build the graph from events and print its stats (nothing is saved).

It has no ``--out``: a saved snapshot held no edge store, dedup keys or log position, so
nothing could serve it or apply events to it; a node starts from ``DATA_DIR``'s checkpoints.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from recserver.cli._source_args import add_source_args
from recserver.config import load_config
from recserver.graph.bootstrap import BuildReport, build_graph
from recserver.graph.live import LiveGraph

NAME = "build"
HELP = "build the graph from events and print its stats"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_args(parser)
    parser.add_argument("--config", type=Path,
                        help="YAML config whose graph section is used (default: the embedded one)")


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


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)  # its graph section: event weights, decay, pruning
    graph, report = build_graph(
        config.graph, events=args.events, synthetic=args.synthetic, strict=args.strict
    )
    print(format_graph_stats(graph, report))
    return 0
