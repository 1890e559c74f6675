"""A deterministic synthetic behaviour log with the structure that real ones have.

Real interaction logs are skewed and clustered, and both properties matter to a graph
recommender: a Zipf-headed catalogue decides walk cost and hub handling, and taste clusters are
what a walk has to find (uniformly random events would make every method look equally bad).
The model:

* activity: events per user are lognormal (every user gets at least one event);
* popularity: the item of rank ``r`` is drawn with probability ~ ``1 / (r + 1) ** ZIPF_EXPONENT``;
* taste: items and users belong to one of ``n_clusters`` clusters; an event picks from the
  user's cluster (by a Zipf law over the cluster's own ranking) with probability ``IN_CLUSTER``,
  else from the whole catalogue;
* event types: view > click > add_to_cart > purchase; weight 1, a purchase's weight is a small
  quantity (geometric, mean 2);
* time: each user is active in a window of the ``days``-long period; events are sorted by time,
  so each user's events are in order too. ``start`` fixes the period for reproducible arrays;
  data that stands for "now" (the embedded server) uses ``recent_start`` so that time decay
  treats it as live history rather than years-old events.

Everything is numpy over whole columns (items are drawn in blocks to bound temporaries), seeded
by ``seed`` through independent streams, so the same arguments give identical arrays.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from recserver.graph.events import EventColumns

# sizes are parsed without numpy (see synthetic_spec); re-exported for the callers here
from recserver.graph.synthetic_spec import SIZES as SIZES
from recserver.graph.synthetic_spec import parse_size as parse_size

EVENT_TYPES = ["view", "click", "add_to_cart", "purchase"]
TYPE_SHARES = (0.70, 0.20, 0.07, 0.03)
ZIPF_EXPONENT = 1.0
IN_CLUSTER = 0.8
_BLOCK = 1 << 22  # events per item-sampling block: bounds the float64 temporaries to ~32 MB each


def recent_start(days: float = 90.0, now: float | None = None) -> float:
    """A ``start`` whose ``days``-long period ends at the start of today (UTC).

    Whole days, so every process started the same day (replicas, restarts) generates the same
    timestamps; the newest event is then less than a day old.
    """
    today = (time.time() if now is None else now) // 86_400.0 * 86_400.0
    return today - days * 86_400.0


def _blocks(n: int) -> Iterator[tuple[int, int]]:
    """Index ranges of at most ``_BLOCK`` events: bounds the float64 temporaries per step."""
    for lo in range(0, n, _BLOCK):
        yield lo, min(lo + _BLOCK, n)


def _zipf_ranks(
    u: npt.NDArray[np.float64], n: npt.NDArray[np.int64] | int
) -> npt.NDArray[np.int64]:
    """Ranks in ``[0, n)`` by inverting the continuous Zipf CDF at ``u`` (uniform in [0, 1)).

    O(1) per draw with no table: ``searchsorted`` over a big catalogue's CDF was the slowest step.
    P(rank r) ~ 1 / (r + 1.5) ** ZIPF_EXPONENT, close to the discrete law.
    """
    a = ZIPF_EXPONENT
    if a == 1.0:
        x = np.exp(u * np.log1p(n))
    else:
        x = (1.0 + u * ((np.asarray(n) + 1.0) ** (1.0 - a) - 1.0)) ** (1.0 / (1.0 - a))
    return np.minimum(x.astype(np.int64) - 1, np.asarray(n) - 1)


def generate_with_clusters(
    n_events: int,
    *,
    n_users: int | None = None,
    n_items: int | None = None,
    n_clusters: int = 32,
    seed: int = 0,
    start: float = 1_700_000_000.0,
    days: float = 90.0,
) -> tuple[EventColumns, npt.NDArray[np.int32], npt.NDArray[np.int32]]:
    """``generate`` plus the latent cluster of every user and item (ground truth for tests)."""
    if n_events < 1:
        raise ValueError(f"n_events={n_events}: need at least 1")
    n_users = min(n_users or max(10, n_events // 30), n_events)
    n_items = n_items or max(10, n_events // 60)
    n_clusters = max(1, min(n_clusters, n_items))
    if not 0 < days * 86_400.0 * n_events < 2**62:  # the time sort packs (second, position)
        raise ValueError(f"days={days}: must be > 0 and small enough to pack with n_events")
    r_act, r_clu, r_item, r_type, r_time = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)
    )

    # Activity: lognormal, at least one event each; users are contiguous until the time sort.
    activity = r_act.lognormal(0.0, 1.2, n_users)
    counts = 1 + r_act.multinomial(n_events - n_users, activity / activity.sum())
    users = np.repeat(np.arange(n_users, dtype=np.int32), counts)

    # Popularity and taste. Global rank r belongs to cluster r % n_clusters, so each cluster has
    # its own hits and its own Zipf law (within-cluster rank j is global rank j * C + c); a
    # shuffle maps ranks to item ids, so names carry no popularity or cluster order.
    item_of_rank = r_clu.permutation(n_items).astype(np.int32)
    item_cluster = np.empty(n_items, dtype=np.int64)
    item_cluster[item_of_rank] = np.arange(n_items) % n_clusters
    cluster_size = (n_items - np.arange(n_clusters) + n_clusters - 1) // n_clusters
    user_cluster = r_clu.integers(0, n_clusters, n_users)
    items = np.empty(n_events, dtype=np.int32)
    for lo, hi in _blocks(n_events):
        u = r_item.random(hi - lo)
        ranks = _zipf_ranks(u, n_items)
        local = np.flatnonzero(r_item.random(hi - lo) < IN_CLUSTER)
        c = user_cluster[users[lo + local]]
        ranks[local] = _zipf_ranks(u[local], cluster_size[c]) * n_clusters + c
        items[lo:hi] = item_of_rank[ranks]

    # Time: each user active in a window of the period; whole seconds, like real logs.
    span = days * 86_400.0 * r_time.uniform(0.1, 1.0, n_users)
    offset = r_time.random(n_users) * (days * 86_400.0 - span)
    key = np.empty(n_events, dtype=np.int64)
    for lo, hi in _blocks(n_events):
        block_users = users[lo:hi]
        key[lo:hi] = offset[block_users] + r_time.random(hi - lo) * span[block_users]
    # Sort unique keys (second, position) instead of an argsort: ~5x faster, and with no ties
    # the result cannot depend on which sort algorithm (SIMD or not) the CPU gets.
    key *= n_events
    key += np.arange(n_events)
    key.sort()
    order = key % n_events
    key //= n_events
    timestamp = key.astype(np.float64)
    del key
    timestamp += start
    users, items = users[order], items[order]
    del order

    # Event types and weights (drawn in time order).
    draw = r_type.random(n_events)
    types = np.zeros(n_events, dtype=np.int32)
    for bound in np.cumsum(TYPE_SHARES)[:-1] / sum(TYPE_SHARES):
        types += draw >= bound  # type k where the k-th cumulative share is passed
    del draw
    event_weight = np.ones(n_events)
    purchases = types == EVENT_TYPES.index("purchase")
    event_weight[purchases] = r_type.geometric(0.5, int(purchases.sum()))
    cols = EventColumns(
        user_codes=users,
        item_codes=items,
        type_codes=types,
        weight=event_weight,
        timestamp=timestamp,
        user_names=[f"u{i}" for i in range(n_users)],
        item_names=[f"i{i}" for i in range(n_items)],
        type_names=list(EVENT_TYPES),
    )
    return cols, user_cluster.astype(np.int32), item_cluster.astype(np.int32)


def generate(
    n_events: int,
    *,
    n_users: int | None = None,
    n_items: int | None = None,
    n_clusters: int = 32,
    seed: int = 0,
    start: float = 1_700_000_000.0,
    days: float = 90.0,
) -> EventColumns:
    """``n_events`` synthetic events, sorted by time, with users ``u<N>`` and items ``i<N>``.

    Defaults: ``n_users = n_events // 30`` and ``n_items = n_events // 60`` (at least 10 each;
    never more users than events). Same arguments, same arrays. See the module docstring for the
    model.
    """
    cols, _, _ = generate_with_clusters(
        n_events,
        n_users=n_users,
        n_items=n_items,
        n_clusters=n_clusters,
        seed=seed,
        start=start,
        days=days,
    )
    return cols
