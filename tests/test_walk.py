"""The random walk: determinism, anytime stops, exclusions, overlay mixing, agreement with a
plain-Python reference walk, and seed selection/allocation."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from load.common.walk_reference import ReferenceWalker, graph_from_snapshot, item_totals
from recserver.graph import walk as walk_mod
from recserver.graph import walk_kernels as wk
from recserver.graph.config import WalkConfig
from recserver.graph.seeds import context_seeds, plan_walkers, user_seeds
from recserver.graph.snapshot import CsrSide, GraphSnapshot
from recserver.graph.walk import run_walk
from tests.graph_factory import build_snapshot, random_bipartite


@pytest.fixture(scope="module")
def snap() -> GraphSnapshot:
    """~50 users x 30 items; the overlay adds new edges and weight on existing pairs."""
    u, i, w = random_bipartite(50, 30, 320, seed=1)
    ou, oi, ow = random_bipartite(50, 30, 60, seed=2)
    return build_snapshot(u, i, w, overlay=(ou, oi, ow), n_users=50, n_items=30)


def seeds_of(*ids: int, weights: tuple[float, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    w = weights if weights is not None else (1.0,) * len(ids)
    return np.array(ids, np.int32), np.array(w, np.float32)


def visit_share(snapshot: GraphSnapshot, result: walk_mod.WalkResult) -> np.ndarray:
    share = np.zeros(snapshot.n_items)
    share[result.items] = result.scores
    return share / share.sum()


def test_same_seed_same_result_and_ranking_shape(snap: GraphSnapshot) -> None:
    cfg = WalkConfig(steps=20_000, n_p=0)
    seeds, weights = seeds_of(3, 7, 11, weights=(1.0, 2.0, 0.5))
    a = run_walk(snap, seeds, weights, cfg, k=10, rng_seed=42)
    b = run_walk(snap, seeds, weights, cfg, k=10, rng_seed=42)
    c = run_walk(snap, seeds, weights, cfg, k=10, rng_seed=43)
    assert np.array_equal(a.items, b.items) and np.array_equal(a.scores, b.scores)
    assert not np.array_equal(a.scores, c.scores)
    assert a.stopped_by == "completed" and a.coverage == 1.0
    assert a.steps_done == a.steps_planned == 20_000
    assert len(a.items) == 10 and a.scores[0] == 1.0 and np.all(np.diff(a.scores) <= 0)
    assert not set(a.items.tolist()) & {3, 7, 11}  # seeds are never candidates


def test_deadline_stops_between_batches(snap: GraphSnapshot) -> None:
    now = [0.0]
    batches: list[int] = []

    def on_batch(steps_done: int) -> None:
        batches.append(steps_done)
        now[0] += 1.0  # every batch "takes" one second

    cfg = WalkConfig(steps=200_000, n_p=0, batch_steps=2_048)
    # Batches start at t=0, 1, 2; the one that would start at 3 would end at 4 > 3.5. (The
    # half second leaves room for the learned scoring time the walk also keeps back.)
    res = run_walk(snap, *seeds_of(3), cfg, k=20, deadline=3.5, clock=lambda: now[0],
                   on_batch=on_batch)
    assert res.stopped_by == "deadline"
    assert len(batches) == 3 and batches == sorted(batches)
    assert res.steps_done == batches[-1] < res.steps_planned
    assert res.coverage == pytest.approx(res.steps_done / res.steps_planned) and res.coverage < 1
    assert len(res.items) > 0  # anytime: the candidates found so far


@pytest.mark.parametrize("batch_steps", [64, 2_048])
def test_batches_stay_within_batch_steps(snap: GraphSnapshot, batch_steps: int) -> None:
    done: list[int] = [0]
    cfg = WalkConfig(steps=50_000, n_p=0, batch_steps=batch_steps)
    run_walk(snap, *seeds_of(3, 9), cfg, k=5, on_batch=done.append)
    sizes = np.diff(done)
    assert done[-1] == 50_000 and sizes.max() <= batch_steps and sizes.min() > 0


def test_deadline_already_passed_walks_nothing(snap: GraphSnapshot) -> None:
    res = run_walk(snap, *seeds_of(3), WalkConfig(), k=5, deadline=1.0, clock=lambda: 2.0)
    assert (res.stopped_by, res.steps_done, res.coverage, len(res.items)) == ("deadline", 0, 0.0, 0)


def test_on_batch_exception_aborts_and_leaves_scratch_clean(snap: GraphSnapshot) -> None:
    def cancel(steps_done: int) -> None:
        raise TimeoutError("cancelled")

    with pytest.raises(TimeoutError):
        run_walk(snap, *seeds_of(3, 4), WalkConfig(), k=5, on_batch=cancel, exclude=np.array([5]))
    scratch = walk_mod._scratch()
    assert not scratch.busy and not scratch.total.any()
    run_walk(snap, *seeds_of(3, 4), WalkConfig(steps=5_000), k=5, exclude=np.array([5]))
    assert not scratch.total.any() and not scratch.acc.any() and not scratch.per_seed.any()


def test_early_stop(snap: GraphSnapshot) -> None:
    cfg = WalkConfig(steps=1_000_000, n_p=10, n_v=20)
    res = run_walk(snap, *seeds_of(3), cfg, k=30)
    assert res.stopped_by == "early_stop" and res.coverage == 1.0
    assert 0 < res.steps_done < res.steps_planned // 10
    full = run_walk(snap, *seeds_of(3), WalkConfig(steps=1_000_000, n_p=0), k=30)
    assert full.stopped_by == "completed" and full.steps_done == 1_000_000


def test_exclusion_and_invalid_ids(snap: GraphSnapshot) -> None:
    exclude = np.array([0, 1, 2, 999, -4], np.int32)
    seeds, weights = np.array([3, 500, -1, 3], np.int32), np.array([1, 1, 1, 1], np.float32)
    res = run_walk(snap, seeds, weights, WalkConfig(steps=20_000), k=30, exclude=exclude)
    assert res.stopped_by == "completed" and len(res.items) > 0
    assert not set(res.items.tolist()) & {0, 1, 2, 3}


@pytest.mark.parametrize(
    ("seeds", "weights"), [([], []), ([40, -2], [1.0, 1.0]), ([3], [0.0]), ([3], [np.nan])]
)
def test_no_seeds(snap: GraphSnapshot, seeds: list[int], weights: list[float]) -> None:
    res = run_walk(snap, np.array(seeds, np.int32), np.array(weights, np.float32),
                   WalkConfig(), k=10)
    assert (res.stopped_by, res.steps_done, res.coverage, len(res.items)) == ("no_seeds", 0, 0.0, 0)


def test_overlay_only_edge_is_walked() -> None:
    # Base: items 0,1 share user 0. Overlay: user 1 (new) links item 1 and item 2 (new).
    snap = build_snapshot([0, 0], [0, 1], [1.0, 1.0], overlay=([1, 1], [1, 2], [1.0, 1.0]))
    assert snap.base_items.n_rows == 2 and snap.n_items == 3
    res = run_walk(snap, *seeds_of(0), WalkConfig(steps=10_000, n_p=0), k=5)
    assert set(res.items.tolist()) == {1, 2}


def test_dead_ends_restart_and_terminate(snap: GraphSnapshot) -> None:
    # Users with no item edges: every move dead-ends at the user and restarts at the seed.
    broken = dataclasses.replace(snap, base_users=CsrSide.empty(50, True),
                                 over_users=CsrSide.empty(50, True))
    res = run_walk(broken, *seeds_of(3), WalkConfig(steps=10_000, n_p=0), k=5)
    assert res.stopped_by == "completed" and res.steps_done == 10_000 and len(res.items) == 0


def test_all_zero_weights_walk_uniformly() -> None:
    snap = build_snapshot([0, 0, 1, 1], [0, 1, 1, 2], [0.0, 0.0, 0.0, 0.0])
    res = run_walk(snap, *seeds_of(0), WalkConfig(steps=10_000, n_p=0), k=5)
    assert set(res.items.tolist()) == {1, 2}


def reference_visits(snap: GraphSnapshot, ids: np.ndarray, w: np.ndarray, cfg: WalkConfig,
                     seeds: tuple[int, ...]) -> np.ndarray:
    """Visit counts per item of the plain-Python walk over networkx, with the same plan."""
    plan = plan_walkers(snap, ids, w, cfg, cfg.steps // 2)
    assert plan is not None
    walkers = zip(plan.seed_item.tolist(), plan.seed_idx.tolist(), plan.moves.tolist(), strict=True)
    counts = ReferenceWalker(graph_from_snapshot(snap), rng_seed=9).walk(list(walkers),
                                                                         cfg.restart_prob)
    ref = np.zeros(snap.n_items)
    for item, c in item_totals(counts, exclude=seeds).items():
        ref[item] = c
    return ref


SEED_SETS = [((3,), (1.0,)), ((3, 7, 20), (1.0, 2.0, 0.7))]


@pytest.mark.parametrize(("seeds", "weights"), SEED_SETS)
@pytest.mark.parametrize("restart", [0.5, 0.8])
def test_matches_reference_walk(snap: GraphSnapshot, seeds: tuple[int, ...],
                                weights: tuple[float, ...], restart: float) -> None:
    """Total-variation distance between the visit distributions of the fast and the reference
    walk over the merged graph (networkx); sampling noise at 100k visits is about 0.01."""
    cfg = WalkConfig(steps=200_000, n_p=0, boost="sum", degree_beta=0.0, restart_prob=restart)
    ids, w = seeds_of(*seeds, weights=weights)
    fast = visit_share(snap, run_walk(snap, ids, w, cfg, k=snap.n_items, rng_seed=5))
    ref = reference_visits(snap, ids, w, cfg, seeds)
    ref /= ref.sum()
    assert 0.5 * np.abs(fast - ref).sum() < 0.03


@pytest.mark.parametrize(("seeds", "weights"), SEED_SETS)
def test_popularity_scaled_scores_match_the_reference(snap: GraphSnapshot, seeds: tuple[int, ...],
                                                      weights: tuple[float, ...]) -> None:
    """RP3beta scoring: the walk's scores against reference visits / degree ** beta."""
    beta = 0.7
    cfg = WalkConfig(steps=400_000, n_p=0, boost="sum", degree_beta=beta)
    ids, w = seeds_of(*seeds, weights=weights)
    fast = visit_share(snap, run_walk(snap, ids, w, cfg, k=snap.n_items, rng_seed=5))
    ref = reference_visits(snap, ids, w, cfg, seeds) / np.maximum(snap.item_degree, 1) ** beta
    ref /= ref.sum()
    assert 0.5 * np.abs(fast - ref).sum() < 0.03
    # The check discriminates: the unscaled visit shares are far from the reference.
    plain = visit_share(snap, run_walk(snap, ids, w, cfg.model_copy(update={"degree_beta": 0.0}),
                                       k=snap.n_items, rng_seed=5))
    assert 0.5 * np.abs(plain - ref).sum() > 0.06


