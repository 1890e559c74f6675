"""CPU classes for bulk work: SCHED_IDLE for whole processes, and how to read a process's class.

Linux schedules threads, not processes: ``sched_setscheduler(tid, SCHED_IDLE)`` changes one
thread, and threads started afterwards inherit the policy of the thread that starts them. A
SCHED_IDLE thread runs only on CPU time no other thread wants (its weight is 3 against 1,024 for
a nice-0 thread), so bulk work at that class never takes a serving worker's core.

Python's GIL is per process, though: a SCHED_IDLE thread that holds the GIL while the cores are
busy is not scheduled for long stretches and cannot release it, so every other thread of its
process waits with it (priority inversion; measured: a compaction in a SCHED_IDLE thread of the
builder stalled a normal thread of the same process for up to 1.7 s on 2 busy cores). Only a
*whole process* goes to SCHED_IDLE here (``make_idle``): the ANN build child does, the builder
does not.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

#: ``/proc/PID/stat`` field 41 (policy) values, by name
POLICIES = {0: "SCHED_OTHER", 1: "SCHED_FIFO", 2: "SCHED_RR", 3: "SCHED_BATCH", 5: "SCHED_IDLE",
            6: "SCHED_DEADLINE"}


def set_idle(tid: int = 0) -> bool:
    """Put thread ``tid`` (0: the calling thread; a child's pid: its main thread) in SCHED_IDLE.

    True when done; False where the platform has no SCHED_IDLE or the thread is gone. Lowering
    the class needs no privilege.
    """
    idle = getattr(os, "SCHED_IDLE", None)
    if idle is None:
        return False
    try:
        os.sched_setscheduler(tid, idle, os.sched_param(0))
    except (ProcessLookupError, PermissionError, OSError) as exc:
        log.debug("could not set SCHED_IDLE on %d: %s", tid, exc)
        return False
    return True


def thread_ids(pid: int | None = None) -> list[int]:
    """The thread ids of process ``pid`` (default: this one)."""
    folder = Path(f"/proc/{pid or os.getpid()}/task")
    try:
        return sorted(int(entry.name) for entry in folder.iterdir())
    except OSError:
        return []


def make_idle() -> int:
    """Put every thread of this process in SCHED_IDLE; threads started later inherit it.

    Call it first thing in a process that does only bulk work, before any library starts its
    thread pools (OpenBLAS, OpenMP). Returns how many threads were moved.
    """
    return sum(1 for tid in thread_ids() if set_idle(tid))


def _policy_at(stat: Path) -> str:
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return "gone"
    # Field 41 of stat (policy); fields[0] here is field 3 (state).
    return POLICIES.get(int(fields[38]), f"policy {fields[38]}")


def policy(pid: int) -> str:
    """The scheduling class of process ``pid``'s main thread: ``SCHED_IDLE``, ``SCHED_OTHER``...

    Read from ``/proc``, so it works for any process (tests, benchmarks).
    """
    return _policy_at(Path(f"/proc/{pid}/stat"))


def policies(pid: int) -> set[str]:
    """The classes of every thread of process ``pid`` (one name when they all agree)."""
    return {_policy_at(Path(f"/proc/{pid}/task/{tid}/stat")) for tid in thread_ids(pid)} - {"gone"}
