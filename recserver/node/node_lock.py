"""One node per data directory: ``serve`` holds an exclusive lock on ``DATA_DIR/node.lock``.

The supervisor takes it before it reserves ports, clears anything in the run directory or
starts a process, so a second ``serve`` on the same data directory stops at once and names the
node that has it, instead of waiting on the event log's lock (and meanwhile resetting the first
node's ready markers and metrics files). The lock goes with the supervisor's process, however
it ends; its children do not inherit it, so a builder still finishing its checkpoint after its
supervisor died does not keep a new node out (the builder's own wait covers that case).
"""

from __future__ import annotations

import os
from pathlib import Path

from recserver.core.pid_lock import LockHeld, acquire

LOCK_NAME = "node.lock"


class DataDirBusy(OSError):
    """Another live node serves from this data directory; ``pid`` is its supervisor's, if known."""

    def __init__(self, data_dir: Path, pid: int | None) -> None:
        who = f"another recserver node (pid {pid})" if pid else "another recserver node"
        super().__init__(f"{who} is serving from {data_dir}; stop it, or choose another "
                         "directory with --data-dir (each node needs its own)")
        self.data_dir = data_dir
        self.pid = pid


class NodeLock:
    """The held lock on one data directory; ``release`` (or the process's exit) gives it up."""

    def __init__(self, data_dir: Path) -> None:
        """Take the lock now, or raise ``DataDirBusy`` naming the holder's pid."""
        self.path = data_dir / LOCK_NAME
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._fd: int | None = acquire(self.path)
        except LockHeld as held:
            raise DataDirBusy(data_dir, held.pid) from None

    def release(self) -> None:
        """Give the lock up (idempotent); the file stays: an unlocked file blocks no one."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
