"""A deterministic synthetic log where items churn: born all the time, read for a few hours.

News, drops, live inventory and short videos share a shape the retail-like generator
(``synthetic``) lacks: most of tomorrow's items do not exist today, and an item gets most of its
clicks in its first hours. The model:

* births: items are born at uniform random times over the period (``i0`` is the oldest);
* appeal: each item's share of the clicks is lognormal (a few hits, a long tail);
* attention: an item's clicks come at its birth plus an exponential delay of mean
  ``attention_h`` hours; the clicks that would fall after the period are not in the log (an
  item born an hour before the end has a fraction of its appeal's clicks), so the click rate
  stays even over time;
* taste: items and users belong to one of ``n_clusters`` clusters; a click goes to a user of the
  item's cluster with probability ``IN_CLUSTER``, else to any user; within the chosen group a
  user is drawn by activity (lognormal), so graph methods have signal to find;
* events: all ``click``, weight 1, whole seconds, sorted by time.

Defaults follow a real news log (about 68 clicks per article, 13 per user). Everything is numpy
over whole columns, seeded through independent streams: the same arguments give the same arrays.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from recserver.graph.events import EventColumns
from recserver.graph.synthetic import EVENT_TYPES

IN_CLUSTER = 0.85
APPEAL_SIGMA = 1.5
ATTENTION_H = 3.0
CLICK = EVENT_TYPES.index("click")


def _truncated_exponential(
    u: npt.NDArray[np.float64], mean: float, limit: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Exponential(mean) draws conditioned on ``< limit``, by inverting the truncated CDF."""
    mass = -np.expm1(-limit / mean)  # P(delay < limit)
    return -mean * np.log1p(-u * mass)


def _users_by_cluster(
    r: np.random.Generator, n_users: int, n_clusters: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64],
           npt.NDArray[np.int64]]:
    """User clusters, and users ordered by cluster with their cumulative activity.

    Returns (user cluster, cumulative activity over users sorted by cluster, each cluster's
    starting cumulative value, the sort order): drawing a user of cluster ``c`` by activity is
    then one ``searchsorted`` at ``start[c] + u * total[c]``.
    """
    cluster = r.integers(0, n_clusters, n_users)
    activity = r.lognormal(0.0, 1.0, n_users)
    order = np.argsort(cluster, kind="stable")
    cum = np.cumsum(activity[order])
    bounds = np.searchsorted(cluster[order], np.arange(n_clusters + 1), side="left")
    start = np.concatenate([[0.0], cum])[bounds]  # cumulative activity before each cluster
    return cluster, cum, start, order


def generate_churn_with_clusters(
    n_events: int,
    *,
    n_users: int | None = None,
    n_items: int | None = None,
    n_clusters: int = 32,
    seed: int = 0,
    start: float = 1_700_000_000.0,
    days: float = 7.0,
    attention_h: float = ATTENTION_H,
) -> tuple[EventColumns, npt.NDArray[np.int32], npt.NDArray[np.int32],
           npt.NDArray[np.float64]]:
    """``generate_churn`` plus each user's and item's cluster and each item's birth time."""
    if n_events < 1:
        raise ValueError(f"n_events={n_events}: need at least 1")
    if days <= 0 or attention_h <= 0:
        raise ValueError(f"days={days}, attention_h={attention_h}: both must be > 0")
    n_users = min(n_users or max(10, n_events // 13), n_events)
    n_items = n_items or max(10, n_events // 68)
    n_clusters = max(1, min(n_clusters, n_items, n_users))
    period = days * 86_400.0
    if not period * n_events < 2**62:  # the time sort packs (second, position)
        raise ValueError(f"days={days}: too long to pack with n_events={n_events}")
    r_item, r_user, r_pick, r_time = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
    )

    # Items: birth times in id order (i0 oldest), appeal and cluster.
    birth = np.sort(r_item.random(n_items)) * period
    appeal = r_item.lognormal(0.0, APPEAL_SIGMA, n_items)
    item_cluster = r_item.integers(0, n_clusters, n_items)
    # An item born late is read partly after the period: its share here is its appeal times
    # the chance that a click comes before the end (the rest would fall tomorrow).
    within = appeal * -np.expm1(-(period - birth) / (attention_h * 3_600.0))
    per_item = r_item.multinomial(n_events, within / within.sum())
    items = np.repeat(np.arange(n_items, dtype=np.int32), per_item)

    # Attention: each click comes an exponential delay after the item's birth, within the period.
    born = birth[items]
    delay = _truncated_exponential(r_time.random(n_events), attention_h * 3_600.0, period - born)
    seconds = np.minimum(np.floor(born + delay), np.ceil(period) - 1).astype(np.int64)
    del born, delay

    # Users: in the item's cluster with probability IN_CLUSTER, else anyone; by activity.
    user_cluster, cum, cstart, order = _users_by_cluster(r_user, n_users, n_clusters)
    c = item_cluster[items]
    local = r_pick.random(n_events) < IN_CLUSTER
    lo = np.where(local, cstart[c], 0.0)
    width = np.where(local, cstart[c + 1] - cstart[c], cum[-1])
    target = lo + r_pick.random(n_events) * width
    pos = np.minimum(np.searchsorted(cum, target, side="right"), n_users - 1)
    users = order[pos].astype(np.int32)
    del c, local, lo, width, target, pos

    # Sort unique keys (second, position): no ties, so no dependence on the sort algorithm.
    key = seconds * n_events + np.arange(n_events)
    key.sort()
    pick = key % n_events
    timestamp = (key // n_events).astype(np.float64) + start
    cols = EventColumns(
        user_codes=users[pick],
        item_codes=items[pick],
        type_codes=np.full(n_events, CLICK, dtype=np.int32),
        weight=np.ones(n_events),
        timestamp=timestamp,
        user_names=[f"u{i}" for i in range(n_users)],
        item_names=[f"i{i}" for i in range(n_items)],
        type_names=list(EVENT_TYPES),
    )
    return (cols, user_cluster.astype(np.int32), item_cluster.astype(np.int32),
            birth + start)


def generate_churn(
    n_events: int,
    *,
    n_users: int | None = None,
    n_items: int | None = None,
    n_clusters: int = 32,
    seed: int = 0,
    start: float = 1_700_000_000.0,
    days: float = 7.0,
    attention_h: float = ATTENTION_H,
) -> EventColumns:
    """``n_events`` clicks over ``days`` on items born throughout it, sorted by time.

    Defaults: ``n_users = n_events // 13``, ``n_items = n_events // 68`` (at least 10 each).
    See the module docstring for the model.
    """
    cols, _, _, _ = generate_churn_with_clusters(
        n_events, n_users=n_users, n_items=n_items, n_clusters=n_clusters, seed=seed,
        start=start, days=days, attention_h=attention_h,
    )
    return cols
