"""Numba kernels of the random walk: one batch of walker moves, scoring, scratch reset.

A *step* is one hop (one edge traversal); a *move* is item -> user -> item, two steps. Every
walker lands on an item once per move; that landing is a *visit*, counted for the walker's seed.

Speed comes from the memory system, not arithmetic: a hop costs a few cache misses (the row
headers of the base and overlay rows, the slot's alias word, the neighbour's word). The kernel
advances all active walkers stage by stage, one loop per stage (load row headers; pick row,
slot and coin; read the alias word; read the neighbour), so each loop's iterations are
independent and the CPU keeps many misses in flight; the loops stay small so that many
iterations fit in the out-of-order window. Each walker owns an xorshift64* state; one uniform
per hop picks the base/overlay row, the slot and the alias coin together (the fraction left
after each choice is still uniform). Measured on the 2-core dev box: splitting the header loads
from the arithmetic and the alias read from the slot pick made the walk about 1.5x faster than
one loop per hop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import numba as nb
import numpy as np
import numpy.typing as npt
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

_MASK_NBR = np.uint64(0xFFFF_FFFF)
_MASK_ALIAS = np.uint64(0xFFFF)
_SH_ALIAS = np.uint64(32)
_SH_KEEP = np.uint64(48)
_XS_A = np.uint64(12)
_XS_B = np.uint64(25)
_XS_C = np.uint64(27)
_XS_MUL = np.uint64(0x2545F4914F6CDD1D)
_SH_UNIT = np.uint64(11)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53: top 53 bits of the output -> [0, 1)
_KEEP_SCALE = 65535.0

#: ``counters`` slots shared between the kernel and ``graph.walk``.
N_ACTIVE, N_TOUCHED, HITS, MOVES_DONE, EARLY_STOP = range(5)
_DEAD = -(2**62)  # a position meaning "this walker's node has no edges"
# error_model="numpy": divisions give inf/nan instead of checking for zero on every hop.
_jit = nb.njit(cache=True, nogil=True, error_model="numpy")

#: Visit count given to seeds and excluded items so they never become candidates.
BLOCKED = -(2**30)


def _prefetch_intrinsic(typingctx, arr, idx):  # type: ignore[no-untyped-def]
    """Hint the CPU to start loading ``arr[idx]`` (no fault, no effect on results)."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(arr, idx), codegen


#: ``_prefetch(array, index)`` inside a kernel: an ``llvm.prefetch`` (read, high locality).
_prefetch = cast(Callable[[npt.NDArray[np.uint64], int], None], intrinsic(_prefetch_intrinsic))


@_jit
def _next(state: np.uint64) -> np.uint64:
    state ^= state >> _XS_A
    state ^= state << _XS_B
    state ^= state >> _XS_C
    return state


@_jit
def _unit(state: np.uint64) -> float:
    return np.float64((state * _XS_MUL) >> _SH_UNIT) * _TO_UNIT


@_jit
def seed_rng(seed: int, n: int) -> U64:
    """``n`` independent non-zero xorshift64* states from one seed (splitmix64)."""
    out = np.empty(n, np.uint64)
    z = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(0x632BE59BD9B4E019)
    for i in range(n):
        z += np.uint64(0x9E3779B97F4A7C15)
        x = z
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
        out[i] = x if x != np.uint64(0) else np.uint64(0x2545F4914F6CDD1D)
    return out


