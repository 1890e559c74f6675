"""Ranking the final answer from the walk's candidates and the fallback chain's.

Each surface picks a blend policy (``fallback.blend``):

* ``slots`` — the walk's best items take a share of the ``k`` places proportional to how far the
  walk got (all of them when it finished or reached ``topup_below_coverage``); the fallback
  tiers fill the rest in chain order; the walk's remaining items fill what is still empty.
* ``score`` — graph and ANN candidates compete on normalised scores: each source's scores are
  divided by its best (1.0 = that source's top item), the graph's weighted by the walk's share
  ``w`` and the ANN's by ``fallback_weight * (1 - w)``. An item both found gets the sum and keeps
  the source that contributed more. Popular items only fill places still empty.
* ``rank`` — weighted reciprocal rank fusion (Cormack et al. 2009): an item scores
  ``w / (rank_constant + rank)`` from each source that has it (rank from 1), weights as in
  ``score``. Ranks need no calibration between a walk's visit counts and ANN inner products.

With ``pool_complete_walk`` set, a walk that completed (or got far enough to need no top-up)
still shares the answer with the ANN candidates, the walk holding that share of the weight, by
reciprocal rank fusion (score fusion in ``score`` mode); popular items only fill empty places.
On the purchase log pooling the two lifted recall@20 above either alone. Without it a complete
walk answers alone. A walk cut short is merged by ``mode`` as above either way.

The ``trending`` tier's candidates are pooled like the ANN's (the fallback side of the weights):
listed in ``fallback.tiers`` of a surface that pools (``score``, ``rank`` or
``pool_complete_walk``), trending is a blend input, not only a fill.

Both policies remove duplicates and never return an excluded (seen, context, requested) item;
every item keeps the tier that produced it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from recserver.graph.snapshot import GraphSnapshot
from recserver.graph.walk import WalkResult
from recserver.service.fallback import ChainResult
from recserver.service.types import RecommendedItem, Source

Entry = tuple[int, float, Source]


class BlendPolicy(Protocol):
    """What ``merge_answer`` reads of a surface's ``fallback.blend`` section."""

    @property
    def mode(self) -> str: ...

    @property
    def fallback_weight(self) -> float: ...

    @property
    def rank_constant(self) -> float: ...

    @property
    def pool_complete_walk(self) -> float | None: ...


@dataclass(frozen=True)
class SlotsPolicy:
    mode: str = "slots"
    fallback_weight: float = 1.0
    rank_constant: float = 60.0
    pool_complete_walk: float | None = None


@dataclass(frozen=True)
class Answer:
    items: list[RecommendedItem]
    source: Source


@dataclass(frozen=True)
class MergeInputs:
    """What ``merge_answer`` ranks one answer from, before any blend policy is applied."""

    snap: GraphSnapshot
    walk: WalkResult | None
    chain: ChainResult | None
    k: int
    exclude: npt.NDArray[np.int32]


def graph_slots(k: int, walk: WalkResult | None, topup_below_coverage: float) -> int:
    """How many of the ``k`` places the walk's candidates may take.

    A complete walk (or one at least ``topup_below_coverage`` done) takes all of them; a walk cut
    short earlier takes a share proportional to how far it got, and the fallback fills the rest.
    """
    if walk is None:
        return 0
    if walk.stopped_by != "deadline" or walk.coverage >= topup_below_coverage:
        return k
    return math.ceil(k * walk.coverage / topup_below_coverage)


