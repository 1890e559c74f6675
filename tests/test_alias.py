"""Alias tables: packed words decode to the weight distribution, within 16-bit quantisation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from recserver.graph.config import ALIAS_MAX_DEGREE
from recserver.graph.kernels import UNIT, make_side, pack_alias

MASK = np.uint64(0xFFFF_FFFF)


def decode(packed: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(neighbours, alias slots, keep thresholds) of the row ``lo:hi``."""
    row = packed[lo:hi]
    return (
        (row & MASK).astype(np.int64),
        ((row >> np.uint64(32)) & np.uint64(0xFFFF)).astype(np.int64),
        (row >> np.uint64(48)).astype(np.int64),
    )


def exact_probabilities(alias: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Probability of each slot's own edge under the documented pick rule."""
    deg = alias.shape[0]
    prob = keep / UNIT
    np.add.at(prob, alias, 1.0 - keep / UNIT)
    return prob / deg


def sample(packed: np.ndarray, lo: int, hi: int, n: int, seed: int) -> np.ndarray:
    """Draw ``n`` neighbours with the pick rule of ``graph.snapshot`` (one uniform per pick)."""
    _, alias, keep = decode(packed, lo, hi)
    x = np.random.default_rng(seed).random(n) * (hi - lo)
    j = np.minimum(x.astype(np.int64), hi - lo - 1)
    slot = np.where((x - j) * UNIT < keep[j], j, alias[j])
    return (packed[lo + slot] & MASK).astype(np.int64)


@pytest.mark.parametrize("seed", range(5))
def test_decoded_probabilities_match_weights(seed: int) -> None:
    rng = np.random.default_rng(seed)
    degrees = rng.integers(0, 40, size=30)
    indptr = np.concatenate([[0], np.cumsum(degrees)])
    weights = rng.exponential(1.0, indptr[-1]) * (rng.random(indptr[-1]) > 0.2)  # some zeros
    neighbours = rng.integers(0, 1000, indptr[-1]).astype(np.int32)
    packed = pack_alias(indptr, neighbours, weights)
    for r in range(30):
        lo, hi = int(indptr[r]), int(indptr[r + 1])
        if lo == hi:
            continue
        nbr, alias, keep = decode(packed, lo, hi)
        assert np.array_equal(nbr, neighbours[lo:hi])  # bits 0..31 keep the input order
        assert alias.min() >= 0 and alias.max() < hi - lo
        w = weights[lo:hi]
        expected = w / w.sum() if w.sum() > 0 else np.full(hi - lo, 1.0 / (hi - lo))
        prob = exact_probabilities(alias, keep)
        assert np.abs(prob - expected).max() <= 1.0 / UNIT
        assert prob.sum() == pytest.approx(1.0, abs=1e-12)
        assert np.all(prob[w == 0] == 0) or w.sum() == 0  # zero-weight edges are never picked


def test_sampling_frequencies_chi_square() -> None:
    weights = np.array([5.0, 1.0, 0.5, 3.0, 0.0, 2.5, 8.0])
    indptr = np.array([0, weights.shape[0]])
    neighbours = np.arange(weights.shape[0], dtype=np.int32) + 100
    packed = pack_alias(indptr, neighbours, weights)
    draws = sample(packed, 0, weights.shape[0], 200_000, seed=1) - 100
    counts = np.bincount(draws, minlength=weights.shape[0])
    assert counts[4] == 0
    nz = weights > 0
    expected = weights[nz] / weights.sum() * draws.shape[0]
    _, p_value = stats.chisquare(counts[nz], expected)
    assert p_value > 1e-4


def test_all_zero_row_is_uniform_and_bad_weights_count_as_zero() -> None:
    indptr = np.array([0, 4, 7])
    weights = np.array([0.0, 0.0, 0.0, 0.0, np.nan, -2.0, 1.0])
    packed = pack_alias(indptr, np.arange(7, dtype=np.int32), weights)
    _, alias, keep = decode(packed, 0, 4)
    assert np.allclose(exact_probabilities(alias, keep), 0.25)
    _, alias, keep = decode(packed, 4, 7)
    assert np.allclose(exact_probabilities(alias, keep), [0.0, 0.0, 1.0])


def test_degree_cap_and_input_checks() -> None:
    deg = ALIAS_MAX_DEGREE + 1
    with pytest.raises(ValueError, match="at most"):
        pack_alias(np.array([0, deg]), np.zeros(deg, np.int32), np.ones(deg))
    ok = pack_alias(np.array([0, deg - 1]), np.zeros(deg - 1, np.int32), np.ones(deg - 1))
    assert ok.shape == (deg - 1,)
    with pytest.raises(ValueError, match="indptr"):
        pack_alias(np.array([0, 3]), np.zeros(2, np.int32), np.ones(2))
    with pytest.raises(ValueError, match=">= 0"):
        pack_alias(np.array([0, 1]), np.array([-1], np.int32), np.ones(1))


def test_large_row_is_exact_within_quantisation() -> None:
    deg = 50_000
    weights = np.random.default_rng(3).pareto(1.2, deg) + 1e-3
    packed = pack_alias(np.array([0, deg]), np.arange(deg, dtype=np.int32), weights)
    _, alias, keep = decode(packed, 0, deg)
    prob = exact_probabilities(alias, keep)
    assert np.abs(prob - weights / weights.sum()).max() <= 1.0 / (UNIT * deg) + 1e-15


def test_make_side_row_weights_and_edge_weights() -> None:
    indptr = np.array([0, 2, 2, 5])
    weights = np.array([1.0, 2.0, 0.5, 0.5, -1.0], np.float32)
    neighbours = np.array([3, 4, 0, 1, 2], np.int32)
    with_w = make_side(indptr, neighbours, weights, keep_weights=True)
    assert with_w.n_rows == 3 and with_w.nnz == 5
    assert np.allclose(with_w.row_weight, [3.0, 0.0, 1.0])  # negative weights count as zero
    assert np.array_equal(with_w.neighbours(2), [0, 1, 2])
    assert np.array_equal(with_w.row_weights(0), [1.0, 2.0])
    assert make_side(indptr, neighbours, weights, keep_weights=False).weight is None
