"""``recserver evaluate``: every strategy on the same temporal split, one record each."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recserver.cli._source_args import add_source_args
from recserver.config import load_config
from recserver.eval import report
from recserver.eval.evaluate import (
    STRATEGIES,
    EvalOptions,
    evaluate,
    format_document,
    load_source,
)
from recserver.eval.output import add_output_args
from recserver.eval.split import temporal_split

NAME = "evaluate"
QUIET_LOGS = True  # the report is the output: progress logs only with -v
HELP = "offline quality and latency of each strategy on a temporal split"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_args(parser)
    parser.add_argument("--config", type=Path, help="YAML config (default: the embedded one)")
    parser.add_argument("--surface", help="surface whose walk and budget are used (default: first)")
    parser.add_argument("-k", type=int, default=20, help="answer size (default 20)")
    parser.add_argument("--test-fraction", type=float, default=0.1,
                        help="share of events (the latest) held out for testing (default 0.1)")
    parser.add_argument("--max-users", type=int, default=1_000,
                        help="test users evaluated, a seeded sample (default 1000; 0: all)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the user sample and the walks' random numbers (default 0)")
    parser.add_argument("--steps", type=int, help="walk steps of graph/blended (default: surface)")
    parser.add_argument("--budget-ms", type=float, help="budget of graph_budget (default: surface)")
    parser.add_argument("--strategies", default=",".join(STRATEGIES),
                        help=f"comma-separated subset of {','.join(STRATEGIES)} (default: all)")
    parser.add_argument("--pagerank-users", type=int, default=20,
                        help="users the networkx PageRank reference answers (default 20)")
    parser.add_argument("--pagerank-max-s", type=float, default=120.0,
                        help="time cap of the PageRank reference in seconds (default 120)")
    parser.add_argument("--pagerank-alpha", type=float,
                        help="PageRank damping (default: sqrt(1 - walk.restart_prob), the walk's "
                        "own continuation per hop)")
    parser.add_argument("--blend-share", type=float,
                        help="weight of the walk in the blended strategy (default: chosen "
                        "with the mode on a validation split of the training period)")
    parser.add_argument("--blend-mode", choices=("score", "rank"),
                        help="fusion of the blended strategy (default: chosen)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="answers per user of the walk strategies, each with other random "
                        "numbers; metrics average over them (default 1)")
    parser.add_argument("--ease-max-items", type=int, default=20_000,
                        help="largest catalogue EASE runs on (dense items x items inverse; "
                        "default 20000)")
    parser.add_argument("--no-tune-baselines", action="store_true",
                        help="baselines use their default settings instead of a validation sweep")
    parser.add_argument("--progress", action="store_true",
                        help="progress bars on stderr (default: when stderr is a terminal)")
    add_output_args(parser)


def options_from_args(args: argparse.Namespace) -> EvalOptions:
    return EvalOptions(
        surface=args.surface, k=args.k, test_fraction=args.test_fraction,
        max_users=args.max_users or None, seed=args.seed, steps=args.steps,
        budget_ms=args.budget_ms,
        strategies=[s.strip() for s in args.strategies.split(",") if s.strip()],
        pagerank_users=args.pagerank_users, pagerank_max_s=args.pagerank_max_s,
        pagerank_alpha=args.pagerank_alpha, blend_share=args.blend_share,
        blend_mode=args.blend_mode,
        repeats=max(1, args.repeats), ease_max_items=args.ease_max_items,
        tune_baselines=not args.no_tune_baselines,
        progress=bool(args.progress or sys.stderr.isatty()),
    )


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    opts = options_from_args(args)
    cols, source = load_source(config, args.events, args.synthetic, strict=args.strict,
                               seed=args.seed)
    split = temporal_split(cols, test_fraction=opts.test_fraction, max_users=opts.max_users,
                           seed=opts.seed)
    if not split.users:
        raise ValueError(f"{source}: no test user has new items after the cutoff; "
                         "raise --test-fraction")
    doc = evaluate(config, split, opts, source)
    text = report.dump_json(doc, args.out)
    print(text if args.format == "json" else format_document(doc))
    return 0
