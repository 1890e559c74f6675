"""Alias tables: building the packed edge words of a ``CsrSide`` (see ``graph.snapshot``).

Each row gets a Walker/Vose alias table so the walk picks a weighted neighbour in O(1) from one
uniform draw. The table is built in integer arithmetic: a row of degree ``d`` splits ``d * 65535``
units of probability mass between its edges (cumulative rounding, so the units sum exactly), and
Vose's pairing then runs on those integers. The packed table therefore encodes the quantised
distribution *exactly*: every edge's probability is within one unit, ``1 / (65535 d)``, of its
weight share, and no rounding error accumulates on edges that receive many aliases.

``by_column`` turns a row-sorted edge list into the other direction's CSR order (a stable
counting sort), which is how a snapshot's item side is built from the user-sorted edges.

The walk kernels themselves live in ``graph.walk_kernels``.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import numpy.typing as npt

from recserver.graph.config import ALIAS_MAX_DEGREE
from recserver.graph.snapshot import CsrSide, Float32Array, Int32Array, Int64Array, UInt64Array

#: Quantisation of the keep threshold: ``round(p * UNIT)`` fits the top 16 bits of a word.
UNIT = 65_535
_SHIFT_ALIAS = np.uint64(32)
_SHIFT_THRESHOLD = np.uint64(48)


@nb.njit(cache=True, nogil=True)
def _pack_alias_kernel(
    indptr: Int64Array,
    neighbours: Int32Array,
    weights: npt.NDArray[np.floating],
    max_degree: int,
    packed: UInt64Array,
    row_weight: Float32Array,
) -> None:
    # Scratch sized once for the widest row; every row reuses it.
    units = np.empty(max_degree, np.int64)
    small = np.empty(max_degree, np.int64)
    large = np.empty(max_degree, np.int64)
    keep = np.empty(max_degree, np.int64)
    alias = np.empty(max_degree, np.int64)
    for row in range(indptr.shape[0] - 1):
        lo = indptr[row]
        deg = indptr[row + 1] - lo
        total = 0.0
        for e in range(lo, lo + deg):
            w = np.float64(weights[e])
            # NaN, negative and infinite weights count as zero (the comparisons reject NaN).
            if w > 0.0 and w < np.inf:
                total += w
        row_weight[row] = total
        if deg == 0:
            continue
        mass = UNIT * deg
        if total > 0.0 and total < np.inf:
            # Cumulative rounding: each edge's units are within 1 of its exact share, and the
            # row's units add up to exactly ``mass`` (the last edge takes the remainder).
            scale = mass / total
            cum = 0.0
            prev = 0
            for e in range(deg):
                w = np.float64(weights[lo + e])
                if w > 0.0 and w < np.inf:
                    cum += w * scale
                now = mass if e == deg - 1 else min(np.int64(cum + 0.5), mass)
                units[e] = now - prev
                prev = now
        else:
            # An all-zero row: uniform (the mixture still gives it no weight unless both the
            # base and the overlay row are all-zero, see ``walk_kernels``).
            units[:deg] = UNIT
        n_small = 0
        n_large = 0
        for e in range(deg):
            keep[e] = UNIT
            alias[e] = e
            if units[e] < UNIT:
                small[n_small] = e
                n_small += 1
            else:
                large[n_large] = e
                n_large += 1
        # Vose: pair each under-full slot with an over-full edge that fills its remainder.
        # Integer units sum to exactly UNIT per slot, so the loop ends with both stacks empty
        # or only full slots left (their defaults: keep always).
        while n_small > 0 and n_large > 0:
            n_small -= 1
            s = small[n_small]
            big = large[n_large - 1]
            keep[s] = units[s]
            alias[s] = big
            units[big] -= UNIT - units[s]
            if units[big] < UNIT:
                n_large -= 1
                small[n_small] = big
                n_small += 1
        for e in range(deg):
            packed[lo + e] = (
                np.uint64(neighbours[lo + e])
                | (np.uint64(alias[e]) << _SHIFT_ALIAS)
                | (np.uint64(keep[e]) << _SHIFT_THRESHOLD)
            )


def _check_csr(
    indptr: Int64Array, neighbours: Int32Array, weights: npt.NDArray[np.floating]
) -> None:
    if indptr.ndim != 1 or indptr.shape[0] < 1 or indptr[0] != 0:
        raise ValueError("indptr must be a 1-d array starting at 0")
    nnz = int(indptr[-1])
    if neighbours.shape != (nnz,) or weights.shape != (nnz,):
        raise ValueError(
            f"indptr ends at {nnz} but there are {neighbours.shape[0]} neighbours and "
            f"{weights.shape[0]} weights"
        )
    degrees = np.diff(indptr)
    if degrees.size and int(degrees.min()) < 0:
        raise ValueError("indptr must be non-decreasing")
    if degrees.size and int(degrees.max()) > ALIAS_MAX_DEGREE:
        row = int(degrees.argmax())
        raise ValueError(
            f"row {row} has {int(degrees[row])} edges; alias slots are 16-bit, so at most "
            f"{ALIAS_MAX_DEGREE} (prune hubs with prune.max_item_degree / max_user_degree)"
        )
    if nnz and int(neighbours.min()) < 0:
        raise ValueError("neighbour ids must be >= 0")


def pack_alias_with_weights(
    indptr: npt.ArrayLike, neighbours: npt.ArrayLike, weights: npt.ArrayLike
) -> tuple[UInt64Array, Float32Array]:
    """Like :func:`pack_alias`, also returning each row's total (clipped) weight as float32."""
    ip = np.ascontiguousarray(indptr, dtype=np.int64)
    nbr = np.ascontiguousarray(neighbours, dtype=np.int32)
    w = np.asarray(weights)
    if w.dtype not in (np.float32, np.float64):
        w = w.astype(np.float64)
    w = np.ascontiguousarray(w)
    _check_csr(ip, nbr, w)
    packed = np.empty(nbr.shape[0], dtype=np.uint64)
    row_weight64 = np.empty(ip.shape[0] - 1, dtype=np.float64)
    max_degree = int(np.diff(ip).max()) if ip.shape[0] > 1 else 0
    _pack_alias_kernel(ip, nbr, w, max(max_degree, 1), packed, row_weight64)
    return packed, row_weight64.astype(np.float32)


