"""Ranking the final answer from the walk's candidates and the fallback chain's."""

from __future__ import annotations

import math
from dataclasses import dataclass

from recserver.graph.snapshot import GraphSnapshot
from recserver.graph.walk import WalkResult
from recserver.service.fallback import ChainResult
from recserver.service.types import RecommendedItem, Source


@dataclass(frozen=True)
class Answer:
    items: list[RecommendedItem]
    source: Source


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
) -> Answer:
    """At most ``k`` items: the walk's best first, then the fallback's, duplicates removed.

    Scores are each tier's own normalised score (1.0 = that tier's best) and ``source`` says
    which tier produced each item.
    """
    picked: list[tuple[int, float, Source]] = []
    seen: set[int] = set()
    walk_rest: list[tuple[int, float, Source]] = []
    if walk is not None:
        source: Source = "graph_partial" if walk.stopped_by == "deadline" else "graph"
        slots = graph_slots(k, walk, topup_below_coverage)
        for rank, (item, score) in enumerate(
            zip(walk.items.tolist(), walk.scores.tolist(), strict=True)
        ):
            entry = (item, float(score), source)
            if rank < slots:
                picked.append(entry)
                seen.add(item)
            else:
                walk_rest.append(entry)
    if chain is not None:
        for item, score, fb_source in zip(chain.items, chain.scores, chain.sources, strict=True):
            if len(picked) >= k:
                break
            if item not in seen:
                picked.append((item, float(score), fb_source))
                seen.add(item)
    for entry in walk_rest:  # the fallback came up short: use the rest of the walk after all
        if len(picked) >= k:
            break
        picked.append(entry)
    names = snap.items.names(item for item, _, _ in picked)
    items = [
        RecommendedItem(item_id=name, score=score, source=src)
        for name, (_, score, src) in zip(names, picked, strict=True)
    ]
    return Answer(items=items, source=_overall_source(items))


def _overall_source(items: list[RecommendedItem]) -> Source:
    sources = {item.source for item in items}
    graph_like = sources & {"graph", "graph_partial"}
    if graph_like and sources - graph_like:
        return "blended"
    if graph_like:
        return "graph_partial" if "graph_partial" in graph_like else "graph"
    return "ann_fallback" if "ann_fallback" in sources else "popular"
