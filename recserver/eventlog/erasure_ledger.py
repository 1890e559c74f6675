"""The erasure ledger: which users were ever erased, kept where log trimming cannot reach.

The erasure record in the event log erases a user on every replica that replays it, but logs
are trimmed (file segments behind checkpoints, a Redis stream to its ``maxlen``). A replica that
starts without a checkpoint loads its bootstrap data (``--events FILE``, synthetic data) and
replays only what is left of the log: a user erased before that point would come back from the
bootstrap file. So ``DeleteUser`` also adds the user to this ledger, before appending the
record, and a bootstrap erases every ledgered user it loaded, before the log replay (events
logged after the erasure then build the new profile, as they do everywhere else).

The ledger holds 64-bit hashes of user ids (``dedup.id_keys``), never the ids themselves, and
when they were erased. Two backends, matching the event log's: a file of 16-byte entries in the
log's directory (fsynced on every add), and a Redis hash beside the stream, shared by every
replica (so a new replica sees erasures older than the stream). Entries are never removed.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Protocol

import numpy as np
import redis
from redis.exceptions import RedisError

from recserver.core.errors import Unavailable
from recserver.core.redis_url import redact_url
from recserver.eventlog.config import EventLogConfig
from recserver.eventlog.registry import LogChoice
from recserver.graph.dedup import U64, id_keys

_ENTRY = struct.Struct("<Qd")  # user hash, erased at (unix seconds)
FILE_NAME = "erasures.ledger"


def user_hash(user_id: str) -> int:
    return int(id_keys([user_id])[0])


class ErasureLedger(Protocol):
    def add(self, user_id: str, erased_at: float) -> None:
        """Record an erasure durably; raises ``Unavailable`` when it cannot."""
        ...

    def hashes(self) -> U64:
        """Every erased user's hash (sorted, unique)."""
        ...


class FileLedger:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / FILE_NAME

    def add(self, user_id: str, erased_at: float) -> None:
        try:
            with open(self.path, "ab") as fh:
                fh.write(_ENTRY.pack(user_hash(user_id), erased_at))
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise Unavailable(f"cannot record the erasure in {self.path} "
                              f"({exc.strerror or exc}); nothing was recorded, retry") from None

    def hashes(self) -> U64:
        if not self.path.exists():
            return np.empty(0, np.uint64)
        data = self.path.read_bytes()
        whole = len(data) - len(data) % _ENTRY.size  # a torn last entry was never acknowledged
        entries = np.frombuffer(data[:whole], dtype=[("hash", "<u8"), ("at", "<f8")])
        return np.unique(entries["hash"].astype(np.uint64))


class RedisLedger:
    def __init__(self, url: str, key: str, *, timeout_s: float = 1.0) -> None:
        self.key = key
        self.url = redact_url(url)
        self._client = redis.Redis.from_url(url, socket_timeout=timeout_s,
                                            socket_connect_timeout=timeout_s)

    def add(self, user_id: str, erased_at: float) -> None:
        try:
            self._client.hset(self.key, f"{user_hash(user_id):016x}", repr(erased_at))
        except RedisError as exc:
            raise Unavailable(f"cannot record the erasure in {self.key!r} at {self.url} "
                              f"({type(exc).__name__}); nothing was recorded, retry") from None

    def hashes(self) -> U64:
        try:
            fields = self._client.hkeys(self.key)
        except RedisError as exc:
            raise Unavailable(f"cannot read the erasure ledger {self.key!r} at {self.url} "
                              f"({type(exc).__name__})") from None
        return np.unique(np.array([int(f, 16) for f in fields], dtype=np.uint64))

    def close(self) -> None:
        self._client.close()


def open_ledger(choice: LogChoice, cfg: EventLogConfig) -> ErasureLedger | None:
    """The ledger that goes with the chosen log (``None`` when ingest is off)."""
    if choice.backend == "file" and choice.directory is not None:
        return FileLedger(choice.directory)
    if choice.backend == "redis" and choice.url is not None:
        return RedisLedger(choice.url, f"{cfg.redis.stream_key}:erased",
                           timeout_s=cfg.redis.timeout_ms / 1e3)
    return None
