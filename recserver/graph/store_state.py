"""What an ``EdgeStore`` reports per batch and what a checkpoint holds of it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from recserver.catalog.view import CatalogView
from recserver.graph.decay_clock import DecayClock
from recserver.graph.dedup import U64
from recserver.graph.edge_runs import EdgeRun
from recserver.graph.idmap import IdMap


@dataclass(frozen=True)
class IngestOutcome:
    """Per-event result of one batch, in batch order."""

    accepted: npt.NDArray[np.bool_]
    duplicate: npt.NDArray[np.bool_]
    rejected: npt.NDArray[np.bool_]  # unknown event type with no default weight

    @property
    def n_accepted(self) -> int:
        return int(self.accepted.sum())


@dataclass(frozen=True)
class StoreState:
    """What a checkpoint holds of an ``EdgeStore``, captured without copying arrays.

    Arrays are shared, not copied: runs and dedup runs are never modified in place, and the id
    maps only grow (the first ``n_users`` / ``n_items`` names are the captured ones).
    ``log_position`` is the event-log position the state includes everything up to.
    """

    main: EdgeRun
    delta: tuple[EdgeRun, ...]  # edges since ``main``, unmerged (may repeat keys)
    dedup_runs: tuple[U64, ...]
    users: IdMap
    items: IdMap
    n_users: int
    n_items: int
    t0: float | None  # the decay epoch, in active time
    max_ts: float
    log_position: str | None = None
    events_applied: int = 0
    catalog: CatalogView | None = None  # the item catalogue at the same point (None: empty)
    clock: DecayClock = field(default_factory=DecayClock)  # dead gaps decay skips
