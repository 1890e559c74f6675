"""Registers ``evaluate``, ``tune`` and ``compare`` with the ``recserver`` command line."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from recserver.eval.compare_cli import add_compare_args, cmd_compare
from recserver.eval.evaluate import add_evaluate_args, cmd_evaluate
from recserver.eval.tune_cli import add_tune_args, cmd_tune


def add_eval_commands(
    sub: Any, add_source_args: Callable[[argparse.ArgumentParser], None]
) -> None:
    """Add the three subcommands to ``sub`` (the parser's subparsers action)."""
    evaluate = sub.add_parser(
        "evaluate", help="offline quality and latency of each strategy on a temporal split")
    add_source_args(evaluate)
    add_evaluate_args(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)

    tune = sub.add_parser(
        "tune", help="sweep budget/steps/n_v for a surface, plot the Pareto frontier, recommend")
    add_source_args(tune)
    add_tune_args(tune)
    tune.set_defaults(func=cmd_tune)

    compare = sub.add_parser(
        "compare", help="baseline vs candidate config: quality, p99, overlap, ship verdict")
    add_source_args(compare)
    add_compare_args(compare)
    compare.set_defaults(func=cmd_compare)
