"""Folding new items in on a node, whose builder holds no model (builds run in a child).

The build child saves what a fold needs next to the results (``save_vectors``): the build's
item vectors and every user's query vector (the ones precompute searched with), as ``.npy``
files in the run directory's ``ann`` folder, named by version. Between builds the builder's
ANN thread calls ``fold_saved``: it maps them (no model is loaded), gives each item born since
the build with ``fold_min_users`` users the unit sum of its users' query vectors (as
``ann.fold_new`` does), finds its nearest built items by one exact inner-product scan of the
mapped item vectors, and writes what ``ann.fold_new`` writes, at the same version: the grown
item table and meta, the new item's own list, and the similar items' lists merged with it.
Readers adopt the grown item table at their next pointer poll (``AnnRuntime.poll_pointer``).

Cost per new item: one ``n_items x dim`` matrix-vector product (11 ms measured for 1M items of
dim 64) plus its users' rows: cheap enough to run in the builder's ANN thread at its poll pace.
The new items' lists hold built items only (the new items are not searched against each other).
The saved user vectors take ``n_users x dim x 4`` bytes of the run directory (256 MB for 1M
users of dim 64), one version's (two while a new build waits for its flip).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np
import numpy.typing as npt

from recserver.ann.cache import ResultCache
from recserver.ann.codec import (
    Keys,
    PayloadError,
    decode_items,
    encode,
    encode_items,
    encode_meta,
)
from recserver.ann.config import AnnConfig
from recserver.ann.tier import ServingState
from recserver.graph.snapshot import GraphSnapshot

Float32Array = npt.NDArray[np.float32]
PREFIX = "fold-"


def vector_paths(folder: Path, version: int) -> tuple[Path, Path]:
    """The item and user vector files of ``version``."""
    return folder / f"{PREFIX}{version}.items.npy", folder / f"{PREFIX}{version}.users.npy"


def save_vectors(folder: Path, version: int, items: Float32Array, users: Float32Array,
                 keep: set[int]) -> None:
    """Save a build's vectors (each file whole: written aside, then renamed), and delete the
    files of versions other than ``version`` and ``keep`` (a reader mapping them keeps its
    pages)."""
    for path, array in zip(vector_paths(folder, version), (items, users), strict=True):
        aside = path.with_name(path.name + ".tmp")
        with open(aside, "wb") as fh:
            np.save(fh, np.ascontiguousarray(array, dtype=np.float32))
        os.replace(aside, path)
    wanted = {version, *keep}
    for path in folder.glob(f"{PREFIX}*.npy"):
        with contextlib.suppress(ValueError, OSError):
            if int(path.name[len(PREFIX):].split(".", 1)[0]) not in wanted:
                path.unlink()


def fold_saved(folder: Path, version: int, snapshot: GraphSnapshot, cache: ResultCache,
               cfg: AnnConfig, done: set[int]) -> list[int]:
    """Fold ``snapshot``'s new items not in ``done`` into ``version`` (see the module
    docstring); returns the items folded (empty: none qualifies, or no saved vectors)."""
    # FAISS, SVD/ALS: a serving worker imports this module (``grown_state``) but never folds.
    from recserver.ann.embeddings import unit_rows
    from recserver.ann.fold_new import joined_lists

    items_path, users_path = vector_paths(folder, version)
    try:
        item_vecs = np.load(items_path, mmap_mode="r")
        user_vecs = np.load(users_path, mmap_mode="r")
    except (OSError, ValueError):
        return []  # built elsewhere (``recserver build-ann``) or before vectors were saved
    built = int(item_vecs.shape[0])
    fresh: list[int] = []
    rows: list[Float32Array] = []
    for item in range(built, snapshot.n_items):
        if item in done:
            continue
        users = np.concatenate([snapshot.base_items.neighbours(item),
                                snapshot.over_items.neighbours(item)]).astype(np.int64)
        if np.unique(users).shape[0] < max(cfg.fold_min_users, 1):
            continue
        known = users[users < user_vecs.shape[0]]  # users newer than the build have none
        if known.shape[0] == 0:
            continue
        # Each edge counts (repeat clicks weigh more), as ``fold_new_items`` does.
        total = unit_rows(np.asarray(user_vecs[known], np.float32)).sum(axis=0)
        if not total.any():
            continue
        fresh.append(item)
        rows.append(total)
    if not fresh:
        return []
    vectors = unit_rows(np.stack(rows).astype(np.float32))
    scores = np.asarray(vectors @ np.asarray(item_vecs).T, np.float32)  # exact: few new items
    k = min(cfg.top_k, built)
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.lexsort((top, -top_scores), axis=1)
    ids = np.take_along_axis(top, order, axis=1).astype(np.int32)
    top_scores = np.take_along_axis(top_scores, order, axis=1)
    counts = np.full(len(fresh), k, np.int64)
    keys = Keys(cfg.key_prefix, version)
    names = snapshot.items.names(range(snapshot.n_items))
    items = np.asarray(fresh, np.int64)
    writes = [(keys.meta, _grown_meta(cache, keys, len(names), cfg)),
              (keys.items, encode_items(names))]
    writes += [(keys.item(names[item]), encode(version, ids[row], top_scores[row]))
               for row, item in enumerate(fresh)]
    writes += joined_lists(cache, keys, names, items, ids, top_scores, counts, built, cfg)
    amend = getattr(cache, "amend", None)  # sealed files: an overlay, not a whole new seal
    if amend is not None:
        amend(writes)
    else:  # Redis: the table and meta first, so a reader never meets an id it cannot name
        cache.put_many(writes[:2], cfg.ttl_s)
        cache.put_many(writes[2:], cfg.ttl_s)
    return fresh


class SavedFolds:
    """The builder's side of ``fold_saved`` when builds run in a child: which items of the
    served version it folded already (a version of its own: forgotten at the next one)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._version: int | None = None
        self._done: set[int] = set()

    def fold(self, version: int, snapshot: GraphSnapshot, cache: ResultCache,
             cfg: AnnConfig) -> list[int]:
        """``fold_saved`` of the items not folded into ``version`` yet."""
        if self._version != version:
            self._version, self._done = version, set()
        items = fold_saved(self.folder, version, snapshot, cache, cfg, self._done)
        self._done.update(items)
        return items


def grown_state(state: ServingState, cache: ResultCache, cfg: AnnConfig,
                snapshot: GraphSnapshot) -> ServingState | None:
    """``state`` with the item table a fold grew (the new ids named by the table, mapped onto
    ``snapshot``'s ids); None when the version's table has not grown."""
    raw = cache.get(state.keys.meta, cfg.build_timeout_s)
    try:
        meta = json.loads(raw) if raw is not None else {}
        grown = isinstance(meta, dict) and int(meta.get("items", 0)) > len(state.to_local)
    except (TypeError, ValueError):
        return None
    blob = cache.get(state.keys.items, cfg.build_timeout_s) if grown else None
    if blob is None:
        return None
    local = snapshot.items.lookup_many(decode_items(blob)).astype(np.int32)
    return ServingState(state.version, state.keys, local, state.model)


def _grown_meta(cache: ResultCache, keys: Keys, n_items: int, cfg: AnnConfig) -> bytes:
    raw = cache.get(keys.meta, cfg.build_timeout_s)
    try:
        meta = json.loads(raw) if raw is not None else {}
    except ValueError:
        meta = {}
    if not isinstance(meta, dict):
        raise PayloadError("ANN meta is not an object")
    return encode_meta({**meta, "items": n_items})
