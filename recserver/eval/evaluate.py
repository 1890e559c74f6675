"""``recserver evaluate``: every strategy on the same temporal split, one record each.

Each strategy answers every test user (after a few untimed warm-up queries); the networkx
PageRank reference answers a seeded sample of them within a time cap. The targets at the end
compare strategies measured in this same run.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from recserver.config import RecServerConfig, load_config
from recserver.eval import report
from recserver.eval.metrics import Scores, recall_at_k, top_share_items
from recserver.eval.output import add_output_args
from recserver.eval.report import Target, ratio
from recserver.eval.setup import EvalSetup, with_surface
from recserver.eval.split import EvalUser, Split, temporal_split
from recserver.eval.strategies import (
    AnnStrategy,
    BlendedStrategy,
    PageRankStrategy,
    PopularStrategy,
    ServingStrategy,
    Strategy,
    WalkStrategy,
)
from recserver.graph.events import EventColumns
from recserver.graph.loaders import load_events
from recserver.graph.synthetic import generate, parse_size

log = logging.getLogger(__name__)

STRATEGIES = ("popular", "graph", "graph_budget", "ann", "blended", "nx_pagerank")


@dataclass
class EvalOptions:
    surface: str | None = None
    k: int = 20
    test_fraction: float = 0.1
    max_users: int | None = 1_000
    seed: int = 0
    steps: int | None = None  # the walk of ``graph``/``blended`` (default: the surface's)
    budget_ms: float | None = None  # the budget of ``graph_budget`` (default: the surface's)
    strategies: Sequence[str] = STRATEGIES
    pagerank_users: int = 20
    pagerank_max_s: float = 120.0
    pagerank_alpha: float | None = None  # default: the walk's restart law
    blend_share: float = 0.5
    warmup: int = 5
    repeats: int = 1  # walks answer each user this many times, with other random numbers


@dataclass
class Measured:
    """One strategy's scores and its answer per user."""

    name: str
    description: str
    scores: Scores
    answers: dict[str, list[str]] = field(default_factory=dict)
    reasons: Counter[str] = field(default_factory=Counter)  # degraded reasons (serving path)

    def record(self) -> dict[str, Any]:
        return {"strategy": self.name, "description": self.description,
                "users": len(self.answers), "answers": self.scores.users,
                **self.scores.summary(), "sources": dict(self.scores.sources)}


def load_source(
    config: RecServerConfig, events: Path | None, synthetic: str | None, *, strict: bool = False,
    seed: int = 0,
) -> tuple[EventColumns, str]:
    """The events of ``--events`` (the same files ``serve`` reads) or ``--synthetic``."""
    if events is not None:
        return load_events(events, config.graph.event_weights, strict=strict), str(events)
    n = parse_size(synthetic or "small")
    return generate(n, seed=seed), f"synthetic:{n}"


def run_strategy(
    strategy: Strategy, users: Sequence[EvalUser], *, k: int, catalogue: int,
    top_items: frozenset[str], warmup: int = 5, max_seconds: float | None = None,
    repeats: int = 1,
) -> Measured:
    """Ask ``strategy`` for every user (``warmup`` untimed queries first).

    A stochastic strategy (a walk) answers every user ``repeats`` times, each time with other
    random numbers; its metrics average over users and repeats (coverage counts every item any
    repeat recommended) and ``answers`` keeps the first repeat's.
    """
    for user in users[:warmup]:
        strategy.query(user.name, k)
    scores = Scores(k=k, catalogue=catalogue, top_items=top_items)
    measured = Measured(strategy.name, strategy.description, scores)
    started = time.monotonic()
    for repeat in range(repeats if strategy.stochastic else 1):
        for user in users:
            answer = strategy.query(user.name, k, repeat)
            scores.add(answer.items, user.relevant, answer.seconds, answer.source)
            measured.answers.setdefault(user.name, answer.items)
            measured.reasons.update(set(answer.reasons))
            if max_seconds is not None and time.monotonic() - started > max_seconds:
                log.warning("%s: time cap of %.0f s reached after %d answers", strategy.name,
                            max_seconds, scores.users)
                return measured
    return measured


def sample(users: Sequence[EvalUser], n: int, seed: int) -> list[EvalUser]:
    if len(users) <= n:
        return list(users)
    picked = np.sort(np.random.default_rng(seed + 1).choice(len(users), n, replace=False))
    return [users[i] for i in picked.tolist()]


