"""The immutable, compact graph the hot path reads.

Layout (one ``CsrSide`` per direction, user->items and item->users):

* ``indptr``  int64 ``[n_src + 1]``: row ``r`` holds edges ``indptr[r]:indptr[r+1]``.
* ``packed``  uint64 ``[nnz]``, one word per edge, so a neighbour pick touches one cache line:
  bits 0..31 neighbour id (int32 range), bits 32..47 the alias slot (an offset inside the row),
  bits 48..63 the alias keep-threshold ``round(p * 65535)``. Picking a weighted neighbour is O(1):
  draw ``x = u * degree``, slot ``j = floor(x)``, keep ``j`` if ``frac(x) * 65535 < threshold``,
  else jump to the alias slot (Walker/Vose alias method, quantised to 16 bits).
* ``row_weight`` float32 ``[n_src]``: total weight of each row (needed to mix base and overlay).
* ``weight`` float32 ``[nnz]``: edge weights, stored on the user side only; the item side's
  distribution lives in its alias table. Both directions and weights: 20 bytes an edge.

A ``GraphSnapshot`` is a compact *base* plus a small *overlay* of edges (and extra weight on
existing edges) that arrived since the base was built. A walk step on node ``c`` picks the base row
with probability ``base_w / (base_w + overlay_w)``, else the overlay row: the result is exactly the
distribution of the merged graph, without rebuilding the base for a small delta.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from recserver.catalog.view import CatalogView
from recserver.graph.idmap import IdMap

Int64Array = npt.NDArray[np.int64]
Int32Array = npt.NDArray[np.int32]
UInt64Array = npt.NDArray[np.uint64]
Float32Array = npt.NDArray[np.float32]

NEIGHBOUR_MASK = np.uint64(0xFFFF_FFFF)


@dataclass(frozen=True)
class CsrSide:
    """One direction of the bipartite graph in compressed-sparse-row form with alias tables."""

    indptr: Int64Array
    packed: UInt64Array
    row_weight: Float32Array
    weight: Float32Array | None = None

    @property
    def n_rows(self) -> int:
        return int(self.indptr.shape[0] - 1)

    @property
    def nnz(self) -> int:
        return int(self.packed.shape[0])

    def neighbours(self, row: int) -> Int32Array:
        """Neighbour ids of ``row`` (empty when the row is out of range)."""
        if row < 0 or row >= self.n_rows:
            return np.empty(0, dtype=np.int32)
        lo, hi = self.indptr[row], self.indptr[row + 1]
        return (self.packed[lo:hi] & NEIGHBOUR_MASK).astype(np.int32)

    def neighbours_all(self) -> Int32Array:
        """Neighbour id of every edge, in row order."""
        return (self.packed & NEIGHBOUR_MASK).astype(np.int32)

    def row_weights(self, row: int) -> Float32Array:
        """Edge weights of ``row``; only the user side stores them."""
        if self.weight is None:
            raise ValueError("this side stores no per-edge weights (item side)")
        if row < 0 or row >= self.n_rows:
            return np.empty(0, dtype=np.float32)
        return self.weight[self.indptr[row] : self.indptr[row + 1]]

    def nbytes(self) -> int:
        total = self.indptr.nbytes + self.packed.nbytes + self.row_weight.nbytes
        return total + (self.weight.nbytes if self.weight is not None else 0)

    @staticmethod
    def empty(n_rows: int, with_weight: bool) -> CsrSide:
        return CsrSide(
            indptr=np.zeros(n_rows + 1, dtype=np.int64),
            packed=np.empty(0, dtype=np.uint64),
            row_weight=np.zeros(n_rows, dtype=np.float32),
            weight=np.empty(0, dtype=np.float32) if with_weight else None,
        )


@dataclass(frozen=True)
class GraphSnapshot:
    """An immutable view of the graph; swapped in atomically by the publisher.

    Node ids are dense: users ``0..n_users-1``, items ``0..n_items-1``. The base may cover fewer
    nodes than the overlay (nodes first seen after the base was built have empty base rows).
    """

    version: int
    users: IdMap
    items: IdMap
    base_users: CsrSide  # user -> items, with weights
    base_items: CsrSide  # item -> users
    over_users: CsrSide  # overlay user -> items (covers all n_users rows)
    over_items: CsrSide  # overlay item -> users (covers all n_items rows)
    item_degree: Int32Array  # merged degree per item (popularity, seed step allocation)
    t_ref: float  # timestamp the weights are decayed to (newest event seen at build)
    built_at: float  # wall-clock time of publication
    stats: dict[str, float] = field(default_factory=dict)
    #: hidden, expired and category rules per item (``recserver.catalog``); None: no rules
    catalog: CatalogView | None = None
    #: trending counts per item by half-life key (``recserver.graph.trending``), decayed to
    #: the newest event at publish; empty when no surface uses the trending tier
    trending: dict[str, Float32Array] = field(default_factory=dict)
    #: the event-log position every event and record it holds reaches: what its publish made
    #: visible ("" when the graph is not fed from a log)
    log_position: str = ""

    @property
    def n_users(self) -> int:
        return self.over_users.n_rows

    @property
    def n_items(self) -> int:
        return self.over_items.n_rows

    @property
    def n_edges(self) -> int:
        return self.base_users.nnz + self.over_users.nnz

    def user_items(self, user: int) -> tuple[Int32Array, Float32Array]:
        """The user's items and their weights, base and overlay together (may repeat an item)."""
        items = np.concatenate(
            [self.base_users.neighbours(user), self.over_users.neighbours(user)]
        )
        weights = np.concatenate(
            [self.base_users.row_weights(user), self.over_users.row_weights(user)]
        )
        return items, weights

    def nbytes(self) -> int:
        """Bytes held by the hot-path arrays (not the id maps)."""
        sides = (self.base_users, self.base_items, self.over_users, self.over_items)
        return sum(side.nbytes() for side in sides) + self.item_degree.nbytes
