"""Erasing users from the edge store: their edges go, and their id's name is replaced.

Internal ids are never reused (dedup keys and published snapshots rely on that), so an erased
user keeps its id slot, with no edges, under a placeholder name: a run of tabs and spaces that
spells the id in binary. Event validation rejects blank user ids, so no real user can ever be
named like a placeholder, and the original name no longer resolves: lookups treat the user as
unknown (``DescribeUser`` says not found, ``Recommend`` answers as for a new user) and events
sent later for that name get a fresh id, a new profile. Checkpoints and snapshot files written
afterwards hold the placeholder, not the name.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from recserver.graph.edge_runs import EdgeRun
from recserver.graph.idmap import IdMap

I64 = npt.NDArray[np.int64]


def erased_name(idx: int) -> str:
    """The placeholder name of erased internal id ``idx`` (blank, unique per id)."""
    return "\t" + format(idx, "b").replace("0", " ").replace("1", "\t")


def is_erased_name(name: str) -> bool:
    return bool(name) and not name.strip()


def drop_users(run: EdgeRun, users: I64) -> EdgeRun:
    """``run`` without the edges of ``users`` (the same object when none is there)."""
    if not len(run) or not users.shape[0]:
        return run
    keep = ~np.isin(run.keys >> np.int64(32), users)
    if keep.all():
        return run
    return EdgeRun(run.keys[keep], run.weight[keep], run.last_ts[keep])


def known_ids(idmap: IdMap, names: Sequence[str]) -> I64:
    """Internal ids of the ``names`` the map knows (unknown and placeholder names left out)."""
    names = [n for n in names if n.strip()]
    if not names:
        return np.empty(0, np.int64)
    ids = np.asarray(idmap.lookup_many(names), dtype=np.int64)
    return np.unique(ids[ids >= 0])


def renamed(idmap: IdMap, ids: I64) -> IdMap:
    """A new map with the same ids, where each of ``ids`` is named by its placeholder.

    Built anew (the map is append-only, with names stored back to back); the old map is left
    as it is for the snapshots that still hold it.
    """
    names = idmap.names(range(len(idmap)))
    for idx in ids.tolist():
        names[idx] = erased_name(idx)
    return IdMap(names)
