"""The shared event log: one Redis stream that every replica appends to and tails.

``append`` is one ``XADD`` per accepted batch (the field ``b`` holds the record); the entry id is
the record's position. Every replica reads the stream with a blocking ``XREAD`` (a short block:
a new entry wakes it at once), so an event recorded through any replica reaches all of them.

Durability is Redis's: an entry is acknowledged once Redis has it in memory, and survives a
Redis restart only with persistence on (``appendonly yes``; ``appendfsync always`` to lose
nothing, ``everysec`` to lose at most a second). ``min_replicas_acked`` > 0 additionally waits
(``WAIT``) until that many Redis replicas have the entry, and fails the call otherwise.

An append fails with ``LogUnavailable`` within ``timeout_s`` (plus ``replica_timeout_ms`` when it
waits for replicas): connecting and answering get half of it each, and it is never retried here,
because a retried ``XADD`` after a timeout could append the batch twice. A timeout is ambiguous,
not a refusal: Redis may still apply the ``XADD`` it holds (after a pause, say), and every
replica then applies the batch. Retrying with the same event ids is always safe: the graph
applies an event id once.

Trimming (on every ``XADD``, approximate ``~`` so Redis trims whole radix-tree nodes cheaply):

* ``maxlen`` - keep about ``maxlen`` entries (an entry is one batch, not one event);
* ``minid``  - keep entries younger than ``max_age_s`` (by the appending server's clock);
* ``none``   - never trim (the stream grows until trimmed by hand).

Whatever the policy, the stream must keep every entry a restarting replica still needs: those
after its last checkpoint. Size it for (checkpoint interval + longest restart) x batches/s, with
room to spare; ``check_position`` warns (and the replica logs it loudly) when entries after a
checkpoint's position were trimmed before it read them.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError
from redis.retry import Retry

from recserver.core.redis_url import redact_url
from recserver.eventlog.base import LogRecord, LogUnavailable, Position

TrimPolicy = Literal["maxlen", "minid", "none"]
FIELD = b"b"


def _position(entry_id: bytes | str) -> Position:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return Position.parse(text)


class RedisStreamLog:
    """A Redis stream as the event log (see the module docstring)."""

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        key: str = "recserver:events",
        trim: TrimPolicy = "maxlen",
        maxlen: int = 100_000,
        max_age_s: float = 7 * 86_400.0,
        min_replicas_acked: int = 0,
        replica_timeout_ms: int = 100,
        timeout_s: float = 1.0,
        clock: Any = time.time,
    ) -> None:
        self.url = redact_url(url)
        self.key = key
        self._trim = trim
        self._maxlen = maxlen
        self._max_age_ms = int(max_age_s * 1000)
        self._min_replicas = min_replicas_acked
        self._replica_timeout_ms = replica_timeout_ms
        self._clock = clock
        wait_s = replica_timeout_ms / 1000.0 if min_replicas_acked > 0 else 0.0
        try:
            # No retries: a second XADD after a timeout would only add a second copy, and the
            # two halves keep connect + answer inside timeout_s (see the module docstring).
            self._writer = redis.Redis.from_url(
                url, socket_timeout=timeout_s / 2 + wait_s, socket_connect_timeout=timeout_s / 2,
                retry=Retry(NoBackoff(), 0), health_check_interval=0,
            )
            # The tailer's own connection: a blocking XREAD holds it for up to its block time.
            self._reader = redis.Redis.from_url(
                url, socket_timeout=timeout_s + 5.0, socket_connect_timeout=timeout_s,
                retry=Retry(NoBackoff(), 1), health_check_interval=0, max_connections=2,
            )
        except ValueError as exc:  # redis-py's messages do not echo the password
            raise ValueError(f"event log redis url {self.url}: {exc}") from None

    @property
    def where(self) -> str:
        return f"redis stream {self.key!r} at {self.url}"

    def _trim_args(self) -> list[Any]:
        if self._trim == "maxlen":
            return ["MAXLEN", "~", self._maxlen]
        if self._trim == "minid":
            return ["MINID", "~", f"{max(int(self._clock() * 1000) - self._max_age_ms, 0)}-0"]
        return []

    def append(self, payload: bytes) -> Position:
        try:
            entry_id = self._writer.execute_command(
                "XADD", self.key, *self._trim_args(), "*", FIELD, payload
            )
            if self._min_replicas > 0:
                acked = int(self._writer.wait(self._min_replicas, self._replica_timeout_ms))
                if acked < self._min_replicas:
                    raise LogUnavailable(
                        f"the event log reached {acked} of {self._min_replicas} Redis replicas "
                        f"within {self._replica_timeout_ms} ms; not acknowledged, retry"
                    )
        except RedisError as exc:
            raise LogUnavailable(f"the event log ({self.where}) is unavailable: "
                                 f"{type(exc).__name__}") from None
        return _position(entry_id)

    def read(self, after: Position, max_records: int, timeout_s: float) -> list[LogRecord]:
        block_ms = max(int(timeout_s * 1000), 1) if timeout_s > 0 else None
        try:
            reply: Any = self._reader.xread(
                {self.key: str(after)}, count=max_records, block=block_ms
            )
        except RedisError as exc:
            raise LogUnavailable(f"cannot read the event log ({self.where}): "
                                 f"{type(exc).__name__}") from None
        if not reply:
            return []
        entries: Any = reply[0][1] if isinstance(reply, list) else next(iter(reply.values()))[0]
        records = []
        for entry_id, fields in entries:
            payload = fields.get(FIELD)
            if payload is None:  # not ours (someone XADDed other fields): skip it
                payload = b""
            records.append(LogRecord(_position(entry_id), payload))
        return records

    def check_position(self, position: Position) -> str | None:
        try:
            info = self._writer.execute_command("XINFO", "STREAM", self.key)
        except ResponseError:  # no such key
            if position.major > 0:
                return (f"{self.where} does not exist, but the checkpoint resumes at {position}; "
                        "entries appended after the checkpoint (if any) are gone")
            return None
        except RedisError as exc:
            raise LogUnavailable(f"cannot inspect the event log: {type(exc).__name__}") from None
        if isinstance(info, list):  # RESP2 without redis-py's parser
            info = dict(zip(info[::2], info[1::2], strict=False))
        def field(name: str) -> Any:
            return info.get(name.encode(), info.get(name))

        added, length = int(field("entries-added") or 0), int(field("length") or 0)
        first = field("recorded-first-entry-id")
        if first is None and field("first-entry"):
            first = field("first-entry")[0]
        if added > length and first is not None and _position(first) > position:
            # Trimming removed entries from the head, and the oldest one left is past this
            # replica's position: what lay in between (if anything) is gone.
            return (f"{self.where}: entries before {_position(first)} were trimmed and this "
                    f"replica resumes at {position}: events in between may be missing here "
                    "(raise the trim limit, or start this replica from a fresher checkpoint)")
        return None

    def trim_before(self, position: Position) -> None:
        """Nothing: other replicas read this stream; trimming happens on append."""

    def close(self) -> None:
        self._writer.close()
        self._reader.close()
