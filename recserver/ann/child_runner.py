"""The builder's side of an ANN build in a child process (``node.child_build``).

Why a child: a build is seconds of CPU (12 s for 1M events here) that must only use idle CPU,
and a SCHED_IDLE *thread* of the builder would hold the builder's GIL while it waits for a core,
stalling the publisher and the tailer (see ``core.cpu_class``). A process at SCHED_IDLE has its
own GIL, and when it exits its whole heap goes back to the system (a build in the builder's own
heap left ~320 MB behind in glibc's arenas).

``ChildBuilder.run`` starts the child (spawn: ``subprocess`` with a fresh interpreter, never a
fork of the multi-threaded builder), puts it in SCHED_IDLE at once (the child does too, for
every thread), sends the job on stdin, and follows the protocol: at ``staged`` it calls
``on_staged`` (the runtime deletes erased users' results at the new version) and answers
``flip``; at ``published`` the build is live. It returns once the child has exited, with the
child's stderr logged; any failure raises ``ChildBuildFailed`` with the exit status and the end
of the child's stderr. ``kill`` (from any thread) ends a running child at once.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from recserver.ann.config import AnnConfig
from recserver.core.cpu_class import set_idle

log = logging.getLogger(__name__)

STDERR_TAIL = 4_000  # characters of the child's stderr quoted in a failure


class ChildBuildFailed(RuntimeError):
    """The child exited without publishing (or was killed); the message says how."""


@dataclass(frozen=True)
class ChildJob:
    """Where a child builds from and publishes to: the builder's run directory and cache."""

    run_dir: Path
    redis_url: str | None = None  # sent on stdin, never on the command line (``ps`` shows it)
    wait_s: float = 60.0  # for a snapshot to map
    #: where the child saves its build's vectors for the builder's folds (``ann.fold_saved``)
    ann_dir: Path | None = None


@dataclass(frozen=True)
class ChildOutcome:
    version: int
    snapshot_version: int
    summary: str
    pid: int
    seconds: float


class ChildBuilder:
    """Runs ANN builds in child processes, one at a time (see the module docstring)."""

    def __init__(self, job: ChildJob) -> None:
        self.job = job
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._killed = False
        self.last_pid: int | None = None

    @property
    def pid(self) -> int | None:
        """The running child's pid (None between builds)."""
        proc = self._proc
        return proc.pid if proc is not None else None

    def run(self, cfg: AnnConfig, previous: int | None,
            on_staged: Callable[[int, int], None]) -> ChildOutcome:
        """Build once in a child; ``on_staged(snapshot_version, version)`` runs before the
        pointer flips. Raises ``ChildBuildFailed``."""
        started = time.monotonic()
        with tempfile.TemporaryFile() as errors:
            proc = self._start(errors)
            try:
                outcome = self._talk(proc, cfg, previous, on_staged, started)
                code = proc.wait()
            finally:
                self._proc = None
                if proc.poll() is None:  # on_staged raised: no half-done child left behind
                    proc.kill()
                    proc.wait()
            text = _tail(errors)
        if outcome is None or code != 0:
            how = "was killed" if self._killed else f"exited with {code}"
            raise ChildBuildFailed(f"the ANN build child (pid {proc.pid}) {how} without "
                                   f"publishing; its stderr ends:\n{text}")
        for line in text.splitlines():
            log.info("ann build child %d: %s", proc.pid, line)
        return outcome

    def _start(self, errors: IO[bytes]) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._killed:
                raise ChildBuildFailed("the builder is stopping; no ANN build started")
            proc = subprocess.Popen(
                [sys.executable, "-m", "recserver.node.child_build"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=errors, close_fds=True)
            self._proc, self.last_pid = proc, proc.pid
        set_idle(proc.pid)  # at once: its interpreter's start is bulk work too
        log.info("ann build started in child process %d (SCHED_IDLE)", proc.pid)
        return proc

    def _talk(self, proc: subprocess.Popen[bytes], cfg: AnnConfig, previous: int | None,
              on_staged: Callable[[int, int], None], started: float) -> ChildOutcome | None:
        assert proc.stdin is not None and proc.stdout is not None
        job = {"run_dir": str(self.job.run_dir), "redis_url": self.job.redis_url,
               "wait_s": self.job.wait_s, "previous": previous, "parent": os.getpid(),
               "ann": cfg.model_dump(mode="json", exclude={"redis_url"})}
        try:
            _send(proc.stdin, json.dumps(job))
            staged = _receive(proc.stdout, "staged")
            if staged is None:
                return None
            on_staged(int(staged["snapshot"]), int(staged["staged"]))
            _send(proc.stdin, "flip")
            done = _receive(proc.stdout, "published")
        except (BrokenPipeError, ValueError):  # the child died mid-protocol
            return None
        finally:
            proc.stdin.close()
        if done is None:
            return None
        return ChildOutcome(int(done["published"]), int(done["snapshot"]),
                            str(done.get("summary", "")), proc.pid,
                            time.monotonic() - started)

    def kill(self) -> None:
        """End a running child now and refuse new ones (the builder is stopping)."""
        with self._lock:
            self._killed = True
            proc = self._proc
        if proc is not None and proc.poll() is None:
            log.info("stopping the ANN build child (pid %d)", proc.pid)
            proc.kill()


def _send(pipe: IO[bytes], line: str) -> None:
    pipe.write(line.encode() + b"\n")
    pipe.flush()


def _receive(pipe: IO[bytes], field: str) -> dict[str, Any] | None:
    """The next protocol line, when it carries ``field``; None at end of file."""
    line = pipe.readline()
    if not line:
        return None
    message = json.loads(line)
    if not isinstance(message, dict) or field not in message:
        raise ValueError(f"ANN build child said {line[:200]!r}, expected {field!r}")
    return message


def _tail(errors: IO[bytes]) -> str:
    errors.seek(0, 2)
    size = errors.tell()
    errors.seek(max(0, size - STDERR_TAIL))
    return errors.read().decode(errors="replace").strip()
