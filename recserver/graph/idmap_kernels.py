"""Compiled loops behind ``IdMap``: a stable string hash and an open-addressing index.

Names are UTF-8 bytes in one blob with int64 offsets; the index is an int32 table of ids, -1 for an
empty slot, probed linearly from the slot a name hashes to. The hash is CRC-32 (the same as
``zlib.crc32``, so a single lookup in Python gets the same value without compiled code) spread
over the table by Fibonacci hashing. It is a pure function of the bytes: unlike ``hash()`` it
does not change between processes, so a saved index is valid in every process that maps it.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import numpy.typing as npt

EMPTY = -1
#: Knuth's multiplicative constant (2**64 / golden ratio): spreads CRC values over the table.
FIB = 11400714819323198485

_jit = nb.njit(cache=True, error_model="numpy")


def _crc_table() -> npt.NDArray[np.uint32]:
    table = np.zeros(256, dtype=np.uint32)
    for n in range(256):
        c = n
        for _ in range(8):
            c = (0xEDB88320 ^ (c >> 1)) if c & 1 else (c >> 1)
        table[n] = c
    return table


CRC_TABLE = _crc_table()


def slot_of(crc: int, bits: int) -> int:
    """Home slot of a name with CRC ``crc`` in a table of ``2**bits`` slots (Python side)."""
    return ((crc * FIB) & 0xFFFF_FFFF_FFFF_FFFF) >> (64 - bits)


@_jit
def _crc(data: npt.NDArray[np.uint8], start: int, end: int,
         table: npt.NDArray[np.uint32]) -> int:
    c = np.uint32(0xFFFFFFFF)
    for k in range(start, end):
        c = table[(c ^ data[k]) & np.uint32(0xFF)] ^ (c >> np.uint32(8))
    return int(np.int64(c ^ np.uint32(0xFFFFFFFF)))


@_jit
def _home(crc: int, bits: int) -> int:
    # int() of a signed value stays int64 in compiled code (of a uint64 it would stay unsigned).
    return int(np.int64((np.uint64(crc) * np.uint64(FIB)) >> np.uint64(64 - bits)))


@_jit
def _equal(blob: npt.NDArray[np.uint8], a: int, b: int, data: npt.NDArray[np.uint8],
           s: int, e: int) -> bool:
    if b - a != e - s:
        return False
    for k in range(e - s):  # noqa: SIM110 - compiled: a plain loop, no generator
        if blob[a + k] != data[s + k]:
            return False
    return True


@_jit
def _find(index: npt.NDArray[np.int32], bits: int, blob: npt.NDArray[np.uint8],
          offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8], s: int, e: int,
          crc: int) -> tuple[int, int]:
    """(id, slot) of the name ``data[s:e]``: id -1 and the free slot where it would go."""
    mask = int(np.int64((1 << bits) - 1))
    slot = _home(crc, bits)
    while True:
        idx = index[slot]
        if idx == EMPTY:
            return -1, slot
        if _equal(blob, offsets[idx], offsets[idx + 1], data, s, e):
            return idx, slot
        slot = (slot + 1) & mask


@_jit
def lookup(index: npt.NDArray[np.int32], bits: int, blob: npt.NDArray[np.uint8],
           offsets: npt.NDArray[np.int64], data: npt.NDArray[np.uint8],
           starts: npt.NDArray[np.int64], table: npt.NDArray[np.uint32]) -> npt.NDArray[np.int64]:
    """Ids of the names ``data[starts[j]:starts[j + 1]]``, -1 for unknown ones."""
    n = starts.shape[0] - 1
    out = np.empty(n, dtype=np.int64)
    for j in range(n):
        s, e = starts[j], starts[j + 1]
        out[j] = _find(index, bits, blob, offsets, data, s, e, _crc(data, s, e, table))[0]
    return out


@_jit
def insert(index: npt.NDArray[np.int32], bits: int, blob: npt.NDArray[np.uint8],
           offsets: npt.NDArray[np.int64], count: int, data: npt.NDArray[np.uint8],
           starts: npt.NDArray[np.int64], table: npt.NDArray[np.uint32],
           out: npt.NDArray[np.int32]) -> int:
    """Ids of the names, appending new ones after ``count``; returns the new count.

    The caller has made room: ``blob``, ``offsets`` and ``index`` fit every name being new. Each
    new name's bytes and end offset are written before its id enters the index, so a reader that
    finds the id also finds the name.
    """
    for j in range(starts.shape[0] - 1):
        s, e = starts[j], starts[j + 1]
        idx, slot = _find(index, bits, blob, offsets, data, s, e, _crc(data, s, e, table))
        if idx < 0:
            idx = count
            at = offsets[count]
            blob[at : at + e - s] = data[s:e]
            offsets[count + 1] = at + e - s
            index[slot] = idx
            count += 1
        out[j] = idx
    return count


@_jit
def build_index(offsets: npt.NDArray[np.int64], blob: npt.NDArray[np.uint8], n: int, bits: int,
                table: npt.NDArray[np.uint32]) -> tuple[npt.NDArray[np.int32], int]:
    """The index of the first ``n`` names, and the first id whose name repeats an earlier one
    (-1 when all are distinct)."""
    index = np.full(1 << bits, EMPTY, dtype=np.int32)
    repeat = -1
    for i in range(n):
        s, e = offsets[i], offsets[i + 1]
        idx, slot = _find(index, bits, blob, offsets, blob, s, e, _crc(blob, s, e, table))
        if idx >= 0:
            if repeat < 0:
                repeat = i
        else:
            index[slot] = i
    return index, repeat
