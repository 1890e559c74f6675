"""A catalogue view on disk: four ``.npy`` arrays and the category names, in one folder.

Used twice: beside each published snapshot (workers map the arrays read-only) and inside each
checkpoint (restart recovery). ``fsync`` is the checkpoint's business: it passes its own saver.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from recserver.catalog.view import CatalogView
from recserver.core.durable import save_array

ARRAYS = ("hidden", "expires_at", "cat_indptr", "cat_ids")
DERIVED = ("cat_bits", "by_cat_indptr", "by_cat_items")
NAMES_FILE = "catalog.categories.json"


def _default_save(path: Path, array: np.ndarray) -> None:
    save_array(path, array, fsync=False)


def save_view(folder: Path, view: CatalogView,
              save: Callable[[Path, np.ndarray], None] = _default_save) -> None:
    """Write ``view`` into ``folder`` (which exists)."""
    for name in ARRAYS + DERIVED:
        save(folder / f"catalog.{name}.npy", getattr(view, name))
    (folder / NAMES_FILE).write_text(json.dumps(list(view.categories)))


def has_view(folder: Path) -> bool:
    return (folder / NAMES_FILE).exists()


def load_view(folder: Path, *, mmap: bool = False) -> CatalogView:
    """The view saved in ``folder``; ``mmap`` maps the arrays read-only instead of reading them.

    Raises ``ValueError`` (or ``OSError``) when files are missing or disagree.
    """
    arrays = {}
    for name in ARRAYS + DERIVED:
        array = np.load(folder / f"catalog.{name}.npy", mmap_mode="r" if mmap else None,
                        allow_pickle=False)
        if mmap:
            array.flags.writeable = False
        arrays[name] = array
    names = json.loads((folder / NAMES_FILE).read_text())
    if not isinstance(names, list):
        raise ValueError(f"{folder / NAMES_FILE}: not a list of category names")
    return CatalogView.build(arrays["hidden"], arrays["expires_at"], arrays["cat_indptr"],
                             arrays["cat_ids"], [str(n) for n in names],
                             derived=(arrays["cat_bits"], arrays["by_cat_indptr"],
                                      arrays["by_cat_items"]))


def touch_view(view: CatalogView) -> None:
    """Fault a mapped view's pages in now, so the first filtered requests do not pay for it."""
    for name in ARRAYS + DERIVED:
        array = getattr(view, name)
        if array.shape[0]:
            np.add.reduce(array[:: max(1, 4096 // array.itemsize)].astype(np.float64))
