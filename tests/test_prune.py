"""Each pruning rule, on a hand-made edge list."""

from __future__ import annotations

import numpy as np

from recserver.graph.config import GraphConfig, PruneConfig
from recserver.graph.events import Event, EventColumns
from recserver.graph.live import LiveGraph
from recserver.graph.prune import Pruned, PruneReport, prune_edges

DAY = 86_400.0


def arrays(rows: list[tuple[int, int, float, float]]):
    u = np.array([r[0] for r in rows], dtype=np.int32)
    i = np.array([r[1] for r in rows], dtype=np.int32)
    w = np.array([r[2] for r in rows], dtype=np.float64)
    t = np.array([r[3] for r in rows], dtype=np.float64)
    return u, i, w, t


OFF = {"hub_percentile": None}


def unpack(pruned: Pruned) -> tuple[np.ndarray, PruneReport]:
    return pruned.keep, pruned.report


def test_max_edge_age_drops_old_edges() -> None:
    u, i, w, t = arrays([(0, 0, 1, 0.0), (0, 1, 1, 9 * DAY), (1, 1, 1, 10 * DAY)])
    keep, report = unpack(prune_edges(u, i, w, t, PruneConfig(max_edge_age_days=2, **OFF),
                               t_ref=10 * DAY, seed=0))
    assert keep.tolist() == [False, True, True]
    assert report.removed_edges["max_edge_age"] == 1
    assert report.removed_nodes["max_edge_age"] == 1  # item 0 lost its only edge


def test_min_edge_weight() -> None:
    u, i, w, t = arrays([(0, 0, 0.1, 0), (0, 1, 2.0, 0), (1, 0, 0.5, 0)])
    keep, report = unpack(prune_edges(u, i, w, t, PruneConfig(min_edge_weight=0.5, **OFF),
                                       t_ref=0, seed=0))
    assert keep.tolist() == [False, True, True]
    assert report.removed_edges["min_edge_weight"] == 1


def test_user_degree_cap_keeps_strongest() -> None:
    u, i, w, t = arrays([(0, 0, 1, 0), (0, 1, 5, 0), (0, 2, 3, 0), (1, 0, 1, 0)])
    keep, report = unpack(prune_edges(u, i, w, t, PruneConfig(max_user_degree=2, **OFF),
                                       t_ref=0, seed=0))
    assert keep.tolist() == [False, True, True, True]
    assert report.removed_edges["max_user_degree"] == 1


def test_item_degree_cap_keeps_strongest() -> None:
    u, i, w, t = arrays([(0, 0, 1, 0), (1, 0, 9, 0), (2, 0, 4, 0), (2, 1, 1, 0)])
    keep, report = unpack(prune_edges(u, i, w, t, PruneConfig(max_item_degree=1, **OFF),
                                       t_ref=0, seed=0))
    assert keep.tolist() == [False, True, False, True]
    assert report.removed_edges["max_item_degree"] == 2
    assert report.removed_nodes["max_item_degree"] == 1  # user 0 is left with nothing


def test_hub_items_keep_a_weighted_sample() -> None:
    rng = np.random.default_rng(1)
    # Item 0 is a hub with 2,000 users; items 1..100 have 10 users each.
    rows = [(u, 0, 100.0 if u < 100 else 1.0, 0.0) for u in range(2_000)]
    rows += [(u, 1 + u % 100, 1.0, 0.0) for u in range(1_000)]
    u, i, w, t = arrays(rows)
    cfg = PruneConfig(hub_percentile=99.0, hub_min_degree=50)
    keep, report = unpack(prune_edges(u, i, w, t, cfg, t_ref=0, seed=int(rng.integers(100))))
    hub_kept = keep[i == 0]
    assert report.hub_threshold is not None and report.hub_threshold >= 50
    assert hub_kept.sum() == report.hub_threshold  # the hub is cut down to the threshold
    assert keep[i != 0].all()  # ordinary items are untouched
    # The sample is weighted: heavy edges (weight 100) survive far more often than light ones.
    heavy_share = hub_kept[:100].mean()
    light_share = hub_kept[100:].mean()
    assert heavy_share > 5 * light_share
    assert report.removed_edges["hub_sample"] == 2_000 - report.hub_threshold


def test_no_rule_fires_on_a_small_clean_graph() -> None:
    u, i, w, t = arrays([(0, 0, 1, 0), (1, 1, 1, 0)])
    keep, report = unpack(prune_edges(u, i, w, t, PruneConfig(), t_ref=0, seed=0))
    assert keep.all()
    assert report.edges_out == 2
    assert all(v == 0 for v in report.removed_edges.values())


def test_item_side_rules_never_drop_a_users_own_edges() -> None:
    # A hub (item 0) bought by 2,000 users, and a user-degree cap of 1 on user 5's extra items.
    rows = [(u, 0, 1.0, 0.0) for u in range(2_000)] + [(5, 1, 0.5, 0.0), (6, 2, 2.0, 0.0)]
    u, i, w, t = arrays(rows)
    pruned = prune_edges(u, i, w, t, PruneConfig(hub_percentile=50.0, hub_min_degree=10,
                                                 max_user_degree=1, max_item_degree=500),
                         t_ref=0, seed=3)
    assert pruned.keep[i == 0].sum() == 500  # walks leave the hub through a 500-edge sample
    # ... but every buyer still has the hub (user 6 keeps only its stronger item 2)
    assert pruned.profile[(i == 0) & (u != 6)].all()
    assert not pruned.profile[(u == 5) & (i == 1)].any()  # the user-side cap still applies
    assert pruned.profile[(u == 6) & (i == 2)].all()


def test_compacted_snapshot_keeps_every_profile_edge_of_hub_buyers() -> None:
    events = [Event(f"u{n}", "hub", "purchase", 1.0, 1_700_000_000.0 + n) for n in range(300)]
    events += [Event(f"u{n}", f"i{n % 7}", "purchase", 1.0, 1_700_000_000.0) for n in range(300)]
    graph = LiveGraph(GraphConfig(prune=PruneConfig(hub_percentile=50.0, hub_min_degree=20)))
    graph.ingest(EventColumns.from_events(events))
    snap = graph.publish(compact=True)
    hub = snap.items.get("hub")
    assert hub is not None
    assert snap.base_items.neighbours(hub).shape[0] < 100  # walks out of the hub: a sample
    for n in range(300):  # seeds, exclusions and DescribeUser: the whole profile
        uid = snap.users.get(f"u{n}")
        assert uid is not None and hub in snap.user_items(uid)[0].tolist()
