"""Query vectors: a user's from their recent interactions, a request's from its context items.

With ALS vectors (a ``FoldIn``), a user's vector is the ALS least-squares solution for the
user's ``recent`` strongest items, exactly what ALS computes for a user in training. Otherwise
it is the weighted mean of the vectors of the user's ``recent`` strongest items.
Edge weights in a snapshot are already time-decayed to the snapshot's reference time, so the
strongest items are the most (and most recently) interacted with, and the mean is time-decayed
without another pass over timestamps. The batch form (precompute) and the single form (compute
on a miss) select and weight items identically.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from recserver.ann.als import FoldIn
from recserver.ann.embeddings import interaction_matrix, unit_rows
from recserver.graph.snapshot import GraphSnapshot

Float32Array = npt.NDArray[np.float32]
Int32Array = npt.NDArray[np.int32]


def strongest_per_row(matrix: sp.csr_matrix, keep: int) -> sp.csr_matrix:
    """Each row's ``keep`` largest entries (ties: lower column first)."""
    matrix = matrix.tocsr()
    matrix.sort_indices()
    counts = np.diff(matrix.indptr)
    if counts.max(initial=0) <= keep:
        return matrix
    row_of = np.repeat(np.arange(matrix.shape[0]), counts)
    order = np.lexsort((matrix.indices, -matrix.data, row_of))
    rank = np.arange(order.shape[0]) - np.repeat(matrix.indptr[:-1], counts)
    kept = order[rank < keep]
    kept.sort()  # back to row order (rows stay contiguous, columns sorted within)
    indptr = np.zeros(matrix.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.minimum(counts, keep), out=indptr[1:])
    return sp.csr_matrix(
        (matrix.data[kept], matrix.indices[kept], indptr), shape=matrix.shape
    )


def user_matrix(snapshot: GraphSnapshot, recent: int) -> sp.csr_matrix:
    """Users x items, each row cut to the user's ``recent`` strongest items."""
    return strongest_per_row(interaction_matrix(snapshot), recent)


def user_vectors(
    matrix: sp.csr_matrix, item_vectors: Float32Array, users: npt.ArrayLike,
    fold: FoldIn | None = None,
) -> Float32Array:
    """Query vectors of ``users`` (rows of ``matrix`` from ``user_matrix``)."""
    return query_rows(matrix[np.asarray(users, dtype=np.int64)], item_vectors, fold)


def query_rows(rows: sp.csr_matrix, item_vectors: Float32Array,
               fold: FoldIn | None = None) -> Float32Array:
    """Query vectors of users given as rows of their (recent) items: ALS fold-in or unit mean."""
    if fold is not None:
        return fold.users(rows)
    return unit_rows(np.asarray(rows @ item_vectors, dtype=np.float32))


def user_vector(
    snapshot: GraphSnapshot, item_vectors: Float32Array, user: int, recent: int,
    fold: FoldIn | None = None,
) -> tuple[Float32Array, Int32Array]:
    """One user's query vector (zeros without history) and every item the user has."""
    items, weights = snapshot.user_items(user)
    if items.shape[0] == 0:
        return np.zeros(item_vectors.shape[1], np.float32), items
    uniq, inverse = np.unique(items, return_inverse=True)
    merged = np.bincount(inverse, weights=weights.astype(np.float64), minlength=uniq.shape[0])
    known = uniq < item_vectors.shape[0]  # items newer than the vectors have none
    order = np.lexsort((uniq[known], -merged[known]))[:recent]
    chosen, chosen_w = uniq[known][order], merged[known][order].astype(np.float32)
    if fold is not None:
        return fold.user(chosen), uniq.astype(np.int32)
    vector = (chosen_w[None, :] @ item_vectors[chosen]).astype(np.float32)
    return unit_rows(vector)[0], uniq.astype(np.int32)
