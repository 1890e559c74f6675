"""The per-request item filter: hidden, expired and out-of-category items never pass.

One :class:`ItemFilter` per request, built from the snapshot's catalogue, the request's
categories (any-of) and the clock. Every tier calls :meth:`ItemFilter.keep` on its candidates
before it ranks or cuts them to ``k``, so a filter that removes candidates leaves the tier's
next-best ones rather than a short answer. The cost is proportional to the candidates, never
to the catalogue: a gather of two arrays for the rules, one more for a category filter (plus
one per category of the remaining candidates when the catalogue has over 64 categories).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from recserver.catalog.view import BoolArray, CatalogView, Int32Array


class ItemFilter:
    """Which candidates a request may return (see the module docstring)."""

    def __init__(self, view: CatalogView, now: float, categories: Sequence[str] = ()) -> None:
        self._view = view
        self._now = now
        self._rules = view.has_rules
        self.categories = tuple(categories)
        self._want: BoolArray | None = None
        self._want_ids = np.empty(0, np.int32)
        self._want_bits = np.uint64(0)
        if self.categories:
            self._want_ids = view.category_ids(self.categories)
            want = np.zeros(len(view.categories), dtype=bool)
            want[self._want_ids] = True
            self._want = want
            for c in self._want_ids.tolist():
                self._want_bits |= np.uint64(1) << np.uint64(c % 64)
        self._exact_bits = len(view.categories) <= 64
        #: candidates this filter removed so far (over every tier of the request)
        self.removed = 0

    @staticmethod
    def for_request(view: CatalogView | None, now: float,
                    categories: Sequence[str] = ()) -> ItemFilter | None:
        """A filter, or None when nothing can be filtered (no rules, no categories asked)."""
        if view is None:
            view = CatalogView.empty()
        if not categories and not view.has_rules:
            return None
        return ItemFilter(view, now, categories)

    def keep(self, items: npt.ArrayLike, *, count: bool = True) -> BoolArray:
        """Mask of ``items`` (graph item ids) this request may return (``count``: add the
        ones masked out to :attr:`removed`)."""
        ids = np.asarray(items, dtype=np.int64)
        m = ids.shape[0]
        view = self._view
        ok = np.ones(m, dtype=bool)
        if m == 0:
            return ok
        inside = (ids >= 0) & (ids < view.n)
        idx = ids[inside]
        if self._rules and idx.shape[0]:
            exp = view.expires_at[idx]
            ok[inside] = ~(view.hidden[idx] | ((exp > 0) & (exp <= self._now)))
        if self._want is not None:
            ok &= self._in_categories(ids, inside, idx)
        if count:
            self.removed += int(m - np.count_nonzero(ok))
        return ok

    def _in_categories(self, ids: npt.NDArray[np.int64], inside: BoolArray,
                       idx: npt.NDArray[np.int64]) -> BoolArray:
        """Any-of: the item has at least one wanted category (items without any never pass).

        One gather of ``cat_bits`` answers it while there are at most 64 categories; beyond,
        it narrows the candidates and their category lists settle the rest exactly.
        """
        view = self._view
        found = np.zeros(ids.shape[0], dtype=bool)
        if not idx.shape[0] or not self._want_ids.shape[0]:
            return found
        maybe = (view.cat_bits[idx] & self._want_bits) != 0
        where = np.flatnonzero(inside)
        if self._exact_bits:
            found[where[maybe]] = True
            return found
        idx, where = idx[maybe], where[maybe]
        assert self._want is not None
        starts = view.cat_indptr[idx]
        lens = view.cat_indptr[idx + 1] - starts
        total = int(lens.sum())
        if total == 0:
            return found
        # Flat positions of every (candidate, category) pair, without a Python loop.
        ends = np.cumsum(lens)
        flat = np.arange(total, dtype=np.int64) + np.repeat(starts - (ends - lens), lens)
        hit = self._want[view.cat_ids[flat]]
        owner = np.repeat(where, lens)
        found[owner[hit]] = True
        return found

    def category_items(self) -> Int32Array | None:
        """Every item of the wanted categories (None when the filter asks for none)."""
        return self._view.items_in(self._want_ids) if self.categories else None

    def filter(self, items: Int32Array, scores: npt.NDArray[np.floating]
               ) -> tuple[Int32Array, npt.NDArray[np.floating]]:
        """``items`` and their ``scores`` with the filtered ones dropped (order kept)."""
        mask = self.keep(items)
        if mask.all():
            return items, scores
        return items[mask], scores[mask]
