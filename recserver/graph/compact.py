"""Turning edge runs into the compact CSR sides of a snapshot (off the hot path).

``build_base`` merges everything, applies the sliding window and the pruning rules and builds both
directions with alias tables: the expensive path, taken at start and when the overlay grows past
``compact_overlay_fraction`` of the base. ``build_overlay`` builds sides only for the edges that
arrived since: cheap, and what makes a 1-second publish interval affordable.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recserver.graph.config import ALIAS_MAX_DEGREE, GraphConfig
from recserver.graph.kernels import by_column, make_side
from recserver.graph.prune import PruneReport, prune_edges
from recserver.graph.snapshot import CsrSide
from recserver.graph.store import EdgeRun, merge_runs

#: The smallest weight a snapshot gives a positive edge (float32's smallest normal number).
FLOAT32_FLOOR = float(np.finfo(np.float32).tiny)


def snapshot_weights(decayed: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    """Decayed weights as float32, a positive weight never rounding to 0.

    However old an edge, a snapshot keeps it walkable: a user whose every edge is years old
    still seeds walks (relative weights within the row), rather than showing weight 0.
    """
    weights = decayed.astype(np.float32)
    np.maximum(weights, FLOAT32_FLOOR, out=weights, where=decayed > 0)
    return weights


@dataclass(frozen=True)
class Sides:
    """Both directions built from one set of edges."""

    users: CsrSide
    items: CsrSide


def build_sides(
    users: npt.NDArray[np.int32],
    items: npt.NDArray[np.int32],
    weights: npt.NDArray[np.float32],
    n_users: int,
    n_items: int,
    item_side: npt.NDArray[np.bool_] | None = None,
) -> Sides:
    """CSR + alias sides; the input must be sorted by (user, item) (as ``EdgeRun`` keys are).

    The user side holds every edge; the item side only those ``item_side`` marks (all when
    None), so hub pruning can thin what walks traverse without touching users' profiles.
    """
    user_indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=n_users), out=user_indptr[1:])
    user_side = make_side(user_indptr, items, weights, keep_weights=True)
    # Regrouped by item with a counting sort: users stay sorted inside each item row, and no
    # argsort permutation or masked copies of the inputs are made.
    item_indptr, item_users, item_weights = by_column(users, items, weights, n_items, item_side)
    return Sides(
        users=user_side,
        items=make_side(item_indptr, item_users, item_weights, keep_weights=False),
    )


@dataclass(frozen=True)
class BaseBuild:
    """The result of a full compaction."""

    sides: Sides
    merged: EdgeRun  # the store's new ``main`` (windowed, unpruned)
    t_ref: float
    report: PruneReport
    seconds: float


def build_base(
    main: EdgeRun,
    pending: EdgeRun,
    cfg: GraphConfig,
    *,
    scale: float,
    t_ref: float,
    n_users: int,
    n_items: int,
) -> BaseBuild:
    """Merge, window, prune and build. ``scale`` turns epoch weights into weights at ``t_ref``.

    This is the peak of a build's memory (every edge is held by the inputs and by ``merged``),
    so temporaries are dropped as soon as the next step no longer needs them.
    """
    started = time.perf_counter()
    merged = merge_runs(main, pending)
    users, items = merged.users, merged.items
    decayed = merged.weight * scale
    pruned = prune_edges(
        users, items, decayed, merged.last_ts, cfg.prune, t_ref=t_ref, seed=cfg.seed
    )
    report, item_side, profile = pruned.report, pruned.keep, pruned.profile
    del pruned
    if not profile.all():
        users, items, item_side = users[profile], items[profile], item_side[profile]
        decayed = decayed[profile]
    weights = snapshot_weights(decayed)
    del decayed, profile
    sides = build_sides(users, items, weights, n_users, n_items, item_side=item_side)
    del users, items, weights, item_side
    window = cfg.prune.max_edge_age_days
    if window is not None and len(merged):
        # The sliding window drops edges from the store for good (they stay out of every later
        # snapshot); the other rules prune only the snapshot, so later builds can decide anew.
        fresh = merged.last_ts >= t_ref - window * 86_400.0
        if not fresh.all():
            merged = EdgeRun(merged.keys[fresh], merged.weight[fresh], merged.last_ts[fresh])
    return BaseBuild(sides, merged, t_ref, report, time.perf_counter() - started)


def overlay_too_dense(pending: EdgeRun) -> bool:
    """True when some overlay row would exceed what the alias layout holds (compact instead)."""
    if not len(pending):
        return False
    return bool(
        np.bincount(pending.users).max() > ALIAS_MAX_DEGREE
        or np.bincount(pending.items).max() > ALIAS_MAX_DEGREE
    )


def build_overlay(pending: EdgeRun, *, scale: float, n_users: int, n_items: int) -> Sides:
    """Sides for the edges (and extra weight on existing edges) that arrived since the base."""
    weights = snapshot_weights(pending.weight * scale)
    return build_sides(pending.users, pending.items, weights, n_users, n_items)
