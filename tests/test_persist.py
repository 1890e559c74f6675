"""Snapshot save/load round trip, networkx interop, and refusing corrupt folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recserver.graph.config import EventWeightsConfig, GraphConfig, PruneConfig
from recserver.graph.events import Event, EventColumns
from recserver.graph.live import LiveGraph
from recserver.graph.nxio import from_networkx, to_networkx
from recserver.graph.persist import SnapshotFormatError, load_snapshot, save_snapshot
from recserver.graph.snapshot import GraphSnapshot


def two_part_graph() -> LiveGraph:
    cfg = GraphConfig(
        event_weights=EventWeightsConfig(transform="linear", half_life_days=None),
        prune=PruneConfig(hub_percentile=None),
        compact_overlay_fraction=1.0,
    )
    live = LiveGraph(cfg)
    rng = np.random.default_rng(3)
    events = [
        Event(f"u{rng.integers(30)}", f"i{rng.integers(20)}", "view", 1, float(k))
        for k in range(300)
    ]
    live.ingest(EventColumns.from_events(events))
    live.publish()
    live.ingest(EventColumns.from_events([Event("late", "i3", "purchase", 1, 999.0)]))
    live.publish()
    return live


def assert_same(a: GraphSnapshot, b: GraphSnapshot) -> None:
    assert a.version == b.version and a.t_ref == b.t_ref
    for name in ("base_users", "base_items", "over_users", "over_items"):
        sa, sb = getattr(a, name), getattr(b, name)
        assert np.array_equal(sa.indptr, sb.indptr)
        assert np.array_equal(sa.packed, sb.packed)
        assert np.array_equal(sa.row_weight, sb.row_weight)
        assert (sa.weight is None) == (sb.weight is None)
        if sa.weight is not None:
            assert np.array_equal(sa.weight, sb.weight)
    assert np.array_equal(a.item_degree, b.item_degree)
    assert a.users.names(range(a.n_users)) == b.users.names(range(b.n_users))
    assert a.items.names(range(a.n_items)) == b.items.names(range(b.n_items))


@pytest.mark.parametrize("mmap", [True, False])
def test_save_load_round_trip(tmp_path: Path, mmap: bool) -> None:
    snap = two_part_graph().current
    assert snap.over_users.nnz == 1
    save_snapshot(snap, tmp_path / "snap")
    loaded = load_snapshot(tmp_path / "snap", mmap=mmap)
    assert_same(snap, loaded)
    if mmap:
        assert isinstance(loaded.base_users.packed, np.memmap)


def test_save_replaces_an_older_snapshot_atomically(tmp_path: Path) -> None:
    live = two_part_graph()
    save_snapshot(live.current, tmp_path / "snap")
    live.ingest(EventColumns.from_events([Event("later", "i1", "view", 1, 1000.0)]))
    newer = live.publish()
    save_snapshot(newer, tmp_path / "snap")
    assert load_snapshot(tmp_path / "snap").version == newer.version
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap"]


def test_corrupt_snapshot_is_refused_with_the_file_named(tmp_path: Path) -> None:
    save_snapshot(two_part_graph().current, tmp_path / "snap")
    target = tmp_path / "snap" / "base_users.packed.npy"
    target.write_bytes(b"not a numpy file")
    with pytest.raises(SnapshotFormatError, match=r"base_users\.packed\.npy"):
        load_snapshot(tmp_path / "snap")


def test_missing_snapshot_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SnapshotFormatError, match=r"meta\.json"):
        load_snapshot(tmp_path / "nothing-here")


def test_networkx_round_trip_preserves_edges_and_weights() -> None:
    snap = two_part_graph().current
    graph = to_networkx(snap)
    assert graph.number_of_edges() == len({
        (u, int(i)) for u in range(snap.n_users) for i in snap.user_items(u)[0]
    })
    back = from_networkx(graph)
    again = to_networkx(back)
    assert set(graph.edges) == set(again.edges)
    for a, b, data in graph.edges(data=True):
        assert again[a][b]["weight"] == pytest.approx(data["weight"], rel=1e-6)
    # The late overlay edge is merged into the base of the rebuilt snapshot.
    assert graph.has_edge(("u", "late"), ("i", "i3"))


def test_from_networkx_rejects_non_bipartite_edges() -> None:
    import networkx as nx

    graph = nx.Graph()
    graph.add_edge(("u", "a"), ("u", "b"))
    with pytest.raises(ValueError, match="does not join a user to an item"):
        from_networkx(graph)
