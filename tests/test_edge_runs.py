"""Merging edge runs by splicing gives what sorting everything gives."""

from __future__ import annotations

import numpy as np

from recserver.graph.edge_runs import EdgeRun, _aggregate, merge_runs, merge_sorted
from recserver.graph.kernels import by_column


def _loose(rng: np.random.Generator, n: int, key_space: int) -> EdgeRun:
    keys = rng.integers(0, key_space, n).astype(np.int64)
    return EdgeRun(keys, rng.random(n), rng.integers(0, 1000, n).astype(np.float64))


def test_splice_merge_equals_sorting_the_concatenation():
    rng = np.random.default_rng(5)
    for n_big, n_small, space in ((5000, 300, 8000), (200, 200, 300), (1, 50, 60), (50, 1, 60)):
        loose = [_loose(rng, n_big, space), _loose(rng, n_small, space), _loose(rng, 40, space)]
        proper = [merge_runs(r) for r in loose]  # each aggregated into a sorted, unique run
        want = _aggregate(loose)
        got = merge_runs(*proper)
        np.testing.assert_array_equal(got.keys, want.keys)
        np.testing.assert_allclose(got.weight, want.weight, rtol=1e-12)
        np.testing.assert_array_equal(got.last_ts, want.last_ts)
        mixed = merge_runs(proper[0], loose[1], proper[2])  # proper and loose together
        np.testing.assert_array_equal(mixed.keys, want.keys)
        np.testing.assert_allclose(mixed.weight, want.weight, rtol=1e-12)


def test_merge_never_modifies_its_inputs():
    rng = np.random.default_rng(6)
    big, small = merge_runs(_loose(rng, 500, 600)), merge_runs(_loose(rng, 100, 600))
    before = [a.copy() for a in (big.keys, big.weight, big.last_ts, small.weight)]
    merge_sorted(big, small)
    for a, b in zip(before, (big.keys, big.weight, big.last_ts, small.weight), strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(merge_runs()) == 0 and merge_runs(EdgeRun.empty(), big) is big


def test_by_column_is_a_stable_regrouping_of_the_kept_edges():
    rng = np.random.default_rng(7)
    keys = np.unique((rng.integers(0, 50, 4000) << 32) | rng.integers(0, 30, 4000))
    rows, cols = (keys >> 32).astype(np.int32), (keys & 0xFFFF_FFFF).astype(np.int32)
    weights = rng.random(keys.shape[0]).astype(np.float32)
    keep = rng.random(keys.shape[0]) < 0.7
    for mask in (None, keep):
        sel = np.ones(keys.shape[0], bool) if mask is None else mask
        order = np.argsort(cols[sel], kind="stable")  # what the regrouping must equal
        indptr, got_rows, got_weights = by_column(rows, cols, weights, 40, mask)
        np.testing.assert_array_equal(got_rows, rows[sel][order])
        np.testing.assert_array_equal(got_weights, weights[sel][order])
        np.testing.assert_array_equal(np.diff(indptr), np.bincount(cols[sel], minlength=40))