def test_degree_beta_divides_the_same_visits_exactly(snap: GraphSnapshot) -> None:
    """Same random numbers, with and without the penalty: score ratios are degree ** -beta."""
    ids, w = seeds_of(3, 7, weights=(1.0, 2.0))
    base = WalkConfig(steps=20_000, n_p=0, degree_beta=0.0)
    plain = run_walk(snap, ids, w, base, k=snap.n_items, rng_seed=11)
    scaled = run_walk(snap, ids, w, base.model_copy(update={"degree_beta": 0.5}), k=snap.n_items,
                      rng_seed=11)
    assert set(plain.items.tolist()) == set(scaled.items.tolist())
    expect = dict(zip(plain.items.tolist(), plain.scores.astype(np.float64), strict=True))
    for item in expect:
        expect[item] /= max(int(snap.item_degree[item]), 1) ** 0.5
    best = max(expect.values())
    got = dict(zip(scaled.items.tolist(), scaled.scores.tolist(), strict=True))
    assert got == pytest.approx({i: v / best for i, v in expect.items()}, rel=1e-5)


def test_seed_weight_exponent_shares_moves_by_strength(snap: GraphSnapshot) -> None:
    ids, w = seeds_of(3, 7, weights=(1.0, 4.0))
    moves = {}
    for gamma in (0.0, 1.0):
        cfg = WalkConfig(seed_weight_exponent=gamma, seed_degree_exponent=0.0)
        plan = plan_walkers(snap, ids, w, cfg, 10_000)
        assert plan is not None
        per_seed = np.bincount(plan.seed_idx, weights=plan.moves)
        moves[gamma] = dict(zip(plan.seed_item[np.unique(plan.seed_idx, return_index=True)[1]]
                                .tolist(), per_seed.tolist(), strict=True))
    assert moves[0.0] == {3: 5_000, 7: 5_000}  # every seed alike
    assert moves[1.0] == {3: 2_000, 7: 8_000}  # by strength


