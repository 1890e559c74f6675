"""Small ``GraphSnapshot`` factory for tests: edge lists in, alias-packed snapshot out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recserver.graph.idmap import IdMap
from recserver.graph.kernels import make_side
from recserver.graph.snapshot import CsrSide, GraphSnapshot

Edges = tuple[Sequence[int], Sequence[int], Sequence[float]]


def csr(src, dst, weights, n_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group edges ``src -> dst`` by source row (stable, so rows keep input order)."""
    src = np.asarray(src, dtype=np.int64)
    order = np.argsort(src, kind="stable")
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n_rows), out=indptr[1:])
    dst_sorted = np.asarray(dst, dtype=np.int32)[order]
    return indptr, dst_sorted, np.asarray(weights, dtype=np.float32)[order]


def sides(users, items, weights, n_users: int, n_items: int) -> tuple[CsrSide, CsrSide]:
    """(user -> items with weights, item -> users) for one edge list."""
    by_user = make_side(*csr(users, items, weights, n_users), keep_weights=True)
    by_item = make_side(*csr(items, users, weights, n_items), keep_weights=False)
    return by_user, by_item


def build_snapshot(
    users: Sequence[int],
    items: Sequence[int],
    weights: Sequence[float],
    *,
    overlay: Edges | None = None,
    n_users: int | None = None,
    n_items: int | None = None,
    version: int = 1,
) -> GraphSnapshot:
    """A snapshot whose base holds the given edges and whose overlay holds ``overlay``.

    The base covers only the nodes its own edges reach (so overlay-only nodes have no base row,
    as after real ingest); the overlay covers ``n_users`` x ``n_items``. ``item_degree`` is the
    number of distinct users per item over base and overlay together.
    """
    ov_u, ov_i, ov_w = overlay if overlay is not None else ([], [], [])
    all_u = np.concatenate([np.asarray(users, np.int64), np.asarray(ov_u, np.int64)])
    all_i = np.concatenate([np.asarray(items, np.int64), np.asarray(ov_i, np.int64)])
    n_users = n_users if n_users is not None else int(all_u.max(initial=-1)) + 1
    n_items = n_items if n_items is not None else int(all_i.max(initial=-1)) + 1
    base_nu = int(np.max(users, initial=-1)) + 1
    base_ni = int(np.max(items, initial=-1)) + 1
    base_users, base_items = sides(users, items, weights, base_nu, base_ni)
    over_users, over_items = sides(ov_u, ov_i, ov_w, n_users, n_items)
    pairs = np.unique(all_i * (n_users + 1) + all_u) if all_u.size else np.empty(0, np.int64)
    degree = np.bincount(pairs // (n_users + 1), minlength=n_items).astype(np.int32)
    return GraphSnapshot(
        version=version,
        users=IdMap(f"u{u}" for u in range(n_users)),
        items=IdMap(f"i{i}" for i in range(n_items)),
        base_users=base_users,
        base_items=base_items,
        over_users=over_users,
        over_items=over_items,
        item_degree=degree,
        t_ref=0.0,
        built_at=0.0,
    )


def random_bipartite(
    n_users: int, n_items: int, n_edges: int, seed: int = 0, zipf: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct random (user, item, weight) edges; item popularity ~ rank ** -zipf."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_items + 1) ** zipf
    users = rng.integers(0, n_users, size=n_edges * 2)
    items = rng.choice(n_items, size=n_edges * 2, p=p / p.sum())
    key = np.unique(users * n_items + items)[:n_edges]
    rng.shuffle(key)
    weights = rng.uniform(0.1, 3.0, size=key.shape[0])
    return key // n_items, key % n_items, weights
