"""Pruning rules applied to the edge list when a compact snapshot is built.

Each rule removes edges, in this order, and is reported (edges removed, nodes left without
edges): sliding time window, minimum weight, per-user degree cap (strongest kept), hub sampling
(items above a degree percentile keep a weight-proportional sample, as Pixie prunes hubs), and
per-item degree cap (strongest kept; also bounds rows to what the alias layout can hold).

The last two rules thin only what a walk traverses *out of* an item (the item -> users side).
A user's own profile (the user -> items side: seeds, seen-item exclusions, DescribeUser) keeps
every edge the first three rules keep, so a purchase of a hub never vanishes from its buyer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from recserver.graph.config import PruneConfig

Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Pruned:
    """The edges each side keeps, and the report."""

    keep: Mask  # the item -> users side (what walks traverse out of items)
    profile: Mask  # the user -> items side (every rule but the item-side ones)
    report: PruneReport


@dataclass
class PruneReport:
    """What each rule removed."""

    edges_in: int = 0
    edges_out: int = 0
    removed_edges: dict[str, int] = field(default_factory=dict)
    removed_nodes: dict[str, int] = field(default_factory=dict)
    hub_threshold: int | None = None

    def summary(self) -> str:
        parts = [f"{rule}: -{n:,} edges" for rule, n in self.removed_edges.items() if n]
        kept = f"{self.edges_out:,}/{self.edges_in:,} edges kept"
        return kept + ("; " + ", ".join(parts) if parts else "")


#: Edges per chunk when drawing the hub sample's random numbers (bounds a temporary).
_DRAW_CHUNK = 1 << 20


def _n_nodes(ids: npt.NDArray[np.int32], mask: Mask) -> int:
    """Distinct ids among the edges ``mask`` marks."""
    return int(np.count_nonzero(np.bincount(ids[mask]))) if mask.any() else 0


def _rank_within_groups(
    groups: npt.NDArray[np.int32], key: npt.NDArray[np.float64]
) -> npt.NDArray[np.int64]:
    """Rank (0 = largest key) of each element within its group."""
    order = np.lexsort((-key, groups))
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    run_start = np.repeat(starts, np.diff(np.r_[starts, sorted_groups.shape[0]]))
    ranks = np.empty(groups.shape[0], dtype=np.int64)
    ranks[order] = np.arange(groups.shape[0]) - run_start
    return ranks


def _over_cap(groups: npt.NDArray[np.int32], active: Mask, cap: int) -> Mask | None:
    """Active edges whose group has more than ``cap`` active edges (None: no such group)."""
    counts = np.bincount(groups[active]) if active.any() else np.zeros(0, np.int64)
    crowded = counts > cap
    if not crowded.any():
        return None
    over = np.zeros(groups.shape[0], dtype=bool)
    # A per-group lookup gathered as bools: 1 byte an edge, not the 8 of ``counts[groups]``.
    np.take(crowded, groups, out=over, mode="clip")
    over &= active
    return over


def _cap(
    groups: npt.NDArray[np.int32], key: npt.NDArray[np.float64], active: Mask, cap: int
) -> Mask:
    """Active edges that fall outside the ``cap`` largest ``key`` of their group.

    Only groups over the cap are ranked (a few hubs): ranks are per group, so the result is
    the same, and ranking every edge cost ~80 B/edge of temporaries at a 10M-event build.
    """
    removed = np.zeros(groups.shape[0], dtype=bool)
    over = _over_cap(groups, active, cap)
    if over is not None:
        removed[over] = _rank_within_groups(groups[over], key[over]) >= cap
    return removed


def _hub_sample(
    items: npt.NDArray[np.int32],
    weights: npt.NDArray[np.float64],
    keep: Mask,
    threshold: int,
    seed: int,
) -> Mask:
    """Kept edges of items above ``threshold`` edges that a weighted sample drops.

    Efraimidis-Spirakis: the ``threshold`` largest u ** (1 / w) form a weighted sample without
    replacement; log(u) / w is the same order and avoids underflow. One uniform draw per kept
    edge, in edge order, but only the hubs' draws are kept: the sample matches drawing them all
    at once, without an 8 B/edge array of draws and keys.
    """
    removed = np.zeros(items.shape[0], dtype=bool)
    over = _over_cap(items, keep, threshold)
    if over is None:
        return removed
    rng = np.random.default_rng(seed)
    draws = np.empty(int(over.sum()), dtype=np.float64)
    filled = 0
    for start in range(0, items.shape[0], _DRAW_CHUNK):
        kept = keep[start : start + _DRAW_CHUNK]
        u = rng.random(int(kept.sum()))
        mine = u[over[start : start + _DRAW_CHUNK][kept]]  # over implies kept
        draws[filled : filled + mine.shape[0]] = mine
        filled += mine.shape[0]
    np.maximum(draws, 1e-300, out=draws)
    np.log(draws, out=draws)
    draws /= np.maximum(weights[over], 1e-300)
    removed[over] = _rank_within_groups(items[over], draws) >= threshold
    return removed


def prune_edges(
    users: npt.NDArray[np.int32],
    items: npt.NDArray[np.int32],
    weights: npt.NDArray[np.float64],
    last_ts: npt.NDArray[np.float64],
    cfg: PruneConfig,
    *,
    t_ref: float,
    seed: int,
) -> Pruned:
    """Masks of edges each side keeps, and the report. ``weights`` are decayed to ``t_ref``.

    Rules work on boolean masks (1 byte an edge), never on index or gathered copies of the
    edge arrays: this runs at the memory peak of a build, beside every edge held twice.
    """
    n = users.shape[0]
    report = PruneReport(edges_in=n)
    keep = np.ones(n, dtype=bool)

    def apply(rule: str, removed: Mask) -> None:
        """Drop the kept edges ``removed`` marks (a subset of ``keep``) and report them."""
        count = int(removed.sum())
        report.removed_edges[rule] = count
        if count == 0:
            report.removed_nodes[rule] = 0
            return
        before = _n_nodes(users, keep) + _n_nodes(items, keep)
        keep[removed] = False
        report.removed_nodes[rule] = before - _n_nodes(users, keep) - _n_nodes(items, keep)

    if cfg.max_edge_age_days is not None:
        apply("max_edge_age", keep & ~(last_ts >= t_ref - cfg.max_edge_age_days * 86_400.0))
    if cfg.min_edge_weight > 0:
        apply("min_edge_weight", keep & ~(weights >= cfg.min_edge_weight))
    apply("max_user_degree", _cap(users, weights, keep, cfg.max_user_degree))
    profile = keep.copy()
    if cfg.hub_percentile is not None:
        degree = np.bincount(items[keep]) if keep.any() else np.zeros(0, np.int64)
        present = degree[degree > 0]
        if present.shape[0]:
            threshold = max(cfg.hub_min_degree, int(np.percentile(present, cfg.hub_percentile)))
            report.hub_threshold = threshold
            apply("hub_sample", _hub_sample(items, weights, keep, threshold, seed))
    apply("max_item_degree", _cap(items, weights, keep, cfg.max_item_degree))
    report.edges_out = int(keep.sum())
    return Pruned(keep, profile, report)