@_jit
def _hop(
    src: I32, dst: I32, n: int, rng: U64,
    b_ip: I64, b_pk: U64, b_rw: F32, o_ip: I64, o_pk: U64, o_rw: F32,
    tmp_i: npt.NDArray[np.int64], tmp_f: npt.NDArray[np.float64],
) -> None:
    """Move walkers ``0..n-1`` from node ``src[w]`` to a weighted neighbour ``dst[w]`` (-1: none).

    Positions in the overlay's packed array are stored as ``~index`` (negative), so one int64
    says which array to read; overlay picks are the minority, so that branch predicts well.
    """
    nb_rows = np.uint64(b_rw.shape[0])
    # An empty overlay (right after compaction) costs nothing: its headers are never read.
    no_rows = np.uint64(o_rw.shape[0] if o_pk.shape[0] > 0 else 0)
    b_lo, b_hi, o_lo, o_hi = tmp_i[0], tmp_i[1], tmp_i[2], tmp_i[3]
    tb_arr, to_arr = tmp_f[0], tmp_f[1]
    # Stage 1: row headers only, so many independent misses are in flight (the unsigned
    # compare also rejects -1, the mark of a walker that hit a dead end on the previous hop).
    for w in range(n):
        c = src[w]
        in_b = np.uint64(c) < nb_rows
        in_o = np.uint64(c) < no_rows
        b_lo[w] = b_ip[c] if in_b else 0
        b_hi[w] = b_ip[c + 1] if in_b else 0
        tb_arr[w] = b_rw[c] if in_b else 0.0
        o_lo[w] = o_ip[c] if in_o else 0
        o_hi[w] = o_ip[c + 1] if in_o else 0
        to_arr[w] = o_rw[c] if in_o else 0.0
    pos, lo, coin = tmp_i[4], tmp_i[5], tmp_f[2]
    # Stage 2: one uniform picks base or overlay row by weight, then the slot and the coin.
    for w in range(n):
        tb = tb_arr[w]
        to = to_arr[w]
        b_deg = b_hi[w] - b_lo[w]
        o_deg = o_hi[w] - o_lo[w]
        state = _next(rng[w])
        rng[w] = state
        if not tb + to > 0.0:
            # All-zero weights (or no edges): mix the rows by degree instead.
            tb = np.float64(b_deg)
            to = np.float64(o_deg)
        x = _unit(state) * (tb + to)
        # ``not to > 0`` also catches x rounding up to tb when the overlay row is empty.
        in_base = x < tb or not to > 0.0
        row_lo = b_lo[w] if in_base else o_lo[w]
        deg = b_deg if in_base else o_deg
        y = (x / tb if in_base else (x - tb) / to) * deg
        j = min(np.int64(y), deg - 1)
        coin[w] = (y - j) * _KEEP_SCALE
        p = _DEAD if deg <= 0 else (row_lo + j if in_base else ~(row_lo + j))
        pos[w] = p
        lo[w] = row_lo if in_base else ~row_lo
        # Start loading the slot's word now: stage 3 then finds it in cache (~13% faster).
        if p >= 0:
            _prefetch(b_pk, p)
        elif p != _DEAD:
            _prefetch(o_pk, ~p)
    # Stage 3: read the slot's word; keep the slot or jump to its alias (same row).
    for w in range(n):
        p = pos[w]
        if p != _DEAD:
            word = b_pk[p] if p >= 0 else o_pk[~p]
            alias = np.int64((word >> _SH_ALIAS) & _MASK_ALIAS)
            if not coin[w] < np.float64(word >> _SH_KEEP):
                p = lo[w] + alias if p >= 0 else lo[w] - alias
                pos[w] = p
                if p >= 0:
                    _prefetch(b_pk, p)
                else:
                    _prefetch(o_pk, ~p)
    # Stage 4: gather the neighbour ids.
    for w in range(n):
        p = pos[w]
        if p == _DEAD:
            dst[w] = -1
        else:
            word = b_pk[p] if p >= 0 else o_pk[~p]
            dst[w] = np.int32(word & _MASK_NBR)


