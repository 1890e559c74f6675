"""A serving worker's view of the graph: the newest published snapshot, memory-mapped.

:class:`MappedGraph` has what the hot path reads from a graph (``ready``, ``current``,
``on_publish``), so the recommender, the fallback tiers and the metrics take it in place of a
``LiveGraph``. A daemon thread watches the manifest; when it names a new version it maps the
overlay (and the base, when that changed too), builds the snapshot object and swaps one
reference. Readers take ``current`` once per request; an old snapshot's mappings go when the last
request holding it finishes (reference counting), never under a reader.

Nothing here writes: workers never build, compact, tail or checkpoint.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from recserver.catalog.files import load_view, touch_view
from recserver.catalog.view import CatalogView
from recserver.core.background import BackgroundWorker
from recserver.core.durable import read_json
from recserver.graph.idmap import IdMap
from recserver.graph.snapshot import CsrSide, GraphSnapshot
from recserver.node.layout import RunDir
from recserver.node.snapshot_files import FORMAT, load_array, load_side

log = logging.getLogger(__name__)


def touch(side: CsrSide) -> None:
    """Fault the side's pages in now, so the first walks after a swap do not pay for it."""
    for array in (side.indptr, side.packed, side.row_weight, side.weight):
        if array is not None and array.shape[0]:
            step = max(1, 4096 // array.itemsize)
            np.add.reduce(array[::step])


class LayeredIdMap:
    """A base id map (loaded once per base) plus the names first seen since (``tail``, an
    ``IdMap`` of their own mapped from the overlay: ids counted from 0 there, from the base's
    length here).

    Read-only: workers resolve ids, they never assign them. The tail's names stay in the mapped
    file (pages shared by every worker); each worker builds only its int32 index, where a dict
    of Python strings rebuilt at every publish cost ~150 bytes a name in every worker.
    """

    def __init__(self, base: IdMap, tail: IdMap) -> None:
        self._base = base
        self._n_base = len(base)
        self._tail = tail

    def __len__(self) -> int:
        return self._n_base + len(self._tail)

    def __contains__(self, name: object) -> bool:
        return name in self._base or name in self._tail

    def get(self, name: str) -> int | None:
        found = self._base.get(name)
        if found is not None or not len(self._tail):
            return found
        in_tail = self._tail.get(name)
        return None if in_tail is None else self._n_base + in_tail

    def name(self, idx: int) -> str:
        return self._base.name(idx) if idx < self._n_base else self._tail.name(idx - self._n_base)

    def names(self, ids: Iterable[int]) -> list[str]:
        return [self.name(int(i)) for i in ids]

    def lookup_many(self, names: Sequence[str]) -> np.ndarray:
        found = np.asarray(self._base.lookup_many(names), dtype=np.int64)
        if len(self._tail) and (found < 0).any():
            missing = np.flatnonzero(found < 0)
            in_tail = self._tail.lookup_many([names[i] for i in missing.tolist()])
            found[missing] = np.where(in_tail >= 0, in_tail + self._n_base, -1)
        return found


class MappedGraph:
    """The newest snapshot in a run directory, swapped in as the builder publishes."""

    def __init__(self, run: RunDir, *, poll_s: float = 0.02) -> None:
        self.run = run
        self.poll_s = poll_s
        self._current: GraphSnapshot | None = None
        #: the event-log position the mapped snapshot makes visible ("" when unknown)
        self.visible_position = ""
        self._base_name = ""
        self._base: tuple[CsrSide, CsrSide, IdMap, IdMap] | None = None
        self._manifest_key: tuple[int, int] | None = None  # (mtime_ns, inode) last read
        self._catalog: tuple[str, CatalogView | None] = ("", None)
        self.on_publish: list[Callable[[GraphSnapshot], None]] = []
        self._watcher = BackgroundWorker("snapshot-watch", self._run, join_timeout_s=5.0)
        self._stop = self._watcher.stop_event
        self.loads = 0
        self.failures = 0
        self.last_load_s = 0.0
        #: publish -> mapped here, seconds, for the visibility metric
        self.last_delay_s = 0.0

    @property
    def ready(self) -> bool:
        return self._current is not None

    @property
    def current(self) -> GraphSnapshot:
        snap = self._current
        if snap is None:
            raise RuntimeError("no snapshot mapped yet")
        return snap

    def refresh(self) -> bool:
        """Map the manifest's snapshot if it is new; True when a new one was swapped in."""
        try:
            stat = self.run.manifest.stat()
        except FileNotFoundError:
            return False
        key = (stat.st_mtime_ns, stat.st_ino)
        if key == self._manifest_key:
            return False
        manifest = read_json(self.run.manifest)
        if manifest is None or manifest.get("format") != FORMAT:
            return False
        current = self._current
        if current is not None and int(manifest["version"]) <= current.version:
            self._manifest_key = key
            return False
        started = time.perf_counter()
        snap = self._load(manifest)
        self._current = snap  # the reference flip readers rely on
        # After the flip: a status read in between reports less than is visible, never more.
        self.visible_position = str(manifest.get("visible_position", ""))
        self._manifest_key = key
        self.loads += 1
        self.last_load_s = time.perf_counter() - started
        self.last_delay_s = max(0.0, time.time() - float(manifest.get("published_at", 0.0)))
        for callback in self.on_publish:
            try:
                callback(snap)
            except Exception:  # a listener never stops the swap
                log.exception("on_publish listener failed")
        return True

    def _load(self, manifest: dict[str, object]) -> GraphSnapshot:
        folder = self.run.snapshots
        base_name = str(manifest["base"])
        if self._base is None or base_name != self._base_name:
            base_dir = folder / base_name
            sides = (load_side(base_dir, "base_users"), load_side(base_dir, "base_items"))
            for side in sides:
                touch(side)
            self._base = (*sides, IdMap.load(base_dir / "users"), IdMap.load(base_dir / "items"))
            self._base_name = base_name
        base_users, base_items, users, items = self._base
        over: Path = folder / str(manifest["overlay"])
        catalog_name = str(manifest.get("catalog") or "")
        if catalog_name != self._catalog[0]:
            catalog = load_view(folder / catalog_name, mmap=True) if catalog_name else None
            if catalog is not None:
                touch_view(catalog)
            self._catalog = (catalog_name, catalog)
        stats = manifest.get("stats")
        return GraphSnapshot(
            version=int(str(manifest["version"])),
            users=LayeredIdMap(users, IdMap.load(over / "users_tail")),  # type: ignore[arg-type]
            items=LayeredIdMap(items, IdMap.load(over / "items_tail")),  # type: ignore[arg-type]
            base_users=base_users, base_items=base_items,
            over_users=load_side(over, "over_users"), over_items=load_side(over, "over_items"),
            item_degree=load_array(over / "item_degree.npy"),
            t_ref=float(str(manifest["t_ref"])), built_at=float(str(manifest["built_at"])),
            stats=dict(stats) if isinstance(stats, dict) else {},
            catalog=self._catalog[1],
            trending={str(key): load_array(over / f"trending-{key}.npy")
                      for key in manifest.get("trending") or ()},  # type: ignore[attr-defined]
            log_position=str(manifest.get("visible_position") or ""),
        )

    def wait_ready(self, timeout_s: float) -> bool:
        """Poll until a snapshot is mapped (or ``timeout_s``); True when ready."""
        deadline = time.monotonic() + timeout_s
        while not self._stop.is_set():
            try:
                self.refresh()
            except (OSError, ValueError, KeyError) as exc:
                log.info("snapshot not mappable yet (%s); retrying", exc)
            if self.ready or time.monotonic() >= deadline:
                break
            time.sleep(self.poll_s)
        return self.ready

    def start(self) -> None:
        """Watch the manifest in a daemon thread."""
        self._watcher.start()

    @property
    def watching(self) -> bool:
        """True while the watcher thread is alive."""
        return self._watcher.running

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self.poll_s):
            try:
                self.refresh()
            except Exception as exc:  # the watcher must outlive any bad publish
                # A folder collected mid-load, a torn file: the next manifest maps cleanly.
                self.failures += 1
                log.warning("could not map the published snapshot (%s); keeping version %s",
                            exc, self._current.version if self._current else "none")

    def stop(self) -> None:
        self._watcher.stop()
