"""Recency in the walk: a surface's candidates weighted by how recently anyone read them.

Where items churn (news, drops, short videos) an item's readers leave within hours, and the
walk's visit counts, which follow the whole decayed history, rank yesterday's hits above the
article read a minute ago. A surface that sets ``walk.recency_half_life_minutes`` weights each
candidate's score by the item's *recent activity*: its events
decayed with that half-life, the trending counts the builder already keeps and publishes with
every snapshot (``recserver.graph.trending``; no per-edge timestamps are stored). The weight
saturates, ``c / (c + RECENCY_SATURATION)``: an item with a single event just now weighs about
0.9, one with many about 1, one nobody read for a dozen half-lives nearly 0. So recency gates
rather than ranks by popularity (the walk still decides the order among live items), and a
brand-new item with a handful of events, reached through its first readers, outranks an old
heavy one on a churn surface, while a long half-life (days, on a purchase log) leaves the
walk's order as it was. ``RECENCY_FLOOR`` keeps dead items ranked by the walk among themselves,
behind every live one, so an answer never runs short for want of fresh items.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from recserver.graph.config import WalkConfig
from recserver.graph.snapshot import GraphSnapshot, Int32Array
from recserver.graph.trending import half_life_key

#: The count at which an item weighs one half: a single event within the last half-life is
#: "live" (it weighs >= 0.83), while one about five half-lives ago is already below 0.25.
RECENCY_SATURATION = 0.1
#: The weight of an item with no recent event at all (never zero: still ranked by the walk).
RECENCY_FLOOR = 1e-3


def recency_half_life_s(cfg: WalkConfig) -> float | None:
    """The walk's recency half-life in seconds; None when the surface sets none."""
    minutes = cfg.recency_half_life_minutes
    return None if minutes is None else minutes * 60.0


def recency_weights(
    snapshot: GraphSnapshot, items: Int32Array, cfg: WalkConfig
) -> npt.NDArray[np.float64] | None:
    """Each item's recency weight in ``[RECENCY_FLOOR, 1 + RECENCY_FLOOR)``, or None when the
    surface sets no recency or the snapshot carries no counts for its half-life (a builder that
    has not started counting it: the walk then ranks as without recency)."""
    half_life = recency_half_life_s(cfg)
    if half_life is None:
        return None
    counts = snapshot.trending.get(half_life_key(half_life))
    if counts is None:
        return None
    ids = np.asarray(items, dtype=np.int64)
    c = np.zeros(ids.shape[0], np.float64)
    known = (ids >= 0) & (ids < counts.shape[0])
    c[known] = counts[ids[known]]
    return c / (c + RECENCY_SATURATION) + RECENCY_FLOOR
