"""Checkpoints: the edge store and the log position it reflects, saved atomically.

A checkpoint is a folder ``ckpt-<unix ms>-<n>`` of ``.npy`` arrays and id-map files plus
``meta.json``: the store's ``main`` run and the edges since (unmerged), every dedup key, both id
maps (``IdMap.save``'s files, hash index included: a restore memory-maps them and builds neither
an index nor a Python string), the decay epoch, the dead gaps decay skips (``decay_gaps``) and the
newest timestamp, the event-log position, how many events were applied, and the item catalogue
(``catalog.*``, when any item was described).
It is written under a hidden temporary name, every file fsynced, then renamed into place and the
directory fsynced: the rename is the commit, so a crash mid-save leaves either the previous
checkpoints or the new one complete, never a half-written one under a real name.
Loading takes the newest complete folder and falls back to older ones if it is unreadable.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from recserver.catalog.files import has_view, load_view, save_view
from recserver.core.durable import fsync_path, save_array
from recserver.graph.decay_clock import DecayClock
from recserver.graph.idmap import IdMap
from recserver.graph.store import EdgeRun, StoreState

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
PREFIX = "ckpt-"


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be loaded; the message names the folder or file."""


def _concat_runs(runs: tuple[EdgeRun, ...]) -> EdgeRun:
    if not runs:
        return EdgeRun.empty()
    return EdgeRun(
        np.concatenate([r.keys for r in runs]),
        np.concatenate([r.weight for r in runs]),
        np.concatenate([r.last_ts for r in runs]),
    )


def write_checkpoint(state: StoreState, folder: Path, extra: dict[str, Any] | None = None) -> None:
    """Write ``state`` into the new folder ``folder`` (no atomicity here; see ``save``)."""
    folder.mkdir(parents=True)
    delta = _concat_runs(state.delta)
    for name, run in (("main", state.main), ("delta", delta)):
        save_array(folder / f"{name}.keys.npy", run.keys)
        save_array(folder / f"{name}.weight.npy", run.weight)
        save_array(folder / f"{name}.last_ts.npy", run.last_ts)
    runs = [r for r in state.dedup_runs if r.shape[0]]
    save_array(folder / "dedup.npy", np.concatenate(runs) if runs else np.empty(0, np.uint64))
    # The maps' own files, index included: a restore maps them and rebuilds nothing.
    state.users.save(folder / "users", n=state.n_users, fsync=True)
    state.items.save(folder / "items", n=state.n_items, fsync=True)
    if state.catalog is not None and state.catalog.n:
        save_view(folder, state.catalog, save_array)
        fsync_path(folder / "catalog.categories.json")
    meta = {
        "format": FORMAT_VERSION,
        "created_at": time.time(),
        "log_position": state.log_position,
        "events_applied": state.events_applied,
        "n_users": state.n_users,
        "n_items": state.n_items,
        "t0": state.t0,
        "decay_gaps": state.clock.to_json(),
        "max_ts": state.max_ts if np.isfinite(state.max_ts) else None,
        "edges": len(state.main) + len(delta),
        **(extra or {}),
    }
    meta_path = folder / "meta.json"
    meta_path.write_text(json.dumps(meta, indent=2))
    fsync_path(meta_path)


def _load_array(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read ({exc})") from None


def read_meta(folder: Path) -> dict[str, Any]:
    path = folder / "meta.json"
    try:
        meta: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: missing or not JSON ({exc})") from None
    if meta.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format {meta.get('format')!r}, this build reads "
                              f"{FORMAT_VERSION}")
    return meta


def load_checkpoint(folder: Path) -> StoreState:
    """The store state saved in ``folder``; raises :class:`CheckpointError` if unusable."""
    meta = read_meta(folder)
    runs = {}
    for name in ("main", "delta"):
        parts = [_load_array(folder / f"{name}.{a}.npy") for a in ("keys", "weight", "last_ts")]
        if not parts[0].shape == parts[1].shape == parts[2].shape:
            raise CheckpointError(f"{folder}: the {name} arrays disagree in length")
        runs[name] = EdgeRun(parts[0].astype(np.int64), parts[1].astype(np.float64),
                             parts[2].astype(np.float64))
    dedup = _load_array(folder / "dedup.npy").astype(np.uint64)
    try:
        users, items = IdMap.load(folder / "users"), IdMap.load(folder / "items")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{folder}: id maps unreadable ({exc})") from None
    if len(users) != meta["n_users"] or len(items) != meta["n_items"]:
        raise CheckpointError(f"{folder}: id maps hold {len(users)}/{len(items)} names, meta.json "
                              f"says {meta['n_users']}/{meta['n_items']}")
    catalog = None
    if has_view(folder):
        try:
            catalog = load_view(folder)
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{folder}: catalogue unreadable ({exc})") from None
    max_ts = meta.get("max_ts")
    return StoreState(
        main=runs["main"], delta=(runs["delta"],), dedup_runs=(dedup,), users=users, items=items,
        n_users=len(users), n_items=len(items), t0=meta.get("t0"),
        max_ts=-float("inf") if max_ts is None else float(max_ts),
        log_position=meta.get("log_position"), events_applied=int(meta.get("events_applied", 0)),
        catalog=catalog, clock=DecayClock.from_json(meta.get("decay_gaps")),
    )


class CheckpointStore:
    """The checkpoint folders of one server: save atomically, keep the newest ``keep``."""

    def __init__(self, directory: Path | str, keep: int = 2) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self._seq = 0
        for stale in self.directory.glob(f".{PREFIX}*.tmp"):  # a save a crash interrupted
            shutil.rmtree(stale, ignore_errors=True)

    def folders(self) -> list[Path]:
        """Complete checkpoints, newest first."""
        return sorted((p for p in self.directory.glob(f"{PREFIX}*") if p.is_dir()), reverse=True)

    def save(self, state: StoreState, extra: dict[str, Any] | None = None) -> Path:
        """Write a new checkpoint atomically and drop all but the newest ``keep``."""
        self._seq += 1
        name = f"{PREFIX}{int(time.time() * 1000):015d}-{self._seq:06d}"
        tmp = self.directory / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            write_checkpoint(state, tmp, extra)
            final = self.directory / name
            tmp.rename(final)
            fsync_path(self.directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for old in self.folders()[self.keep :]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def load_latest(self) -> tuple[StoreState, Path] | None:
        """The newest checkpoint that loads (older ones are tried when it does not)."""
        for folder in self.folders():
            try:
                return load_checkpoint(folder), folder
            except CheckpointError as exc:
                log.error("checkpoint %s unusable, trying an older one: %s", folder, exc)
        return None

    def oldest_position(self) -> str | None:
        """The log position of the oldest kept checkpoint (the log must keep what follows)."""
        folders = self.folders()
        if not folders:
            return None
        try:
            position = read_meta(folders[-1]).get("log_position")
        except CheckpointError:
            return None
        return position if isinstance(position, str) else None
