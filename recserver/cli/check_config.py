"""``recserver check-config FILE``: validate a config file without starting anything."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recserver.config import ConfigError, load_config

NAME = "check-config"
HELP = "validate a config file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``recserver check-config``."""
    parser.add_argument("file", type=Path, metavar="FILE", help="YAML config file to validate")


def run(args: argparse.Namespace) -> int:
    """Validate a config file: 0 and a summary when valid, 2 and the problems when not."""
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    names = ", ".join(config.surfaces)
    print(f"OK: {len(config.surfaces)} surfaces ({names})")
    return 0
