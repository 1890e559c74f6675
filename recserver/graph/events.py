"""Behavioural events, one at a time (``Event``) and in columnar batches (``EventColumns``).

Bulk paths (file loads, the synthetic generator, ingest RPC batches) use ``EventColumns``: ids are
factorised into small local code arrays plus the list of names they stand for, so a batch of ten
million events costs a few numpy arrays rather than ten million Python objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Event:
    """One interaction: ``user_id`` did ``event`` (with ``weight``, e.g. quantity) on ``item_id``.

    ``timestamp`` is unix seconds. ``event_id`` (optional) makes replays idempotent; without it the
    tuple (user, item, event, timestamp) identifies the event.
    """

    user_id: str
    item_id: str
    event: str
    weight: float
    timestamp: float
    event_id: str = ""


@dataclass(frozen=True, slots=True)
class RejectedEvent:
    """A row that was not loaded, with its 1-based line (or batch position) and why."""

    line: int
    reason: str


def _factorise(values: Sequence[str]) -> tuple[npt.NDArray[np.int32], list[str]]:
    index: dict[str, int] = {}
    setdefault = index.setdefault
    codes = np.fromiter(
        (setdefault(v, len(index)) for v in values), dtype=np.int32, count=len(values)
    )
    return codes, list(index)


@dataclass
class EventColumns:
    """A columnar batch of (already validated) events with factorised ids."""

    user_codes: npt.NDArray[np.int32]
    item_codes: npt.NDArray[np.int32]
    type_codes: npt.NDArray[np.int32]
    weight: npt.NDArray[np.float64]
    timestamp: npt.NDArray[np.float64]
    user_names: list[str]
    item_names: list[str]
    type_names: list[str]
    event_ids: list[str] | None = None  # per event, "" when absent; None when no event had one
    rejected: list[RejectedEvent] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.user_codes.shape[0])

    @classmethod
    def from_events(cls, events: Sequence[Event]) -> EventColumns:
        """Columnar form of ``events`` (no validation; see ``graph.validate``)."""
        user_codes, user_names = _factorise([e.user_id for e in events])
        item_codes, item_names = _factorise([e.item_id for e in events])
        type_codes, type_names = _factorise([e.event for e in events])
        event_ids = [e.event_id for e in events]
        return cls(
            user_codes=user_codes,
            item_codes=item_codes,
            type_codes=type_codes,
            weight=np.fromiter((e.weight for e in events), np.float64, len(events)),
            timestamp=np.fromiter((e.timestamp for e in events), np.float64, len(events)),
            user_names=user_names,
            item_names=item_names,
            type_names=type_names,
            event_ids=event_ids if any(event_ids) else None,
        )

    def take(self, mask: npt.NDArray[np.bool_]) -> EventColumns:
        """The events where ``mask`` is true (names lists are shared, codes kept)."""
        ids = None
        if self.event_ids is not None:
            ids = [eid for eid, keep in zip(self.event_ids, mask.tolist(), strict=True) if keep]
        return EventColumns(
            user_codes=self.user_codes[mask],
            item_codes=self.item_codes[mask],
            type_codes=self.type_codes[mask],
            weight=self.weight[mask],
            timestamp=self.timestamp[mask],
            user_names=self.user_names,
            item_names=self.item_names,
            type_names=self.type_names,
            event_ids=ids,
            rejected=list(self.rejected),
        )

    def to_events(self) -> list[Event]:
        """Row form (for tests and small batches)."""
        ids = self.event_ids or [""] * len(self)
        return [
            Event(
                user_id=self.user_names[u],
                item_id=self.item_names[i],
                event=self.type_names[t],
                weight=float(w),
                timestamp=float(ts),
                event_id=eid,
            )
            for u, i, t, w, ts, eid in zip(
                self.user_codes.tolist(),
                self.item_codes.tolist(),
                self.type_codes.tolist(),
                self.weight.tolist(),
                self.timestamp.tolist(),
                ids,
                strict=True,
            )
        ]
