"""The embedded event log: append-only segment files in one directory, for the no-Redis default.

Frames are ``u32 length, u32 crc32(payload), payload``. A record's position is the global byte
offset just past its frame; segments are named by the global offset they start at
(``00000000000000000000.seg``) and roll at ``segment_bytes``, so whole old segments can be
deleted once a checkpoint covers them (``trim_before``).

Durability (``fsync``):

* ``always``  - each append is written and fsynced before it returns (one fsync per call).
* ``batch``   - group commit: an append returns once an fsync that covers it has finished;
  concurrent appends share one fsync. Same guarantee as ``always``, more calls per fsync.
* ``interval`` - an append returns once written (in the page cache): it survives the process
  being killed, not the machine losing power; a background thread fsyncs every interval.

Readers only see durable records (fsynced, or written for ``interval``), so the graph never
holds an event whose append may still fail. On open, the newest segment is scanned and a torn
frame at its end (a crash mid-write) is cut off. One process owns the directory (an exclusive
``flock`` on ``LOCK``); several replicas share a Redis stream instead.
"""

from __future__ import annotations

import itertools
import logging
import os
import struct
import threading
import zlib
from pathlib import Path
from typing import Literal

from recserver.core.background import BackgroundWorker
from recserver.core.durable import fsync_path
from recserver.core.pid_lock import LockHeld, acquire
from recserver.eventlog.base import LogCorrupt, LogRecord, LogUnavailable, Position

log = logging.getLogger(__name__)

FsyncPolicy = Literal["always", "batch", "interval"]
FSYNC_POLICIES: tuple[str, ...] = ("always", "batch", "interval")
_FRAME = struct.Struct("<II")
_SUFFIX = ".seg"
_READ_CHUNK = 4 << 20


def _segment_name(start: int) -> str:
    return f"{start:020d}{_SUFFIX}"


