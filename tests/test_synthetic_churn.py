"""The churn workload: deterministic, items born all the time, attention gone within hours."""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np
import pytest

from recserver.config import load_config
from recserver.eval.evaluate import load_source
from recserver.graph.bootstrap import build_graph
from recserver.graph.config import GraphConfig
from recserver.graph.synthetic_churn import generate_churn, generate_churn_with_clusters
from recserver.graph.workloads import SyntheticSpec, parse_synthetic

COLUMNS = ("user_codes", "item_codes", "type_codes", "weight", "timestamp")
N = 100_000


@pytest.fixture(scope="module")
def sample():
    return generate_churn_with_clusters(N, seed=5)


def test_same_arguments_give_identical_arrays():
    a, b, c = generate_churn(20_000, seed=3), generate_churn(20_000, seed=3), generate_churn(
        20_000, seed=4)
    for name in COLUMNS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert (a.user_names, a.item_names) == (b.user_names, b.item_names)
    assert not np.array_equal(a.item_codes, c.item_codes)


def test_sizes_order_and_period(sample):
    cols, user_cluster, item_cluster, birth = sample
    assert len(cols) == N
    assert len(cols.user_names) == N // 13 and len(cols.item_names) == N // 68
    assert np.all(np.diff(cols.timestamp) >= 0)
    assert np.all(cols.timestamp == np.round(cols.timestamp))
    assert cols.timestamp.min() >= 1_700_000_000.0
    assert cols.timestamp.max() < 1_700_000_000.0 + 7 * 86_400.0
    assert np.all(np.diff(birth) >= 0)  # i0 is the oldest item
    assert user_cluster.shape == (len(cols.user_names),)
    assert item_cluster.shape == (len(cols.item_names),)


def test_most_next_day_items_do_not_exist_before_the_cutoff(sample):
    cols, _, _, _ = sample
    ts = cols.timestamp
    cutoff = float(np.quantile(ts, 0.9))
    before = set(cols.item_codes[ts < cutoff].tolist())
    after = (ts >= cutoff) & (ts < cutoff + 86_400.0)
    per_user: dict[int, set[int]] = defaultdict(set)
    for user, item in zip(cols.user_codes[after].tolist(), cols.item_codes[after].tolist(),
                          strict=True):
        per_user[user].add(item)
    unseen = [len(items - before) / len(items) for items in per_user.values()]
    assert np.mean(unseen) > 0.5  # a user's next-day items: mostly born after the cutoff
    new_clicks = np.mean([i not in before for i in cols.item_codes[after].tolist()])
    assert new_clicks > 0.5
    # Items are born all along the period, not only at its start.
    first_click = np.full(len(cols.item_names), np.inf)
    np.minimum.at(first_click, cols.item_codes, ts)
    days = (first_click[np.isfinite(first_click)] - ts.min()) // 86_400.0
    assert np.bincount(days.astype(int), minlength=7)[1:].min() > 0.1 * len(days) / 7


def test_attention_decays_within_hours(sample):
    cols, _, _, birth = sample
    age_h = (cols.timestamp - birth[cols.item_codes]) / 3_600.0
    assert age_h.min() >= -1 / 3_600.0  # whole seconds: an item's clicks start at its birth
    assert np.mean(age_h < 6.0) > 0.8
    assert np.mean(age_h > 24.0) < 0.01
    # Clicks follow taste: far more in the user's own cluster than chance (1 / 32).
    _, user_cluster, item_cluster, _ = sample
    same = user_cluster[cols.user_codes] == item_cluster[cols.item_codes]
    assert same.mean() > 0.7


def test_attention_hours_is_the_knob():
    short = generate_churn_with_clusters(20_000, seed=1, attention_h=0.5)
    long = generate_churn_with_clusters(20_000, seed=1, attention_h=12.0)
    ages = [np.median(c.timestamp - b[c.item_codes]) for c, _, _, b in (short, long)]
    assert ages[0] < 3_600.0 < 6 * 3_600.0 < ages[1]


def test_synthetic_spec_spellings():
    assert parse_synthetic(None, "small") == SyntheticSpec("retail", 100_000)
    assert parse_synthetic("medium", "small") == SyntheticSpec("retail", 1_000_000)
    assert parse_synthetic("churn", "small") == SyntheticSpec("churn", 100_000)
    assert parse_synthetic("Churn:50_000", "small") == SyntheticSpec("churn", 50_000)
    assert parse_synthetic("churn:large", "small").n_events == 10_000_000
    assert SyntheticSpec("churn", 5).label == "synthetic:churn:5"
    assert SyntheticSpec("retail", 5).label == "synthetic:5"
    for bad in ("churn:", "churn:huge", "retail:5", "news"):
        with pytest.raises(ValueError, match="synthetic"):
            parse_synthetic(bad, "small")


def test_commands_load_the_churn_log():
    cols, source = load_source(load_config(None), None, "churn:3000", seed=2)
    assert source == "synthetic:churn:3000"
    np.testing.assert_array_equal(cols.item_codes, generate_churn(3000, seed=2).item_codes)
    graph, report = build_graph(GraphConfig(), synthetic="churn:3000")
    try:
        assert report.source == "synthetic:churn:3000" and report.events_accepted > 0
        # Served data ends at the start of today (live history), not at a fixed past date.
        t_ref = graph.current.t_ref  # the newest event: within the day before today
        today = time.time() // 86_400.0 * 86_400.0
        assert today - 86_400.0 <= t_ref < today
    finally:
        graph.stop()
