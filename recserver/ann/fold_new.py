"""Vectors for items born after the last ANN build, folded in from their first users.

A full build learns vectors for the items of its snapshot only; an item first seen later has
no vector, so until the next build (hours) the ANN tier never returns it and its own key has no
neighbours. ``fold_new_items`` is the cheap step between builds: each new item with at least
``min_users`` users gets the weighted unit mean of those users' query vectors (the same vectors
precompute searches with: ALS fold-in, or the mean of the user's item vectors), the vector that
ranks the item high for the users who chose it and near the items they chose. The model keeps
its version: vectors and index grow (a copy of the index, so readers of the old one are never
disturbed), build ids are the snapshot's ids, so existing payloads stay valid.

``publish_new_items`` then makes the items reachable through the cached results, touching only
what they change: the version's item table and meta, each new item's own neighbour list, and
the cached list of each of its nearest items, merged with the new item when it ranks in that
list's top-K (a brand-new item is found from a similar item at once; user lists pick it up at
the next build, or from the context item's list).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import faiss
import numpy as np
import numpy.typing as npt

from recserver.ann.cache import ResultCache
from recserver.ann.codec import Keys, PayloadError, decode, encode, encode_rows
from recserver.ann.config import AnnConfig
from recserver.ann.embeddings import unit_rows
from recserver.ann.index import AnnIndex, banned_rows
from recserver.ann.model import AnnModel
from recserver.ann.precompute import write_meta
from recserver.ann.vectors import user_vector
from recserver.graph.snapshot import GraphSnapshot

Int32Array = npt.NDArray[np.int32]
Int64Array = npt.NDArray[np.int64]
Float32Array = npt.NDArray[np.float32]


@dataclass(frozen=True)
class FoldedItems:
    """The model grown by the new items, which items those are, and their vectors."""

    model: AnnModel
    items: Int64Array  # snapshot (= build) ids of the items given a vector
    vectors: Float32Array
    built_items: int  # items the model had before: ids below this are the build's own


def fold_new_items(model: AnnModel, snapshot: GraphSnapshot, cfg: AnnConfig,
                   *, min_users: int = 1) -> FoldedItems | None:
    """``model`` with vectors for ``snapshot``'s items born after its build that have
    ``min_users`` users by now (None: none qualifies). An item with fewer keeps a zero row and
    is looked at again by the next fold."""
    built = model.n_items if model.built_items is None else model.built_items
    waiting = [i for i in range(built, model.n_items) if not model.vectors[i].any()]
    candidates = [*waiting, *range(model.n_items, snapshot.n_items)]
    # Only the new items' users are read (their item -> user rows), not the whole graph.
    fresh: list[int] = []
    users_of: list[Int32Array] = []
    for item in candidates:
        users = np.concatenate([snapshot.base_items.neighbours(item),
                                snapshot.over_items.neighbours(item)])
        if np.unique(users).shape[0] >= max(min_users, 1):
            fresh.append(item)
            users_of.append(users)
    if not fresh:
        return None
    needed = np.unique(np.concatenate(users_of))
    user_vecs = np.stack([user_vector(snapshot, model.vectors, int(u), cfg.user_recent_items,
                                      model.fold)[0] for u in needed.tolist()])
    user_vecs = unit_rows(user_vecs)  # zero rows: a user with no item of the build
    sums = np.stack([user_vecs[np.searchsorted(needed, users)].sum(axis=0)
                     for users in users_of])  # each user once per edge: repeat clicks count
    vectors = unit_rows(sums)
    usable = np.any(vectors != 0, axis=1)
    items, vectors = np.asarray(fresh, np.int64)[usable], vectors[usable]
    if items.shape[0] == 0:
        return None
    grown = np.zeros((max(snapshot.n_items, model.n_items), model.vectors.shape[1]), np.float32)
    grown[: model.n_items] = model.vectors
    grown[items] = vectors
    index = faiss.clone_index(model.index.index)
    index.add(np.ascontiguousarray(vectors))
    grown_index = AnnIndex(index=index, rows=np.concatenate(
        [model.index.rows, items.astype(np.int32)]), kind=model.index.kind, dim=model.index.dim)
    names = snapshot.items.names(range(snapshot.n_items))
    return FoldedItems(dataclasses.replace(model, vectors=grown, index=grown_index,
                                           item_names=names, built_items=built),
                       items, vectors, built)


def publish_new_items(folded: FoldedItems, cache: ResultCache, cfg: AnnConfig) -> int:
    """Write what makes the folded items reachable; returns how many cached lists changed."""
    model, items = folded.model, folded.items
    keys = Keys(cfg.key_prefix, model.version)
    write_meta(cache, keys, model, cfg)  # the item table now names the new ids too
    itself = banned_rows([np.array([i], np.int32) for i in items.tolist()], model.n_items)
    scores, ids, counts = model.index.search_filtered(folded.vectors, cfg.top_k, itself)
    names = model.item_names
    writes = list(zip([keys.item(names[i]) for i in items.tolist()],
                      encode_rows(model.version, ids, scores, counts), strict=True))
    writes.extend(joined_lists(cache, keys, names, items, ids, scores, counts,
                               folded.built_items, cfg))
    cache.put_many(writes, cfg.ttl_s)
    return len(writes)


def joined_lists(cache: ResultCache, keys: Keys, names: list[str], items: Int64Array,
                 ids: Int32Array, scores: Float32Array, counts: Int32Array | Int64Array,
                 built_items: int, cfg: AnnConfig) -> list[tuple[bytes, bytes]]:
    """The cached lists of the new ``items``' nearest built items (row r of ``ids``/``scores``:
    item r's neighbours), each merged with the new items that rank in its top-K; lists not
    cached (or unreadable) are left to a miss."""
    joins: dict[int, list[tuple[int, float]]] = {}
    for row, item in enumerate(items.tolist()):
        for other, score in zip(ids[row, : counts[row]].tolist(),
                                scores[row, : counts[row]].tolist(), strict=True):
            if other < built_items:  # new items' lists were searched with them all
                joins.setdefault(other, []).append((item, score))
    targets = sorted(joins)
    version = keys.version
    assert version is not None, "versioned keys"
    payloads = cache.mget([keys.item(names[i]) for i in targets], cfg.build_timeout_s)
    writes: list[tuple[bytes, bytes]] = []
    for other, payload in zip(targets, payloads, strict=True):
        if payload is None:
            continue  # not cached (cap): computed on a miss with the grown model
        try:
            have, have_scores = decode(payload, version)
        except PayloadError:
            continue
        add = np.array([i for i, _ in joins[other]], np.int32)
        add_scores = np.array([s for _, s in joins[other]], np.float32)
        keep = ~np.isin(have, add)
        merged = np.concatenate([have[keep], add])
        merged_scores = np.concatenate([have_scores[keep], add_scores])
        order = np.lexsort((merged, -merged_scores))[: cfg.top_k]
        if np.isin(add, merged[order]).any():
            writes.append((keys.item(names[other]),
                           encode(version, merged[order], merged_scores[order])))
    return writes