def test_multi_hit_scores() -> None:
    # Seed 0 visits item 5 four times and item 6 once; seed 1 visits item 6 once.
    log_item = np.array([5, 5, 6, 5, 5, 6, -1], np.int32)
    log_start, log_end = np.array([0, 5]), np.array([5, 6])
    total = np.zeros(8, np.int32)
    total[5], total[6] = 4, 2
    touched = np.array([5, 6], np.int32)
    acc, per_seed = np.zeros(8), np.zeros(8, np.int32)
    args = (touched, 2, total, log_item, log_start, log_end)
    boosted = wk.score_touched(*args, True, acc, per_seed)
    assert boosted == pytest.approx([4.0, 4.0])  # (sqrt 4)^2 and (sqrt 1 + sqrt 1)^2
    assert wk.score_touched(*args, False, acc, per_seed) == pytest.approx([4.0, 2.0])
    assert not acc.any() and not per_seed.any()


def test_multi_hit_prefers_items_shared_by_seeds() -> None:
    # Seeds 0 (weight 1) and 1 (weight 0.3). Item 2 is reached only from seed 0, often; item 3
    # from both seeds: about 0.37 vs 0.21 + 0.09 of the visits, so "sum" ranks item 2 first and
    # multi-hit ((sqrt .21 + sqrt .09)^2 = 0.56 > 0.37) ranks item 3 first.
    users, items = [0, 0, 1, 1, 2, 2], [0, 2, 0, 3, 1, 3]
    snap = build_snapshot(users, items, [1.0, 9.0, 1.0, 1.0, 1.0, 1.0])
    cfg = WalkConfig(steps=100_000, n_p=0, restart_prob=0.9)
    seeds = seeds_of(0, 1, weights=(1.0, 0.3))
    res = {b: run_walk(snap, *seeds, cfg.model_copy(update={"boost": b}), k=4)
           for b in ("sum", "multi_hit")}
    assert res["sum"].items.tolist() == [2, 3]
    assert res["multi_hit"].items.tolist() == [3, 2]


