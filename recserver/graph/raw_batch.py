"""``RawBatch``: one block of an event file as Arrow/numpy columns, before validation.

Every reader (CSV, JSON lines, Parquet) produces these. Ids are dictionary-encoded at once (int32
codes into a small per-batch dictionary), so a batch costs about 4 bytes per id field whatever
the id's length, and no Python string exists per row.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from recserver.graph.events import RejectedEvent

ID_TYPE = pa.dictionary(pa.int32(), pa.string())


class NotUtf8Error(ValueError):
    """The file's bytes are not UTF-8 text (the loader adds the file's name)."""


def not_utf8(exc: Exception) -> NotUtf8Error:
    """A ``NotUtf8Error`` describing ``exc`` (a ``UnicodeDecodeError`` or Arrow's complaint)."""
    if isinstance(exc, UnicodeDecodeError):
        return NotUtf8Error(f"not UTF-8 text ({exc.reason} at byte {exc.start})")
    return NotUtf8Error(f"not UTF-8 text ({exc})")


def open_binary(path: Path) -> BinaryIO:
    """The file's bytes, gunzipped when the name ends in ``.gz``."""
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


@dataclass
class RawBatch:
    """Parsed rows of one block: ids dictionary-encoded, numbers as float64, lines 1-based."""

    users: pa.DictionaryArray
    items: pa.DictionaryArray
    types: pa.DictionaryArray
    weight: npt.NDArray[np.float64]
    timestamp: npt.NDArray[np.float64]
    event_ids: pa.StringArray | None  # "" where a row has none; None when no row has one
    lines: npt.NDArray[np.int64]
    rejected: list[RejectedEvent]

    def __len__(self) -> int:
        return int(self.weight.shape[0])


def _array(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


def _encode(col: pa.Array) -> pa.DictionaryArray:
    if pa.types.is_dictionary(col.type):
        # A stored dictionary (Parquet: one per row group) may list values this batch does not
        # use: keep only the used ones, in the dictionary's order (a numpy remap, no hashing).
        indices = col.indices.to_numpy(zero_copy_only=False)
        used = np.zeros(len(col.dictionary), dtype=bool)
        used[indices] = True
        values = col.dictionary.cast(pa.string())
        if not used.all():
            remap = (np.cumsum(used) - 1).astype(np.int32)
            indices, values = remap[indices], values.filter(pa.array(used))
        return pa.DictionaryArray.from_arrays(pa.array(indices.astype(np.int32, copy=False)),
                                              values)
    if pa.types.is_large_string(col.type):
        col = col.cast(pa.string())
    return pc.dictionary_encode(col)


def make_batch(
    ids: Sequence[pa.Array | pa.ChunkedArray],
    weight: npt.NDArray[np.float64],
    timestamp: npt.NDArray[np.float64],
    event_ids: pa.Array | pa.ChunkedArray | None,
    lines: npt.NDArray[np.int64],
    bad: dict[int, str],
    rejected: list[RejectedEvent],
) -> RawBatch:
    """A batch from string columns (user, item, event) and float columns.

    Rows listed in ``bad`` (row -> reason) are rejected with their line and left out.
    """
    cols = [_array(c) for c in ids]
    eids = None if event_ids is None else _array(event_ids)
    if bad:
        rejected = rejected + [RejectedEvent(int(lines[i]), r) for i, r in bad.items()]
        keep = np.ones(weight.shape[0], dtype=bool)
        keep[list(bad)] = False
        mask = pa.array(keep)
        cols = [c.filter(mask) for c in cols]
        eids = None if eids is None else eids.filter(mask)
        weight, timestamp, lines = weight[keep], timestamp[keep], lines[keep]
    if eids is not None:
        eids = eids.cast(pa.string()).fill_null("")
        if not pc.any(pc.not_equal(eids, "")).as_py():
            eids = None
    users, items, types = (_encode(c) for c in cols)
    return RawBatch(
        users, items, types, np.ascontiguousarray(weight, dtype=np.float64),
        np.ascontiguousarray(timestamp, dtype=np.float64), eids, lines, rejected,
    )
