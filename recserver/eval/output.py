"""The output options every evaluation command shares: ``--format`` and ``--out``.

``--format table`` (the default) prints the report for a person (plain tables; ``compare`` prints
markdown tables), ``--format json`` prints the JSON document for tools; ``--out FILE`` also writes
that JSON document to FILE, whatever is printed. Schemas: ``docs/evaluation.md``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recserver.eval.report import dump_json

FORMATS = ("table", "json")


def add_output_args(parser: argparse.ArgumentParser) -> None:
    """``--format`` and ``--out``, the same for evaluate, tune and compare."""
    parser.add_argument("--format", choices=FORMATS, default="table",
                        help="print the report as tables for a person or as the JSON document "
                        "(default table)")
    parser.add_argument("--out", type=Path, metavar="FILE.json",
                        help="also write the JSON document here (default: print only)")


def emit(document: dict[str, Any], args: argparse.Namespace,
         render: Callable[[dict[str, Any]], str]) -> str:
    """Write ``--out`` and return what to print for ``--format``."""
    text = dump_json(document, args.out)
    return text if args.format == "json" else render(document)
