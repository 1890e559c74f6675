"""The options of ``serve`` and of the graph source, kept free of heavy imports.

``recserver serve`` starts a supervisor that holds no graph: parsing its options here, it never
imports numpy kernels, gRPC servers or FAISS, and stays a few tens of MB (see ``entry``).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_source_args(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--events", type=Path, help="event file (.csv, .jsonl or .parquet; "
                        "gzip too) (default: synthetic events)")
    source.add_argument(
        "--synthetic", metavar="SIZE",
        help="synthetic events: small, medium, large or a count (a retail-like log), or "
        "churn[:SIZE] (a news-like log: items born all the time, read for a few hours) "
        "(default: the command's size)",
    )
    parser.add_argument("--strict", action="store_true",
                        help="stop at the first bad row (default: skip bad rows, report them)")


def add_items_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--items", type=Path, help="catalogue items to load at the first start (.csv or .jsonl: "
        "item_id, hidden, categories, expires_at; see the README); like --events, a restart "
        "from a checkpoint keeps the catalogue it had, and a data dir built with other items "
        "refuses to start (default: none)"
    )


def add_serve_args(parser: argparse.ArgumentParser) -> None:
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
        "or workers): the older layout, kept as a baseline for benchmarks"
    )
