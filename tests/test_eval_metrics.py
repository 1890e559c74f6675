"""Ranking metrics against hand-computed cases."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from recserver.eval.metrics import (
    Scores,
    hit_at_k,
    ndcg_at_k,
    overlap_at_k,
    percentile_ms,
    recall_at_k,
    top_share_items,
)


def test_recall_is_normalised_by_what_k_places_can_hold() -> None:
    rec = ["a", "b", "c", "d"]
    assert recall_at_k(rec, {"b", "d", "x"}, 4) == pytest.approx(2 / 3)
    # Only the first k places count.
    assert recall_at_k(rec, {"b", "d", "x"}, 2) == pytest.approx(1 / 2)
    # More relevant items than places: the denominator is k, so a perfect answer scores 1.
    assert recall_at_k(["a", "b"], {"a", "b", "c", "d", "e"}, 2) == 1.0
    assert recall_at_k(rec, set(), 4) == 0.0
    assert recall_at_k([], {"a"}, 4) == 0.0


def test_ndcg_by_hand() -> None:
    # Hits at ranks 1 and 3 of 3 relevant items, k = 3:
    # DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3) + 1/2.
    dcg = 1.0 + 0.5
    idcg = 1.0 + 1.0 / math.log2(3) + 0.5
    assert ndcg_at_k(["a", "x", "b"], {"a", "b", "c"}, 3) == pytest.approx(dcg / idcg)
    # One relevant item at rank 2: (1/log2(3)) / 1.
    assert ndcg_at_k(["x", "a", "y"], {"a"}, 3) == pytest.approx(1.0 / math.log2(3))
    assert ndcg_at_k(["a", "b"], {"a", "b"}, 2) == pytest.approx(1.0)
    assert ndcg_at_k(["x", "y"], {"a"}, 2) == 0.0


def test_hit_rate_and_overlap() -> None:
    assert hit_at_k(["x", "a"], {"a"}, 2) == 1.0
    assert hit_at_k(["x", "a"], {"a"}, 1) == 0.0
    assert overlap_at_k(["a", "b", "c", "d"], ["d", "c", "x", "y"], 4) == pytest.approx(0.5)
    assert overlap_at_k(["a", "b"], ["a", "b"], 2) == 1.0
    assert overlap_at_k([], [], 3) == 0.0


def test_top_share_items_takes_the_ceiling_of_one_percent() -> None:
    counts = Counter({f"i{n}": 1000 - n for n in range(150)})
    top = top_share_items(counts)  # ceil(1.5) = 2 items
    assert top == frozenset({"i0", "i1"})
    assert top_share_items(Counter({"b": 3, "a": 3})) == frozenset({"a"})  # ties by name


def test_scores_aggregate_coverage_bias_and_latency() -> None:
    scores = Scores(k=2, catalogue=10, top_items=frozenset({"pop"}))
    scores.add(["pop", "a"], {"a"}, 0.001, "graph")  # recall 1, ndcg 1/log2(3)
    scores.add(["pop", "b"], {"c"}, 0.003, "graph")  # nothing
    summary = scores.summary()
    assert summary["recall@2"] == pytest.approx(0.5)
    assert summary["ndcg@2"] == pytest.approx(0.5 / math.log2(3))
    assert summary["hit_rate@2"] == pytest.approx(0.5)
    assert summary["coverage"] == pytest.approx(3 / 10)  # pop, a, b
    assert summary["popularity_bias"] == pytest.approx(2 / 4)
    assert summary["mean_ms"] == pytest.approx(2.0)
    assert summary["p50_ms"] == pytest.approx(2.0)
    assert scores.sources == {"graph": 2}
    assert percentile_ms([], 99) == 0.0
