"""``UpdateItems``: check a batch of item updates, append it to the event log, acknowledge.

Like ``RecordEvents``: OK means the batch is durably in the log, and every replica (this one
included) applies it only by tailing the log. Unlike events, a batch is all or nothing (see
``catalog.items``), and there is no duplicate detection: an update sets a state, so applying a
retried batch again leaves the same state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from recserver.catalog.codec import encode_updates
from recserver.catalog.items import ItemUpdate, validate_updates
from recserver.core.errors import FailedPrecondition, Unavailable
from recserver.eventlog.base import EventLog


@dataclass(frozen=True)
class ItemsOutcome:
    """What ``UpdateItems`` answers: how many items were appended, and where."""

    accepted: int
    position: str


class ItemRecorder:
    """The domain side of ``UpdateItems`` for one server."""

    def __init__(
        self, log_: EventLog | None, *, origin: str, ready: Callable[[], bool],
        off_reason: str, on_error: Callable[[str | None], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._log = log_
        self._origin = origin
        self._ready = ready
        self._off_reason = off_reason
        self._on_error = on_error or (lambda error: None)
        self._clock = clock

    def update(self, updates: list[ItemUpdate]) -> ItemsOutcome:
        """Validate and append; raises ``InvalidArgument``, ``Unavailable`` or
        ``FailedPrecondition`` (ingest off: a retry cannot help)."""
        if self._log is None:
            raise FailedPrecondition(self._off_reason.replace("RecordEvents", "UpdateItems"))
        if not self._ready():
            raise Unavailable("the server is still loading its graph; retry shortly")
        validate_updates(updates)
        payload = encode_updates(updates, appended_at=self._clock(), origin=self._origin)
        try:
            position = self._log.append(payload)
        except Unavailable as exc:
            self._on_error(f"append failed: {exc}")
            raise
        self._on_error(None)
        return ItemsOutcome(len(updates), str(position))
