"""``recserver evaluate``: every strategy on the same temporal split, one record each.

Each strategy answers every test user (after a few untimed warm-up queries); the networkx
PageRank reference answers a seeded sample of them within a time cap. The targets at the end
compare strategies measured in this same run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recserver.config import RecServerConfig
from recserver.eval import report
from recserver.eval.baseline_eval import (
    BASELINES,
    GRIDS,
    BaselineStrategy,
    Interactions,
    choose,
    ease_skip_reason,
)
from recserver.eval.blend_choice import DEFAULT_MODES, Mode, choose_blend
from recserver.eval.evaluate_summary import same_answers, verdict, why_same
from recserver.eval.metrics import top_share_items
from recserver.eval.report import Target
from recserver.eval.runner import Measured, run_strategy, sample
from recserver.eval.setup import EvalSetup, with_surface
from recserver.eval.split import EvalUser, Split
from recserver.eval.strategies import (
    AnnStrategy,
    BlendedStrategy,
    PageRankStrategy,
    PopularStrategy,
    ServingStrategy,
    Strategy,
    WalkStrategy,
)
from recserver.eval.targets import targets
from recserver.graph.config import WalkConfig
from recserver.graph.events import EventColumns
from recserver.graph.loaders import load_events
from recserver.graph.workloads import parse_synthetic, synthetic_events

log = logging.getLogger(__name__)

STRATEGIES = ("popular", "graph", "graph_budget", "ann", "blended", *BASELINES, "nx_pagerank")


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
    blend_share: float | None = None  # None: chosen on the training-period validation split
    blend_mode: str | None = None  # score | rank; None: chosen with the share
    warmup: int = 5
    repeats: int = 1  # walks answer each user this many times, with other random numbers
    ease_max_items: int = 20_000  # EASE inverts a dense items x items matrix: skip above this
    tune_baselines: bool = True  # False: the first grid point of each baseline, no validation
    progress: bool = False  # progress bars on stderr


def load_source(
    config: RecServerConfig, events: Path | None, synthetic: str | None, *, strict: bool = False,
    seed: int = 0,
) -> tuple[EventColumns, str]:
    """The events of ``--events`` (the same files ``serve`` reads) or ``--synthetic``."""
    if events is not None:
        return load_events(events, config.graph.event_weights, strict=strict), str(events)
    spec = parse_synthetic(synthetic, "small")
    return synthetic_events(spec, seed=seed), spec.label


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
        skipped: list[dict[str, str]] = []
        baselines: dict[str, dict[str, Any]] = {}
        blend_doc: dict[str, Any] | None = None
        interactions: Interactions | None = None
        for name in opts.strategies:
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
                strategy, blend_doc = blended(config, split, walk, setup, opts)
            elif name in BASELINES:
                interactions = interactions or Interactions.from_events(split.train)
                reason = (ease_skip_reason(interactions.n_items, opts.ease_max_items)
                          if name == "ease" else None)
                if reason is not None:
                    log.info("skipping ease: %s", reason)
                    skipped.append({"strategy": name, "reason": reason})
                    continue
                log.info("choosing %s hyperparameters on the training-period validation split",
                         name)
                choice = choose(name, split.train, k=opts.k, test_fraction=opts.test_fraction,
                                max_users=opts.max_users, seed=opts.seed,
                                grid=None if opts.tune_baselines else GRIDS[name][:1])
                strategy = BaselineStrategy(name, interactions, choice)
                baselines[name] = {"chosen": choice.params,
                                   "validation": [{"params": p, f"recall@{opts.k}": r}
                                                  for p, r in choice.validation],
                                   "tune_s": round(choice.seconds, 3),
                                   "fit_s": round(strategy.fit_seconds, 3)}
            else:  # nx_pagerank: seconds a query, so a sample under a time cap
                strategy = PageRankStrategy(setup, walk, opts.pagerank_alpha)
                users = sample(split.users, opts.pagerank_users, opts.seed)
                cap, warmup = opts.pagerank_max_s, 0
            log.info("evaluating %s on %d users", name, len(users))
            results[name] = run_strategy(strategy, users, k=opts.k, catalogue=snap.n_items,
                                         top_items=top, warmup=warmup, max_seconds=cap,
                                         repeats=opts.repeats, popularity=split.item_users,
                                         progress=opts.progress)
        relevant = [item for user in split.users for item in user.relevant]
        served = serving.surfaces[surface]
        measured = targets(results, split.users, opts.k, budget_ms=served.budget_ms)
        cut = results["graph_budget"].cut_answers() if "graph_budget" in results else 0
        same = [{"strategy": a, "same_as": b, "users": len(results[a].answers),
                 "why": why_same((a, b), served.fallback.blend, served.budget_ms, blend_doc, cut)}
                for a, b in same_answers(results)]
        records = [m.record() for m in results.values()]
        goals = [t for t in measured if t.kind == "target"]
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
            "strategies": records,
            "same_answers": same,
            "baselines": baselines,
            "blend": blend_doc,
            "skipped": skipped,
            "targets": [t.record() for t in goals],
            "information": [t.record() for t in measured if t.kind == "information"],
            "verdict": verdict(records, opts.k, sum(t.met for t in goals), len(goals)),
        }
    finally:
        setup.close()


def blended(config: RecServerConfig, split: Split, walk: WalkConfig, setup: EvalSetup,
            opts: EvalOptions) -> tuple[BlendedStrategy, dict[str, Any]]:
    """The ``blended`` strategy: fixed by the options, or chosen on the validation split."""
    if opts.blend_share is not None:
        mode: Mode = "rank" if opts.blend_mode == "rank" else "score"
        return (BlendedStrategy(setup, walk, opts.blend_share, mode=mode),
                {"mode": mode, "share": opts.blend_share, "validation": []})
    log.info("choosing the blend on the training-period validation split")
    modes: tuple[Mode, ...] = ("rank",) if opts.blend_mode == "rank" else (
        ("score",) if opts.blend_mode == "score" else DEFAULT_MODES)
    choice = choose_blend(config, split.train, walk, k=opts.k, test_fraction=opts.test_fraction,
                          max_users=opts.max_users, seed=opts.seed, modes=modes)
    strategy = BlendedStrategy(setup, walk, choice.share, mode=choice.mode)
    strategy.description += " (chosen on the training-period validation)"
    return strategy, {"mode": choice.mode, "share": choice.share,
                      "validation": choice.validation}


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
    keys = [f"recall@{k}", f"ndcg@{k}", f"hit_rate@{k}", "coverage", "popularity_bias",
            "distinct_top5", "list_popularity", "p50_ms", "p99_ms"]
    by_name = {r["strategy"]: r for r in doc["strategies"]}
    rows = [[r["strategy"], r["users"], *(r[key] for key in keys)] for r in doc["strategies"]]
    header = ["strategy", "users", *keys]
    lines = [*head, report.table(rows, header), ""]
    lines += [f"  {r['strategy']:<13} {r['description']}" for r in doc["strategies"]]
    lines.append(f"  (top-1% items take {doc['reference']['test_top1_share']:.1%} of the test "
                 "interactions)")
    for name, chosen in doc.get("baselines", {}).items():
        tuning = (f"tuned in {chosen['tune_s']:.1f} s over {len(chosen['validation'])} settings"
                  if chosen["validation"] else "not tuned (--no-tune-baselines)")
        lines.append(f"  {name:<13} per-query p50 {by_name[name]['p50_ms']:.3f} ms; {tuning}")
    lines += [f"  {s['strategy']:<13} skipped: {s['reason']}" for s in doc.get("skipped", [])]
    lines += [f"  {s['strategy']:<13} same answers as {s['same_as']} for all {s['users']:,} "
              f"users: {s['why']}" for s in doc.get("same_answers", [])]
    for title, kind in (("targets", "targets"), ("information", "information")):
        if doc.get(kind):
            lines += ["", title]
            tag = "information" if kind == "information" else "target"
            lines += [Target(**{**t, "value": _value(t["value"])}, kind=tag).line()
                      for t in doc[kind]]
    if doc.get("verdict"):
        lines += ["", doc["verdict"]]
    return "\n".join(lines)


def _value(value: float | None) -> float:
    return value if value is not None else float("inf")  # JSON null stands for infinity
