"""Watching a node for ``load/benchmarks/bulk.py``: builder and build-child memory and CPU,
freshness.

``Sampler`` reads ``/proc`` every 0.1 s: the builder's proportional set size (PSS), its build
child's, and every build child's CPU seconds (kept at their last reading, as a child that exits
takes its counters along). ``Freshness`` records one event every 50 ms through the node's port
and polls ``DescribeUser`` on a worker every 10 ms until each is found: accepted (the
``RecordEvents`` reply) -> visible in that worker's mapped snapshot.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import grpc

from load.benchmarks.node_harness import CLK_TCK, cpu_seconds
from load.common import pct
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc


def all_children(pid: int) -> list[int]:
    """Children of every thread of ``pid`` (the build child is started by a worker thread)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def pss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Sampler:
    """Every 0.1 s: the builder's PSS, its build child's, and each build child's CPU seconds.

    Samples carry wall-clock time, to line them up with the node's log lines.
    """

    def __init__(self, builder: int) -> None:
        self.builder = builder
        self.samples: list[tuple[float, float, float]] = []  # (time.time(), builder, child MiB)
        self.child_cpu: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.1):
            kids = all_children(self.builder)
            for kid in kids:
                self.child_cpu[kid] = max(self.child_cpu.get(kid, 0.0), cpu_seconds([kid]))
            self.samples.append((time.time(), pss_mib(self.builder),
                                 sum(pss_mib(k) for k in kids)))

    def child_cpu_total(self) -> float:
        return sum(self.child_cpu.values())

    def memory(self, started: float, done: float) -> dict[str, float]:
        """Builder PSS (MiB) at the last sample before ``started``, its peak (alone and with
        the build child) until ``done``, and the first sample 2 s or more after ``done``."""
        before = [s for s in self.samples if s[0] < started]
        during = [s for s in self.samples if started <= s[0] <= done] or before[-1:]
        after = [s for s in self.samples if s[0] >= done + 2.0]
        nan = float("nan")
        return {"before_mib": before[-1][1] if before else nan,
                "peak_mib": max(s[1] for s in during) if during else nan,
                "peak_with_child_mib": max(s[1] + s[2] for s in during) if during else nan,
                "after_mib": after[0][1] if after else nan}


def machine_busy_s() -> float:
    """CPU seconds every core of the machine spent busy (not idle or waiting on I/O)."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / CLK_TCK


class CpuMeter:
    """CPU seconds of named groups over a window, as cores (CPU seconds per second)."""

    def __init__(self, groups: dict[str, Callable[[], float]]) -> None:
        self.groups = groups
        self.began = time.monotonic()
        self.base = {name: read() for name, read in groups.items()}

    def cores(self) -> dict[str, float]:
        wall = time.monotonic() - self.began
        return {name: (read() - self.base[name]) / wall for name, read in self.groups.items()}


class Freshness:
    """Records an event every ``period_s`` and times it until a worker's DescribeUser finds it."""

    def __init__(self, address: str, tag: str, period_s: float = 0.05,
                 ingest_per_s: int = 0) -> None:
        """``ingest_per_s``: more events beside the timed ones, in batches every 0.1 s (on
        their own connection), so the builder has real ingest to fold and publish."""
        local = [("grpc.use_local_subchannel_pool", 1)]
        self.channels = [grpc.insecure_channel(address, options=local) for _ in range(3)]
        self.tag, self.period_s, self.ingest_per_s = tag, period_s, ingest_per_s
        self.pending: deque[tuple[str, float]] = deque()
        self.seen: list[tuple[float, float]] = []  # (accepted at, seconds to visible)
        self.errors = 0
        self.ingested = 0
        self.sending = threading.Event()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._send, daemon=True),
                        threading.Thread(target=self._poll, daemon=True)]
        if ingest_per_s:
            self.threads.append(threading.Thread(target=self._ingest, daemon=True))
        self.sending.set()
        for thread in self.threads:
            thread.start()

    def _ingest(self) -> None:
        stub = pb_grpc.RecommenderStub(self.channels[2])
        per_batch, i = max(1, self.ingest_per_s // 10), 0
        while self.sending.is_set():
            began = time.monotonic()
            events = [pb.Event(event_id=f"bulk-{self.tag}-{i + j}", user_id=f"u{(i + j) % 30011}",
                               item_id=f"i{(i + j) * 7919 % 16001}", event="view")
                      for j in range(per_batch)]
            i += per_batch
            try:
                self.ingested += stub.RecordEvents(pb.RecordEventsRequest(events=events),
                                                   timeout=10).accepted
            except grpc.RpcError:
                self.errors += 1
            time.sleep(max(0.0, 0.1 - (time.monotonic() - began)))

    def _send(self) -> None:
        stub = pb_grpc.RecommenderStub(self.channels[0])
        i = 0
        while self.sending.is_set():
            began = time.monotonic()
            user = f"fresh-{self.tag}-{i}"
            event = pb.Event(event_id=user, user_id=user, item_id="i1", event="purchase")
            try:
                reply = stub.RecordEvents(pb.RecordEventsRequest(events=[event]), timeout=10)
                if reply.accepted == 1:
                    self.pending.append((user, time.monotonic()))
            except grpc.RpcError:
                self.errors += 1
            i += 1
            time.sleep(max(0.0, self.period_s - (time.monotonic() - began)))

    def _poll(self) -> None:
        stub = pb_grpc.RecommenderStub(self.channels[1])
        while not self.stop.is_set():
            while self.pending:
                user, accepted = self.pending[0]
                try:
                    found = stub.DescribeUser(pb.DescribeUserRequest(user_id=user, limit=1),
                                              timeout=10).found
                except grpc.RpcError:
                    self.errors += 1
                    break
                if not found:
                    break
                self.seen.append((accepted, time.monotonic() - accepted))
                self.pending.popleft()
            time.sleep(0.01)

    def finish(self, drain_s: float = 5.0) -> None:
        self.sending.clear()
        deadline = time.monotonic() + drain_s
        while self.pending and time.monotonic() < deadline:
            time.sleep(0.05)
        self.stop.set()
        for thread in self.threads:
            thread.join(5)
        for channel in self.channels:
            channel.close()

    def summary(self, start: float, end: float) -> dict[str, float]:
        ms = [d * 1000 for t, d in self.seen if start <= t <= end]
        lost = sum(1 for _, t in self.pending if start <= t <= end)  # never seen in time
        return {"events": len(ms), "unseen": lost, "p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99),
                "max_ms": max(ms) if ms else float("nan")}
