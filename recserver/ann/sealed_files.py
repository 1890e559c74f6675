"""The sealed files of ``ann.file_cache``: writing one set, mapping it, and the manifest's lock.

A set is four files per name: ``.hash.npy`` (sorted uint64 key hashes), ``.off.npy`` (record
offsets in hash order, plus the end), ``.klen.npy`` (key lengths) and ``.blob`` (each record is
key bytes then value bytes).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from recserver.core.durable import save_array

LOCK = "ANN.lock"


def key_hash(key: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


class Sealed:
    """One sealed version, mapped read-only."""

    def __init__(self, folder: Path, name: str) -> None:
        prefix = folder / name
        self.hashes = np.load(prefix.with_suffix(".hash.npy"), mmap_mode="r")
        self.offsets = np.load(prefix.with_suffix(".off.npy"), mmap_mode="r")
        self.klen = np.load(prefix.with_suffix(".klen.npy"), mmap_mode="r")
        size = os.path.getsize(prefix.with_suffix(".blob"))
        self.blob = (np.memmap(prefix.with_suffix(".blob"), dtype=np.uint8, mode="r")
                     if size else np.empty(0, np.uint8))

    def has_hash(self, h: int) -> bool:
        i = int(np.searchsorted(self.hashes, np.uint64(h)))
        return i < self.hashes.shape[0] and int(self.hashes[i]) == h

    def get(self, key: bytes) -> bytes | None:
        h = np.uint64(key_hash(key))
        i = int(np.searchsorted(self.hashes, h))
        while i < self.hashes.shape[0] and self.hashes[i] == h:
            start, end, klen = int(self.offsets[i]), int(self.offsets[i + 1]), int(self.klen[i])
            if self.blob[start : start + klen].tobytes() == key:
                return self.blob[start + klen : end].tobytes()
            i += 1
        return None

    def records(self) -> dict[bytes, bytes]:
        """Every key and value (an overlay's: small, read when it is amended again)."""
        out: dict[bytes, bytes] = {}
        for i in range(self.hashes.shape[0]):
            start, end, klen = int(self.offsets[i]), int(self.offsets[i + 1]), int(self.klen[i])
            record = self.blob[start:end].tobytes()
            out[record[:klen]] = record[klen:]
        return out


@contextlib.contextmanager
def manifest_lock(folder: Path) -> Iterator[None]:
    """Exclusive across processes: one read-modify-write of ``ANN.json`` at a time."""
    with open(folder / LOCK, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def seal(folder: Path, name: str, entries: dict[bytes, bytes]) -> None:
    """Write ``entries`` as the sealed files ``name.*`` in ``folder``."""
    keys = list(entries)
    hashes = np.fromiter((key_hash(k) for k in keys), dtype=np.uint64, count=len(keys))
    order = np.argsort(hashes, kind="stable")
    records = [keys[i] + entries[keys[i]] for i in order.tolist()]
    offsets = np.zeros(len(records) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in records], out=offsets[1:])
    prefix = folder / name
    prefix.with_suffix(".blob").write_bytes(b"".join(records))
    save_array(prefix.with_suffix(".hash.npy"), hashes[order], fsync=False)
    save_array(prefix.with_suffix(".off.npy"), offsets, fsync=False)
    save_array(prefix.with_suffix(".klen.npy"),
               np.array([len(keys[i]) for i in order.tolist()], dtype=np.uint32))
