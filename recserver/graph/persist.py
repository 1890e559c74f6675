"""Saving and loading snapshots as a folder of ``.npy`` files (memory-mappable) plus metadata.

A save writes into a temporary sibling folder and renames it into place, so a crash mid-save
never leaves a half-written snapshot under the final name. Loading checks the format version and
the array shapes, and refuses a corrupt folder with an error that names the file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from recserver.core.durable import fsync_path, save_array
from recserver.graph.idmap import IdMap
from recserver.graph.snapshot import CsrSide, GraphSnapshot

FORMAT_VERSION = 1
_SIDES = ("base_users", "base_items", "over_users", "over_items")
_ARRAYS = ("indptr", "packed", "row_weight", "weight")


class SnapshotFormatError(ValueError):
    """A snapshot folder that cannot be loaded (missing, corrupt, or of another format)."""


def save_snapshot(snap: GraphSnapshot, path: Path | str) -> Path:
    """Write ``snap`` to the folder ``path`` atomically; returns the path."""
    final = Path(path)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for side_name in _SIDES:
        side: CsrSide = getattr(snap, side_name)
        for array_name in _ARRAYS:
            array = getattr(side, array_name)
            if array is not None:
                save_array(tmp / f"{side_name}.{array_name}.npy", array, fsync=False)
    save_array(tmp / "item_degree.npy", snap.item_degree, fsync=False)
    snap.users.save(tmp / "users")
    snap.items.save(tmp / "items")
    meta: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "version": snap.version,
        "n_users": snap.n_users,
        "n_items": snap.n_items,
        "t_ref": snap.t_ref,
        "built_at": snap.built_at,
        "stats": snap.stats,
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    fsync_path(tmp / "meta.json")
    old = final.with_name(final.name + ".old")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def _load_array(path: Path, mmap: bool) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise SnapshotFormatError(f"{path}: cannot read array ({exc})") from exc


def load_snapshot(path: Path | str, *, mmap: bool = True) -> GraphSnapshot:
    """Load a snapshot folder; arrays are memory-mapped read-only unless ``mmap`` is False."""
    folder = Path(path)
    meta_path = folder / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise SnapshotFormatError(f"{meta_path}: missing or not JSON ({exc})") from exc
    if meta.get("format") != FORMAT_VERSION:
        raise SnapshotFormatError(
            f"{meta_path}: format {meta.get('format')!r}, this build reads {FORMAT_VERSION}"
        )
    sides: dict[str, CsrSide] = {}
    for side_name in _SIDES:
        arrays = {}
        for array_name in _ARRAYS:
            file = folder / f"{side_name}.{array_name}.npy"
            arrays[array_name] = _load_array(file, mmap) if file.exists() else None
        if arrays["indptr"] is None or arrays["packed"] is None or arrays["row_weight"] is None:
            raise SnapshotFormatError(f"{folder}: arrays of {side_name} are missing")
        side = CsrSide(**arrays)  # type: ignore[arg-type]  # presence checked just above
        if side.indptr[-1] != side.nnz or side.row_weight.shape[0] != side.n_rows:
            raise SnapshotFormatError(f"{folder}: {side_name} arrays disagree in size")
        sides[side_name] = side
    try:
        users, items = IdMap.load(folder / "users"), IdMap.load(folder / "items")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise SnapshotFormatError(f"{folder}: id maps unreadable ({exc})") from exc
    if len(users) < meta["n_users"] or len(items) < meta["n_items"]:
        raise SnapshotFormatError(f"{folder}: id maps are shorter than the graph")
    return GraphSnapshot(
        version=int(meta["version"]),
        users=users,
        items=items,
        item_degree=_load_array(folder / "item_degree.npy", mmap),
        t_ref=float(meta["t_ref"]),
        built_at=float(meta["built_at"]),
        stats=dict(meta.get("stats", {})),
        base_users=sides["base_users"], base_items=sides["base_items"],
        over_users=sides["over_users"], over_items=sides["over_items"],
    )
