"""Small helpers shared by the graph tests."""

from __future__ import annotations

from recserver.graph.live import LiveGraph


def merged_edges(live: LiveGraph) -> dict[tuple[str, str], float]:
    """Every (user, item) edge of the current snapshot with its weight, base and overlay summed."""
    snap = live.current
    out: dict[tuple[str, str], float] = {}
    for u in range(snap.n_users):
        items, weights = snap.user_items(u)
        for i, w in zip(items.tolist(), weights.tolist(), strict=True):
            key = (snap.users.name(u), snap.items.name(i))
            out[key] = out.get(key, 0.0) + w
    return out
