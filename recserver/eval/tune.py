"""``recserver tune --surface S``: which budget buys how much quality, measured in-process.

The sweep replays the test users of a temporal split through the serving path
(``Recommender.recommend``) for every (walk steps, n_v, budget) of the grid, with real
``perf_counter`` timings. For one (steps, n_v) the budgets go up until no walk was cut by its
deadline: a larger budget would give the same answers. One more point runs without a deadline
at the largest step count: the unbounded reference. The quality-vs-p99 Pareto frontier is
printed (and drawn by ``tune_plot``), and the recommendation is the smallest budget whose
quality reaches ``threshold`` (default 98%) of the best measured, with the config snippet that
sets it. Points where the deadline cut more than ``max_cut`` of the walks are shown but neither
recommended nor counted as the best (see ``eligible``). Every point asks with the same request
ids, so a user's walk draws the same random numbers at every point and differences are not
sampling noise.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from recserver.config import (
    DEFAULT_DOCUMENT,
    ConfigError,
    RecServerConfig,
    config_from_document,
    deep_merge,
)
from recserver.eval.metrics import top_share_items
from recserver.eval.plotting import check_plotting
from recserver.eval.runner import CUT_REASONS, run_strategy
from recserver.eval.setup import EvalSetup, with_surface
from recserver.eval.split import Split
from recserver.eval.strategies import ServingStrategy

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_BUDGETS", "DEFAULT_NV", "DEFAULT_STEPS", "Point", "check_plotting",
           "eligible", "merged_document", "pareto_frontier", "recommend", "snippet", "sweep"]

DEFAULT_STEPS = (10_000, 20_000, 50_000, 100_000)
DEFAULT_NV = (2, 4)
DEFAULT_BUDGETS = (3.0, 4.0, 5.0, 6.0, 8.0, 12.0, 20.0)


@dataclass(frozen=True)
class Point:
    """One measured setting. ``budget_ms`` None: no deadline (the unbounded reference)."""

    budget_ms: float | None
    steps: int
    n_v: int
    quality: float
    p50_ms: float
    p99_ms: float
    cut_share: float  # answers whose walk the deadline cut (or skipped)
    users: int

    @property
    def label(self) -> str:
        budget = "unbounded" if self.budget_ms is None else f"{self.budget_ms:g} ms"
        return f"{budget}, {self.steps:,} steps, n_v={self.n_v}"

    def record(self) -> dict[str, Any]:
        return asdict(self)


def pareto_frontier(points: Sequence[Point]) -> list[Point]:
    """The points no other point beats: none has more quality at the same or lower p99.

    Ordered by p99; quality rises strictly along it.
    """
    frontier: list[Point] = []
    for point in sorted(points, key=lambda p: (p.p99_ms, -p.quality)):
        if not frontier or point.quality > frontier[-1].quality:
            frontier.append(point)
    return frontier


def eligible(points: Sequence[Point], max_cut: float = 0.01) -> list[Point]:
    """Points whose walks the deadline cut at most ``max_cut`` of the time.

    A budget that cuts most walks answers "degraded" (deadline) and keeps the budget-exhaustion
    alerts firing, even when the fallback's top-up happens to score well: a mix of walk and ANN
    is a blend setting (``fallback.blend``), not a budget that is too small.
    """
    return [p for p in points if p.cut_share <= max_cut]


def recommend(points: Sequence[Point], threshold: float = 0.98,
              max_cut: float = 0.01) -> Point | None:
    """The smallest budget whose quality is at least ``threshold`` x the best quality.

    Only points cutting at most ``max_cut`` of the walks count (see ``eligible``), for the best
    quality too. Ties on budget go to the lower p99, then fewer steps, then smaller n_v.
    Unbounded points count for the best quality but are never recommended. None when no
    budgeted point qualifies.
    """
    allowed = eligible(points, max_cut)
    if not allowed:
        return None
    best = max(p.quality for p in allowed)
    good = [p for p in allowed if p.budget_ms is not None and p.quality >= threshold * best]
    if not good:
        return None
    return min(good, key=lambda p: (p.budget_ms, p.p99_ms, p.steps, p.n_v))


def sweep(
    setup: EvalSetup, config: RecServerConfig, surface: str, split: Split, *, k: int,
    metric: str = "recall", steps: Sequence[int] = DEFAULT_STEPS,
    n_vs: Sequence[int] = DEFAULT_NV, budgets: Sequence[float] = DEFAULT_BUDGETS,
    on_point: Callable[[Point], None] | None = None, repeats: int = 1, seed: int = 0,
) -> list[Point]:
    """Measure the grid (see the module docstring); every point on the same users.

    ``seed`` picks the walks' random numbers (the same ones at every point, and in every run).
    """
    key = f"{metric}@{k}"
    top = top_share_items(split.item_users)
    points: list[Point] = []

    def measure(budget: float | None, n_steps: int, n_v: int) -> Point | None:
        try:
            cfg = with_surface(config, surface, budget_ms=math.inf if budget is None else budget,
                               walk={"steps": n_steps, "n_v": n_v})
        except ConfigError as exc:
            log.warning("skipping budget %s ms: %s", budget, exc)
            return None
        measured = run_strategy(ServingStrategy(setup, cfg, surface, seed), split.users, k=k,
                                catalogue=setup.snapshot.n_items, top_items=top,
                                repeats=repeats)
        summary = measured.scores.summary()
        cut = sum(measured.reasons[r] for r in CUT_REASONS) / max(measured.scores.users, 1)
        point = Point(budget, n_steps, n_v, summary[key], summary["p50_ms"], summary["p99_ms"],
                      cut, len(measured.answers))
        points.append(point)
        if on_point is not None:
            on_point(point)
        return point

    for n_steps in sorted(steps):
        for n_v in n_vs:
            for budget in sorted(budgets):
                point = measure(budget, n_steps, n_v)
                if point is not None and point.cut_share == 0.0:
                    break  # every walk finished: larger budgets give the same answers
    measure(None, max(steps), setup.surface(surface).walk.n_v)
    return points


def snippet(surface: str, point: Point, current: RecServerConfig) -> dict[str, Any]:
    """The surface settings that apply ``point``, as a config document fragment."""
    assert point.budget_ms is not None
    budget: float | int = int(point.budget_ms) if point.budget_ms.is_integer() else point.budget_ms
    body: dict[str, Any] = {"budget_ms": budget, "walk": {"steps": point.steps, "n_v": point.n_v}}
    if current.surfaces[surface].sla_p99_ms < point.budget_ms:
        body["sla_p99_ms"] = budget
    return {"surfaces": {surface: body}}


def merged_document(config_path: Path | None, fragment: dict[str, Any]) -> dict[str, Any]:
    """The config file (or the embedded default) with ``fragment`` merged in, validated."""
    if config_path is None:
        document = copy.deepcopy(DEFAULT_DOCUMENT)
    else:
        document = yaml.safe_load(config_path.read_text()) or {}
    merged = deep_merge(document, fragment)
    config_from_document(merged, str(config_path or "<embedded default>"))
    return merged
