"""The ``recserver tune`` command: run the sweep, print the frontier, plot, emit the snippet."""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import Any

import yaml

from recserver.cli._source_args import add_source_args
from recserver.config import ConfigError, RecServerConfig, load_config
from recserver.eval import report
from recserver.eval.evaluate import load_source
from recserver.eval.output import add_output_args, emit
from recserver.eval.report import finite
from recserver.eval.setup import EvalSetup, with_surface
from recserver.eval.split import temporal_split
from recserver.eval.tune import (
    DEFAULT_BUDGETS,
    DEFAULT_NV,
    DEFAULT_STEPS,
    Point,
    check_plotting,
    eligible,
    merged_document,
    pareto_frontier,
    recommend,
    snippet,
    sweep,
)
from recserver.eval.tune_plot import plot
from recserver.eval.tune_scoring import DEFAULT_GRID, best_scoring, sweep_scoring

log = logging.getLogger(__name__)


def tune_document(points: list[Point], choice: Point | None, *, source: str, surface: str,
                  k: int, metric: str, threshold: float, max_cut: float,
                  fragment: dict[str, Any] | None, plot_path: Path | None) -> dict[str, Any]:
    """The tune JSON document (schema in ``docs/evaluation.md``)."""
    allowed = eligible(points, max_cut)
    best = max((p.quality for p in allowed), default=0.0)
    unbounded = [p for p in points if p.budget_ms is None]
    reference = unbounded[-1] if unbounded else None
    frontier = pareto_frontier(allowed)
    return {
        "schema": report.TUNE_SCHEMA,
        "source": source,
        "surface": surface,
        "k": k,
        "metric": f"{metric}@{k}",
        "threshold": threshold,
        "max_cut": max_cut,
        "best_quality": best,
        "points": [{**p.record(), "eligible": p in allowed, "frontier": p in frontier}
                   for p in points],
        "frontier": [p.record() for p in frontier],
        "unbounded": reference.record() if reference else None,
        "recommendation": None if choice is None else {
            **choice.record(),
            "share_of_best": choice.quality / best if best > 0 else None,
            "share_of_unbounded": finite(choice.quality / reference.quality)
            if reference and reference.quality > 0 else None,
        },
        "snippet": yaml.safe_dump(fragment, sort_keys=False) if fragment else None,
        "plot": str(plot_path) if plot_path else None,
    }


def format_tune(doc: dict[str, Any]) -> str:
    """The tune document for people: a short header, the sweep table, the recommendation."""
    rows = []
    for p in doc["points"]:
        budget = "unbounded" if p["budget_ms"] is None else p["budget_ms"]
        mark = "frontier" if p["frontier"] else ("" if p["eligible"] else "too cut")
        rows.append([budget, p["steps"], p["n_v"], p["quality"], p["p50_ms"], p["p99_ms"],
                     percent(p["cut_share"]), mark])
    header = ["budget_ms", "steps", "n_v", doc["metric"], "p50_ms", "p99_ms", "cut", ""]
    lines = [scoring_line(doc)] if (doc.get("scoring") or {}).get("chosen") else []
    lines += [f"sweep of surface {doc['surface']} on {doc['source']} "
              f"({doc['points'][0]['users']:,} users a point; cut = share of walks the deadline "
              f"stopped; points cutting more than {percent(doc['max_cut'])} are not eligible)",
              "", report.table(rows, header), ""]
    lines.append("Pareto frontier (p99 -> quality): " + ", ".join(
        f"{p['p99_ms']:.3g} ms -> {p['quality']:.4f}" for p in doc["frontier"]))
    rec = doc["recommendation"]
    if rec is None:
        lines.append(f"no budget reaches {doc['threshold']:.0%} of the best "
                     f"{doc['metric']} ({doc['best_quality']:.4f}); widen --budgets or --steps")
    else:
        kept = rec["share_of_unbounded"]
        lines.append(
            f"recommended: budget {rec['budget_ms']:g} ms, {rec['steps']:,} steps, n_v="
            f"{rec['n_v']}: {doc['metric']} {rec['quality']:.4f} = {rec['share_of_best']:.1%} of "
            f"the best {doc['best_quality']:.4f}"
            + (f", {kept:.1%} of the unbounded walk" if kept is not None else "")
            + f"; p99 {rec['p99_ms']:.2f} ms, cut {percent(rec['cut_share'])}")
        lines += ["", "config snippet:", "", doc["snippet"].rstrip()]
    if doc["plot"]:
        lines.append(f"\nplot: {doc['plot']}")
    return "\n".join(lines)


