"""The walk's scoring settings for ``recserver tune``, chosen on the training period.

Before the budget sweep, ``tune`` picks how the surface's walk turns visits into a ranking:
``degree_beta`` (the popularity penalty), ``restart_prob`` (how close to the seeds answers
stay) and ``seed_weight_exponent`` (steps per seed by interaction strength). Every combination
of the grid walks, without a deadline at the surface's step count, the users of a validation
split cut from the training events only (the same temporal rule as the outer split), and the
best one is used for the budget sweep and written into the config snippet.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from recserver.config import RecServerConfig
from recserver.eval.runner import run_strategy
from recserver.eval.setup import EvalSetup
from recserver.eval.split import temporal_split
from recserver.eval.strategies import WalkStrategy
from recserver.graph.events import EventColumns

log = logging.getLogger(__name__)

DEFAULT_GRID: dict[str, tuple[float, ...]] = {
    "degree_beta": (0.0, 0.3, 0.5, 0.7),
    "restart_prob": (0.5, 0.8),
    "seed_weight_exponent": (0.5, 1.0),
}


@dataclass(frozen=True)
class ScoringPoint:
    """One combination of scoring settings and its validation quality."""

    settings: dict[str, float]
    quality: float
    p50_ms: float

    def record(self) -> dict[str, Any]:
        return asdict(self)


def combinations(grid: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
    keys = list(grid)
    return [dict(zip(keys, values, strict=True))
            for values in itertools.product(*(grid[key] for key in keys))]


def sweep_scoring(
    train: EventColumns, config: RecServerConfig, surface: str, *, k: int, metric: str,
    grid: Mapping[str, Sequence[float]], test_fraction: float, max_users: int | None,
    seed: int, repeats: int = 1,
) -> list[ScoringPoint]:
    """Every combination of ``grid`` on the training-period validation split."""
    inner = temporal_split(train, test_fraction=test_fraction, max_users=max_users, seed=seed)
    if not inner.users:
        log.warning("no validation users in the training period: scoring settings kept")
        return []
    setup = EvalSetup(config, inner.train)
    key = f"{metric}@{k}"
    points: list[ScoringPoint] = []
    try:
        walk = setup.surface(surface).walk
        for settings in combinations(grid):
            strategy = WalkStrategy(setup, walk.model_copy(update=settings))
            measured = run_strategy(strategy, inner.users, k=k, catalogue=setup.snapshot.n_items,
                                    top_items=frozenset(), repeats=repeats)
            summary = measured.scores.summary()
            points.append(ScoringPoint(settings, summary[key], summary["p50_ms"]))
            log.info("scoring %s: validation %s %.4f", settings, key, summary[key])
    finally:
        setup.close()
    return points


def best_scoring(points: Sequence[ScoringPoint]) -> dict[str, float] | None:
    """The settings with the best validation quality (ties: the earlier grid point)."""
    if not points:
        return None
    return dict(max(points, key=lambda p: p.quality).settings)
