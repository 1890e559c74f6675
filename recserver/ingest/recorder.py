"""``RecordEvents``: validate a batch, spot duplicates, append the rest, answer per event.

Semantics, per event and in request order:

* ``rejected`` + reason: the event is unfit (``graph.validate.validate_columns``: empty ids,
  unknown type, bad weight or timestamp) or an id is longer than ``ingest.max_id_chars``.
* ``duplicate``: its key was seen before: an earlier event of the same batch, one this server
  appended that is not applied yet, or one already in this replica's graph. The key is the
  ``event_id`` (blake2b, 64 bits) or, without an id, (user, item, event, timestamp).
* ``accepted``: appended durably to the event log before the call returned.

The whole call fails with UNAVAILABLE, acknowledging nothing, when the log cannot append (a
failed ``append`` means no event of the batch is accepted). ``duplicate`` is a local judgement:
an event first recorded through another replica moments ago (not yet applied here) is reported
``accepted`` again and appended twice; the apply path deduplicates by the same key, so it still
counts once in every graph. A client that retries after an error or a timeout with the same
event ids can therefore never double-count.

``timestamp`` 0 means "now" and is fixed here, before the append, so every replica applies the
same value. The receiving server computes the id keys once and ships them in the record.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from recserver.core.errors import FailedPrecondition, InvalidArgument, Unavailable
from recserver.eventlog.base import EventLog, Position
from recserver.eventlog.codec import encode_batch
from recserver.graph.arrayops import first_occurrence, member_of_sorted, unique_sorted
from recserver.graph.config import EventWeightsConfig
from recserver.graph.dedup import U64, id_keys, tuple_keys, type_hashes
from recserver.graph.events import EventColumns
from recserver.graph.validate import validate_columns

if TYPE_CHECKING:  # the recorder runs in the builder; a worker imports only its types
    from recserver.graph.live import LiveGraph

ACCEPTED, DUPLICATE, REJECTED = 1, 2, 3  # the wire enum's numbers (EventStatus)
#: In-flight key runs kept at most (beyond, the oldest are forgotten: only reporting suffers).
MAX_INFLIGHT_RUNS = 10_000


@dataclass(frozen=True)
class EventRows:
    """A decoded request: one list per field, request order (``timestamp`` 0 = now)."""

    event_ids: Sequence[str]
    user_ids: Sequence[str]
    item_ids: Sequence[str]
    events: Sequence[str]
    weights: Sequence[float]
    timestamps: Sequence[float]

    def __len__(self) -> int:
        return len(self.user_ids)


@dataclass
class RecordOutcome:
    """Per-event statuses (``ACCEPTED``/``DUPLICATE``/``REJECTED``) and reasons by index."""

    status: npt.NDArray[np.int8]
    reasons: dict[int, str] = field(default_factory=dict)
    position: str = ""  # where the accepted events were appended ("" when none were)

    def count(self, status: int) -> int:
        return int((self.status == status).sum())


class RecordObserver:
    """What the recorder reports (``metrics.IngestMetrics`` implements it)."""

    def recorded(self, accepted: int, duplicates: int, rejected: int) -> None:
        pass

    def appended(self, seconds: float) -> None:
        pass

    def log_error(self, op: str) -> None:
        pass


def _factorise(values: Sequence[str]) -> tuple[npt.NDArray[np.int32], list[str]]:
    index: dict[str, int] = {}
    setdefault = index.setdefault
    codes = np.fromiter((setdefault(v, len(index)) for v in values), np.int32, len(values))
    return codes, list(index)


def event_keys(ids: Sequence[str]) -> U64:
    """Id keys per event (``dedup.id_keys``), 0 for events without an id (never 0 otherwise)."""
    keys = np.zeros(len(ids), dtype=np.uint64)
    has = np.fromiter((bool(e) for e in ids), bool, len(ids))
    if has.any():
        hashed = id_keys([e for e in ids if e])
        hashed[hashed == 0] = 1  # 0 means "no id" in a record
        keys[has] = hashed
    return keys


class EventRecorder:
    """The domain side of ``RecordEvents`` (see the module docstring)."""

    def __init__(
        self,
        graph: LiveGraph,
        log_: EventLog | None,
        *,
        weights: EventWeightsConfig,
        max_batch: int,
        max_id_chars: int,
        applied_position: Callable[[], Position],
        origin: str,
        off_reason: str = "ingest is off",
        observer: RecordObserver | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._graph = graph
        self._log = log_
        self._weights = weights
        self._max_batch = max_batch
        self._max_id = max_id_chars
        self._applied = applied_position
        self._origin = origin
        self._off_reason = off_reason
        self.origin, self.off_reason = origin, off_reason
        self._observer = observer or RecordObserver()
        self._clock = clock
        self.ready = False  # set once the graph is recovered and the tailer runs
        #: Why the last append failed, until one succeeds (``GetIngestStatus.last_error``).
        self.last_append_error: str | None = None
        self._inflight: deque[tuple[Position, U64]] = deque()
        self._inflight_lock = threading.Lock()

    def record(self, rows: EventRows) -> RecordOutcome:
        """Judge, append and answer one batch; raises ``Unavailable`` / ``InvalidArgument``
        (``FailedPrecondition`` when ingest is off: a retry cannot help)."""
        if self._log is None:
            raise FailedPrecondition(self._off_reason)
        if not self.ready:
            raise Unavailable("the server is still loading its graph; retry shortly")
        n = len(rows)
        if n > self._max_batch:
            raise InvalidArgument(f"{n} events in one call; the limit is "
                                  f"ingest.max_batch_events = {self._max_batch}: split the batch")
        status = np.zeros(n, dtype=np.int8)
        reasons: dict[int, str] = {}
        if n == 0:
            return RecordOutcome(status)
        now = self._clock()
        self._check_lengths(rows, status, reasons)
        cols = self._columns(rows, now)
        keep = status == 0
        lines = np.flatnonzero(keep) + 1
        good = validate_columns(cols if keep.all() else cols.take(keep), self._weights, now=now,
                                line_numbers=lines)
        for rejected in good.rejected:
            status[rejected.line - 1] = REJECTED
            reasons[rejected.line - 1] = rejected.reason
        rows_of_good = np.flatnonzero(status == 0)
        keys = event_keys(good.event_ids) if good.event_ids is not None else None
        dup = self._duplicates(good, keys)
        position = ""
        fresh = ~dup
        if fresh.any():
            accepted = good if not dup.any() else good.take(fresh)
            acc_keys = None if keys is None else keys[fresh]
            payload = encode_batch(accepted, acc_keys, appended_at=self._clock(),
                                   origin=self._origin)
            started = time.perf_counter()
            try:
                appended = self._log.append(payload)
            except Unavailable as exc:
                self._observer.log_error("append")
                self.last_append_error = f"append failed: {exc}"
                raise
            self.last_append_error = None
            self._observer.appended(time.perf_counter() - started)
            position = str(appended)
            if acc_keys is not None:
                self._remember(appended, acc_keys)
        status[rows_of_good[fresh]] = ACCEPTED
        status[rows_of_good[dup]] = DUPLICATE
        outcome = RecordOutcome(status, reasons, position)
        self._observer.recorded(outcome.count(ACCEPTED), outcome.count(DUPLICATE),
                                outcome.count(REJECTED))
        return outcome

    def _check_lengths(self, rows: EventRows, status: npt.NDArray[np.int8],
                       reasons: dict[int, str]) -> None:
        limit = self._max_id
        for what, values in (("event_id", rows.event_ids), ("user_id", rows.user_ids),
                             ("item_id", rows.item_ids), ("event", rows.events)):
            if max(map(len, values)) <= limit:
                continue
            for i, value in enumerate(values):
                if len(value) > limit and status[i] == 0:
                    status[i] = REJECTED
                    # The length, never the value: an over-long field is any size at all.
                    reasons[i] = (f"{what} is {len(value):,} characters long; the limit is "
                                  f"ingest.max_id_chars = {limit}")

    @staticmethod
    def _columns(rows: EventRows, now: float) -> EventColumns:
        n = len(rows)
        timestamp = np.fromiter(rows.timestamps, np.float64, n)
        timestamp[timestamp == 0] = now
        user_codes, user_names = _factorise(rows.user_ids)
        item_codes, item_names = _factorise(rows.item_ids)
        type_codes, type_names = _factorise(rows.events)
        ids = list(rows.event_ids)
        return EventColumns(
            user_codes=user_codes, item_codes=item_codes, type_codes=type_codes,
            weight=np.fromiter(rows.weights, np.float64, n), timestamp=timestamp,
            user_names=user_names, item_names=item_names, type_names=type_names,
            event_ids=ids if any(ids) else None,
        )

    def _duplicates(self, good: EventColumns, keys: U64 | None) -> npt.NDArray[np.bool_]:
        """Events seen before: earlier in the batch, in flight from this server, in the graph."""
        # In-batch: by id key where there is one, else by the (user, item, type, time) tuple
        # over the batch's own codes (equal names share a code within one batch).
        local = tuple_keys(good.user_codes, good.item_codes,
                           type_hashes(good.type_names)[good.type_codes], good.timestamp)
        if keys is not None:
            local = np.where(keys != 0, keys, local)
        dup = ~first_occurrence(local)
        if keys is not None:
            dup |= self._in_flight(keys)
        if not dup.all():
            dup |= self._graph.seen(good, keys)
        return dup

    def _remember(self, position: Position, keys: U64) -> None:
        run = unique_sorted(keys[keys != 0])
        if not run.shape[0]:
            return
        with self._inflight_lock:
            self._inflight.append((position, run))
            while len(self._inflight) > MAX_INFLIGHT_RUNS:
                self._inflight.popleft()

    def _in_flight(self, keys: U64) -> npt.NDArray[np.bool_]:
        applied = self._applied()
        found = np.zeros(keys.shape[0], dtype=bool)
        with self._inflight_lock:
            while self._inflight and self._inflight[0][0] <= applied:
                self._inflight.popleft()  # applied: the graph's dedup index knows them now
            runs = [run for _, run in self._inflight]
        for run in runs:
            found |= member_of_sorted(run, keys)
        found &= keys != 0
        return found
