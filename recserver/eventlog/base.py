"""The event log interface: a durable, ordered sequence of opaque records.

Every accepted event goes through the log before it reaches any graph: the server that receives
a ``RecordEvents`` call appends one record per call (the batch's accepted events, columnar) and
acknowledges only after ``append`` returned; every server, the receiver included, applies records
by tailing the log (``recserver.ingest.tailer``). The log is the single source of truth, so
replicas that read the same log converge on the same graph.

Two backends implement :class:`EventLog`, one file each, chosen by ``recserver.eventlog.registry``:
``file_log.FileEventLog`` (an embedded, segmented append-only file; one process) and
``redis_stream.RedisStreamLog`` (a Redis stream shared by every replica).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from recserver.core.errors import Unavailable

_POSITION = re.compile(r"^(\d+)-(\d+)$")


@dataclass(frozen=True, order=True)
class Position:
    """A point in the log: every record at or before it has been read.

    File log: ``major`` is the byte offset just past a record (``minor`` 0). Redis stream: the
    entry id ``<ms>-<seq>``. Positions of one log compare in log order; ``START`` precedes every
    record. The text form is the entry-id form (``"1732280000000-3"``) for both.
    """

    major: int
    minor: int = 0

    def __str__(self) -> str:
        return f"{self.major}-{self.minor}"

    @classmethod
    def parse(cls, text: str) -> Position:
        match = _POSITION.match(text.strip())
        if match is None:
            raise ValueError(f"log position {text!r}: expected '<number>-<number>'")
        return cls(int(match.group(1)), int(match.group(2)))


START = Position(0, 0)


@dataclass(frozen=True)
class LogRecord:
    """One record as read back: its position (reading after it continues past it) and bytes."""

    position: Position
    payload: bytes


class LogUnavailable(Unavailable):
    """The log cannot append or read now (Redis down, disk full); the call maps to UNAVAILABLE.

    Raised by ``append`` means: nothing was acknowledged. The record may still have reached the
    log (a reply lost in a timeout); a client retry with the same event ids is then reported
    ``duplicate`` or deduplicated when applied, never applied twice.
    """


class LogCorrupt(RuntimeError):
    """The log's stored bytes are not what was written (a checksum or framing mismatch)."""


class EventLog(Protocol):
    """What ingest needs from a log; both backends are tested by one shared suite."""

    #: Backend name, as the config names it ("file", "redis").
    name: str

    @property
    def where(self) -> str:
        """Where the log lives, safe to log (no passwords)."""
        ...

    def append(self, payload: bytes) -> Position:
        """Append one record durably (per the backend's policy); return its position.

        Raises :class:`LogUnavailable` when it cannot: the caller must not acknowledge anything.
        """
        ...

    def read(self, after: Position, max_records: int, timeout_s: float) -> list[LogRecord]:
        """Up to ``max_records`` records following ``after``, oldest first.

        Waits up to ``timeout_s`` for a record when none is there yet and then returns ``[]``.
        Only durable records are returned: a reader never sees an append that may yet fail.
        """
        ...

    def check_position(self, position: Position) -> str | None:
        """A warning when records after ``position`` are no longer in the log (trimmed)."""
        ...

    def trim_before(self, position: Position) -> None:
        """A checkpoint covers everything up to ``position``: drop what no reader needs.

        The file log deletes whole segments; the Redis log trims on append (MAXLEN/MINID)
        because other replicas read the same stream, so this is a no-op there.
        """
        ...

    def close(self) -> None: ...
