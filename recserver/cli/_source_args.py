"""The graph source options shared by ``serve``, ``builder`` and the offline commands.

Kept free of heavy imports: ``recserver serve`` parses them in a supervisor that holds no graph
(no numpy kernels, gRPC servers or FAISS: a few tens of MB).
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
