"""Trending counts: per item, events decayed with a short half-life, kept by the builder.

For each configured half-life ``h`` an item's trending count at time ``t`` is
``sum over its events of 2 ** -((t - ts) / h)``: one fresh event counts 1, one ``h`` old counts
1/2. Kept with a fixed epoch ``t0`` (the edge store's trick): each event adds
``2 ** ((ts - t0) / h)`` and a read at ``t`` multiplies by ``2 ** ((t0 - t) / h)``, so adding
is O(1) an event and nothing is touched between events. When ``(ts - t0) / h`` would exceed
``REBASE_EXPONENT`` the counts are rescaled to a later epoch (O(items), rare: every
``REBASE_EXPONENT`` half-lives of event time), which keeps every term far inside float64.

Each publish reads the counts at the snapshot's reference time (the newest event seen, the
same clock replay and the walks' decay use) as one float32 array per half-life; workers rank
items by it (``recserver.service.trending``). Counts are thread-safe: ingest adds while the
publisher reads.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from recserver.graph.edge_runs import EdgeRun
from recserver.graph.events import EventColumns

Float32Array = npt.NDArray[np.float32]
Float64Array = npt.NDArray[np.float64]
Int32Array = npt.NDArray[np.int32]

#: Rescale to a later epoch past this many half-lives: 2 ** 400 is far from float64's 2 ** 1023,
#: so a batch's largest terms and a read's factor never overflow.
REBASE_EXPONENT = 400.0


class IdLookup(Protocol):
    def lookup_many(self, names: Sequence[str]) -> npt.NDArray[np.int64]: ...


def half_life_key(seconds: float) -> str:
    """The name of a half-life in manifests and file names (``900``, ``90.5``)."""
    return f"{seconds:g}"


class TrendingCounters:
    """Decayed event counts per item, one set per half-life (seconds)."""

    def __init__(self, half_lives_s: tuple[float, ...]) -> None:
        if any(h <= 0 for h in half_lives_s):
            raise ValueError(f"half-lives {half_lives_s}: each must be > 0 seconds")
        self.half_lives_s = tuple(sorted(set(half_lives_s)))
        self._counts = {h: np.zeros(0, dtype=np.float64) for h in self.half_lives_s}
        self._t0 = {h: -np.inf for h in self.half_lives_s}  # no epoch before the first event
        self._lock = threading.Lock()
        self.max_ts = -np.inf  # the newest event counted

    def ensure(self, half_lives_s: tuple[float, ...]) -> None:
        """Keep counts for ``half_lives_s`` too; a new one counts the events from now on."""
        with self._lock:
            for h in sorted(set(half_lives_s) - set(self.half_lives_s)):
                if h <= 0:
                    raise ValueError(f"half-life {h}: must be > 0 seconds")
                self._counts[h] = np.zeros(0, dtype=np.float64)
                self._t0[h] = -np.inf
            self.half_lives_s = tuple(sorted(self._counts))

    def add(self, items: Int32Array, timestamps: Float64Array) -> None:
        """Count one event per (item id, timestamp); ids are the graph's internal item ids."""
        if items.shape[0] == 0:
            return
        newest = float(timestamps.max())
        size = int(items.max()) + 1
        with self._lock:
            self.max_ts = max(self.max_ts, newest)
            for h in self.half_lives_s:
                counts = self._grown(h, size)
                if not np.isfinite(self._t0[h]) or (newest - self._t0[h]) / h > REBASE_EXPONENT:
                    self._rebase(h, newest)  # older events of the batch then add < 1 each
                terms = np.exp2((timestamps - self._t0[h]) / h)
                counts += np.bincount(items, weights=terms, minlength=counts.shape[0])

    def _grown(self, h: float, size: int) -> Float64Array:
        counts = self._counts[h]
        if counts.shape[0] < size:
            grown = np.zeros(max(size, counts.shape[0] * 2), dtype=np.float64)
            grown[: counts.shape[0]] = counts
            self._counts[h] = counts = grown
        return counts

    def _rebase(self, h: float, t0: float) -> None:
        """Move the epoch of ``h`` to ``t0`` (lock held): counts scaled, meaning unchanged."""
        if np.isfinite(self._t0[h]):
            self._counts[h] *= np.exp2((self._t0[h] - t0) / h)
        self._t0[h] = t0

    def at(self, t: float, n_items: int) -> dict[str, Float32Array]:
        """Every half-life's counts decayed to time ``t``, ``n_items`` long (by key)."""
        out: dict[str, Float32Array] = {}
        with self._lock:
            for h in self.half_lives_s:
                counts = self._counts[h][:n_items]
                values = np.zeros(n_items, dtype=np.float32)
                if np.isfinite(self._t0[h]) and np.isfinite(t):
                    # Read no earlier than the epoch: a factor above 1 would only mean a reader
                    # asking before the newest event, and could overflow float32.
                    factor = np.exp2((self._t0[h] - max(t, self._t0[h])) / h)
                    values[: counts.shape[0]] = counts * factor
                out[half_life_key(h)] = values
        return out

    def seed(self, items: Int32Array, timestamps: Float64Array) -> None:
        """Start from restored edges: one event per (user, item) edge at its last timestamp.

        A restarted builder has no per-event history, only its checkpoint's edges; the log
        after the checkpoint is replayed on top, event by event. Within a short half-life an
        item's recent clicks are mostly distinct users' edges, so this is close to the count.
        """
        self.add(items, timestamps)


def count_columns(counters: TrendingCounters, item_ids: IdLookup, cols: EventColumns,
                  accepted: npt.NDArray[np.bool_]) -> None:
    """Count the ``accepted`` events of ``cols`` (ingest lock held: names have graph ids)."""
    if not accepted.any():
        return
    codes = cols.item_codes[accepted]
    used = np.unique(codes)
    ids = np.asarray(item_ids.lookup_many([cols.item_names[c] for c in used.tolist()]))
    items = ids[np.searchsorted(used, codes)].astype(np.int32)
    known = items >= 0  # every accepted event's item has an id; guard the arithmetic anyway
    counters.add(items[known], cols.timestamp[accepted][known])


def seed_from_runs(counters: TrendingCounters, main: EdgeRun, delta: tuple[EdgeRun, ...]) -> None:
    """``TrendingCounters.seed`` from a restored store: ``main`` (sorted by key) and the runs
    since. An edge of ``main`` that a later run updated counts once, at the later time."""
    later = [run for run in delta if len(run)]
    keep = np.ones(len(main), dtype=bool)
    if len(main) and later:
        keys = np.concatenate([run.keys for run in later])
        pos = np.minimum(np.searchsorted(main.keys, keys), len(main) - 1)
        keep[pos[main.keys[pos] == keys]] = False
    if keep.any():
        counters.seed(main.items[keep], main.last_ts[keep])
    for run in later:
        counters.seed(run.items, run.last_ts)
