"""``DeleteUser``: validate the id, append an erasure record, acknowledge once it is durable.

The user is first added to the erasure ledger (``erasure_ledger``), so a bootstrap after the log
was trimmed still erases them. The record is then applied like events are: by every replica's
tailer, at the record's place in the log (``erasure_codec``), never directly by the server that
received the call. So the answer means "recorded durably": the user disappears from this
replica's answers once its visible log position reaches the returned one, and from every other
replica's as it catches up.

Erasing a user this replica does not know is not an error (``found`` is False): it is still
recorded, because events of that user may sit in the log unapplied, or belong to a replica
that is behind; and erasing twice is harmless. Like ``RecordEvents``, a log (or ledger) that
cannot take it makes the call UNAVAILABLE (nothing appended; retrying is safe), and a server
without an event log answers FAILED_PRECONDITION.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from recserver.core.errors import FailedPrecondition, InvalidArgument, Unavailable
from recserver.eventlog.base import EventLog
from recserver.eventlog.erasure_codec import encode_erasure
from recserver.eventlog.erasure_ledger import ErasureLedger
from recserver.graph.live import LiveGraph
from recserver.ingest.recorder import EventRecorder


@dataclass(frozen=True)
class Erasure:
    """The answer to ``DeleteUser``."""

    found: bool  # the user was in this replica's graph when the erasure was recorded
    position: str  # the erasure record's log position


def check_user_id(user_id: str, max_chars: int) -> None:
    """Raise ``InvalidArgument`` for an id no event could have carried (empty, blank, long)."""
    if not user_id:
        raise InvalidArgument("user_id is empty: give the id of the user to erase")
    if not user_id.strip():
        raise InvalidArgument("user_id is blank (only whitespace): give the id of the user to "
                              "erase")
    if len(user_id) > max_chars:
        raise InvalidArgument(f"user_id is {len(user_id):,} characters long; the limit is "
                              f"ingest.max_id_chars = {max_chars}")


class UserEraser:
    """The domain side of ``DeleteUser`` (see the module docstring)."""

    def __init__(self, graph: LiveGraph, log_: EventLog | None, recorder: EventRecorder, *,
                 max_id_chars: int, origin: str, off_reason: str,
                 ledger: ErasureLedger | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._graph = graph
        self._log = log_
        self._ledger = ledger
        self._recorder = recorder  # shares its readiness and its append-error report
        self._max_id = max_id_chars
        self._origin = origin
        self._off_reason = off_reason
        self._clock = clock

    def erase(self, user_id: str) -> Erasure:
        check_user_id(user_id, self._max_id)
        if self._log is None:
            raise FailedPrecondition(self._off_reason)
        if not self._recorder.ready:
            raise Unavailable("the server is still loading its graph; retry shortly")
        found = self._graph.store.users.get(user_id) is not None
        now = self._clock()
        payload = encode_erasure([user_id], appended_at=now, origin=self._origin)
        try:
            if self._ledger is not None:  # first: a bootstrap must never miss a logged erasure
                self._ledger.add(user_id, now)
            position = self._log.append(payload)
        except Unavailable as exc:
            self._recorder.last_append_error = f"append failed: {exc}"
            raise
        self._recorder.last_append_error = None
        return Erasure(found, str(position))
