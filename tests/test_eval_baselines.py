"""The standard baselines on a tiny matrix whose answers can be checked by hand."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recserver.ann.als import fold_in, gram
from recserver.eval.baseline_eval import (
    GRIDS,
    BaselineStrategy,
    Interactions,
    choose,
    ease_skip_reason,
)
from recserver.eval.baselines import AlsModel, EaseModel, ItemKnnModel, Rp3BetaModel, top_k
from recserver.graph.events import Event, EventColumns

# users x items: item 0 {u0,u1}, item 1 {u0,u1,u2}, item 2 {u1,u2,u3}, item 3 {u3}
X = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 0], [0, 0, 1, 1]], np.float32))


def test_itemknn_is_cosine_with_shrink() -> None:
    model = ItemKnnModel(shrink=0.0, neighbours=10)
    model.fit(X)
    sim = model.sim.toarray()
    assert sim[0, 1] == pytest.approx(2 / np.sqrt(6))  # 2 shared users, |i0|=2, |i1|=3
    assert sim[0, 2] == pytest.approx(1 / np.sqrt(6))
    assert sim[1, 2] == pytest.approx(2 / 3)
    assert sim[2, 3] == pytest.approx(1 / np.sqrt(3))
    assert sim[0, 3] == 0 and np.all(np.diag(sim) == 0)
    shrunk = ItemKnnModel(shrink=1.0, neighbours=10)
    shrunk.fit(X)
    assert shrunk.sim[1, 2] == pytest.approx(2 / (3 + 1))


def test_itemknn_keeps_the_strongest_neighbours_of_each_target() -> None:
    model = ItemKnnModel(shrink=0.0, neighbours=1)
    model.fit(X)
    # Target 2's strongest source is item 1 (2/3); target 3's only source is item 2.
    assert model.sim[:, 2].nnz == 1 and model.sim[1, 2] == pytest.approx(2 / 3)
    assert model.sim[2, 3] == pytest.approx(1 / np.sqrt(3))
    # User 0 has items 0 and 1: item 2 is reached through item 1 only.
    assert model.scores(X, 0)[2] == pytest.approx(2 / 3)


def test_rp3beta_is_the_three_hop_walk_divided_by_popularity() -> None:
    plain = Rp3BetaModel(alpha=1.0, beta=0.0, neighbours=10)
    plain.fit(X)
    w = plain.w.toarray()
    # item 0 -> u0 or u1 (1/2 each); u0 -> items 0,1 (1/2), u1 -> items 0,1,2 (1/3)
    assert w[0, 1] == pytest.approx(0.5 * 0.5 + 0.5 / 3)
    assert w[0, 2] == pytest.approx(0.5 / 3)
    assert w[3, 2] == pytest.approx(0.5)  # item 3 -> u3 -> items 2,3
    beta = Rp3BetaModel(alpha=1.0, beta=0.5, neighbours=10)
    beta.fit(X)
    assert beta.w[0, 1] == pytest.approx(w[0, 1] / np.sqrt(3))  # item 1 has 3 users
    sharp = Rp3BetaModel(alpha=2.0, beta=0.0, neighbours=10)
    sharp.fit(X)
    assert sharp.w[0, 2] == pytest.approx(0.5**2 * (1 / 3) ** 2)


def test_ease_columns_are_ridge_regressions_on_the_other_items() -> None:
    lam = 1.0
    model = EaseModel(lam=lam)
    model.fit(X)
    dense = X.toarray().astype(np.float64)
    for j in range(4):
        others = [i for i in range(4) if i != j]
        a = dense[:, others]
        expect = np.linalg.solve(a.T @ a + lam * np.eye(3), a.T @ dense[:, j])
        assert model.b[others, j] == pytest.approx(expect, abs=1e-5)
        assert model.b[j, j] == 0.0
    # User 0 (items 0, 1) should get item 2 before item 3.
    assert top_k(model.scores(X, 0), np.array([0, 1], np.int32), 2).tolist() == [2, 3]


def test_als_recommends_inside_the_users_block_and_fold_in_matches() -> None:
    # Two blocks of users and items; user 0 lacks item 2 of its own block.
    dense = np.zeros((20, 8), np.float32)
    dense[:10, :4] = 1
    dense[10:, 4:] = 1
    dense[0, 2] = 0
    x = sp.csr_matrix(dense)
    model = AlsModel(factors=4, regularization=0.1, alpha=10.0, iterations=40)
    model.fit(x)
    assert top_k(model.scores(x, 0), np.array([0, 1, 3], np.int32), 1).tolist() == [2]
    folded = fold_in(model.item_factors, gram(model.item_factors), np.array([0, 1, 3]),
                     np.ones(3), regularization=0.1, alpha=10.0)
    assert np.corrcoef(folded @ model.item_factors.T,
                       model.scores(x, 0))[0, 1] > 0.99


def two_blocks() -> EventColumns:
    """30 users, each buying the 4 items of one of two disjoint blocks."""
    events = []
    for u in range(30):
        block = u % 2
        for t, i in enumerate(range(4)):
            events.append(Event(f"u{u}", f"i{block * 4 + i}", "purchase", 1.0, 100.0 * u + t))
    return EventColumns.from_events(events)


def test_choose_picks_on_the_training_period_and_ease_skip_says_why() -> None:
    cols = two_blocks()
    grid = [{"lam": 1.0}, {"lam": 1e6}]
    choice = choose("ease", cols, k=2, test_fraction=0.2, max_users=None, seed=0, grid=grid)
    assert [p for p, _ in choice.validation] == grid
    assert choice.params in grid
    assert choice.best_recall is not None and choice.best_recall >= 0.0
    data = Interactions.from_events(cols)
    assert data.matrix.shape == (30, 8) and data.matrix.data.max() == 1.0
    assert ease_skip_reason(8, 10) is None
    assert "EASE inverts" in (ease_skip_reason(30_000, 20_000) or "")


def test_an_untuned_baseline_says_so_instead_of_a_nan_validation_recall() -> None:
    # --no-tune-baselines hands choose() a grid of one point: nothing is scored, so there is
    # no validation recall to report (it used to print "recall@k nan there").
    cols = two_blocks()
    untuned = choose("itemknn", cols, k=2, test_fraction=0.2, max_users=None, seed=0,
                     grid=GRIDS["itemknn"][:1])
    assert untuned.params == GRIDS["itemknn"][0]
    assert untuned.validation == [] and untuned.best_recall is None
    strategy = BaselineStrategy("itemknn", Interactions.from_events(cols), untuned)
    assert "not tuned" in strategy.description and "nan" not in strategy.description
    tuned = choose("itemknn", cols, k=2, test_fraction=0.2, max_users=None, seed=0,
                   grid=GRIDS["itemknn"][:2])
    described = BaselineStrategy("itemknn", Interactions.from_events(cols), tuned).description
    assert f"recall@k {tuned.best_recall:.4f} there" in described
