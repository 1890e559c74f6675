"""Published snapshots as files: a base folder, an overlay folder, and an atomic manifest.

The builder calls :meth:`SnapshotWriter.write` on every publish. The compact base (large, changes
only at compaction) is written once per base into ``base-<v>/`` with its id maps; each publish
writes the small overlay, the merged item degrees, the trending counts (one array per half-life)
and the id-map *tails* (names first seen since the base) into ``over-<v>/``, the item catalogue
into ``cat-<v>/`` when it changed, then replaces ``MANIFEST.json``. Every array is a plain
``.npy``, so a worker maps it read-only and all workers share the pages through the page cache.

Old folders are deleted once no manifest of the last ``keep_s`` seconds names them. A worker
that still maps a deleted file keeps its pages (Linux frees an inode at its last unmap), so
readers are never pulled out from under; one that is mid-load when its folder goes retries at
the next manifest.

The builder need not keep its own copy of a base it wrote: ``on_base`` listeners get the base
read back from its files, mapped read-only, and the builder's graph serves that instead
(``LiveGraph.adopt_base``), so the base's pages are held once on the machine, in the page cache
that every worker maps too, rather than once more in the builder's private heap.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from recserver.catalog.files import save_view
from recserver.catalog.view import CatalogView
from recserver.core.durable import read_json, save_array, write_json_atomic
from recserver.graph.snapshot import CsrSide, GraphSnapshot
from recserver.node.layout import RunDir

log = logging.getLogger(__name__)

FORMAT = 1
ARRAYS = ("indptr", "packed", "row_weight", "weight")


def save_side(folder: Path, name: str, side: CsrSide) -> None:
    for array_name in ARRAYS:
        array = getattr(side, array_name)
        if array is not None:
            save_array(folder / f"{name}.{array_name}.npy", array, fsync=False)


def load_array(path: Path) -> np.ndarray:
    """A read-only mapping of ``path``. An empty array cannot be mapped and comes back as a
    plain one: it is made read-only too, so the walk kernels always see one array type (a
    new type would mean a JIT compile on the request path)."""
    array = np.load(path, mmap_mode="r")
    array.flags.writeable = False
    return array


def load_side(folder: Path, name: str) -> CsrSide:
    arrays: dict[str, Any] = {}
    for array_name in ARRAYS:
        path = folder / f"{name}.{array_name}.npy"
        arrays[array_name] = load_array(path) if path.exists() else None
    if any(arrays[key] is None for key in ("indptr", "packed", "row_weight")):
        raise ValueError(f"{folder}: the arrays of {name} are missing (collected or torn)")
    side = CsrSide(**arrays)
    if side.indptr[-1] != side.nnz or side.row_weight.shape[0] != side.n_rows:
        raise ValueError(f"{folder}: the arrays of {name} disagree in size")
    return side


class SnapshotWriter:
    """Publishes a builder's snapshots into ``run.snapshots`` (see the module docstring)."""

    def __init__(self, run: RunDir, *, keep_s: float = 30.0) -> None:
        self.run = run.create()
        self.keep_s = keep_s
        self._base_side: CsrSide | None = None  # the base side last written
        self._base_mapped: CsrSide | None = None  # the same, read back from its files
        self._base_name = ""
        self._base_counts = (0, 0)  # users, items in the base folder's id maps
        self._catalog: CatalogView | None = None  # the catalogue view last written
        self._catalog_name = ""
        self._referenced: dict[str, float] = {}  # folder -> last time a manifest named it
        self.writes = 0
        self.last_seconds = 0.0
        #: called after a new base is written with (the users side written, then both sides
        #: read back from the files, mapped); a listener may serve those in place of its copy
        self.on_base: list[Callable[[CsrSide, CsrSide, CsrSide], object]] = []

    def last_version(self) -> int:
        """The version of the manifest already there (0 when none): versions only grow."""
        manifest = read_json(self.run.manifest)
        return int(manifest.get("version", 0)) if manifest else 0

    def write(self, snap: GraphSnapshot) -> None:
        """Write ``snap`` and point the manifest at it, with the event-log position it makes
        visible (``snap.log_position``; workers report it in ``GetIngestStatus``)."""
        started = time.perf_counter()
        if snap.base_users is not self._base_side and snap.base_users is not self._base_mapped:
            self._write_base(snap)
        if snap.catalog is not None and snap.catalog is not self._catalog:
            self._write_catalog(snap.version, snap.catalog)
        over_name = f"over-{snap.version}"
        folder = self._fresh(over_name)
        save_side(folder, "over_users", snap.over_users)
        save_side(folder, "over_items", snap.over_items)
        save_array(folder / "item_degree.npy", snap.item_degree, fsync=False)
        for key, counts in snap.trending.items():  # per publish: they decay with the clock
            save_array(folder / f"trending-{key}.npy", counts, fsync=False)
        n_base_users, n_base_items = self._base_counts
        # The names first seen since the base, as id maps of their own (``IdMap.load``).
        snap.users.save_slice(folder / "users_tail", n_base_users, snap.n_users)
        snap.items.save_slice(folder / "items_tail", n_base_items, snap.n_items)
        manifest = {
            "format": FORMAT, "version": snap.version, "base": self._base_name,
            "overlay": over_name, "n_users": snap.n_users, "n_items": snap.n_items,
            "t_ref": snap.t_ref, "built_at": snap.built_at, "published_at": time.time(),
            "stats": snap.stats, "visible_position": snap.log_position,
            "catalog": self._catalog_name, "trending": sorted(snap.trending),
        }
        # Not fsynced, like the snapshot's arrays: workers read it through the page cache, and
        # a restarted builder publishes anew. An fsync here waited behind a checkpoint's
        # writeback and made the publish, and every event it carried, late by up to 2.4 s.
        write_json_atomic(self.run.manifest, manifest, fsync=False)
        now = time.monotonic()
        self._referenced[self._base_name] = now
        self._referenced[over_name] = now
        if self._catalog_name:
            self._referenced[self._catalog_name] = now
        self._collect(now)
        self.writes += 1
        self.last_seconds = time.perf_counter() - started

    def _write_base(self, snap: GraphSnapshot) -> None:
        name = f"base-{snap.version}"
        folder = self._fresh(name)
        save_side(folder, "base_users", snap.base_users)
        save_side(folder, "base_items", snap.base_items)
        # The maps as of this snapshot; later names travel in each overlay's tails.
        snap.users.save(folder / "users", n=snap.n_users)
        snap.items.save(folder / "items", n=snap.n_items)
        self._base_side, self._base_name = snap.base_users, name
        self._base_mapped = None
        self._base_counts = (snap.n_users, snap.n_items)
        log.info("published base %s (%d edges)", name, snap.base_users.nnz)
        if self.on_base:
            users, items = load_side(folder, "base_users"), load_side(folder, "base_items")
            self._base_mapped = users  # a snapshot holding the mapping is not written again
            for listener in self.on_base:
                listener(snap.base_users, users, items)

    def _write_catalog(self, version: int, view: CatalogView) -> None:
        """The catalogue, written only when it changed (most publishes share the last one)."""
        name = f"cat-{version}"
        save_view(self._fresh(name), view)
        self._catalog, self._catalog_name = view, name

    def _fresh(self, name: str) -> Path:
        folder = self.run.snapshots / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return folder

    def _collect(self, now: float) -> None:
        """Delete folders no manifest of the last ``keep_s`` seconds named."""
        for name, seen in list(self._referenced.items()):
            if now - seen > self.keep_s:
                shutil.rmtree(self.run.snapshots / name, ignore_errors=True)
                del self._referenced[name]
        for folder in self.run.snapshots.iterdir():  # left by an earlier builder
            if folder.is_dir() and folder.name not in self._referenced:
                age = time.time() - folder.stat().st_mtime
                if age > self.keep_s:
                    shutil.rmtree(folder, ignore_errors=True)
