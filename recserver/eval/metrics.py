"""Ranking metrics of one answer, and their aggregate over the test users of a strategy.

Definitions (``rec`` = the ranked answer cut to ``k``, ``rel`` = the user's relevant items):

* ``recall@k = |rec ∩ rel| / min(k, |rel|)``: normalised by what a perfect top-k could reach
  (Liang et al., "Variational Autoencoders for Collaborative Filtering", WWW 2018), so a user
  with 80 relevant items is not capped at 0.25;
* ``ndcg@k``: binary gains, ``DCG = sum over hits at rank r (1-based) of 1 / log2(r + 1)``,
  divided by the DCG of ``min(k, |rel|)`` hits at the top;
* ``hit_rate@k``: 1 when at least one recommended item is relevant;
* ``mrr@k``: 1 / the rank (1-based) of the first relevant item in the answer, 0 when none is;
* catalogue ``coverage``: distinct items recommended to anyone / items in the catalogue;
* ``popularity_bias``: the share of recommended places filled with the top 1% items (by distinct
  users in the training events);
* ``distinct_top5``: distinct top-5 lists (as sets) / answers; 1.0 when every user gets their
  own, near 0 when hubs fill everyone's first places;
* ``list_popularity``: the mean, over answers, of the mean popularity (distinct training users)
  of the recommended items, divided by the mean popularity of the catalogue's items: 1.0 for
  a recommender that ignores popularity, large for one that repeats hubs;
* ``overlap@k`` of two answers: ``|a ∩ b| / k``.

Users with no relevant item are left out by the split, so every average is over real targets.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np


def recall_at_k(rec: Sequence[str], rel: Collection[str], k: int) -> float:
    if not rel or k <= 0:
        return 0.0
    hits = sum(1 for item in rec[:k] if item in rel)
    return hits / min(k, len(rel))


def ndcg_at_k(rec: Sequence[str], rel: Collection[str], k: int) -> float:
    if not rel or k <= 0:
        return 0.0
    dcg = sum(1.0 / math.log2(rank + 2) for rank, item in enumerate(rec[:k]) if item in rel)
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(k, len(rel))))
    return dcg / ideal


def hit_at_k(rec: Sequence[str], rel: Collection[str], k: int) -> float:
    return 1.0 if any(item in rel for item in rec[:k]) else 0.0


def reciprocal_rank_at_k(rec: Sequence[str], rel: Collection[str], k: int) -> float:
    for rank, item in enumerate(rec[:k]):
        if item in rel:
            return 1.0 / (rank + 1)
    return 0.0


def overlap_at_k(a: Sequence[str], b: Sequence[str], k: int) -> float:
    """Share of the ``k`` places both answers fill with the same items (order ignored)."""
    if k <= 0:
        return 0.0
    return len(set(a[:k]) & set(b[:k])) / k


def top_share_items(item_users: Counter[str], share: float = 0.01) -> frozenset[str]:
    """The ``ceil(share * catalogue)`` most popular items (ties: by name, for determinism)."""
    if not item_users:
        return frozenset()
    n = max(1, math.ceil(share * len(item_users)))
    ranked = sorted(item_users.items(), key=lambda kv: (-kv[1], kv[0]))
    return frozenset(name for name, _ in ranked[:n])


def percentile_ms(seconds: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of durations in seconds, in milliseconds (0 when empty)."""
    if not seconds:
        return 0.0
    return float(np.percentile(np.asarray(seconds, dtype=np.float64), q)) * 1000.0


@dataclass
class Scores:
    """Accumulates per-user answers of one strategy; ``summary`` gives the aggregate."""

    k: int
    catalogue: int
    top_items: frozenset[str]
    recall: list[float] = field(default_factory=list)
    ndcg: list[float] = field(default_factory=list)
    hits: list[float] = field(default_factory=list)
    rr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    recommended: set[str] = field(default_factory=set)
    slots: int = 0
    top_slots: int = 0
    sources: Counter[str] = field(default_factory=Counter)
    popularity: Mapping[str, int] = field(default_factory=dict)
    top5: set[frozenset[str]] = field(default_factory=set)
    list_pop: list[float] = field(default_factory=list)

    def add(self, rec: Sequence[str], rel: Collection[str], seconds: float, source: str) -> None:
        rec = list(rec[: self.k])
        self.recall.append(recall_at_k(rec, rel, self.k))
        self.ndcg.append(ndcg_at_k(rec, rel, self.k))
        self.hits.append(hit_at_k(rec, rel, self.k))
        self.rr.append(reciprocal_rank_at_k(rec, rel, self.k))
        self.seconds.append(seconds)
        self.recommended.update(rec)
        self.slots += len(rec)
        self.top_slots += sum(1 for item in rec if item in self.top_items)
        if source:
            self.sources[source] += 1
        if rec:
            self.top5.add(frozenset(rec[:5]))
            self.list_pop.append(sum(self.popularity.get(item, 0) for item in rec) / len(rec))

    @property
    def users(self) -> int:
        return len(self.recall)

    def summary(self) -> dict[str, float]:
        """Metric name -> value, names as in the JSON records (``recall@20``, ``p99_ms``...)."""
        k = self.k
        return {
            f"recall@{k}": _mean(self.recall),
            f"ndcg@{k}": _mean(self.ndcg),
            f"hit_rate@{k}": _mean(self.hits),
            f"mrr@{k}": _mean(self.rr),
            "coverage": len(self.recommended) / self.catalogue if self.catalogue else 0.0,
            "popularity_bias": self.top_slots / self.slots if self.slots else 0.0,
            "distinct_top5": len(self.top5) / len(self.list_pop) if self.list_pop else 0.0,
            "list_popularity": self._list_popularity(),
            "p50_ms": percentile_ms(self.seconds, 50),
            "p99_ms": percentile_ms(self.seconds, 99),
            "mean_ms": _mean(self.seconds) * 1000.0,
        }

    def _list_popularity(self) -> float:
        catalogue = _mean(self.popularity.values())
        return _mean(self.list_pop) / catalogue if catalogue > 0 else 0.0


def _mean(values: Iterable[float]) -> float:
    data = list(values)
    return float(sum(data) / len(data)) if data else 0.0
