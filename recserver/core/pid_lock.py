"""An exclusive ``flock`` on a file that holds its owner's pid, so a refused opener can say who.

The event log's ``LOCK`` and a node's ``node.lock`` are both taken this way. The kernel drops an
``flock`` when its owner exits, however it exits (SIGKILL too), so a file left behind never
blocks anyone; the pid in it only names the owner for a message. The descriptor is not
inherited by child processes (Python opens it non-inheritable).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class LockHeld(Exception):
    """Another open file description holds the lock; ``pid`` is its owner's, if it wrote one."""

    def __init__(self, path: Path, pid: int | None) -> None:
        super().__init__(f"{path} is locked" + (f" by pid {pid}" if pid else ""))
        self.path = path
        self.pid = pid


def read_pid(path: Path) -> int | None:
    """The pid written in a lock file; None when there is none (no file, empty, not a number:
    e.g. the owner is between truncating and writing it, or is an older version)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def acquire(path: Path) -> int:
    """Lock ``path`` (created if missing) without waiting and write this process's pid in it;
    returns the descriptor that holds the lock (close it to release). Raises ``LockHeld``."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LockHeld(path, read_pid(path)) from None
    os.ftruncate(fd, 0)  # only the owner writes, so a reader sees the live owner's pid
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
