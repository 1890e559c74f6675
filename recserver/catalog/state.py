"""The catalogue a replica builds from the event log: mutable, applied in log order.

Only the process that applies the log (the builder, or a single-process server) holds one.
Updates set values (hidden, expiry, categories), so applying the same record twice leaves the
same state, and replaying the log after a checkpoint gives what the replica had before a crash.
Each publish takes :meth:`CatalogState.view`, rebuilt only when something changed.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence

import numpy as np

from recserver.catalog.items import ItemUpdate
from recserver.catalog.view import CatalogView, Int32Array


class CatalogState:
    """Per-item rules by graph item id, and the category names (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._n = 0  # items described so far cover ids 0..n-1
        self._hidden = np.zeros(0, dtype=bool)
        self._expires = np.zeros(0, dtype=np.float64)
        self._cats: dict[int, tuple[int, ...]] = {}  # only items that have categories
        self._cat_index: dict[str, int] = {}
        self._cat_names: list[str] = []
        self._view: CatalogView | None = CatalogView.empty()
        #: item updates applied since the state began (checkpoints carry the state, not this)
        self.updates_applied = 0

    def _grow(self, n: int) -> None:
        if n <= self._n:
            return
        if n > self._hidden.shape[0]:  # amortised: double the capacity
            capacity = max(n, 2 * self._hidden.shape[0], 1024)
            hidden = np.zeros(capacity, dtype=bool)
            expires = np.zeros(capacity, dtype=np.float64)
            hidden[: self._n] = self._hidden[: self._n]
            expires[: self._n] = self._expires[: self._n]
            self._hidden, self._expires = hidden, expires
        self._n = n

    def _category(self, name: str) -> int:
        found = self._cat_index.get(name)
        if found is None:
            found = self._cat_index[name] = len(self._cat_names)
            self._cat_names.append(name)
        return found

    def apply(self, ids: Int32Array, updates: Sequence[ItemUpdate]) -> None:
        """Apply ``updates`` (validated) to the items ``ids`` (graph ids, same order)."""
        if len(ids) != len(updates):
            raise ValueError(f"{len(ids)} ids for {len(updates)} updates")
        if not len(updates):
            return
        with self._lock:
            self._grow(int(np.max(ids)) + 1)
            for item, update in zip(ids.tolist(), updates, strict=True):
                if update.hidden is not None:
                    self._hidden[item] = update.hidden
                if update.expires_at is not None:
                    self._expires[item] = update.expires_at
                if update.categories is not None:
                    if update.categories:
                        self._cats[item] = tuple(sorted({self._category(c)
                                                         for c in update.categories}))
                    else:
                        self._cats.pop(item, None)
            self.updates_applied += len(updates)
            self._view = None

    def view(self) -> CatalogView:
        """The current catalogue as immutable arrays (the same object until a change)."""
        with self._lock:
            if self._view is None:
                self._view = self._build()
            return self._view

    def _build(self) -> CatalogView:
        n = self._n
        lens = np.zeros(n, dtype=np.int64)
        flat = np.zeros(0, dtype=np.int32)
        if self._cats:
            owners = np.fromiter(self._cats.keys(), np.int64, len(self._cats))
            owners.sort()
            lens[owners] = np.fromiter((len(self._cats[i]) for i in owners.tolist()), np.int64,
                                       owners.shape[0])
            flat = np.fromiter(
                itertools.chain.from_iterable(self._cats[i] for i in owners.tolist()), np.int32,
                int(lens.sum()))
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lens, out=indptr[1:])
        return CatalogView.build(self._hidden[:n].copy(), self._expires[:n].copy(), indptr,
                                 flat, tuple(self._cat_names))

    @staticmethod
    def from_view(view: CatalogView) -> CatalogState:
        """The state a checkpointed view describes (restart recovery)."""
        state = CatalogState()
        state._grow(view.n)
        state._hidden[: view.n] = view.hidden
        state._expires[: view.n] = view.expires_at
        state._cat_names = list(view.categories)
        state._cat_index = {name: i for i, name in enumerate(state._cat_names)}
        indptr, cat_ids = view.cat_indptr.tolist(), view.cat_ids.tolist()
        for item in np.flatnonzero(np.diff(view.cat_indptr)).tolist():
            state._cats[item] = tuple(cat_ids[indptr[item] : indptr[item + 1]])
        state._view = view
        return state
