"""Pixie-style random walk with restarts over a ``GraphSnapshot``: the hot path's recommender.

Units: a **step** is one hop (one edge traversal); an item -> user -> item **move** is 2 steps.
``WalkConfig.steps`` and ``WalkResult.steps_*`` count steps. After every move the walker has
*visited* an item; it then returns to its seed with probability ``restart_prob`` (so
``restart_prob`` applies once per move, i.e. every second step). A walker at a node with no
edges restarts at its seed; that move still counts, so the work is bounded.

Multi-seed queries (Pixie): the planned moves are split across seeds in proportion to
``weight * degree ** seed_degree_exponent`` (sub-linear in degree, so hubs do not drown the
rest), visits are counted per seed, and ``boost="multi_hit"`` scores an item
``(sum over seeds of sqrt(visits))**2`` so items reached from several seeds rank higher.
``degree_beta`` divides each score by the item's degree to that power (RP3beta). Early
stopping ends the walk once ``n_p`` items have ``n_v`` visits each. Seeds and ``exclude`` items
are walked through but never counted or returned.

The walk is *anytime*: it runs in batches of about ``batch_steps`` steps and checks the deadline
between batches, so a deadline stop returns the candidates found so far with ``coverage < 1``.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from recserver.graph import walk_kernels as wk
from recserver.graph.config import WalkConfig
from recserver.graph.idmap import IdMap
from recserver.graph.kernels import make_side
from recserver.graph.recency import recency_weights
from recserver.graph.seeds import WalkPlan, plan_walkers
from recserver.graph.snapshot import CsrSide, Float32Array, GraphSnapshot, Int32Array

StopReason = Literal["completed", "early_stop", "deadline", "no_seeds"]


def seed_from_id(text: str) -> int:
    """A walk seed from a request id, the same in every process (``hash`` is salted per process,
    so two runs of one evaluation would walk with other random numbers)."""
    return zlib.crc32(text.encode()) & 0x7FFF_FFFF


@dataclass(frozen=True)
class WalkResult:
    """Ranked candidates of one walk and how the walk ended."""

    items: Int32Array  # ranked candidates, best first, len <= k
    scores: Float32Array  # score / max score (1.0 for the best); same length
    steps_done: int
    steps_planned: int
    coverage: float  # steps_done / steps_planned after a deadline stop, else 1.0 (0.0: no seeds)
    stopped_by: StopReason


class _Scratch:
    """Per-thread visit counters sized to the catalogue, kept all-zero between walks.

    Allocating and zeroing ``n_items``-sized arrays per query would cost more than the walk;
    instead each walk resets only the entries it touched.
    """

    def __init__(self) -> None:
        self.busy = False
        self.total = np.zeros(0, np.int32)
        self.acc = np.zeros(0, np.float64)
        self.per_seed = np.zeros(0, np.int32)
        self.touched = np.zeros(0, np.int32)
        self.log_item = np.zeros(0, np.int32)
        # Seconds per step done that scoring and ranking take after the last batch, learned
        # from this thread's walks: the walk stops early enough to finish them by the deadline.
        self.finish_s_per_step = 0.0

    def learn_finish_cost(self, seconds: float, steps_done: int) -> None:
        # Tiny walks say little about the cost per step (fixed overheads, a first JIT compile).
        if steps_done >= 1_024:
            sample = seconds / steps_done
            # Fast to rise (an overshoot is costly), slow to fall.
            rate = 0.5 if sample > self.finish_s_per_step else 0.05
            self.finish_s_per_step += rate * (sample - self.finish_s_per_step)

    def ensure(self, n_items: int, log_capacity: int) -> None:
        if self.total.shape[0] < n_items:  # a newer snapshot with more items: grow once
            self.total = np.zeros(n_items, np.int32)
            self.acc = np.zeros(n_items, np.float64)
            self.per_seed = np.zeros(n_items, np.int32)
            self.touched = np.zeros(n_items, np.int32)
        if self.log_item.shape[0] < log_capacity:
            self.log_item = np.zeros(log_capacity, np.int32)


_local = threading.local()


def _scratch() -> _Scratch:
    scratch: _Scratch | None = getattr(_local, "scratch", None)
    if scratch is None:
        scratch = _Scratch()
        _local.scratch = scratch
    # A walk started from inside another walk's callback on this thread gets its own buffers.
    return _Scratch() if scratch.busy else scratch


def _empty(planned: int) -> WalkResult:
    return WalkResult(
        items=np.empty(0, np.int32),
        scores=np.empty(0, np.float32),
        steps_done=0,
        steps_planned=planned,
        coverage=0.0,
        stopped_by="no_seeds",
    )


def run_walk(
    snapshot: GraphSnapshot,
    seeds: Int32Array,
    seed_weights: Float32Array,
    cfg: WalkConfig,
    *,
    k: int,
    deadline: float | None = None,
    exclude: Int32Array | None = None,
    rng_seed: int = 0,
    clock: Callable[[], float] = time.perf_counter,
    on_batch: Callable[[int], None] | None = None,
    keep: Callable[[Int32Array], np.ndarray] | None = None,
) -> WalkResult:
    """Walk from ``seeds`` and return the top ``k`` candidate items.

    Seeds outside ``[0, n_items)`` or with a non-positive weight are ignored; duplicates are
    merged (weights summed) and only the ``cfg.max_seeds`` strongest are walked. ``exclude``
    items are never returned, nor are candidates ``keep`` masks out (a catalogue filter: it
    runs over the candidates before the top ``k`` are cut). The walk stops when every planned
    step is done, on early stop, or before a batch that would end past ``deadline`` (judged by
    the last batch's duration).
    ``on_batch(steps_done)`` runs after each batch (an exception from it aborts the walk
    cleanly). Without a deadline the result depends only on the snapshot, the arguments and
    ``rng_seed``.
    """
    moves = (cfg.steps + 1) // 2
    plan = plan_walkers(snapshot, seeds, seed_weights, cfg, moves)
    if plan is None:
        return _empty(2 * moves)
    n_items = snapshot.n_items
    blocked = plan.all_seeds
    if exclude is not None and len(exclude):
        ex = np.asarray(exclude, dtype=np.int64)
        blocked = np.concatenate([blocked, ex[(ex >= 0) & (ex < n_items)].astype(np.int32)])
    multi_hit = cfg.boost == "multi_hit" and plan.n_seeds > 1
    # Multi-hit needs visits per seed: each seed logs into its own segment of the visit log,
    # sized by its planned moves (at most one visit per move).
    seed_moves = np.bincount(plan.seed_idx, weights=plan.moves, minlength=plan.n_seeds)
    log_start = np.zeros(plan.n_seeds, np.int64)
    log_start[1:] = np.cumsum(seed_moves[:-1])
    log_end = log_start.copy()
    scratch = _scratch()
    scratch.ensure(n_items, moves if multi_hit else 0)
    scratch.busy = True
    counters = np.zeros(5, np.int64)
    try:
        scratch.total[blocked] = wk.BLOCKED
        stopped = _run_batches(snapshot, plan, cfg, scratch, counters, log_end, multi_hit,
                               rng_seed, deadline, clock, on_batch)
        finish_started = clock()
        n_touched = int(counters[wk.N_TOUCHED])
        scores = wk.score_touched(scratch.touched, n_touched, scratch.total, scratch.log_item,
                                  log_start, log_end, multi_hit, scratch.acc,
                                  scratch.per_seed)
        items = scratch.touched[:n_touched].copy()
        if cfg.degree_beta > 0:
            scores = popularity_scaled(scores, items, snapshot.item_degree, cfg.degree_beta)
        recency = recency_weights(snapshot, items, cfg)
        if recency is not None:  # a churn surface: items nobody read lately drop behind
            scores = scores * recency
    finally:
        wk.reset_counts(scratch.total, scratch.touched, int(counters[wk.N_TOUCHED]), blocked)
        scratch.busy = False
    steps_done = 2 * int(counters[wk.MOVES_DONE])
    if keep is not None and items.shape[0]:
        allowed = keep(items)
        items, scores = items[allowed], scores[allowed]
    top_items, top_scores = _top_k(items, scores, k)
    scratch.learn_finish_cost(clock() - finish_started, steps_done)
    return WalkResult(
        items=top_items,
        scores=top_scores,
        steps_done=steps_done,
        steps_planned=2 * moves,
        coverage=steps_done / (2 * moves) if stopped == "deadline" else 1.0,
        stopped_by=stopped,
    )


def _run_batches(
    snapshot: GraphSnapshot,
    plan: WalkPlan,
    cfg: WalkConfig,
    scratch: _Scratch,
    counters: np.ndarray,
    log_end: np.ndarray,
    multi_hit: bool,
    rng_seed: int,
    deadline: float | None,
    clock: Callable[[], float],
    on_batch: Callable[[int], None] | None,
) -> StopReason:
    """Run kernel batches until done, early-stopped or past the deadline; return the reason."""
    n_walkers = plan.seed_item.shape[0]
    # The kernel compacts per-walker arrays in place as walkers retire: work on copies.
    cur = plan.seed_item.copy()
    seed_item = plan.seed_item.copy()
    seed_idx = plan.seed_idx.copy()
    left = plan.moves.copy()
    rng = wk.seed_rng(rng_seed, n_walkers)
    counters[wk.N_ACTIVE] = n_walkers
    bi, oi = snapshot.base_items, snapshot.over_items
    bu, ou = snapshot.base_users, snapshot.over_users
    # Built once: a batch of 2,048 steps takes ~100 us, so per-batch Python must stay tiny.
    fixed = (
        bi.indptr, bi.packed, bi.row_weight, oi.indptr, oi.packed, oi.row_weight,
        bu.indptr, bu.packed, bu.row_weight, ou.indptr, ou.packed, ou.row_weight,
        cur, seed_item, seed_idx, left, rng, counters,
        scratch.total, scratch.touched, scratch.log_item, log_end,
        cfg.restart_prob, cfg.n_p, cfg.n_v,
    )
    half_batch = cfg.batch_steps // 2
    walk_batch = wk.walk_batch
    # A batch is started only if it should end by the deadline: the last batch's duration
    # (hook included) predicts the next one, so the walk does not overshoot by a batch.
    last_batch_s = 0.0
    while True:
        n_active, early = int(counters[wk.N_ACTIVE]), counters[wk.EARLY_STOP]
        if n_active == 0:
            return "completed"
        if early:
            return "early_stop"
        started = clock()
        if deadline is not None:
            moves = int(counters[wk.MOVES_DONE]) + max(1, half_batch // n_active) * n_active
            finish_s = scratch.finish_s_per_step * 2 * moves
            if started >= deadline or started + last_batch_s + finish_s > deadline:
                return "deadline"
        walk_batch(*fixed, max(1, half_batch // n_active), multi_hit)
        if on_batch is not None:
            on_batch(2 * int(counters[wk.MOVES_DONE]))
        last_batch_s = clock() - started


def popularity_scaled(
    scores: np.ndarray, items: Int32Array, degree: Int32Array, beta: float
) -> np.ndarray:
    """``scores / degree ** beta`` (RP3beta's popularity penalty; degree 0 counts as 1).

    The walk's visit counts estimate how likely a user's random surfer reaches each item, which
    favours hubs by construction; dividing by popularity ranks items by how much more likely
    they are to be reached from this user than from anywhere (Paudel et al. 2017).
    """
    deg = np.ones(items.shape[0], np.float64)
    known = items < degree.shape[0]
    deg[known] = np.maximum(degree[items[known]], 1)
    return scores / deg**beta


def warm_up() -> None:
    """Compile (or load from numba's cache) every walk kernel on a two-edge graph.

    Call once at server start so the first request does not pay the JIT cost.
    """
    side_u = make_side(np.array([0, 2]), np.array([0, 1], np.int32), np.ones(2, np.float32), True)
    side_i = make_side(np.array([0, 1, 2]), np.zeros(2, np.int32), np.ones(2, np.float32), False)
    snap = GraphSnapshot(1, IdMap(["u"]), IdMap(["a", "b"]), side_u, side_i,
                         CsrSide.empty(1, True), CsrSide.empty(2, False),
                         np.ones(2, np.int32), 0.0, 0.0)
    seeds, weights = np.array([0, 1], np.int32), np.ones(2, np.float32)
    for boost in ("multi_hit", "sum"):
        run_walk(snap, seeds, weights, WalkConfig(steps=64, boost=boost), k=1)
    _scratch().finish_s_per_step = 0.0  # compile time is no guide to the scoring cost


def _top_k(items: Int32Array, scores: np.ndarray, k: int) -> tuple[Int32Array, Float32Array]:
    """Best ``k`` by score (ties: lower item id first), scores divided by the best one."""
    if k <= 0 or items.shape[0] == 0:
        return np.empty(0, np.int32), np.empty(0, np.float32)
    if items.shape[0] > k:
        part = np.argpartition(-scores, k - 1)[:k]
        items, scores = items[part], scores[part]
    order = np.lexsort((items, -scores))
    items, scores = items[order], scores[order]
    best = scores[0]
    norm = (scores / best).astype(np.float32) if best > 0 else np.zeros_like(scores, np.float32)
    return items.astype(np.int32, copy=False), norm
