"""External string ids <-> dense int32 internal ids, one map per side of the graph.

Ids are assigned in first-seen order and never change or get reused, so an id keeps its meaning
across snapshots and checkpoints. The names are held the way Arrow holds a string column: one
UTF-8 blob and int64 offsets, plus an open-addressing int32 index keyed by a stable hash
(``idmap_kernels``). That is about 8 bytes of offsets, 6-12 of index and the name's own bytes per
id, against ~180 bytes for a dict of Python strings, and nothing in it is a Python object, so a
saved map is memory-mapped by ``load`` and its pages are shared by every process that maps it.
"""

from __future__ import annotations

import os
import threading
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from recserver.core.durable import write_array
from recserver.graph import idmap_kernels as k

INT32_MAX = 2**31 - 1
_MAX_LOAD = 0.7  # index fill before it doubles: linear probing stays short below this
_GROWTH = 1.25  # blob and offsets grow by a quarter: little slack held, amortised copying


@dataclass(frozen=True)
class _Arrays:
    """One consistent view of the storage; replaced whole when something grows."""

    blob: npt.NDArray[np.uint8]
    offsets: npt.NDArray[np.int64]
    index: npt.NDArray[np.int32]
    bits: int
    # Memoryviews: indexing them from Python is several times faster than numpy scalars.
    blob_mv: memoryview
    offsets_mv: memoryview
    index_mv: memoryview

    @staticmethod
    def of(blob: np.ndarray, offsets: np.ndarray, index: np.ndarray) -> _Arrays:
        bits = int(index.shape[0]).bit_length() - 1
        return _Arrays(blob, offsets, index, bits, _view(blob, "B"), _view(offsets, "q"),
                       _view(index, "i"))

    @property
    def writable(self) -> bool:
        return bool(self.blob.flags.writeable and self.offsets.flags.writeable
                    and self.index.flags.writeable)


def _view(array: np.ndarray, fmt: Literal["B", "q", "i"]) -> memoryview:
    return memoryview(array.data).cast("B").cast(fmt)


def _utf8(names: Sequence[str] | pa.Array) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """The names' UTF-8 bytes and start offsets (n + 1 of them), built by Arrow in C."""
    arr = names if isinstance(names, pa.Array) else pa.array(names, type=pa.string())
    if not pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.large_string())
    arr = arr.fill_null("")
    _, offs_buf, data_buf = arr.buffers()
    starts = np.frombuffer(offs_buf, np.int64, count=len(arr) + 1, offset=arr.offset * 8)
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.empty(0, np.uint8)
    return data, starts


def _bits_for(n: int) -> int:
    bits = 4
    while n > _MAX_LOAD * (1 << bits):
        bits += 1
    return bits


