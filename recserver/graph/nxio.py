"""networkx interop: the graph *model* for analysis and reference checks, never walked per request.

Nodes are ``("u", user_id)`` and ``("i", item_id)`` with a ``bipartite`` attribute (0 users,
1 items); edge attribute ``weight`` is the merged (base + overlay) weight at the snapshot's
reference time.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from recserver.graph.compact import build_sides
from recserver.graph.idmap import IdMap
from recserver.graph.snapshot import GraphSnapshot


def to_networkx(snap: GraphSnapshot) -> nx.Graph:
    """A weighted bipartite ``nx.Graph`` equal to the snapshot (base and overlay merged)."""
    graph = nx.Graph()
    users, items = snap.users, snap.items
    graph.add_nodes_from((("u", users.name(u)) for u in range(snap.n_users)), bipartite=0)
    graph.add_nodes_from((("i", items.name(i)) for i in range(snap.n_items)), bipartite=1)
    for side in (snap.base_users, snap.over_users):
        assert side.weight is not None
        counts = np.diff(side.indptr)
        rows = np.repeat(np.arange(side.n_rows), counts)
        nbrs = side.neighbours_all()
        for u, i, w in zip(rows.tolist(), nbrs.tolist(), side.weight.tolist(), strict=True):
            key_u, key_i = ("u", users.name(u)), ("i", items.name(i))
            if graph.has_edge(key_u, key_i):
                graph[key_u][key_i]["weight"] += w
            else:
                graph.add_edge(key_u, key_i, weight=w)
    return graph


def from_networkx(graph: nx.Graph, *, version: int = 1) -> GraphSnapshot:
    """A snapshot (everything in the base, empty overlay) from a bipartite graph as above.

    Nodes must be ``("u", id)`` / ``("i", id)`` pairs; edges need a non-negative ``weight``
    (default 1.0).
    """
    users, items = IdMap(), IdMap()
    for kind, name in graph.nodes:
        (users if kind == "u" else items).add(str(name))
    rows: list[tuple[int, int, float]] = []
    for a, b, data in graph.edges(data=True):
        user, item = (a, b) if a[0] == "u" else (b, a)
        if user[0] != "u" or item[0] != "i":
            raise ValueError(f"edge {a!r}-{b!r} does not join a user to an item")
        weight = float(data.get("weight", 1.0))
        if not weight >= 0:
            raise ValueError(f"edge {a!r}-{b!r} has weight {weight}; weights must be >= 0")
        rows.append((users.add(str(user[1])), items.add(str(item[1])), weight))
    rows.sort()
    u = np.array([r[0] for r in rows], dtype=np.int32)
    i = np.array([r[1] for r in rows], dtype=np.int32)
    w = np.array([r[2] for r in rows], dtype=np.float32)
    base = build_sides(u, i, w, len(users), len(items))
    empty = build_sides(u[:0], i[:0], w[:0], len(users), len(items))
    return GraphSnapshot(
        version=version,
        users=users,
        items=items,
        base_users=base.users,
        base_items=base.items,
        over_users=empty.users,
        over_items=empty.items,
        item_degree=np.diff(base.items.indptr).astype(np.int32),
        t_ref=0.0,
        built_at=0.0,
    )
