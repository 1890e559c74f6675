"""Asking one strategy for every test user, with timings, repeats and a progress bar."""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from recserver.eval.metrics import Scores
from recserver.eval.split import EvalUser
from recserver.eval.strategies import Strategy

log = logging.getLogger(__name__)

#: Degraded reasons that mean the deadline cut the walk short or left no time for it.
CUT_REASONS = ("deadline", "budget_spent")


@dataclass
class Measured:
    """One strategy's scores and its answer per user."""

    name: str
    description: str
    scores: Scores
    answers: dict[str, list[str]] = field(default_factory=dict)
    reasons: Counter[str] = field(default_factory=Counter)  # degraded reasons (serving path)

    def cut_answers(self) -> int:
        """Answers whose walk the deadline cut or skipped (the serving path's reasons)."""
        return sum(self.reasons[reason] for reason in CUT_REASONS)

    def record(self) -> dict[str, Any]:
        return {"strategy": self.name, "description": self.description,
                "users": len(self.answers), "answers": self.scores.users,
                **self.scores.summary(), "sources": dict(self.scores.sources)}


def run_strategy(
    strategy: Strategy, users: Sequence[EvalUser], *, k: int, catalogue: int,
    top_items: frozenset[str], warmup: int = 5, max_seconds: float | None = None,
    repeats: int = 1, popularity: Mapping[str, int] | None = None, progress: bool = False,
) -> Measured:
    """Ask ``strategy`` for every user (``warmup`` untimed queries first).

    A stochastic strategy (a walk) answers every user ``repeats`` times, each time with other
    random numbers; its metrics average over users and repeats (coverage counts every item any
    repeat recommended) and ``answers`` keeps the first repeat's.
    """
    for user in users[:warmup]:
        strategy.query(user.name, k)
    scores = Scores(k=k, catalogue=catalogue, top_items=top_items, popularity=popularity or {})
    measured = Measured(strategy.name, strategy.description, scores)
    started = time.monotonic()
    rounds = repeats if strategy.stochastic else 1
    with tqdm(total=rounds * len(users), desc=strategy.name, unit="query", file=sys.stderr,
              disable=not progress, leave=False) as bar:
        for repeat in range(rounds):
            for user in users:
                answer = strategy.query(user.name, k, repeat)
                scores.add(answer.items, user.relevant, answer.seconds, answer.source)
                measured.answers.setdefault(user.name, answer.items)
                measured.reasons.update(set(answer.reasons))
                bar.update()
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
