"""``recserver serve``: run the recommendation server (a node: a builder and serving workers).

Its one path: this module parses, ``node.commands.cmd_serve`` runs. Both import nothing heavy,
so the supervisor ``serve`` starts holds no graph (see ``node.commands``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from recserver.cli._source_args import add_items_arg, add_source_args

NAME = "serve"
HELP = "run the recommendation server"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The source options, then the server's."""
    add_source_args(parser)
    add_serve_options(parser)


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    """Every option of ``serve`` but the events' source (a harness may bring its own)."""
    add_items_arg(parser)
    parser.add_argument("--config", type=Path, help="YAML config (default: the embedded one)")
    parser.add_argument("--port", type=int, help="gRPC port (0 picks a free one)")
    parser.add_argument(
        "--metrics-port", type=int, help="Prometheus /metrics port (0 picks a free one)"
    )
    parser.add_argument(
        "--redis-url", help="ANN result cache (redis://, rediss://, unix://); wins over "
        "RECSERVER_REDIS_URL and the config's ann.redis_url; unset everywhere: files in the run dir"
    )
    parser.add_argument(
        "--data-dir", type=Path, help="the file event log and checkpoints (wins over the "
        "config's ingest.data_dir); restarts recover from here, and it serves only the source "
        "it was built from"
    )
    parser.add_argument(
        "--reset-data-dir", action="store_true", help="delete the data dir's checkpoints, "
        "file event log and snapshots first, and build from the source given (a data dir "
        "built from another source refuses to start without it; the erasure ledger stays)"
    )
    parser.add_argument(
        "--event-log-url", help="Redis stream event log shared by replicas (redis://...); wins "
        "over RECSERVER_EVENT_LOG_URL and ingest.redis_url"
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="serving worker processes (default: one per "
        "usable core), beside one builder process"
    )
    parser.add_argument(
        "--run-dir", type=Path, help="where the builder publishes snapshots for the workers "
        "(default: DATA_DIR/run)"
    )
    parser.add_argument(
        "--single-process", action="store_true", help="everything in one process (no builder "
        "or workers): not what ships; kept as the baseline the node's benchmarks compare with"
    )


def run(args: argparse.Namespace) -> int:
    from recserver.node.commands import cmd_serve

    return cmd_serve(args)
