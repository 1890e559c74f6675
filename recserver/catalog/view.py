"""The catalogue as a published snapshot holds it: immutable arrays indexed by graph item id.

``hidden`` (bool) and ``expires_at`` (unix seconds, 0 = never) per item, and each item's
categories in compressed-sparse-row form (``cat_indptr``, ``cat_ids`` into ``categories``).
The arrays cover the items described so far (``n``); an item past ``n`` has no rules and no
categories. Two derived forms make a category filter cheap: ``cat_bits`` (per item, bit
``category_id % 64`` set for each of its categories: one gather answers "any of these?",
exactly while there are at most 64 categories, as a pre-check beyond) and the inverted index
``by_cat_indptr`` / ``by_cat_items`` (each category's items, for ranking within a category).
The builder saves them as ``.npy`` files beside each snapshot and every worker maps the same
files, so every worker filters the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

BoolArray = npt.NDArray[np.bool_]
Float64Array = npt.NDArray[np.float64]
Int64Array = npt.NDArray[np.int64]
Int32Array = npt.NDArray[np.int32]


@dataclass(frozen=True)
class ItemRules:
    """One item's catalogue entry (for operators and tests)."""

    hidden: bool
    expires_at: float
    categories: tuple[str, ...]


@dataclass(frozen=True)
class CatalogView:
    """One immutable catalogue (see the module docstring)."""

    hidden: BoolArray
    expires_at: Float64Array
    cat_indptr: Int64Array
    cat_ids: Int32Array
    categories: tuple[str, ...]
    cat_bits: npt.NDArray[np.uint64]
    by_cat_indptr: Int64Array
    by_cat_items: Int32Array
    #: any item hidden or with an expiry: without, only category filters cost anything
    has_rules: bool = field(default=False)
    _index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    @staticmethod
    def build(hidden: BoolArray, expires_at: Float64Array, cat_indptr: Int64Array,
              cat_ids: Int32Array, categories: Sequence[str], *,
              derived: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> CatalogView:
        """A view over these arrays (checked for consistent sizes); ``derived`` are
        ``cat_bits, by_cat_indptr, by_cat_items`` when already computed (loaded from files)."""
        n = hidden.shape[0]
        if expires_at.shape[0] != n or cat_indptr.shape[0] != n + 1:
            raise ValueError(f"catalogue arrays disagree in size ({n} items)")
        if cat_indptr[-1] != cat_ids.shape[0]:
            raise ValueError("catalogue category arrays disagree in size")
        if cat_ids.shape[0] and int(cat_ids.max()) >= len(categories):
            raise ValueError("catalogue category ids point outside the category names")
        has_rules = bool(hidden.any()) or bool((expires_at > 0).any())
        names = tuple(categories)
        bits, by_indptr, by_items = derived if derived is not None else _derive(
            cat_indptr, cat_ids, len(names))
        if bits.shape[0] != n or by_indptr.shape[0] != len(names) + 1:
            raise ValueError("catalogue category indexes disagree in size")
        return CatalogView(hidden, expires_at, cat_indptr, cat_ids, names, bits, by_indptr,
                           by_items, has_rules, {name: i for i, name in enumerate(names)})

    @staticmethod
    def empty() -> CatalogView:
        return CatalogView.build(np.zeros(0, bool), np.zeros(0, np.float64),
                                 np.zeros(1, np.int64), np.zeros(0, np.int32), ())

    @property
    def n(self) -> int:
        """Items the arrays cover (graph item ids ``0..n-1``)."""
        return int(self.hidden.shape[0])

    def category_ids(self, names: Sequence[str]) -> Int32Array:
        """Ids of the known categories among ``names`` (unknown ones match no item)."""
        found = [self._index[name] for name in names if name in self._index]
        return np.unique(np.asarray(found, dtype=np.int32))

    def items_in(self, category_ids: Int32Array) -> Int32Array:
        """Every item in any of ``category_ids`` (sorted, unique)."""
        parts = [self.by_cat_items[self.by_cat_indptr[c] : self.by_cat_indptr[c + 1]]
                 for c in category_ids.tolist()]
        if not parts:
            return np.empty(0, np.int32)
        return np.unique(np.concatenate(parts)).astype(np.int32)

    def rules(self, item: int) -> ItemRules:
        """``item``'s entry (no rules and no categories past ``n``)."""
        if not 0 <= item < self.n:
            return ItemRules(False, 0.0, ())
        lo, hi = int(self.cat_indptr[item]), int(self.cat_indptr[item + 1])
        return ItemRules(bool(self.hidden[item]), float(self.expires_at[item]),
                         tuple(self.categories[c] for c in self.cat_ids[lo:hi].tolist()))


def _derive(cat_indptr: Int64Array, cat_ids: Int32Array, n_categories: int
            ) -> tuple[npt.NDArray[np.uint64], Int64Array, Int32Array]:
    """``cat_bits`` and the inverted index from the per-item categories."""
    n = cat_indptr.shape[0] - 1
    owner = np.repeat(np.arange(n, dtype=np.int32), np.diff(cat_indptr))
    bits = np.zeros(n, dtype=np.uint64)
    np.bitwise_or.at(bits, owner, np.left_shift(np.uint64(1), (cat_ids % 64).astype(np.uint64)))
    order = np.argsort(cat_ids, kind="stable")
    by_indptr = np.zeros(n_categories + 1, dtype=np.int64)
    np.cumsum(np.bincount(cat_ids, minlength=n_categories), out=by_indptr[1:])
    return bits, by_indptr, owner[order].astype(np.int32)
