"""``recserver serve``: one builder and N serving workers on one machine, kept alive.

The supervisor only starts, watches and stops processes; it holds no graph and answers nothing,
so it never competes with a worker for a GIL. Start: the builder first (it publishes the first
snapshot), then the workers, which all bind the node's port with SO_REUSEPORT. A worker that
dies is restarted (with a growing back-off when it dies young); a builder that dies is restarted
too, while the workers keep serving the last published snapshot. SIGTERM/SIGINT: the workers
drain first (health NOT_SERVING, in-flight answers finish), then the builder writes its final
checkpoint. Children inherit ``PROMETHEUS_MULTIPROC_DIR``, so the builder's ``/metrics`` sums
every process of the node.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from recserver.core.durable import read_json
from recserver.node.layout import RunDir

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: numba's on-disk cache of compiled kernels, shared by every process of a node
NUMBA_CACHE_ENV = "NUMBA_CACHE_DIR"
PR_SET_PDEATHSIG = 1
MAX_BACKOFF_S = 30.0
YOUNG_S = 10.0  # a child that dies younger than this is restarted after a growing back-off


@dataclass
class Child:
    """One supervised process."""

    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff_s: float = 0.5
    next_start: float = 0.0
    exits: list[int] = field(default_factory=list)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the supervisor dies, even by SIGKILL, so no
    orphaned builder or worker outlives its node (Linux ``PR_SET_PDEATHSIG``)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def reserve_port(host: str, port: int) -> tuple[socket.socket, int]:
    """Bind (not listen) ``host:port`` with SO_REUSEPORT, so workers can share it; the socket
    is kept open while the node runs, so port 0 resolves to one port for every worker."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock, int(sock.getsockname()[1])


def walk_kernels_cached(cache_dir: str | None) -> bool:
    """Whether ``cache_dir`` (numba's cache folder) holds the compiled walk kernels; True when
    no folder is set (numba then caches beside the code, where this cannot look)."""
    if not cache_dir:
        return True
    return any(Path(cache_dir).rglob("walk_kernels.*.nbi"))


def recserver_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "recserver", *args]


class Supervisor:
    """Starts, watches and stops one builder and ``workers`` serving workers."""

    def __init__(self, run: RunDir, builder_argv: list[str],
                 worker_argv: Callable[[int], list[str]], workers: int, *,
                 grace_s: float = 5.0) -> None:
        self.run = run.create()
        self.grace_s = grace_s
        self.builder = Child("builder", builder_argv)
        # An earlier builder's record must not pass for this one's first publish (its manifest
        # stays: the new builder numbers its snapshots past it, so versions only grow).
        (self.run.root / "builder.json").unlink(missing_ok=True)
        shutil.rmtree(self.run.root / "ready", ignore_errors=True)
        self.workers = [Child(f"worker-{i}", worker_argv(i)) for i in range(workers)]
        shutil.rmtree(self.run.metrics, ignore_errors=True)  # counters start at zero
        self.run.metrics.mkdir(parents=True)
        self.env = dict(os.environ, **{MULTIPROC_ENV: str(self.run.metrics)})
        self._stopping = threading.Event()
        #: workers started once the first one is ready (a cold kernel cache, see start_workers)
        self._deferred: list[Child] = []

    def _spawn(self, child: Child) -> None:
        child.proc = subprocess.Popen(child.argv, env=self.env, preexec_fn=_die_with_parent)
        child.started_at = time.monotonic()
        log.info("started %s (pid %d)", child.name, child.proc.pid)

    def start_builder(self, timeout_s: float = 3600.0) -> None:
        """Start the builder; return once it published its first snapshot (and said so)."""
        self._spawn(self.builder)
        deadline = time.monotonic() + timeout_s
        while read_json(self.run.root / "builder.json") is None:
            if not self.builder.alive():
                code = self.builder.proc.returncode if self.builder.proc else None
                raise RuntimeError(f"the builder exited ({code}) before publishing a snapshot")
            if time.monotonic() > deadline or self._stopping.is_set():
                raise RuntimeError("the builder published no snapshot in time")
            time.sleep(0.1)

    def start_workers(self) -> None:
        """Start the workers. With a cold kernel cache (``NUMBA_CACHE_DIR`` holds no compiled
        walk kernel yet) only the first starts now and ``check`` starts the others once it is
        ready: it compiles the walk kernels into the cache (~12 s, ~60 MB of compiler heap)
        and the others load them, where N workers started together would each compile."""
        first, *rest = self.workers
        self._spawn(first)
        if walk_kernels_cached(self.env.get(NUMBA_CACHE_ENV)):
            for child in rest:
                self._spawn(child)
        else:
            self._deferred = rest

    def _start_deferred(self) -> None:
        first = self.workers[0]
        warm = first.pid is not None and (self.run.root / "ready" / f"{first.name}.{first.pid}"
                                          ).exists()
        if warm or not first.alive():  # a first worker that died must not hold the others
            for child in self._deferred:
                self._spawn(child)
            self._deferred = []

    def relay(self, signum: int, *, builder_only: bool = False) -> list[str]:
        """Send ``signum`` to the live builder (and the workers unless ``builder_only``): a
        signal to ``serve`` meant for its roles (SIGHUP reloads the config in each, SIGUSR1
        forces the builder's compacting publish). Returns the children told."""
        told = []
        for child in [self.builder] + ([] if builder_only else self.workers):
            if child.proc is not None and child.alive():
                try:
                    child.proc.send_signal(signum)
                except ProcessLookupError:  # exited since alive() looked
                    continue
                told.append(child.name)
        return told

    def ready_workers(self) -> int:
        """Workers that reported SERVING (each writes its ready file)."""
        return sum(1 for c in self.workers if c.alive() and
                   (self.run.root / "ready" / f"{c.name}.{c.pid}").exists())

    def check(self) -> None:
        """Restart any child that died (called every few hundred ms)."""
        if self._deferred and not self._stopping.is_set():
            self._start_deferred()
        now = time.monotonic()
        for child in [self.builder, *self.workers]:
            if child.proc is None or child.alive() or self._stopping.is_set():
                continue
            if child.next_start == 0.0:
                code = child.proc.returncode
                child.exits.append(code)
                self._forget(child)
                young = now - child.started_at < YOUNG_S
                child.backoff_s = min(child.backoff_s * 2, MAX_BACKOFF_S) if young else 0.5
                child.next_start = now + (child.backoff_s if young else 0.0)
                log.warning("%s (pid %d) exited with %s; restarting in %.1fs", child.name,
                            child.proc.pid, code, child.next_start - now)
            if now >= child.next_start:
                child.next_start = 0.0
                child.restarts += 1
                self._spawn(child)

    def _forget(self, child: Child) -> None:
        """A dead process's ready marker and live gauges must not count any more."""
        if child.pid is None:
            return
        (self.run.root / "ready" / f"{child.name}.{child.pid}").unlink(missing_ok=True)
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(child.pid, str(self.run.metrics))

    def stop(self) -> None:
        """Workers drain first, then the builder checkpoints; stragglers are killed."""
        self._stopping.set()
        self._terminate(self.workers, self.grace_s + 5.0)
        self._terminate([self.builder], 120.0)

    def _terminate(self, children: list[Child], timeout_s: float) -> None:
        for child in children:
            if child.alive() and child.proc is not None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for child in children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("%s (pid %d) did not stop in time; killing it", child.name,
                          child.proc.pid)
                child.proc.kill()
                child.proc.wait()