def scoring_line(doc: dict[str, Any]) -> str:
    """One line for the walk-scoring sweep: what was chosen, out of how many, how much better.

    The full grid with every setting's validation quality is in the JSON document
    (``scoring.validation``), not in the report.
    """
    scoring = doc["scoring"]
    tried = scoring["validation"]
    chosen = ", ".join(f"{name} {value:g}" for name, value in scoring["chosen"].items())
    qualities = [p["quality"] for p in tried]
    return (f"walk scoring: {chosen}, chosen from {len(tried)} settings on the training-period "
            f"validation split ({doc['metric']} {max(qualities):.4f} there; worst setting "
            f"{min(qualities):.4f}; every setting in the JSON document)\n")


def percent(share: float) -> str:
    """A share as a percentage: ``0%``, ``0.3%``, ``55%``."""
    if share >= 0.1:
        return f"{100 * share:.0f}%"
    return f"{100 * share:.1f}".rstrip("0").rstrip(".") + "%"


NAME = "tune"
QUIET_LOGS = True  # the report is the output: progress logs only with -v
HELP = "sweep budget/steps/n_v for a surface, plot the Pareto frontier, recommend"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_args(parser)
    parser.add_argument("--config", type=Path, help="YAML config (default: the embedded one)")
    parser.add_argument("--surface", required=True, help="the surface to tune")
    parser.add_argument("-k", type=int, default=20, help="answer size (default 20)")
    parser.add_argument("--metric", choices=("recall", "ndcg"), default="recall",
                        help="quality measured at k (default recall)")
    parser.add_argument("--threshold", type=float, default=0.98,
                        help="share of the best quality the budget must reach (default 0.98)")
    parser.add_argument("--max-cut", type=float, default=0.01,
                        help="most walks the deadline may cut at an eligible point (default 0.01)")
    parser.add_argument("--steps", default=",".join(map(str, DEFAULT_STEPS)),
                        help="walk step counts to sweep, comma-separated (default %(default)s)")
    parser.add_argument("--n-v", default=",".join(map(str, DEFAULT_NV)),
                        help="early-stopping visit counts n_v to sweep (default %(default)s)")
    parser.add_argument("--budgets", default=",".join(f"{b:g}" for b in DEFAULT_BUDGETS),
                        help="budgets in ms to sweep (default %(default)s)")
    parser.add_argument("--test-fraction", type=float, default=0.1,
                        help="share of events (the latest) held out for testing (default 0.1)")
    parser.add_argument("--max-users", type=int, default=1_000,
                        help="test users replayed per point (default 1000; 0: all)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the user sample and the walks' random numbers: the same "
                        "seed gives the same recommendation (default 0)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="answers per user and point, each with other random numbers "
                        "(default 1)")
    parser.add_argument("--plot", type=Path, default=None,
                        help="draw the frontier into this PNG (default: no plot)")
    parser.add_argument("--write-config", type=Path,
                        help="write the config with the recommended settings here (default: "
                        "print the snippet only)")
    add_output_args(parser)
    for name, values in DEFAULT_GRID.items():
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, default=",".join(f"{v:g}" for v in values),
                            help=f"walk {name} values to sweep on the training-period validation "
                            "split before the budgets (one value: fixed; default: %(default)s)")
    parser.add_argument("--no-scoring", action="store_true",
                        help="keep the surface's walk scoring settings (no validation sweep)")


def _numbers(text: str, kind: type, option: str, *, positive: bool) -> list[Any]:
    """Comma-separated finite numbers, each > 0 (``positive``) or >= 1; ``ValueError`` else."""
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{option} {text!r}: give comma-separated numbers") from None
    bad = [v for v in values if not (math.isfinite(v) and (v > 0 if positive else v >= 1))]
    if not values or bad:
        shown = ", ".join(f"{v:g}" for v in bad) or "nothing"
        bound = "> 0" if positive else ">= 1"
        raise ValueError(f"{option} {text!r}: {shown} cannot be measured; give values {bound}")
    return values


def _settings(text: str, name: str) -> list[float]:
    """A scoring grid: comma-separated finite numbers >= 0 (0 is a valid beta)."""
    option = "--" + name.replace("_", "-")
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{option} {text!r}: give comma-separated numbers") from None
    if not values or any(not math.isfinite(v) or v < 0 for v in values):
        raise ValueError(f"{option} {text!r}: give finite values >= 0")
    return values


