"""``EdgeRun``: edges sorted by key ``user << 32 | item``, and merging runs without a big sort.

A merge of a large run with a small one (a fold of new events into the pending run, a
compaction of pending edges into the main run) is linear: the small run's keys are located in
the large one by binary search and spliced in, so the merge allocates about one copy of the
result. Sorting the concatenation instead (the way loose, unsorted event batches must be
aggregated) needs about four times the input in temporaries (the order permutation and the
permuted copies), which is what set the peak memory of a ten-million-event build.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
LOW32 = np.int64(0xFFFF_FFFF)


@dataclass(frozen=True)
class EdgeRun:
    """Edges sorted by key, one entry per key (a batch of raw events may break both rules until
    ``merge_runs`` aggregates it). Arrays are never modified in place once the run exists."""

    keys: I64
    weight: F64  # epoch-scaled (see ``graph.store``)
    last_ts: F64

    @staticmethod
    def empty() -> EdgeRun:
        return EdgeRun(np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.float64))

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    @property
    def users(self) -> npt.NDArray[np.int32]:
        return (self.keys >> np.int64(32)).astype(np.int32)

    @property
    def items(self) -> npt.NDArray[np.int32]:
        return (self.keys & LOW32).astype(np.int32)

    @property
    def nbytes(self) -> int:
        return int(self.keys.nbytes + self.weight.nbytes + self.last_ts.nbytes)


def _is_sorted_unique(keys: I64) -> bool:
    return bool(keys.shape[0] < 2 or (keys[1:] > keys[:-1]).all())


def _aggregate(runs: list[EdgeRun]) -> EdgeRun:
    """One proper run from loose ones: sort the concatenation, sum weights, keep the latest."""
    keys = np.concatenate([r.keys for r in runs])
    weight = np.concatenate([r.weight for r in runs])
    last_ts = np.concatenate([r.last_ts for r in runs])
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return EdgeRun(
        keys=keys[starts],
        weight=np.add.reduceat(weight[order], starts),
        last_ts=np.maximum.reduceat(last_ts[order], starts),
    )


def merge_sorted(big: EdgeRun, small: EdgeRun) -> EdgeRun:
    """Two proper runs as one: ``small``'s keys spliced into ``big`` (linear, one copy)."""
    if len(small) == 0:
        return big
    if len(big) == 0:
        return small
    pos = np.searchsorted(big.keys, small.keys)
    found = np.zeros(len(small), dtype=bool)
    inside = pos < len(big)
    found[inside] = big.keys[pos[inside]] == small.keys[inside]
    new = ~found
    at_new = pos[new]  # ascending: np.insert puts each before big's element at that index
    keys = np.insert(big.keys, at_new, small.keys[new])
    weight = np.insert(big.weight, at_new, small.weight[new])
    last_ts = np.insert(big.last_ts, at_new, small.last_ts[new])
    if found.any():
        at = pos[found]
        at = at + np.searchsorted(at_new, at, side="right")  # shifted by the inserts before it
        weight[at] += small.weight[found]
        last_ts[at] = np.maximum(last_ts[at], small.last_ts[found])
    return EdgeRun(keys, weight, last_ts)


def merge_runs(*runs: EdgeRun) -> EdgeRun:
    """One run with a single entry per key: weights summed, the latest timestamp kept.

    Proper runs (sorted, one entry per key) are merged pairwise, smallest into largest; loose
    ones (raw event batches) are aggregated by one sort first.
    """
    proper: list[EdgeRun] = []
    loose: list[EdgeRun] = []
    for r in runs:
        if len(r):
            (proper if _is_sorted_unique(r.keys) else loose).append(r)
    if loose:
        proper.append(_aggregate(loose))
    if not proper:
        return EdgeRun.empty()
    proper.sort(key=len, reverse=True)
    merged = proper[0]
    for run in proper[1:]:
        merged = merge_sorted(merged, run)
    return merged
