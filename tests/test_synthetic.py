"""The synthetic generator: deterministic, sized as asked, Zipf-headed and clustered."""

from __future__ import annotations

import numpy as np
import pytest

from recserver.graph.config import EventWeightsConfig
from recserver.graph.synthetic import (
    EVENT_TYPES,
    SIZES,
    generate,
    generate_with_clusters,
    parse_size,
)
from recserver.graph.validate import validate_columns

COLUMNS = ("user_codes", "item_codes", "type_codes", "weight", "timestamp")
N = 100_000


@pytest.fixture(scope="module")
def sample():
    return generate_with_clusters(N, seed=11)


def test_same_arguments_give_identical_arrays():
    a, b, c = generate(20_000, seed=3), generate(20_000, seed=3), generate(20_000, seed=4)
    for name in COLUMNS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert (a.user_names, a.item_names, a.type_names) == (b.user_names, b.item_names, b.type_names)
    assert not np.array_equal(a.item_codes, c.item_codes)


def test_sizes_defaults_and_dtypes(sample):
    cols, user_cluster, item_cluster = sample
    assert len(cols) == N
    assert len(cols.user_names) == N // 30 and len(cols.item_names) == N // 60
    assert cols.user_names[:2] == ["u0", "u1"] and cols.item_names[-1] == f"i{N // 60 - 1}"
    assert cols.type_names == EVENT_TYPES
    assert [getattr(cols, c).dtype for c in COLUMNS] == [np.int32] * 3 + [np.float64] * 2
    assert np.bincount(cols.user_codes).min() >= 1  # every user has an event
    assert cols.item_codes.max() < len(cols.item_names)
    assert user_cluster.shape == (N // 30,) and item_cluster.shape == (N // 60,)
    small = generate(500, n_users=40, n_items=25, n_clusters=4)
    assert (len(small), len(small.user_names), len(small.item_names)) == (500, 40, 25)
    tiny = generate(5)
    assert len(tiny) == 5 and len(tiny.user_names) == 5 and len(tiny.item_names) == 10


def test_activity_is_skewed_and_types_are_ordered(sample):
    cols, _, _ = sample
    per_user = np.bincount(cols.user_codes)
    assert per_user.max() > 10 * np.median(per_user)  # lognormal: heavy users exist
    shares = np.bincount(cols.type_codes, minlength=4) / N
    assert shares[0] > shares[1] > shares[2] > shares[3] > 0
    purchase = cols.type_codes == EVENT_TYPES.index("purchase")
    assert np.all(cols.weight[~purchase] == 1)
    assert cols.weight[purchase].min() >= 1 and cols.weight[purchase].max() > 1
    assert np.all(cols.weight == np.round(cols.weight))


def test_zipf_head_holds_a_large_share(sample):
    cols, _, _ = sample
    counts = np.sort(np.bincount(cols.item_codes, minlength=len(cols.item_names)))[::-1]
    share = {f: counts[: int(len(counts) * f)].sum() / N for f in (0.01, 0.2)}
    # Uniform popularity would give 1% and 20%. (The real Online Retail file: 9.6% and 66%.)
    assert share[0.01] > 0.10, f"top 1% of items hold only {share[0.01]:.1%} of events"
    assert share[0.2] > 0.55, f"top 20% of items hold only {share[0.2]:.1%} of events"


def test_users_concentrate_on_their_cluster(sample):
    cols, user_cluster, item_cluster = sample
    n_clusters = int(item_cluster.max()) + 1
    same = item_cluster[cols.item_codes] == user_cluster[cols.user_codes]
    per_user = np.bincount(cols.user_codes, weights=same) / np.bincount(cols.user_codes)
    assert same.mean() > 0.7 > 20 / n_clusters  # chance would be about 1 / 32
    assert np.median(per_user) > 0.6
    # Users of one cluster share items: their top items overlap far more than other users'.
    a, b = (np.flatnonzero(user_cluster == c) for c in (0, 1))
    items_of = {
        c: np.bincount(cols.item_codes[np.isin(cols.user_codes, u)], minlength=len(item_cluster))
        for c, u in ((0, a), (1, b))
    }
    assert item_cluster[np.argsort(items_of[0])[-20:]].tolist().count(0) >= 15
    assert item_cluster[np.argsort(items_of[1])[-20:]].tolist().count(1) >= 15


def test_time_is_sorted_within_the_period_and_valid(sample):
    cols, _, _ = sample
    start, days = 1_700_000_000.0, 90.0
    assert np.all(np.diff(cols.timestamp) >= 0)  # so each user's events are ordered too
    assert cols.timestamp.min() >= start and cols.timestamp.max() < start + days * 86_400
    assert (cols.timestamp.max() - cols.timestamp.min()) > 0.9 * days * 86_400
    checked = validate_columns(cols, EventWeightsConfig(), now=start + days * 86_400)
    assert len(checked) == N and checked.rejected == []


def test_parse_size_accepts_names_and_numbers():
    assert parse_size("small") == SIZES["small"] == 100_000
    assert parse_size("LARGE") == 10_000_000
    assert parse_size("2_000_000") == parse_size(2_000_000) == 2_000_000
    with pytest.raises(ValueError, match="use one of small, medium, large or a number"):
        parse_size("huge")
    with pytest.raises(ValueError, match="at least 1"):
        parse_size(0)