class LogLocked(OSError):
    """Another process owns the log directory; ``pid`` is the owner's, when known."""

    def __init__(self, message: str, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid


class FileEventLog:
    """An append-only, segmented, checksummed log file set (see the module docstring)."""

    name = "file"

    def __init__(
        self,
        directory: Path | str,
        *,
        fsync: FsyncPolicy = "batch",
        fsync_interval_s: float = 0.05,
        segment_bytes: int = 256 << 20,
    ) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync {fsync!r}: use one of {', '.join(FSYNC_POLICIES)}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._interval = fsync_interval_s
        self._segment_bytes = segment_bytes
        try:
            self._lock_fd = acquire(self.directory / "LOCK")
        except LockHeld as held:
            owner = f" (pid {held.pid})" if held.pid else ""
            raise LogLocked(
                f"{self.directory}: another recserver process{owner} owns this event log; give "
                "each server its own data_dir (replicas share a Redis log)", held.pid
            ) from None
        self._write_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._cond = threading.Condition()
        self._closed = False
        self._broken: str | None = None
        self._starts = self._open_segments()
        self._active_start = self._starts[-1]
        self._fd = os.open(self._path(self._active_start), os.O_WRONLY | os.O_APPEND)
        end = self._active_start + os.fstat(self._fd).st_size
        self._written = end
        self._synced = end
        self._read_fds: dict[int, int] = {}
        self._flusher: BackgroundWorker | None = None
        if fsync == "interval":
            self._flusher = BackgroundWorker("eventlog-fsync", self._flush_loop,
                                             join_timeout_s=5.0)
            self._flusher.start()

    # -- opening -------------------------------------------------------------------------------

    def _path(self, start: int) -> Path:
        return self.directory / _segment_name(start)

    def _open_segments(self) -> list[int]:
        starts = sorted(int(p.name[: -len(_SUFFIX)]) for p in self.directory.glob("*" + _SUFFIX)
                        if p.name[: -len(_SUFFIX)].isdigit())
        if not starts:
            self._path(0).touch()
            self._fsync_dir()
            return [0]
        for prev, nxt in itertools.pairwise(starts):
            size = self._path(prev).stat().st_size
            if prev + size != nxt:
                raise LogCorrupt(f"{self._path(prev)}: {size} bytes, but the next segment starts "
                                 f"at offset {nxt}; the log is damaged")
        self._repair_tail(starts[-1])
        return starts

    def _repair_tail(self, start: int) -> None:
        """Cut a torn or corrupt frame (and anything after it) off the newest segment."""
        path = self._path(start)
        good = 0
        with open(path, "rb") as fh:
            data_size = os.fstat(fh.fileno()).st_size
            while good < data_size:
                fh.seek(good)
                head = fh.read(_FRAME.size)
                if len(head) < _FRAME.size:
                    break
                length, crc = _FRAME.unpack(head)
                payload = fh.read(length)
                if len(payload) < length or zlib.crc32(payload) != crc:
                    break
                good += _FRAME.size + length
        if good < data_size:
            log.warning("%s: cutting %d bytes of a torn or corrupt record at offset %d (a crash "
                        "mid-append; that record was never acknowledged)", path,
                        data_size - good, start + good)
            with open(path, "r+b") as fh:
                fh.truncate(good)
                os.fsync(fh.fileno())

    def _fsync_dir(self) -> None:
        fsync_path(self.directory)

    # -- appending -----------------------------------------------------------------------------

    @property
    def where(self) -> str:
        return f"file log {self.directory} (fsync {self.fsync})"

    @property
    def end(self) -> Position:
        """The position after the last durable record."""
        return Position(self._committed())

    def _committed(self) -> int:
        return self._written if self.fsync == "interval" else self._synced

    def append(self, payload: bytes) -> Position:
        frame = _FRAME.pack(len(payload), zlib.crc32(payload)) + payload
        with self._write_lock:
            if self._closed:
                raise LogUnavailable("the event log is closed (the server is stopping)")
            if self._broken is not None:
                raise LogUnavailable(f"the event log is unusable: {self._broken}")
            if self._written - self._active_start + len(frame) > self._segment_bytes and (
                self._written > self._active_start
            ):
                self._roll()
            end = self._written + len(frame)
            self._write_all(frame)
            self._written = end
            if self.fsync == "always":
                self._sync_locked()
        if self.fsync == "batch":
            self._sync_to(end)
        elif self.fsync == "interval":
            self._notify()
        return Position(end)

    def _write_all(self, frame: bytes) -> None:
        """Write one frame; on failure cut the file back so no partial frame stays behind."""
        view = memoryview(frame)
        try:
            while view:
                done = os.write(self._fd, view)
                view = view[done:]
        except OSError as exc:
            try:
                os.ftruncate(self._fd, self._written - self._active_start)
            except OSError as again:
                self._broken = f"a failed append could not be undone ({again})"
            raise LogUnavailable(f"cannot append to the event log ({exc.strerror})") from None

    def _sync_locked(self) -> None:
        """fsync the active segment (write lock held); everything written becomes durable."""
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            # After a failed fsync the kernel may have dropped the dirty pages: nothing written
            # since the last good fsync can be trusted, so stop taking appends.
            self._broken = f"fsync failed ({exc.strerror}); restart the server"
            raise LogUnavailable(f"cannot fsync the event log ({exc.strerror})") from None
        self._synced = self._written
        self._notify()

    def _sync_to(self, end: int) -> None:
        """Group commit: return once an fsync covering ``end`` finished (maybe someone else's)."""
        with self._sync_lock:
            if self._synced >= end:
                return
            with self._write_lock:
                if self._broken is not None:
                    raise LogUnavailable(f"the event log is unusable: {self._broken}")
                self._sync_locked()

    def _flush_loop(self, stop: threading.Event) -> None:
        while not stop.wait(self._interval):
            with self._write_lock:
                if self._closed:
                    return
                self._sync_pending_locked("event log fsync failed")

    def _sync_pending_locked(self, failure: str) -> None:
        """fsync what was written but not yet synced (write lock held); log a failure."""
        if self._synced < self._written and self._broken is None:
            try:
                self._sync_locked()
            except LogUnavailable:
                log.exception(failure)

    def _roll(self) -> None:
        """Start a new segment (write lock held); the old one is made durable first."""
        self._sync_locked()
        os.close(self._fd)
        self._active_start = self._written
        path = self._path(self._active_start)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._starts.append(self._active_start)
        self._fsync_dir()

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # -- reading -------------------------------------------------------------------------------

    def read(self, after: Position, max_records: int, timeout_s: float) -> list[LogRecord]:
        offset = after.major
        with self._cond:
            if self._committed() <= offset and not self._closed and timeout_s > 0:
                self._cond.wait(timeout_s)
            committed = self._committed()
        if committed <= offset:
            return []
        records: list[LogRecord] = []
        while offset < committed and len(records) < max_records:
            start = self._segment_of(offset)
            fd = self._reader(start)
            seg_end = min(committed, self._segment_end(start, committed))
            if offset >= seg_end:
                break
            chunk = os.pread(fd, min(_READ_CHUNK, seg_end - offset), offset - start)
            at = 0
            while len(records) < max_records and at + _FRAME.size <= len(chunk):
                length, crc = _FRAME.unpack_from(chunk, at)
                stop = at + _FRAME.size + length
                if stop > len(chunk):
                    if at == 0:  # one frame bigger than the chunk: read it whole
                        chunk = os.pread(fd, _FRAME.size + length, offset - start)
                        continue
                    break
                payload = chunk[at + _FRAME.size : stop]
                if zlib.crc32(payload) != crc:
                    raise LogCorrupt(f"{self._path(start)}: checksum mismatch at offset "
                                     f"{offset + at}")
                records.append(LogRecord(Position(offset + stop), payload))
                at = stop
            if at == 0:
                raise LogCorrupt(f"{self._path(start)}: no complete record at offset {offset}")
            offset += at
        return records

    def _segment_of(self, offset: int) -> int:
        starts = self._starts
        for k in range(len(starts) - 1, -1, -1):
            if starts[k] <= offset:
                # An offset at the very end of a finished segment belongs to the next one.
                return starts[k]
        raise LogCorrupt(f"offset {offset} precedes the oldest segment ({starts[0]}); it was "
                         "trimmed")

    def _segment_end(self, start: int, committed: int) -> int:
        starts = self._starts
        k = starts.index(start)
        return starts[k + 1] if k + 1 < len(starts) else committed

    def _reader(self, start: int) -> int:
        fd = self._read_fds.get(start)
        if fd is None:
            fd = os.open(self._path(start), os.O_RDONLY)
            self._read_fds[start] = fd
        return fd

    # -- housekeeping --------------------------------------------------------------------------

    def check_position(self, position: Position) -> str | None:
        if position.major < self._starts[0]:
            return (f"{self.directory}: records before offset {self._starts[0]} were deleted, "
                    f"but this checkpoint resumes at {position.major}")
        if position.major > self._committed():
            return (f"{self.directory}: the checkpoint resumes at offset {position.major}, past "
                    f"the end of the log ({self._committed()}); was the log replaced?")
        return None

    def trim_before(self, position: Position) -> None:
        """Delete segments that end at or before ``position`` (never the active one)."""
        with self._write_lock:
            doomed = [s for s, nxt in itertools.pairwise(self._starts) if nxt <= position.major]
            if not doomed:
                return
            self._starts = self._starts[len(doomed):]
        for start in doomed:
            fd = self._read_fds.pop(start, None)
            if fd is not None:
                os.close(fd)
            self._path(start).unlink(missing_ok=True)
        log.info("event log: deleted %d segment(s) a checkpoint covers", len(doomed))

    def close(self) -> None:
        with self._write_lock:
            if self._closed:
                return
            self._sync_pending_locked("final event log fsync failed")
            self._closed = True
            os.close(self._fd)
        self._notify()
        if self._flusher is not None:
            self._flusher.stop()
        for fd in self._read_fds.values():
            os.close(fd)
        self._read_fds.clear()
        os.close(self._lock_fd)
