"""``recserver serve``: run the recommendation server (a builder and serving workers)."""

from __future__ import annotations

import argparse

from recserver.node.serve_args import add_serve_args, add_source_args

NAME = "serve"
HELP = "run the recommendation server"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_args(parser)
    add_serve_args(parser)


def run(args: argparse.Namespace) -> int:
    from recserver.serve import cmd_serve  # the node path imports only what it runs

    return cmd_serve(args)
