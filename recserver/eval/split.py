"""The temporal split: train on everything before a cutoff time, test on what came after.

The cutoff is the timestamp below which ``1 - test_fraction`` of the events lie (or a time
given outright). Train holds the events strictly before it, test the events at or after it, so
nothing from the test period can reach the graph. A test user is one the training events know
(it has seeds) whose test events touch at least one item it had not interacted with before the
cutoff: those new items are its relevant set. Items the user already had are left out because
every strategy filters them (``filters.exclude_seen``), so they could never count as hits.
Relevant items unknown to the training graph stay in the set: no strategy can find them, and
leaving them out would flatter every strategy alike.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from recserver.graph.events import EventColumns


@dataclass(frozen=True)
class EvalUser:
    name: str
    relevant: frozenset[str]  # item ids first touched after the cutoff
    history: int  # distinct items before the cutoff


@dataclass(frozen=True)
class Split:
    """Train and test events, the cutoff and the users to evaluate."""

    train: EventColumns
    test: EventColumns
    cutoff: float
    users: list[EvalUser]
    eligible_users: int  # before sampling down to ``max_users``
    item_users: Counter[str]  # distinct training users per item (popularity)

    def describe(self) -> dict[str, float | int]:
        return {
            "cutoff": self.cutoff,
            "train_events": len(self.train),
            "test_events": len(self.test),
            "train_items": len(self.item_users),
            "eligible_users": self.eligible_users,
            "evaluated_users": len(self.users),
            "mean_relevant": float(np.mean([len(u.relevant) for u in self.users]))
            if self.users else 0.0,
        }


def cutoff_time(timestamps: np.ndarray, test_fraction: float) -> float:
    """The time with ``1 - test_fraction`` of the events before it."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction={test_fraction}: give a share between 0 and 1")
    if timestamps.shape[0] == 0:
        raise ValueError("no events to split")
    return float(np.quantile(timestamps, 1.0 - test_fraction, method="higher"))


def _pairs(cols: EventColumns) -> tuple[list[str], list[str]]:
    users = [cols.user_names[c] for c in cols.user_codes.tolist()]
    items = [cols.item_names[c] for c in cols.item_codes.tolist()]
    return users, items


def temporal_split(
    cols: EventColumns,
    *,
    test_fraction: float = 0.1,
    cutoff: float | None = None,
    max_users: int | None = None,
    seed: int = 0,
) -> Split:
    """Split ``cols`` at ``cutoff`` (default: the ``test_fraction`` quantile of time).

    ``max_users`` keeps a seeded random sample of the eligible test users (in name order).
    """
    at = cutoff_time(cols.timestamp, test_fraction) if cutoff is None else float(cutoff)
    before = cols.timestamp < at
    train, test = cols.take(before), cols.take(~before)
    history: dict[str, set[str]] = defaultdict(set)
    for user, item in zip(*_pairs(train), strict=True):
        history[user].add(item)
    item_users: Counter[str] = Counter()
    for items in history.values():
        item_users.update(items)
    later: dict[str, set[str]] = defaultdict(set)
    for user, item in zip(*_pairs(test), strict=True):
        if user in history and item not in history[user]:
            later[user].add(item)
    eligible = sorted(later)
    chosen = eligible
    if max_users is not None and len(eligible) > max_users:
        rng = np.random.default_rng(seed)
        picked = np.sort(rng.choice(len(eligible), size=max_users, replace=False))
        chosen = [eligible[i] for i in picked.tolist()]
    users = [EvalUser(name, frozenset(later[name]), len(history[name])) for name in chosen]
    return Split(train, test, at, users, len(eligible), item_users)
