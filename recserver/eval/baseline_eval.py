"""The standard baselines as ``evaluate`` strategies, tuned on the training period only.

Hyperparameters are chosen on a *validation split cut from the training events*: the same
temporal split rule (``split.temporal_split``) applied to the training events alone, so the
validation "future" is the last ``test_fraction`` of the training period and nothing from the
test period takes part in the choice. Each grid point is fitted on the validation-train events
and scored by recall@k on the validation users; the best is refitted on all training events.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from recserver.eval.baselines import (
    AlsModel,
    EaseModel,
    ItemKnnModel,
    Model,
    Rp3BetaModel,
    top_k,
)
from recserver.eval.metrics import recall_at_k
from recserver.eval.split import EvalUser, temporal_split
from recserver.eval.strategies import Answer
from recserver.graph.events import EventColumns

log = logging.getLogger(__name__)

BASELINES = ("ease", "itemknn", "rp3beta", "als")

#: name -> grid of keyword arguments; ranges around the published good values.
GRIDS: dict[str, list[dict[str, Any]]] = {
    "ease": [{"lam": v} for v in (100.0, 200.0, 500.0, 1000.0)],
    "itemknn": [{"shrink": s, "neighbours": n} for s in (0.0, 10.0, 50.0) for n in (50, 100, 200)],
    "rp3beta": [{"alpha": a, "beta": b, "neighbours": n}
                for a in (0.6, 0.8, 1.0) for b in (0.3, 0.5, 0.7) for n in (100, 300)],
    "als": [{"factors": f, "regularization": r, "alpha": a}
            for f in (64, 128) for r in (0.05, 0.5) for a in (5.0, 20.0)],
}

FACTORIES: dict[str, Callable[..., Model]] = {
    "ease": EaseModel, "itemknn": ItemKnnModel, "rp3beta": Rp3BetaModel, "als": AlsModel,
}


@dataclass(frozen=True)
class Interactions:
    """The binary users x items matrix of some events, with both name maps."""

    matrix: sp.csr_matrix
    user_index: dict[str, int]
    item_names: list[str]

    @classmethod
    def from_events(cls, cols: EventColumns) -> Interactions:
        user_codes, user_rows = np.unique(cols.user_codes, return_inverse=True)
        item_codes, item_cols = np.unique(cols.item_codes, return_inverse=True)
        data = np.ones(len(cols), np.float32)
        matrix = sp.csr_matrix((data, (user_rows, item_cols)),
                               shape=(user_codes.shape[0], item_codes.shape[0]))
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        return cls(matrix, {cols.user_names[c]: i for i, c in enumerate(user_codes.tolist())},
                   [cols.item_names[c] for c in item_codes.tolist()])

    @property
    def n_items(self) -> int:
        return int(self.matrix.shape[1])

    def recommend(self, model: Model, user: str, k: int) -> list[str]:
        row = self.user_index.get(user)
        if row is None:
            return []
        seen = self.matrix.indices[self.matrix.indptr[row]:self.matrix.indptr[row + 1]]
        picked = top_k(model.scores(self.matrix, row), seen, k)
        return [self.item_names[i] for i in picked.tolist()]


@dataclass
class Choice:
    """The grid point chosen for one baseline, and what every point scored on validation."""

    params: dict[str, Any]
    validation: list[tuple[dict[str, Any], float]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def best_recall(self) -> float | None:
        """The chosen point's validation recall@k; None when nothing was scored."""
        return max((r for _, r in self.validation), default=None)


def validation_recall(data: Interactions, model: Model, users: Sequence[EvalUser], k: int
                      ) -> float:
    values = [recall_at_k(data.recommend(model, u.name, k), u.relevant, k) for u in users]
    return float(np.mean(values)) if values else 0.0


def choose(name: str, train: EventColumns, *, k: int, test_fraction: float, max_users: int | None,
           seed: int, grid: Sequence[dict[str, Any]] | None = None) -> Choice:
    """The best point of ``grid`` (default ``GRIDS[name]``) on the training-period validation."""
    points = list(grid if grid is not None else GRIDS[name])
    started = time.perf_counter()
    if len(points) == 1:
        # Nothing to choose between, so nothing is scored: no validation record (not a NaN
        # recall that a report would print and JSON would carry as an invalid token).
        return Choice(dict(points[0]), [], 0.0)
    inner = temporal_split(train, test_fraction=test_fraction, max_users=max_users, seed=seed)
    data = Interactions.from_events(inner.train)
    choice = Choice(dict(points[0]))
    best = -1.0
    for point in points:
        model = FACTORIES[name](**point)
        model.fit(data.matrix)
        recall = validation_recall(data, model, inner.users, k)
        choice.validation.append((dict(point), recall))
        log.info("%s %s: validation recall@%d %.4f", name, point, k, recall)
        if recall > best:
            best, choice.params = recall, dict(point)
    choice.seconds = time.perf_counter() - started
    return choice


class BaselineStrategy:
    """One baseline fitted on all training events with its chosen hyperparameters."""

    stochastic = False

    def __init__(self, name: str, data: Interactions, choice: Choice) -> None:
        self.name = name
        self.data = data
        self.choice = choice
        self.model = FACTORIES[name](**choice.params)
        started = time.perf_counter()
        self.model.fit(data.matrix)
        self.fit_seconds = time.perf_counter() - started
        chosen = ", ".join(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
                           for key, value in self.model.params.items())
        how = (f"chosen on the training-period validation, recall@k {choice.best_recall:.4f} "
               "there" if choice.best_recall is not None
               else "not tuned: the first point of its grid")
        self.description = f"{name} ({chosen}; {how}; fit {self.fit_seconds:.1f} s)"

    def query(self, user: str, k: int, repeat: int = 0) -> Answer:
        started = time.perf_counter()
        items = self.data.recommend(self.model, user, k)
        return Answer(items, time.perf_counter() - started, self.name)


def ease_skip_reason(n_items: int, max_items: int) -> str | None:
    """Why EASE is not run on a catalogue of ``n_items`` (None: it runs)."""
    if n_items <= max_items:
        return None
    gib = n_items * n_items * 8 * 3 / 2**30  # the Gram matrix, its inverse and B in float64
    return (f"catalogue of {n_items:,} items > --ease-max-items {max_items:,}: EASE inverts a "
            f"dense items x items matrix (about {gib:,.1f} GiB and O(items^3) time)")
