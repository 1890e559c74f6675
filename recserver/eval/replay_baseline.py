"""The baseline modes of replay: one of ``evaluate``'s baselines, retrained every period.

The model is first trained at the cutoff on the training events, then again at every
``cutoff + n * period`` on every event before that time; between retrains it answers from the
interactions it was trained on, as a batch recommender serving precomputed lists does (a user's
events since the last retrain change nothing until the next). A user the model has never seen
gets the most popular items of its training data (distinct users per item), the batch system's
usual cold-start answer. Hyperparameters are chosen once on the training period's validation
split, as ``evaluate`` chooses them, and kept for every retrain.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from recserver.eval.baseline_eval import FACTORIES, GRIDS, Choice, Interactions, choose
from recserver.eval.replay_engine import Reply
from recserver.eval.replay_modes import Mode
from recserver.eval.replay_sessions import Ask
from recserver.graph.events import EventColumns


class BaselineReplayer:
    """One baseline mode over ``events`` (training and test, in time order)."""

    def __init__(self, mode: Mode, events: EventColumns, cutoff: float, *, k: int,
                 tune: bool = True, seed: int = 0, choice: Choice | None = None) -> None:
        assert mode.baseline is not None
        self.mode = mode
        self.name = mode.baseline
        self.events = events
        self.cutoff = cutoff
        if choice is None:
            train = events.take(events.timestamp < cutoff)
            choice = choose(self.name, train, k=k, test_fraction=0.1, max_users=1_000,
                            seed=seed, grid=None if tune else GRIDS[self.name][:1])
        self.choice = choice
        self.retrains = 0
        self.fit_s = 0.0
        self._trained_at = -math.inf
        self._data: Interactions | None = None
        self._popular: list[str] = []
        self._model: Any = None
        self._retrain(cutoff)

    def _retrain(self, at: float) -> None:
        started = time.perf_counter()
        upto = int(np.searchsorted(self.events.timestamp, at, side="left"))
        mask = np.zeros(len(self.events), bool)
        mask[:upto] = True
        data = Interactions.from_events(self.events.take(mask))
        model = FACTORIES[self.name](**self.choice.params)
        model.fit(data.matrix)
        users_per_item = np.asarray(data.matrix.sum(axis=0)).ravel()
        order = np.lexsort((np.arange(users_per_item.shape[0]), -users_per_item))
        self._popular = [data.item_names[i] for i in order[:1_000].tolist()]
        self._data, self._model = data, model
        self._trained_at = at
        self.retrains += 1
        self.fit_s += time.perf_counter() - started

    def advance(self, t: float) -> None:
        period = self.mode.retrain_s
        due = self.cutoff + math.floor((t - self.cutoff) / period) * period
        if due > self._trained_at:
            self._retrain(due)  # only the latest due retrain matters

    def answer(self, ask: Ask, k: int) -> Reply:
        assert self._data is not None
        started = time.perf_counter()
        known = ask.user in self._data.user_index
        items = (self._data.recommend(self._model, ask.user, k) if known
                 else self._popular[:k])
        return Reply(items, time.perf_counter() - started, self.name if known else "popular",
                     not known)

    def stats(self) -> dict[str, Any]:
        return {"retrain_s": self.mode.retrain_s, "retrains": self.retrains,
                "fit_s": round(self.fit_s, 3), "params": self.choice.params}

    def close(self) -> None:
        return None
