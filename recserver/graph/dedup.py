"""Idempotent ingest: stable 64-bit event keys and a compact set of the keys already applied.

A replayed event (same ``event_id``, or without one the same user, item, event type and
timestamp) must be applied once. Keys are 64-bit hashes (stable across processes, unlike
``hash()``), kept in a sorted numpy array (8 bytes an event) plus a small sorted run of recent
keys merged into it now and then, so membership for a whole batch is one ``searchsorted``.
The collision chance for 10M events is about 3e-6 (birthday bound on 64 bits).
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix64(x: U64) -> U64:
    """splitmix64 finaliser: a cheap, well-spread 64-bit mix (vectorised)."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * _M1
        x = x ^ (x >> np.uint64(27))
        x = x * _M2
        return x ^ (x >> np.uint64(31))


def type_hashes(type_names: Sequence[str]) -> U64:
    """A stable 32-bit hash per event type name (crc32), as uint64."""
    return np.array([zlib.crc32(t.encode("utf-8")) for t in type_names], dtype=np.uint64)


def tuple_keys(
    users: npt.NDArray[np.int32],
    items: npt.NDArray[np.int32],
    type_hash: U64,
    timestamps: npt.NDArray[np.float64],
) -> U64:
    """Keys for events without an id: a hash of (user, item, event type, timestamp in ms).

    User and item are the stable internal ids, so keys survive restarts with the saved id maps.
    """
    with np.errstate(over="ignore"):
        h = _mix64(users.astype(np.uint64) ^ (items.astype(np.uint64) << np.uint64(32)))
        h = _mix64(h ^ type_hash)
        millis = np.round(timestamps * 1000.0).astype(np.int64).astype(np.uint64)
        return _mix64(h ^ millis)


def id_keys(event_ids: Sequence[str]) -> U64:
    """Keys for events with a client-given id: an 8-byte BLAKE2b of the id."""
    return np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(e.encode("utf-8"), digest_size=8).digest(), "little")
            for e in event_ids
        ),
        dtype=np.uint64,
        count=len(event_ids),
    )


class DedupIndex:
    """The set of event keys already applied. Not thread-safe: the graph writer owns it."""

    def __init__(self, keys: U64 | None = None, merge_every: int = 65_536) -> None:
        self._sorted: U64 = np.unique(keys) if keys is not None else np.empty(0, np.uint64)
        self._recent: U64 = np.empty(0, np.uint64)
        self._merge_every = merge_every

    def __len__(self) -> int:
        return int(self._sorted.shape[0] + self._recent.shape[0])

    @staticmethod
    def _member(sorted_keys: U64, keys: U64) -> npt.NDArray[np.bool_]:
        if sorted_keys.shape[0] == 0:
            return np.zeros(keys.shape[0], dtype=bool)
        pos = np.searchsorted(sorted_keys, keys)
        pos[pos == sorted_keys.shape[0]] = 0
        return sorted_keys[pos] == keys

    def add_new(self, keys: U64) -> npt.NDArray[np.bool_]:
        """Mark ``keys`` as applied; return a mask of those that were new (first in-batch wins)."""
        seen = self._member(self._sorted, keys) | self._member(self._recent, keys)
        # Within one batch, only the first occurrence of a key is new.
        _, first = np.unique(keys, return_index=True)
        first_mask = np.zeros(keys.shape[0], dtype=bool)
        first_mask[first] = True
        fresh = first_mask & ~seen
        if fresh.any():
            self._recent = np.union1d(self._recent, keys[fresh])
            if self._recent.shape[0] >= self._merge_every:
                self._sorted = np.union1d(self._sorted, self._recent)
                self._recent = np.empty(0, np.uint64)
        return fresh

    def keys(self) -> U64:
        """All keys, sorted (for saving)."""
        return np.union1d(self._sorted, self._recent)
