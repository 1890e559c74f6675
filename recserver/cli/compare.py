"""The ``recserver compare`` command: both configs on the same users, interleaved.

Each config gets its own training graph (its ``graph`` section may differ: event weights,
pruning) and its own serving path. Users are asked of both, alternating which goes first, so
background load on a shared machine falls on both sides alike.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from recserver.cli._source_args import add_source_args
from recserver.config import load_config
from recserver.eval.compare import Side, compare_document, decide, markdown
from recserver.eval.evaluate import load_source
from recserver.eval.metrics import Scores, overlap_at_k, top_share_items
from recserver.eval.output import add_output_args, emit
from recserver.eval.setup import EvalSetup
from recserver.eval.split import temporal_split
from recserver.eval.strategies import ServingStrategy

log = logging.getLogger(__name__)
WARMUP = 5


NAME = "compare"
QUIET_LOGS = True  # the report is the output: progress logs only with -v
HELP = "baseline vs candidate config: quality, p99, overlap, ship verdict"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_args(parser)
    parser.add_argument("--baseline", type=Path, required=True, help="the config serving now")
    parser.add_argument("--candidate", type=Path, required=True, help="the config to ship")
    parser.add_argument("--surface", help="surface to compare (default: the baseline's first)")
    parser.add_argument("-k", type=int, default=20, help="answer size (default 20)")
    parser.add_argument("--metric", choices=("ndcg", "recall"), default="ndcg",
                        help="quality behind the verdict (default ndcg)")
    parser.add_argument("--penalty-per-ms", type=float, default=0.01,
                        help="share of quality lost per extra p99 ms (default 0.01)")
    parser.add_argument("--min-gain", type=float, default=0.0,
                        help="relative effective-quality gain needed to ship (default 0)")
    parser.add_argument("--min-overlap", type=float,
                        help="don't ship when overlap@k falls below this (default: report only)")
    parser.add_argument("--test-fraction", type=float, default=0.1,
                        help="share of events (the latest) held out for testing (default 0.1)")
    parser.add_argument("--max-users", type=int, default=1_000,
                        help="test users asked of both configs (default 1000; 0: all)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the user sample and the walks' random numbers (default 0)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="answers per user, each with other random numbers (default 1)")
    add_output_args(parser)
    parser.add_argument("--markdown", type=Path, dest="md_out", metavar="FILE.md",
                        help="also write the report (markdown) here, e.g. for a pull request "
                        "(default: print only)")


def run(args: argparse.Namespace) -> int:
    configs = [load_config(args.baseline), load_config(args.candidate)]
    surface = args.surface or next(iter(configs[0].surfaces))
    for path, config in zip((args.baseline, args.candidate), configs, strict=True):
        if config.surface(surface) is None:
            raise ValueError(f"{path}: no surface {surface!r}")
    cols, source = load_source(configs[0], args.events, args.synthetic, strict=args.strict,
                               seed=args.seed)
    split = temporal_split(cols, test_fraction=args.test_fraction,
                           max_users=args.max_users or None, seed=args.seed)
    if not split.users:
        raise ValueError(f"{source}: no test users after the cutoff; raise --test-fraction")
    setups = [EvalSetup(config, split.train) for config in configs]
    try:
        strategies = [ServingStrategy(s, c, surface, args.seed)
                      for s, c in zip(setups, configs, strict=True)]
        top = top_share_items(split.item_users)
        scores = [Scores(args.k, s.snapshot.n_items, top) for s in setups]
        answers: list[dict[str, list[str]]] = [{}, {}]
        for user in split.users[:WARMUP]:
            for strategy in strategies:
                strategy.query(user.name, args.k)
        for repeat in range(max(1, args.repeats)):
            for n, user in enumerate(split.users):
                for side in ((0, 1) if n % 2 == 0 else (1, 0)):
                    answer = strategies[side].query(user.name, args.k, repeat)
                    scores[side].add(answer.items, user.relevant, answer.seconds, answer.source)
                    answers[side].setdefault(user.name, answer.items)
    finally:
        for setup in setups:
            setup.close()
    overlap = sum(overlap_at_k(answers[0][u.name], answers[1][u.name], args.k)
                  for u in split.users) / len(split.users)
    metric = f"{args.metric}@{args.k}"
    sides = []
    for path, config, score in zip((args.baseline, args.candidate), configs, scores, strict=True):
        summary = score.summary()
        sides.append(Side(str(path), summary[metric], summary[f"recall@{args.k}"],
                          summary["p50_ms"], summary["p99_ms"],
                          config.surfaces[surface].sla_p99_ms, len(split.users),
                          dict(score.sources)))
    verdict = decide(sides[0], sides[1], penalty_per_ms=args.penalty_per_ms, overlap=overlap,
                     min_gain=args.min_gain, min_overlap=args.min_overlap, metric=metric)
    doc = compare_document(sides[0], sides[1], verdict, overlap=overlap, source=source,
                           surface=surface, k=args.k, metric=metric,
                           penalty_per_ms=args.penalty_per_ms)
    if args.md_out is not None:
        args.md_out.write_text(markdown(doc) + "\n")
    print(emit(doc, args, markdown))
    return 0