def evaluate(config: RecServerConfig, split: Split, opts: EvalOptions, source: str = "") -> dict:
    """Run the chosen strategies on ``split``; the evaluate JSON document."""
    surface = opts.surface or next(iter(config.surfaces))
    unknown = [s for s in opts.strategies if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategies {unknown}; choose from {', '.join(STRATEGIES)}")
    setup = EvalSetup(config, split.train)
    try:
        snap = setup.snapshot
        walk = setup.surface(surface).walk
        if opts.steps is not None:
            walk = walk.model_copy(update={"steps": opts.steps})
        serving = with_surface(config, surface, budget_ms=opts.budget_ms)
        top = top_share_items(split.item_users)
        results: dict[str, Measured] = {}
        for name in opts.strategies:
            log.info("evaluating %s on %d users", name, len(split.users))
            users: Sequence[EvalUser] = split.users
            cap, warmup = None, opts.warmup
            strategy: Strategy
            if name == "popular":
                strategy = PopularStrategy(setup)
            elif name == "graph":
                strategy = WalkStrategy(setup, walk)
            elif name == "graph_budget":
                strategy = ServingStrategy(setup, serving, surface)
            elif name == "ann":
                strategy = AnnStrategy(setup)
            elif name == "blended":
                strategy = BlendedStrategy(setup, walk, opts.blend_share)
            else:  # nx_pagerank: seconds a query, so a sample under a time cap
                strategy = PageRankStrategy(setup, walk, opts.pagerank_alpha)
                users = sample(split.users, opts.pagerank_users, opts.seed)
                cap, warmup = opts.pagerank_max_s, 0
            results[name] = run_strategy(strategy, users, k=opts.k, catalogue=snap.n_items,
                                         top_items=top, warmup=warmup, max_seconds=cap,
                                         repeats=opts.repeats)
        relevant = [item for user in split.users for item in user.relevant]
        return {
            "schema": report.EVALUATE_SCHEMA,
            "source": source,
            "surface": surface,
            "k": opts.k,
            "split": {**split.describe(), "test_fraction": opts.test_fraction,
                      "cutoff_iso": datetime.fromtimestamp(split.cutoff, UTC).isoformat()},
            "graph": {"users": snap.n_users, "items": snap.n_items, "edges": snap.n_edges,
                      "build_s": round(setup.build_seconds, 3)},
            "reference": {"test_top1_share": sum(i in top for i in relevant) / max(len(relevant),
                                                                                     1)},
            "strategies": [m.record() for m in results.values()],
            "targets": [t.record() for t in targets(results, split.users, opts.k)],
        }
    finally:
        setup.close()


def targets(results: dict[str, Measured], users: Sequence[EvalUser], k: int) -> list[Target]:
    """The issue's targets, from strategies measured in this run (those present)."""
    out: list[Target] = []
    recall = {name: m.scores.summary()[f"recall@{k}"] for name, m in results.items()}
    if "graph" in recall and "popular" in recall:
        value = ratio(recall["graph"], recall["popular"])
        out.append(Target(f"graph recall@{k} / popular", value, 1.3, value >= 1.3,
                          f"{recall['graph']:.4f} vs {recall['popular']:.4f}"))
    if "graph" in recall and "graph_budget" in recall:
        value = ratio(recall["graph_budget"], recall["graph"])
        out.append(Target(f"budgeted recall@{k} / unbounded walk", value, 0.95, value >= 0.95,
                          f"{recall['graph_budget']:.4f} vs {recall['graph']:.4f} "
                          f"({results['graph_budget'].description})"))
    if "nx_pagerank" in results and "graph" in results:
        pr, graph = results["nx_pagerank"], results["graph"]
        pr_ms = pr.scores.summary()["mean_ms"]
        value = ratio(pr_ms, graph.scores.summary()["mean_ms"])
        same = [u for u in users if u.name in pr.answers]
        walk_recall = float(np.mean([recall_at_k(graph.answers[u.name], u.relevant, k)
                                     for u in same])) if same else 0.0
        detail = (f"mean {pr_ms:,.1f} ms vs "
                  f"{graph.scores.summary()['mean_ms']:.2f} ms a query; recall@{k} on its "
                  f"{len(same)} users {recall['nx_pagerank']:.4f} vs walk {walk_recall:.4f}")
        if "graph_budget" in results:
            budget_ms = results["graph_budget"].scores.summary()["mean_ms"]
            detail += f"; vs the budgeted path {ratio(pr_ms, budget_ms):,.0f}x"
        out.append(Target("nx PageRank time / walk time", value, 1000.0, value >= 1000.0, detail))
    return out


def format_document(doc: dict) -> str:
    """The evaluate document as a table for people."""
    k = doc["k"]
    split = doc["split"]
    head = [
        f"events      {doc['source']}: {split['train_events']:,} train / "
        f"{split['test_events']:,} test, cutoff {split['cutoff_iso']}",
        f"graph       {doc['graph']['users']:,} users, {doc['graph']['items']:,} items, "
        f"{doc['graph']['edges']:,} edges (built in {doc['graph']['build_s']:.1f} s)",
        f"test users  {split['evaluated_users']:,} of {split['eligible_users']:,} eligible, "
        f"{split['mean_relevant']:.1f} new items each on average; surface {doc['surface']}",
        "",
    ]
    keys = [f"recall@{k}", f"ndcg@{k}", f"hit_rate@{k}", "coverage", "popularity_bias", "p50_ms",
            "p99_ms"]
    rows = [[r["strategy"], r["users"], *(r[key] for key in keys)] for r in doc["strategies"]]
    header = ["strategy", "users", *keys]
    lines = [*head, report.table(rows, header), ""]
    lines += [f"  {r['strategy']:<13} {r['description']}" for r in doc["strategies"]]
    lines.append(f"  (top-1% items take {doc['reference']['test_top1_share']:.1%} of the test "
                 "interactions)")
    if doc["targets"]:
        lines += ["", "targets"]
        lines += [Target(**{**t, "value": t["value"] if t["value"] is not None else float("inf")})
                  .line() for t in doc["targets"]]
    return "\n".join(lines)


def add_evaluate_args(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument("--blend-share", type=float, default=0.5,
                        help="weight of the walk in the blended strategy (default 0.5)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="answers per user of the walk strategies, each with other random "
                        "numbers; metrics average over them (default 1)")
    add_output_args(parser)


def options_from_args(args: argparse.Namespace) -> EvalOptions:
    return EvalOptions(
        surface=args.surface, k=args.k, test_fraction=args.test_fraction,
        max_users=args.max_users or None, seed=args.seed, steps=args.steps,
        budget_ms=args.budget_ms,
        strategies=[s.strip() for s in args.strategies.split(",") if s.strip()],
        pagerank_users=args.pagerank_users, pagerank_max_s=args.pagerank_max_s,
        pagerank_alpha=args.pagerank_alpha, blend_share=args.blend_share,
        repeats=max(1, args.repeats),
    )


def cmd_evaluate(args: argparse.Namespace) -> int:
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