class IdMap:
    """Append-only bidirectional map. Lookups are lock-free; appends are serialised.

    Readers may look ids up while one writer appends: a name's bytes and offset are written
    before its id enters the index, and grown arrays are swapped in whole (``_Arrays``).
    """

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._n = 0
        self._a = _Arrays.of(np.empty(64, np.uint8), np.zeros(17, np.int64),
                             np.full(16, k.EMPTY, np.int32))
        names = list(names)
        if names:
            self.add_many(names)

    def __len__(self) -> int:
        return self._n

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def get(self, name: str) -> int | None:
        """Internal id of ``name``, or None when it was never seen."""
        data = name.encode("utf-8", "surrogatepass")
        a = self._a
        index, offsets, blob = a.index_mv, a.offsets_mv, a.blob_mv
        mask = (1 << a.bits) - 1
        slot = k.slot_of(zlib.crc32(data), a.bits)
        while True:
            idx = index[slot]
            if idx < 0:
                return None
            if blob[offsets[idx] : offsets[idx + 1]] == data:
                return int(idx)
            slot = (slot + 1) & mask

    def name(self, idx: int) -> str:
        """The external id of internal id ``idx``."""
        n = self._n
        if idx < 0:
            idx += n
        if not 0 <= idx < n:
            raise IndexError(f"id {idx} out of range ({n} ids)")
        a = self._a
        return bytes(a.blob_mv[a.offsets_mv[idx] : a.offsets_mv[idx + 1]]).decode("utf-8")

    def names(self, ids: Iterable[int]) -> list[str]:
        """External ids of many internal ids (large requests go through one Arrow ``take``)."""
        ids = np.asarray(ids if isinstance(ids, np.ndarray) else list(ids), dtype=np.int64)
        if ids.shape[0] <= 64:
            return [self.name(int(i)) for i in ids.tolist()]
        n, a = self._n, self._a
        if ids.shape[0] and (ids.min() < -n or ids.max() >= n):
            raise IndexError(f"ids out of range ({n} ids)")
        ids = np.where(ids < 0, ids + n, ids)
        column = pa.LargeStringArray.from_buffers(
            n, pa.py_buffer(a.offsets[: n + 1]), pa.py_buffer(a.blob[: int(a.offsets[n])])
        )
        return column.take(pa.array(ids)).to_pylist()

    def add(self, name: str) -> int:
        """Id of ``name``, assigning the next one if it is new."""
        found = self.get(name)
        return found if found is not None else int(self.add_many([name])[0])

    def add_many(self, names: Sequence[str] | pa.Array) -> npt.NDArray[np.int32]:
        """Ids of ``names`` as an int32 array, assigning new ids in order of first appearance."""
        data, starts = _utf8(names)
        with self._lock:
            a = self._a
            found = k.lookup(a.index, a.bits, a.blob, a.offsets, data, starts, k.CRC_TABLE)
            new = found < 0
            if not new.any():
                return found.astype(np.int32)
            n_new = int(new.sum())
            if self._n + n_new - 1 > INT32_MAX:
                raise OverflowError("more than 2**31 ids on one side of the graph")
            new_bytes = int((starts[1:] - starts[:-1])[new].sum())
            a = self._reserve(n_new, new_bytes)
            out = np.empty(len(starts) - 1, dtype=np.int32)
            self._n = k.insert(a.index, a.bits, a.blob, a.offsets, self._n, data, starts,
                               k.CRC_TABLE, out)
            return out

    def lookup_many(self, names: Sequence[str] | pa.Array) -> npt.NDArray[np.int64]:
        """Ids of ``names`` as int64, -1 for unknown names (never assigns)."""
        if len(names) == 0:  # the common request (no context items): no Arrow round trip
            return np.empty(0, np.int64)
        data, starts = _utf8(names)
        a = self._a
        return k.lookup(a.index, a.bits, a.blob, a.offsets, data, starts, k.CRC_TABLE)

    def _reserve(self, n_new: int, new_bytes: int) -> _Arrays:
        """Room for ``n_new`` more names of ``new_bytes`` bytes; private copies of mapped data."""
        a, n = self._a, self._n
        used = int(a.offsets[n])
        blob, offsets, index = a.blob, a.offsets, a.index
        if not a.writable or offsets.shape[0] < n + n_new + 1:
            grown = np.zeros(max(n + n_new + 1, int(offsets.shape[0] * _GROWTH)), np.int64)
            grown[: n + 1] = offsets[: n + 1]
            offsets = grown
        if not a.writable or blob.shape[0] < used + new_bytes:
            grown_b = np.empty(max(used + new_bytes, int(blob.shape[0] * _GROWTH)), np.uint8)
            grown_b[:used] = blob[:used]
            blob = grown_b
        bits = _bits_for(n + n_new)
        if bits > a.bits:
            index, _ = k.build_index(offsets, blob, n, bits, k.CRC_TABLE)
        elif not a.writable:
            index = np.array(index)
        if blob is not a.blob or offsets is not a.offsets or index is not a.index:
            self._a = _Arrays.of(blob, offsets, index)
        return self._a

    def copy(self) -> IdMap:
        """An independent map with the same ids (private memory)."""
        n, a = self._n, self._a
        clone = IdMap()
        used = int(a.offsets[n])
        index = _index_upto(a.index, n)
        clone._a = _Arrays.of(np.array(a.blob[:used]), np.array(a.offsets[: n + 1]), index)
        clone._n = n
        return clone

    def save(self, path_prefix: Path, *, n: int | None = None, fsync: bool = False) -> None:
        """Write ``<prefix>``: ``.blob`` (UTF-8 names), ``.offsets.npy`` and ``.index.npy``.

        ``n``: save only the first ``n`` ids (the map as it was when a snapshot or checkpoint
        captured its length; a writer may have appended since). ``fsync``: flush every file to
        disk before returning (checkpoints). ``load`` maps the files back as they are.
        """
        size, a = self._n, self._a  # length first: the arrays then hold at least that many
        n = size if n is None else n
        if not 0 <= n <= size:
            raise ValueError(f"cannot save {n} ids of a map holding {size}")
        used = int(a.offsets[n])
        _write(path_prefix.with_suffix(".blob"), a.blob_mv[:used], fsync)
        _write(path_prefix.with_suffix(".offsets.npy"), np.array(a.offsets[: n + 1]), fsync)
        _write(path_prefix.with_suffix(".index.npy"), _index_upto(a.index, n), fsync)

    def save_slice(self, path_prefix: Path, start: int, stop: int) -> None:
        """Write ids ``start .. stop - 1`` as a map of their own, ids counted from 0 (the
        files of ``save``, which ``load`` maps): a snapshot's names first seen since its base,
        written straight from the storage, no Python strings. The index is built here, where
        its compiled loop already runs, so a reader that maps the slice compiles nothing."""
        a = self._a
        if not 0 <= start <= stop <= self._n:
            raise ValueError(f"cannot save ids {start}..{stop} of a map holding {self._n}")
        lo, hi = int(a.offsets[start]), int(a.offsets[stop])
        offsets = a.offsets[start : stop + 1] - lo
        index, _ = k.build_index(offsets, a.blob[lo:hi], stop - start, _bits_for(stop - start),
                                 k.CRC_TABLE)
        _write(path_prefix.with_suffix(".blob"), a.blob_mv[lo:hi], False)
        _write(path_prefix.with_suffix(".offsets.npy"), offsets, False)
        _write(path_prefix.with_suffix(".index.npy"), index, False)

    @classmethod
    def load(cls, path_prefix: Path) -> IdMap:
        """The saved map, memory-mapped read-only (it is copied privately on the first ``add``).

        Files without ``.index.npy`` (written by an older build) get their index built here.
        """
        blob_path = path_prefix.with_suffix(".blob")
        size = blob_path.stat().st_size
        blob = (np.memmap(blob_path, np.uint8, mode="r") if size else np.empty(0, np.uint8))
        offsets = np.load(path_prefix.with_suffix(".offsets.npy"), mmap_mode="r")
        n = int(offsets.shape[0]) - 1
        if offsets.dtype != np.int64 or n < 0 or int(offsets[-1]) != size or int(offsets[0]):
            raise ValueError(f"{path_prefix}: id map offsets do not match its blob")
        index_path = path_prefix.with_suffix(".index.npy")
        if index_path.exists():
            index = np.load(index_path, mmap_mode="r")
            length = int(index.shape[0])
            if index.dtype != np.int32 or length & (length - 1) or length * _MAX_LOAD < n:
                raise ValueError(f"{path_prefix}: id map index has the wrong shape")
        else:
            index, repeat = k.build_index(offsets, blob, n, _bits_for(n), k.CRC_TABLE)
            if repeat >= 0:
                raise ValueError(f"{path_prefix}: id map holds duplicate names; corrupt file")
        clone = cls()
        clone._a = _Arrays.of(blob, offsets, index)
        clone._n = n
        return clone

    def nbytes(self) -> int:
        """Bytes held by the storage (capacity included)."""
        a = self._a
        return int(a.blob.nbytes + a.offsets.nbytes + a.index.nbytes)


def _write(path: Path, data: memoryview | np.ndarray, fsync: bool) -> None:
    with open(path, "wb") as fh:
        if isinstance(data, np.ndarray):
            write_array(fh, data)
        else:
            fh.write(data)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())


def _index_upto(index: npt.NDArray[np.int32], n: int) -> npt.NDArray[np.int32]:
    """A copy of ``index`` knowing only ids below ``n``.

    Dropping later ids leaves every earlier chain whole: with linear probing a name's chain only
    crosses slots taken before it was added, i.e. by smaller ids.
    """
    out = np.array(index)
    out[out >= n] = k.EMPTY
    return out