def pack_alias(
    indptr: npt.ArrayLike, neighbours: npt.ArrayLike, weights: npt.ArrayLike
) -> UInt64Array:
    """Pack a CSR adjacency into one uint64 word per edge with a per-row alias table.

    Word layout: bits 0..31 neighbour id, 32..47 alias slot (offset inside the row), 48..63
    keep threshold ``round(p * 65535)``. Non-positive, NaN and infinite weights count as zero;
    a row whose weights are all zero samples uniformly. Raises ``ValueError`` for a row with
    more than ``ALIAS_MAX_DEGREE`` edges, negative neighbour ids or inconsistent lengths.
    """
    return pack_alias_with_weights(indptr, neighbours, weights)[0]


def make_side(
    indptr: npt.ArrayLike,
    neighbours: npt.ArrayLike,
    weights: npt.ArrayLike,
    keep_weights: bool,
) -> CsrSide:
    """Build one direction of a snapshot: alias-packed edges, row totals, optional edge weights.

    ``keep_weights`` stores the float32 edge weights too (the user side does, for seeding).
    """
    packed, row_weight = pack_alias_with_weights(indptr, neighbours, weights)
    return CsrSide(
        indptr=np.ascontiguousarray(indptr, dtype=np.int64),
        packed=packed,
        row_weight=row_weight,
        weight=np.ascontiguousarray(weights, dtype=np.float32) if keep_weights else None,
    )


@nb.njit(cache=True, nogil=True)
def _by_column_kernel(
    rows: Int32Array,
    cols: Int32Array,
    weights: Float32Array,
    keep: npt.NDArray[np.bool_],
    all_kept: bool,
    indptr: Int64Array,
    out_rows: Int32Array,
    out_weights: Float32Array,
) -> None:
    cursor = indptr[:-1].copy()
    for e in range(cols.shape[0]):
        if all_kept or keep[e]:
            c = cols[e]
            pos = cursor[c]
            out_rows[pos] = rows[e]
            out_weights[pos] = weights[e]
            cursor[c] = pos + 1


def by_column(
    rows: Int32Array,
    cols: Int32Array,
    weights: Float32Array,
    n_cols: int,
    keep: npt.NDArray[np.bool_] | None = None,
) -> tuple[Int64Array, Int32Array, Float32Array]:
    """The edges ``keep`` marks (all when None) regrouped by column: ``indptr`` over
    ``n_cols`` rows, each row's source rows and weights.

    Stable: edges sorted by (row, col) come out with each column's rows ascending, exactly as
    a stable argsort by column gives them, but with no permutation or filtered copies of the
    inputs (one pass writing the two outputs).
    """
    all_kept = keep is None
    mask = np.ones(0, dtype=bool) if keep is None else keep
    counts = np.bincount(cols if keep is None else cols[keep], minlength=n_cols)
    indptr = np.zeros(n_cols + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    nnz = int(indptr[-1])
    out_rows = np.empty(nnz, dtype=np.int32)
    out_weights = np.empty(nnz, dtype=np.float32)
    _by_column_kernel(np.ascontiguousarray(rows, dtype=np.int32),
                      np.ascontiguousarray(cols, dtype=np.int32),
                      np.ascontiguousarray(weights, dtype=np.float32), mask, all_kept, indptr,
                      out_rows, out_weights)
    return indptr, out_rows, out_weights
