"""Seed selection (which items a walk starts from) and the per-seed step allocation.

Edge weights are already time-decayed when a snapshot is built, so a user's heaviest items are
the ones they interacted with most and most recently: those are the seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recserver.graph.arrayops import unique_inverse, unique_sorted
from recserver.graph.config import WalkConfig
from recserver.graph.snapshot import Float32Array, GraphSnapshot, Int32Array, Int64Array

#: Most walkers a query runs at once: enough independent cache misses in flight per stage,
#: few enough that one round (every walker moves once) stays a small fraction of a batch.
MAX_WALKERS = 1024
#: Walkers start at their seed, so very short walkers over-weight the seed's direct
#: neighbourhood; give each at least this many moves when the budget allows.
MIN_MOVES_PER_WALKER = 16


def user_seeds(
    snapshot: GraphSnapshot, user: int, max_seeds: int
) -> tuple[Int32Array, Float32Array]:
    """The user's ``max_seeds`` strongest items (base and overlay weights summed per item).

    Ordered by weight, strongest first (ties: lower item id). Unknown users or users without
    items give empty arrays.
    """
    if user < 0 or user >= snapshot.n_users or max_seeds <= 0:
        return np.empty(0, np.int32), np.empty(0, np.float32)
    items, weights = snapshot.user_items(user)
    if items.shape[0] == 0:
        return np.empty(0, np.int32), np.empty(0, np.float32)
    uniq, inverse = unique_inverse(items)
    merged = np.bincount(inverse, weights=weights.astype(np.float64), minlength=uniq.shape[0])
    order = np.lexsort((uniq, -merged))[:max_seeds]
    return uniq[order].astype(np.int32), merged[order].astype(np.float32)


def context_seeds(
    snapshot: GraphSnapshot, item_ids: npt.ArrayLike
) -> tuple[Int32Array, Float32Array]:
    """Context items as seeds: unique, inside ``[0, n_items)``, weight 1 each (sorted by id)."""
    ids = np.asarray(item_ids, dtype=np.int64).ravel()
    valid = unique_sorted(ids[(ids >= 0) & (ids < snapshot.n_items)]).astype(np.int32)
    return valid, np.ones(valid.shape[0], np.float32)


@dataclass(frozen=True)
class WalkPlan:
    """Walkers of one query: each walker's seed item, seed index and number of moves."""

    all_seeds: Int32Array  # every valid seed (walked or not): never returned as a candidate
    n_seeds: int  # seeds with moves; seed indices are 0..n_seeds-1
    seed_item: Int32Array  # per walker
    seed_idx: Int32Array  # per walker
    moves: Int64Array  # per walker, >= 1


def _apportion(total: int, shares: npt.NDArray[np.float64]) -> Int64Array:
    """Split ``total`` into integers proportional to ``shares`` (largest remainder)."""
    exact = shares * (total / shares.sum())
    out = np.floor(exact).astype(np.int64)
    short = total - int(out.sum())
    if short > 0:
        out[np.argsort(-(exact - out), kind="stable")[:short]] += 1
    return out


def plan_walkers(
    snapshot: GraphSnapshot,
    seeds: npt.ArrayLike,
    seed_weights: npt.ArrayLike,
    cfg: WalkConfig,
    moves: int,
) -> WalkPlan | None:
    """Split ``moves`` across seeds by ``weight ** a * degree ** b`` (Pixie).

    ``a`` is ``cfg.seed_weight_exponent`` (weights are time-decayed interaction strengths, so 1
    favours strong and recent seeds, 0 treats them alike), ``b`` ``cfg.seed_degree_exponent``.

    Invalid seeds (out of range, weight <= 0 or not finite) are dropped, duplicates merged, and
    only the ``cfg.max_seeds`` strongest kept. Seeds of degree 0 get no walkers. Each seed with
    moves gets at least one walker; a seed's moves are spread evenly over its walkers. At most
    ``cfg.batch_steps / 2`` walkers (unless there are more seeds), so one round of moves fits a
    batch. None when no seed can be walked.
    """
    ids = np.asarray(seeds, dtype=np.int64).ravel()
    weights = np.asarray(seed_weights, dtype=np.float64).ravel()
    if ids.shape != weights.shape:
        raise ValueError(f"{ids.shape[0]} seeds but {weights.shape[0]} seed weights")
    ok = (ids >= 0) & (ids < snapshot.n_items) & np.isfinite(weights) & (weights > 0)
    if not ok.any() or moves <= 0:
        return None
    uniq, inverse = unique_inverse(ids[ok])
    merged = np.bincount(inverse, weights=weights[ok], minlength=uniq.shape[0])
    all_seeds = uniq.astype(np.int32)
    if uniq.shape[0] > cfg.max_seeds:
        keep = np.lexsort((uniq, -merged))[: cfg.max_seeds]
        uniq, merged = uniq[keep], merged[keep]
    degree = np.zeros(uniq.shape[0], np.float64)
    known = uniq < snapshot.item_degree.shape[0]
    degree[known] = snapshot.item_degree[uniq[known]]
    strength = merged**cfg.seed_weight_exponent
    shares = np.where(degree > 0, strength * degree**cfg.seed_degree_exponent, 0.0)
    if not shares.sum() > 0:
        return None
    per_seed = _apportion(moves, shares)
    walked = per_seed > 0
    uniq, per_seed = uniq[walked], per_seed[walked]
    # One round moves every walker once (2 steps each), so a batch of ``batch_steps`` steps
    # holds at least one round only if walkers <= batch_steps / 2 (seeds permitting).
    cap = min(MAX_WALKERS, cfg.batch_steps // 2)
    n_walkers = max(uniq.shape[0], min(cap, moves // MIN_MOVES_PER_WALKER))
    walkers = np.clip((per_seed * n_walkers) // moves, 1, per_seed)
    seed_idx = np.repeat(np.arange(uniq.shape[0], dtype=np.int32), walkers)
    # Walker i of seed q gets moves_q // w_q moves, the first moves_q % w_q of them one more.
    first = np.concatenate([[0], np.cumsum(walkers)[:-1]])
    rank = np.arange(seed_idx.shape[0]) - first[seed_idx]
    base, extra = per_seed // walkers, per_seed % walkers
    return WalkPlan(
        all_seeds=all_seeds,
        n_seeds=int(uniq.shape[0]),
        seed_item=uniq[seed_idx].astype(np.int32),
        seed_idx=seed_idx,
        moves=(base[seed_idx] + (rank < extra[seed_idx])).astype(np.int64),
    )
