"""networkx interop: a snapshot to a bipartite ``networkx`` graph and back."""

from __future__ import annotations

import numpy as np
import pytest

from recserver.graph.config import EventWeightsConfig, GraphConfig, PruneConfig
from recserver.graph.events import Event, EventColumns
from recserver.graph.live import LiveGraph
from recserver.graph.nxio import from_networkx, to_networkx


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