def _grid(args: argparse.Namespace, config: RecServerConfig) -> tuple[list[int], list[int],
                                                                      list[float]]:
    """The sweep's steps, n_v and budgets, checked before any data is loaded."""
    steps = _numbers(args.steps, int, "--steps", positive=False)
    n_vs = _numbers(args.n_v, int, "--n-v", positive=False)
    budgets = _numbers(args.budgets, float, "--budgets", positive=True)
    problems = []
    for budget in budgets:
        try:
            with_surface(config, args.surface, budget_ms=budget,
                         walk={"steps": max(steps), "n_v": n_vs[0]})
        except ConfigError as exc:
            problems.append(f"{budget:g} ms ({str(exc).splitlines()[-1].strip()})")
    if problems:
        raise ValueError("--budgets: cannot run surface " + args.surface + " at "
                         + "; ".join(problems))
    return steps, n_vs, budgets


def _check_args(args: argparse.Namespace) -> None:
    if not 0 < args.threshold <= 1:
        raise ValueError(f"--threshold {args.threshold}: give a share in (0, 1]")
    if not 0 <= args.max_cut <= 1:
        raise ValueError(f"--max-cut {args.max_cut}: give a share in [0, 1]")
    if not 0 < args.test_fraction < 1:
        raise ValueError(f"--test-fraction {args.test_fraction}: give a share in (0, 1)")
    if args.max_users < 0 or args.repeats < 1 or args.k < 1:
        raise ValueError("--max-users must be >= 0, --repeats and -k >= 1")
    if args.plot is not None:
        check_plotting()  # before the sweep, not after minutes of it


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if config.surface(args.surface) is None:
        raise ValueError(f"unknown surface {args.surface!r}; the config has: "
                         f"{', '.join(config.surfaces)}")
    _check_args(args)
    steps, n_vs, budgets = _grid(args, config)
    cols, source = load_source(config, args.events, args.synthetic, strict=args.strict,
                               seed=args.seed)
    split = temporal_split(cols, test_fraction=args.test_fraction,
                           max_users=args.max_users or None, seed=args.seed)
    if not split.users:
        raise ValueError(f"{source}: no test users after the cutoff; raise --test-fraction")
    scoring = [] if args.no_scoring else sweep_scoring(
        split.train, config, args.surface, k=args.k, metric=args.metric,
        grid={name: _settings(getattr(args, name), name) for name in DEFAULT_GRID},
        test_fraction=args.test_fraction, max_users=args.max_users or None, seed=args.seed,
        repeats=max(1, args.repeats))
    chosen = best_scoring(scoring)
    if chosen is not None:
        config = with_surface(config, args.surface, walk=chosen)
    setup = EvalSetup(config, split.train)
    try:
        points = sweep(
            setup, config, args.surface, split, k=args.k, metric=args.metric,
            steps=steps, n_vs=n_vs, budgets=budgets, repeats=args.repeats, seed=args.seed,
            on_point=lambda p: log.info("%s: quality %.4f, p99 %.2f ms, cut %.0f%%", p.label,
                                        p.quality, p.p99_ms, 100 * p.cut_share),
        )
    finally:
        setup.close()
    if not points:
        raise ValueError("nothing was measured; check --budgets against fallback.min_reserve_ms")
    choice = recommend(points, args.threshold, args.max_cut)
    fragment = snippet(args.surface, choice, config) if choice is not None else None
    if fragment is not None and chosen is not None:
        fragment["surfaces"][args.surface]["walk"].update(chosen)
    title = f"{args.surface}: {args.metric}@{args.k} vs p99 ({Path(source).name})"
    drawn = (plot(points, choice, args.threshold, args.plot, title, args.max_cut,
                  f"{args.metric}@{args.k}") if args.plot is not None else None)
    doc = tune_document(points, choice, source=source, surface=args.surface, k=args.k,
                        metric=args.metric, threshold=args.threshold, max_cut=args.max_cut,
                        fragment=fragment, plot_path=drawn)
    doc["scoring"] = {"chosen": chosen, "validation": [p.record() for p in scoring]}
    if fragment is not None and args.write_config is not None:
        merged = merged_document(args.config, fragment)
        args.write_config.write_text(yaml.safe_dump(merged, sort_keys=False))
        doc["config_written"] = str(args.write_config)
    print(emit(doc, args, format_tune))
    return 0
