"""A plain-Python random walk with restarts over a networkx graph: the reference (and baseline).

Same semantics as ``recserver.graph.walk``: a move is item -> user -> item; the landing item is a
visit for the walker's seed; after it the walker restarts at its seed with probability
``restart_p``; a node with no usable edges sends the walker back to its seed (the move still
counts). Each node's neighbour list and cumulative weights are built lazily on first visit, so a
pick costs a ``bisect``: the best a plain-Python walk over networkx does without numpy.
"""

from __future__ import annotations

import bisect
import random
from collections import Counter
from collections.abc import Iterable, Sequence

import networkx as nx

from recserver.graph.snapshot import GraphSnapshot

Node = tuple[str, int]


def graph_from_snapshot(snapshot: GraphSnapshot) -> nx.Graph:
    """The merged (base + overlay) bipartite graph; parallel edges' weights are summed."""
    graph = nx.Graph()
    for side in (snapshot.base_users, snapshot.over_users):
        for user in range(side.n_rows):
            items = side.neighbours(user)
            weights = side.row_weights(user)
            add_edges(
                graph, ((user, int(i), float(w)) for i, w in zip(items, weights, strict=True))
            )
    return graph


def add_edges(graph: nx.Graph, edges: Iterable[tuple[int, int, float]]) -> None:
    """Add (user, item, weight) edges, summing the weight of a repeated pair."""
    for user, item, weight in edges:
        u, i = ("u", user), ("i", item)
        data = graph.get_edge_data(u, i)
        if data is None:
            graph.add_edge(u, i, weight=max(weight, 0.0))
        else:
            data["weight"] += max(weight, 0.0)


class ReferenceWalker:
    """Weighted random walks over ``graph`` with a seeded ``random.Random``."""

    def __init__(self, graph: nx.Graph, rng_seed: int = 0) -> None:
        self.graph = graph
        self.rng = random.Random(rng_seed)
        self._tables: dict[Node, tuple[list[Node], list[float]]] = {}

    def _table(self, node: Node) -> tuple[list[Node], list[float]]:
        table = self._tables.get(node)
        if table is None:
            adj = self.graph.adj.get(node, {})
            nbrs = list(adj)
            weights = [adj[n]["weight"] for n in nbrs]
            if not sum(weights) > 0:  # all-zero weights: uniform
                weights = [1.0] * len(nbrs)
            cum, run = [], 0.0
            for w in weights:
                run += w
                cum.append(run)
            table = (nbrs, cum)
            self._tables[node] = table
        return table

    def warm(self) -> None:
        """Build every node's table now, so a timed walk measures walking only."""
        for node in self.graph:
            self._table(node)

    def pick(self, node: Node) -> Node | None:
        """A weighted random neighbour of ``node``, None when it has none."""
        nbrs, cum = self._table(node)
        if not nbrs:
            return None
        idx = bisect.bisect_right(cum, self.rng.random() * cum[-1])
        return nbrs[min(idx, len(nbrs) - 1)]

    def walk(
        self, walkers: Sequence[tuple[int, int, int]], restart_p: float
    ) -> Counter[tuple[int, int]]:
        """Run ``(seed item, seed index, moves)`` walkers; visit counts per (seed index, item)."""
        counts: Counter[tuple[int, int]] = Counter()
        rand = self.rng.random
        for seed, seed_idx, moves in walkers:
            start: Node = ("i", seed)
            cur = start
            for _ in range(moves):
                user = self.pick(cur)
                item = self.pick(user) if user is not None else None
                if item is None:
                    cur = start
                    continue
                counts[(seed_idx, item[1])] += 1
                cur = start if rand() < restart_p else item
        return counts


def item_totals(counts: Counter[tuple[int, int]], exclude: Iterable[int] = ()) -> dict[int, float]:
    """Visits per item over all seeds, without ``exclude``."""
    skip = set(exclude)
    totals: dict[int, float] = {}
    for (_, item), c in counts.items():
        if item not in skip:
            totals[item] = totals.get(item, 0.0) + c
    return totals