@_jit
def walk_batch(
    item_b_ip: I64, item_b_pk: U64, item_b_rw: F32, item_o_ip: I64, item_o_pk: U64, item_o_rw: F32,
    user_b_ip: I64, user_b_pk: U64, user_b_rw: F32, user_o_ip: I64, user_o_pk: U64, user_o_rw: F32,
    cur: I32, seed_item: I32, seed_idx: I32, left: I64, rng: U64, counters: I64,
    total: I32, touched: I32, log_item: I32, log_end: I64,
    restart_p: float, n_p: int, n_v: int, max_rounds: int, log_visits: bool,
) -> None:
    """Advance the walk by up to ``max_rounds`` moves of every active walker.

    Walkers ``0..counters[N_ACTIVE]-1`` are active; per-walker arrays are compacted in place
    as walkers retire. Counts each non-blocked visit in ``total`` (newly touched items appended
    to ``touched``); when ``log_visits`` (multi-hit boosting) also appends the item to its seed's
    segment of ``log_item``, seed ``q``'s segment ending at ``log_end[q]``;
    restarts walkers at their seed with probability ``restart_p`` after each visit or at a
    dead end, and stops after the round in which ``n_p`` items reach ``n_v`` visits.
    """
    n_w = cur.shape[0]
    mid = np.empty(n_w, np.int32)
    nxt = np.empty(n_w, np.int32)
    tmp_i = np.empty((6, n_w), np.int64)
    tmp_f = np.empty((3, n_w), np.float64)
    n = counters[N_ACTIVE]
    n_touched = counters[N_TOUCHED]
    hits = counters[HITS]
    for _ in range(max_rounds):
        if n == 0 or counters[EARLY_STOP] != 0:
            break
        _hop(cur, mid, n, rng, item_b_ip, item_b_pk, item_b_rw,
             item_o_ip, item_o_pk, item_o_rw, tmp_i, tmp_f)
        _hop(mid, nxt, n, rng, user_b_ip, user_b_pk, user_b_rw,
             user_o_ip, user_o_pk, user_o_rw, tmp_i, tmp_f)
        for w in range(n):
            item = nxt[w]  # -1 after a dead end on either hop
            state = _next(rng[w])
            rng[w] = state
            restart = _unit(state) < restart_p
            if item >= 0:
                count = total[item] + 1
                if count > 0:  # blocked items stay hugely negative and are never counted
                    total[item] = count
                    if count == 1:
                        touched[n_touched] = item
                        n_touched += 1
                    if count == n_v:
                        hits += 1
                    if log_visits:
                        q = seed_idx[w]
                        log_item[log_end[q]] = item
                        log_end[q] += 1
            cur[w] = seed_item[w] if restart or item < 0 else item
            left[w] -= 1
        counters[MOVES_DONE] += n
        kept = 0
        for w in range(n):  # retire finished walkers, keeping the order (determinism)
            if left[w] > 0:
                cur[kept] = cur[w]
                seed_item[kept] = seed_item[w]
                seed_idx[kept] = seed_idx[w]
                left[kept] = left[w]
                rng[kept] = rng[w]
                kept += 1
        n = kept
        if n_p > 0 and hits >= n_p:
            counters[EARLY_STOP] = 1
    counters[N_ACTIVE] = n
    counters[N_TOUCHED] = n_touched
    counters[HITS] = hits


@_jit
def score_touched(
    touched: I32, n_touched: int, total: I32, log_item: I32, log_start: I64, log_end: I64,
    multi_hit: bool, acc: F64, per_seed: I32,
) -> F64:
    """Scores of ``touched[:n_touched]``: visit totals, or ``(sum_q sqrt(visits_q))**2``.

    Seed ``q``'s visits are ``log_item[log_start[q]:log_end[q]]``. ``acc`` (float64) and
    ``per_seed`` (int32) are all-zero scratch sized to the items, left all-zero again.
    """
    scores = np.empty(n_touched, np.float64)
    if not multi_hit:
        for t in range(n_touched):
            scores[t] = total[touched[t]]
        return scores
    for q in range(log_start.shape[0]):
        lo, hi = log_start[q], log_end[q]
        for i in range(lo, hi):
            per_seed[log_item[i]] += 1
        for i in range(lo, hi):
            item = log_item[i]
            c = per_seed[item]
            if c > 0:  # first occurrence of this item in the segment
                acc[item] += np.sqrt(np.float64(c))
                per_seed[item] = 0
    for t in range(n_touched):
        item = touched[t]
        scores[t] = acc[item] * acc[item]
        acc[item] = 0.0
    return scores


@_jit
def reset_counts(total: I32, touched: I32, n_touched: int, blocked: I32) -> None:
    """Zero the visit counters of the touched and blocked items (no O(n_items) clearing)."""
    for t in range(n_touched):
        total[touched[t]] = 0
    for b in range(blocked.shape[0]):
        total[blocked[b]] = 0
