"""What compactions and checkpoints cost, and why they stay out of a SCHED_IDLE thread.

Part ``inversion`` of ``load/benchmarks/bulk.py``, in this process: a graph of ``events`` synthetic
events, then one compaction (``build_base``) and one checkpoint (``CheckpointStore.save``) timed
alone (CPU seconds: what a busy worker can lose to each), then both again in a thread while two
busy loops hold both cores: at this process's class, at nice 19, and in SCHED_IDLE.
A normal thread of the same process wakes every millisecond meanwhile: its worst lateness is how
long the bulk thread kept the GIL from it. A SCHED_IDLE thread that holds the GIL is not
scheduled while the cores are busy, so the normal thread (in the builder: the publisher) waits
with it — the priority inversion that keeps bulk Python work at idle class in its own process.
"""

from __future__ import annotations

import os
import resource
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from load.common import pct


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime + usage.ru_stime


class _Probe:
    """A thread of normal class that sleeps 1 ms at a time and keeps how late it woke."""

    def __init__(self) -> None:
        self.late: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            began = time.perf_counter()
            time.sleep(0.001)
            self.late.append(time.perf_counter() - began - 0.001)

    def take(self) -> list[float]:
        taken, self.late = self.late, []
        return taken


#: the bulk thread's class: as the process, nice 19 (weight 15 against 1,024), SCHED_IDLE (3)
CLASSES = ("normal", "nice19", "sched_idle")


def _in_thread(work: Callable[[], object], klass: str) -> tuple[float, float]:
    """Run ``work`` in a new thread of class ``klass``; (wall s, thread CPU s)."""
    out: dict[str, float] = {}

    def body() -> None:
        if klass == "sched_idle":
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        elif klass == "nice19":  # Linux: niceness is per thread
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        began, cpu = time.perf_counter(), _cpu()
        work()
        out["wall"], out["cpu"] = time.perf_counter() - began, _cpu() - cpu

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    return out["wall"], out["cpu"]


def run(events: int, start_busy: Callable[[], list[Any]]) -> dict[str, Any]:
    """The figures of the module docstring for a graph of ``events``."""
    from recserver.graph.compact import build_base
    from recserver.graph.config import GraphConfig
    from recserver.graph.live import LiveGraph
    from recserver.graph.synthetic import generate
    from recserver.ingest.checkpoint import CheckpointStore

    live = LiveGraph(GraphConfig())
    live.ingest(generate(events, seed=0))
    live.publish(compact=True)
    store = live.store
    folder = tempfile.mkdtemp(prefix="bench-bulk-ckpt-")
    checkpoints = CheckpointStore(Path(folder), keep=1)
    work: dict[str, Callable[[], object]] = {
        "compaction": lambda: build_base(store.main, store.pending, live.cfg, scale=1.0,
                                         t_ref=store.max_ts, n_users=len(store.users),
                                         n_items=len(store.items)),
        "checkpoint": lambda: checkpoints.save(live.capture_state()),
    }
    out: dict[str, Any] = {"events": events, "edges": live.current.n_edges}
    for name, step in work.items():
        wall, cpu = _in_thread(step, "normal")
        out[name] = {"alone_wall_s": wall, "alone_cpu_s": cpu}
    probe = _Probe()
    busy = start_busy()
    try:
        time.sleep(0.5)
        for name, step in work.items():
            for label in CLASSES:
                probe.take()
                wall, _ = _in_thread(step, label)
                late_ms = np.asarray(probe.take()) * 1000
                out[name][label] = {"wall_s": wall, "probe_p99_ms": pct(late_ms, 99),
                                    "probe_max_ms": float(late_ms.max(initial=0.0)),
                                    "probe_over_50ms": int((late_ms > 50).sum())}
    finally:
        for proc in busy:
            proc.kill()
        probe.stop.set()
    return out


def rows(result: dict[str, Any]) -> list[list[str]]:
    """Table rows: one per step and class."""
    out = []
    for name in ("compaction", "checkpoint"):
        step = result[name]
        for label in CLASSES:
            fig = step[label]
            out.append([name, f"{step['alone_cpu_s'] * 1000:.0f}", label,
                        f"{fig['wall_s']:.2f}", f"{fig['probe_p99_ms']:.1f}",
                        f"{fig['probe_max_ms']:.0f}", str(fig["probe_over_50ms"])])
    return out


HEADER = ["step", "CPU ms alone", "thread class (busy cores)", "wall s", "normal thread late "
          "p99 ms", "max ms", "> 50 ms"]
