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


def _n_nodes(ids: npt.NDArray[np.int32]) -> int:
    return int(np.count_nonzero(np.bincount(ids))) if ids.shape[0] else 0


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


def _cap(groups: npt.NDArray[np.int32], key: npt.NDArray[np.float64], cap: int) -> Mask:
    """Keep the ``cap`` elements with the largest ``key`` in each group."""
    if groups.shape[0] == 0:
        return np.ones(0, dtype=bool)
    counts = np.bincount(groups)
    if counts.max() <= cap:
        return np.ones(groups.shape[0], dtype=bool)
    # Rank only the groups over the cap (a few hubs): ranks are per group, so the result is the
    # same, and ranking every edge cost ~80 B/edge of temporaries at a 10M-event build.
    over = counts[groups] > cap
    keep = np.ones(groups.shape[0], dtype=bool)
    keep[over] = _rank_within_groups(groups[over], key[over]) < cap
    return keep


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
    """Masks of edges each side keeps, and the report. ``weights`` are decayed to ``t_ref``."""
    n = users.shape[0]
    report = PruneReport(edges_in=n)
    keep = np.ones(n, dtype=bool)

    def apply(rule: str, rule_keep: Mask, idx: npt.NDArray[np.int64]) -> None:
        removed = int((~rule_keep).sum())
        report.removed_edges[rule] = removed
        if removed == 0:
            report.removed_nodes[rule] = 0
            return
        before = _n_nodes(users[idx]) + _n_nodes(items[idx])
        keep[idx[~rule_keep]] = False
        after = idx[rule_keep]
        report.removed_nodes[rule] = before - _n_nodes(users[after]) - _n_nodes(items[after])

    if cfg.max_edge_age_days is not None:
        idx = np.flatnonzero(keep)
        apply("max_edge_age", last_ts[idx] >= t_ref - cfg.max_edge_age_days * 86_400.0, idx)
    if cfg.min_edge_weight > 0:
        idx = np.flatnonzero(keep)
        apply("min_edge_weight", weights[idx] >= cfg.min_edge_weight, idx)
    idx = np.flatnonzero(keep)
    apply("max_user_degree", _cap(users[idx], weights[idx], cfg.max_user_degree), idx)
    profile = keep.copy()
    if cfg.hub_percentile is not None:
        idx = np.flatnonzero(keep)
        degree = np.bincount(items[idx])
        present = degree[degree > 0]
        if present.shape[0]:
            threshold = max(cfg.hub_min_degree, int(np.percentile(present, cfg.hub_percentile)))
            report.hub_threshold = threshold
            # Efraimidis-Spirakis: the `threshold` largest u ** (1 / w) form a weighted sample
            # without replacement; log(u) / w is the same order and avoids underflow.
            rng = np.random.default_rng(seed)
            u = rng.random(idx.shape[0])
            w = np.maximum(weights[idx], 1e-300)
            sample_key = np.log(np.maximum(u, 1e-300)) / w
            apply("hub_sample", _cap(items[idx], sample_key, threshold), idx)
    idx = np.flatnonzero(keep)
    apply("max_item_degree", _cap(items[idx], weights[idx], cfg.max_item_degree), idx)
    report.edges_out = int(keep.sum())
    return Pruned(keep, profile, report)
