"""External string ids <-> dense int32 internal ids, one map per side of the graph.

Ids are assigned in first-seen order and never change or get reused, so an id keeps its meaning
across snapshots; the map is saved with every snapshot as one UTF-8 blob plus offsets.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

INT32_MAX = 2**31 - 1


class IdMap:
    """Append-only bidirectional map. Lookups are lock-free; appends are serialised.

    Readers may look ids up while a writer appends: ``dict`` reads and ``list`` appends are
    atomic under the GIL, and an id is published to the dict only after its name is in the list.
    """

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._names: list[str] = []
        self._index: dict[str, int] = {}
        self._lock = threading.Lock()
        for name in names:
            self.add(name)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def get(self, name: str) -> int | None:
        """Internal id of ``name``, or None when it was never seen."""
        return self._index.get(name)

    def name(self, idx: int) -> str:
        return self._names[idx]

    def names(self, ids: Iterable[int]) -> list[str]:
        names = self._names
        return [names[int(i)] for i in ids]

    def add(self, name: str) -> int:
        """Id of ``name``, assigning the next one if it is new."""
        found = self._index.get(name)
        if found is not None:
            return found
        with self._lock:
            found = self._index.get(name)
            if found is not None:
                return found
            idx = len(self._names)
            if idx > INT32_MAX:
                raise OverflowError("more than 2**31 ids on one side of the graph")
            self._names.append(name)
            self._index[name] = idx
            return idx

    def add_many(self, names: Sequence[str]) -> np.ndarray:
        """Ids of ``names`` as an int32 array, assigning new ids in order of first appearance."""
        get = self._index.get
        ids = [get(name) for name in names]
        if None in ids:
            add = self.add
            ids = [add(name) if idx is None else idx for name, idx in zip(names, ids, strict=True)]
        return np.array(ids, dtype=np.int32)

    def lookup_many(self, names: Sequence[str]) -> np.ndarray:
        """Ids of ``names`` as int64, -1 for unknown names (never assigns)."""
        index = self._index
        return np.fromiter((index.get(n, -1) for n in names), dtype=np.int64, count=len(names))

    def copy(self) -> IdMap:
        clone = IdMap()
        clone._names = list(self._names)
        clone._index = dict(self._index)
        return clone

    def save(self, path_prefix: Path) -> None:
        """Write ``<prefix>.blob`` (UTF-8 names) and ``<prefix>.offsets.npy``."""
        encoded = [name.encode("utf-8") for name in self._names]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        path_prefix.with_suffix(".blob").write_bytes(b"".join(encoded))
        np.save(path_prefix.with_suffix(".offsets.npy"), offsets)

    @classmethod
    def load(cls, path_prefix: Path) -> IdMap:
        blob = path_prefix.with_suffix(".blob").read_bytes()
        offsets = np.load(path_prefix.with_suffix(".offsets.npy"))
        bounds = offsets.tolist()
        names = [blob[bounds[i] : bounds[i + 1]].decode("utf-8") for i in range(len(bounds) - 1)]
        clone = cls()
        clone._names = names
        clone._index = {name: i for i, name in enumerate(names)}
        if len(clone._index) != len(names):
            raise ValueError(f"{path_prefix}: id map holds duplicate names; the file is corrupt")
        return clone