def test_threads_walk_concurrently_with_private_scratch(snap: GraphSnapshot) -> None:
    cfg = WalkConfig(steps=50_000, n_p=0)
    jobs = [(seeds_of(s, s + 1), s) for s in range(0, 20, 2)]
    expected = [run_walk(snap, *sd, cfg, k=10, rng_seed=r).items.tolist() for sd, r in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(run_walk, snap, *sd, cfg, k=10, rng_seed=r) for sd, r in jobs]
        assert [f.result().items.tolist() for f in futures] == expected


def test_warm_up_runs() -> None:
    walk_mod.warm_up()


def test_growing_snapshot_reallocates_scratch(snap: GraphSnapshot) -> None:
    run_walk(snap, *seeds_of(3), WalkConfig(steps=2_000), k=5)
    bigger = build_snapshot([0, 0, 1], [0, 100, 100], [1.0, 1.0, 1.0])
    res = run_walk(bigger, *seeds_of(0), WalkConfig(steps=2_000, n_p=0), k=5)
    assert res.items.tolist() == [100] and walk_mod._scratch().total.shape[0] >= 101


def test_plan_walkers_allocation(snap: GraphSnapshot) -> None:
    cfg = WalkConfig(seed_degree_exponent=0.5, max_seeds=3)
    ids = np.array([3, 7, 20, 21, 3], np.int32)
    w = np.array([1.0, 2.0, 0.5, 0.1, 1.0], np.float32)  # 3 repeats: weights merge to 2.0
    plan = plan_walkers(snap, ids, w, cfg, 50_000)
    assert plan is not None and plan.n_seeds == 3 and set(plan.all_seeds) == {3, 7, 20, 21}
    moves = np.bincount(plan.seed_idx, weights=plan.moves)
    kept = np.unique(plan.seed_item)  # 21 (weakest) is dropped by max_seeds
    assert set(kept.tolist()) == {3, 7, 20} and moves.sum() == 50_000
    merged = {3: 2.0, 7: 2.0, 20: 0.5}
    expect = np.array([merged[s] * snap.item_degree[s] ** 0.5 for s in kept])
    got = np.array([moves[plan.seed_idx[plan.seed_item == s][0]] for s in kept])
    assert np.allclose(got / got.sum(), expect / expect.sum(), atol=1e-4)
    assert plan.moves.min() >= 1


def test_user_seeds_merge_overlay_and_rank() -> None:
    snap = build_snapshot([0, 0, 0, 1], [0, 1, 2, 2], [1.0, 3.0, 2.0, 1.0],
                          overlay=([0, 0], [0, 3], [2.5, 0.5]))
    items, weights = user_seeds(snap, 0, max_seeds=3)
    assert items.tolist() == [0, 1, 2] and weights.tolist() == pytest.approx([3.5, 3.0, 2.0])
    assert items.dtype == np.int32 and weights.dtype == np.float32
    for user in (-1, 2, 99):
        assert user_seeds(snap, user, 5)[0].shape == (0,)
    ids, w = context_seeds(snap, np.array([3, 1, 3, -1, 77]))
    assert ids.tolist() == [1, 3] and w.tolist() == [1.0, 1.0]