def merge_answer(
    snap: GraphSnapshot,
    walk: WalkResult | None,
    chain: ChainResult | None,
    k: int,
    topup_below_coverage: float,
    *,
    policy: BlendPolicy | None = None,
    exclude: npt.NDArray[np.int32] | None = None,
) -> Answer:
    """At most ``k`` items, best first, by the surface's blend ``policy`` (default: slots).

    Scores are each tier's own normalised score (1.0 = that tier's best) under ``slots``, the
    blended score under ``score``; ``source`` says which tier produced each item.
    """
    blend: BlendPolicy = policy if policy is not None else SlotsPolicy()
    banned: set[int] = set(exclude.tolist()) if exclude is not None else set()
    walk_entries = _walk_entries(walk, banned)
    chain_entries = _chain_entries(chain, banned)
    slots = graph_slots(k, walk, topup_below_coverage)
    if pooled_walk(blend) and walk is not None and slots >= k:
        rank = None if blend.mode == "score" else blend.rank_constant
        picked = _by_score(walk_entries, chain_entries, k, float(blend.pool_complete_walk or 0.0),
                           blend.fallback_weight, rank)
    elif blend.mode in ("score", "rank"):
        share = slots / k if k else 0.0
        rank = blend.rank_constant if blend.mode == "rank" else None
        picked = _by_score(walk_entries, chain_entries, k, share, blend.fallback_weight, rank)
    else:
        picked = _by_slots(walk_entries, chain_entries, k, slots)
    names = snap.items.names(item for item, _, _ in picked)
    items = [
        RecommendedItem(item_id=name, score=score, source=src)
        for name, (_, score, src) in zip(names, picked, strict=True)
    ]
    return Answer(items=items, source=_overall_source(items))


def _walk_entries(walk: WalkResult | None, banned: set[int]) -> list[Entry]:
    if walk is None:
        return []
    source: Source = "graph_partial" if walk.stopped_by == "deadline" else "graph"
    return [(item, float(score), source)
            for item, score in zip(walk.items.tolist(), walk.scores.tolist(), strict=True)
            if item not in banned]


def _chain_entries(chain: ChainResult | None, banned: set[int]) -> list[Entry]:
    if chain is None:
        return []
    return [(item, float(score), source)
            for item, score, source in zip(chain.items, chain.scores, chain.sources, strict=True)
            if item not in banned]


def _by_slots(walk: list[Entry], chain: list[Entry], k: int, slots: int) -> list[Entry]:
    picked: list[Entry] = []
    seen: set[int] = set()

    def take(entries: list[Entry]) -> None:
        for entry in entries:
            if len(picked) >= k:
                return
            if entry[0] not in seen:
                picked.append(entry)
                seen.add(entry[0])

    take(walk[:slots])
    take(chain)
    take(walk[slots:])  # the fallback came up short: use the rest of the walk after all
    return picked


def pooled_walk(policy: BlendPolicy | None) -> bool:
    """Whether ``policy`` pools fallback candidates with a walk that completed."""
    return policy is not None and policy.pool_complete_walk is not None


def _by_score(
    walk: list[Entry], chain: list[Entry], k: int, share: float, fallback_weight: float,
    rank_constant: float | None = None,
) -> list[Entry]:
    """Pool by normalised score, or by reciprocal rank when ``rank_constant`` is given."""
    fill = [entry for entry in chain if entry[2] == "popular"]
    ann = [entry for entry in chain if entry[2] != "popular"]
    # item -> (combined score, best contribution, its source, first position)
    pooled: dict[int, tuple[float, float, Source, int]] = {}
    position = 0
    for entries, weight in ((walk, share), (ann, fallback_weight * (1.0 - share))):
        top = max((score for _, score, _ in entries), default=0.0)
        for at, (item, score, source) in enumerate(entries):
            if rank_constant is not None:
                part = weight / (rank_constant + at + 1)
            else:
                part = weight * score / top if top > 0 else 0.0
            old = pooled.get(item)
            if old is None:
                pooled[item] = (part, part, source, position)
                position += 1
            else:
                best_part, best_source = (part, source) if part > old[1] else (old[1], old[2])
                pooled[item] = (old[0] + part, best_part, best_source, old[3])
    ranked = sorted(pooled.items(), key=lambda kv: (-kv[1][0], kv[1][3]))
    picked: list[Entry] = [(item, total, source) for item, (total, _, source, _) in ranked[:k]]
    for entry in fill:
        if len(picked) >= k:
            break
        if entry[0] not in pooled:
            picked.append(entry)
            pooled[entry[0]] = (0.0, 0.0, entry[2], position)
    return picked


def _overall_source(items: list[RecommendedItem]) -> Source:
    sources = {item.source for item in items}
    graph_like = sources & {"graph", "graph_partial"}
    if graph_like and sources - graph_like:
        return "blended"
    if graph_like:
        return "graph_partial" if "graph_partial" in graph_like else "graph"
    for source in ("ann_fallback", "trending"):
        if source in sources:
            return source
    return "popular"
