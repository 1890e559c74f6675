"""Ingest benchmark for the ingest targets: RecordEvents rate, apply rate, event-to-visible delay.

    .venv/bin/python -m load.benchmarks.ingest [--quick]

Three parts, about two minutes together (``--quick``: shorter runs, about one):

1. **apply** (in process, one core): a graph bootstrapped from 1M synthetic events, then 500k new
   events (with event ids) as 1,000-event log records, applied the way a replica applies them:
   decode + concatenate + ``LiveGraph.ingest`` (the tailer's path, from memory and from a real
   file log), beside a bare ``ingest`` of ready columns. Target >= 500,000 events/s.
2. **RecordEvents over gRPC**: ``recserver serve`` (file log, fsync ``batch``) pinned to core 1
   with ``taskset``; this client pins itself to core 0 and sends pre-serialised 1,000-event
   batches from 4 threads. The server also tails and applies everything it acknowledges.
   Target >= 50,000 events/s acknowledged.
3. **event-to-visible across replicas**: two servers sharing a Redis stream (a ``redis-server`` of
   its own on a free port), a background load of about 5,000 events/s into replica A, and a probe
   every 50 ms: one event recorded on A, whose log position is then awaited in replica B's
   ``GetIngestStatus.visible_position`` (polled every 5 ms). Delay = probe sent -> visible on B.
   Run with the default ``graph.publish_interval_s`` (1.0) and with 0.5. Target p99 <= 1 s.
   Two servers, Redis and the client share the 2 cores here (not pinned).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import yaml

from load.common import machine_line, pct, print_table, verdict
from load.common.redis_server import RedisServer
from recserver.eventlog.base import START, LogRecord, Position
from recserver.eventlog.codec import encode_batch
from recserver.eventlog.file_log import FileEventLog
from recserver.graph.arrayops import unique_inverse
from recserver.graph.config import GraphConfig
from recserver.graph.events import EventColumns
from recserver.graph.live import LiveGraph
from recserver.graph.synthetic import generate
from recserver.ingest.recorder import event_keys
from recserver.ingest.tailer import LogTailer
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc

CLIENT_CORE, SERVER_CORE = 0, 1
BATCH = 1_000
RECORD_EVENTS = "/recserver.v1.Recommender/RecordEvents"


# -- 1. apply ---------------------------------------------------------------------------------


def _slice(cols: EventColumns, lo: int, hi: int, ids: list[str]) -> EventColumns:
    """Rows lo:hi with their own compact name lists (as one RecordEvents batch would have)."""
    def side(codes: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str]]:
        used, inverse = unique_inverse(codes[lo:hi])
        return inverse.astype(np.int32), [names[c] for c in used.tolist()]

    u, un = side(cols.user_codes, cols.user_names)
    i, iname = side(cols.item_codes, cols.item_names)
    t, tn = side(cols.type_codes, cols.type_names)
    return EventColumns(u, i, t, cols.weight[lo:hi], cols.timestamp[lo:hi], un, iname, tn,
                        event_ids=ids[lo:hi])


class MemoryLog:
    """Records in a list: the tailer's read path without I/O."""

    name = "memory"
    where = "memory"

    def __init__(self, payloads: list[bytes]) -> None:
        self._records = [LogRecord(Position(k + 1), p) for k, p in enumerate(payloads)]

    def read(self, after: Position, max_records: int, timeout_s: float) -> list[LogRecord]:
        return self._records[after.major : after.major + max_records]

    def append(self, payload: bytes) -> Position:
        raise NotImplementedError

    def check_position(self, position: Position) -> str | None:
        return None

    def trim_before(self, position: Position) -> None:
        pass

    def close(self) -> None:
        pass


def fresh_graph(base: EventColumns) -> LiveGraph:
    graph = LiveGraph(GraphConfig())
    graph.ingest(base)
    graph.publish(compact=True)
    return graph


def bench_apply(n_base: int, n_new: int) -> dict[str, float]:
    print(f"\n1. apply: bootstrap {n_base:,} synthetic events, then {n_new:,} new events as "
          f"{BATCH:,}-event records", flush=True)
    base = generate(n_base, seed=1)
    new = generate(n_new, seed=2)
    ids = [f"bench-{k}" for k in range(n_new)]
    batches = [_slice(new, lo, min(lo + BATCH, n_new), ids) for lo in range(0, n_new, BATCH)]
    payloads = [encode_batch(b, event_keys(b.event_ids or []), appended_at=time.time(),
                             origin="bench") for b in batches]
    out: dict[str, float] = {}

    graph = fresh_graph(base)
    keys = [event_keys(b.event_ids or []) for b in batches]
    started = time.perf_counter()
    for b, k in zip(batches, keys, strict=True):
        graph.ingest(b, event_keys=k)
    out["bare ingest, 1k batches"] = n_new / (time.perf_counter() - started)

    graph = fresh_graph(base)
    tailer = LogTailer(MemoryLog(payloads), graph, max_records=256, max_events=20_000)
    started = time.perf_counter()
    applied = tailer.catch_up()
    out["tailer from memory (decode+ingest)"] = applied / (time.perf_counter() - started)
    assert applied == n_new

    with tempfile.TemporaryDirectory() as tmp:
        log = FileEventLog(tmp, fsync="interval")
        for p in payloads:
            log.append(p)
        graph = fresh_graph(base)
        tailer = LogTailer(log, graph, max_records=256, max_events=20_000)
        started = time.perf_counter()
        applied = tailer.catch_up()
        out["tailer from the file log (read+CRC+decode+ingest)"] = applied / (
            time.perf_counter() - started)
        started = time.perf_counter()
        graph.publish()
        out["publish after it (s)"] = time.perf_counter() - started
        log.close()
    return out


# -- servers ----------------------------------------------------------------------------------


class Serve:
    """``recserver serve`` in a subprocess (optionally pinned); port from its stdout."""

    def __init__(self, config: Path, *args: str, core: int | None = None) -> None:
        pin = ["taskset", "-c", str(core)] if core is not None and shutil.which("taskset") else []
        self.proc = subprocess.Popen(
            [*pin, sys.executable, "-m", "recserver.cli", "serve", "--port", "0",
             "--metrics-port", "0", "--config", str(config), *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        )
        self.tail: deque[str] = deque(maxlen=30)
        self.address = ""
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.tail.append(line.rstrip())
            found = re.search(r"recserver starting on (\S+) \(port", line)
            if found:
                self.address = found.group(1)
            if line.startswith("recserver serving on"):
                self._ready.set()
        self._ready.set()

    def wait(self, timeout: float = 120.0) -> Serve:
        if not self._ready.wait(timeout) or self.proc.poll() is not None:
            raise RuntimeError("server did not start:\n" + "\n".join(self.tail))
        return self

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def write_config(path: Path, publish_interval_s: float, **ingest: Any) -> Path:
    doc = {
        "surfaces": {"home": {"budget_ms": 60, "sla_p99_ms": 80}},
        "server": {"metrics_port": 0, "reload_poll_s": 60, "max_workers": 8},
        "graph": {"publish_interval_s": publish_interval_s},
        "ingest": {"checkpoint": {"interval_s": 3600}, **ingest},
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def make_requests(n_batches: int, prefix: str) -> list[bytes]:
    rng = np.random.default_rng(7)
    now = time.time()
    out = []
    kinds = ["view", "click", "add_to_cart", "purchase"]
    for b in range(n_batches):
        users = rng.integers(0, 50_000, BATCH)
        items = rng.zipf(1.3, BATCH) % 20_000
        types = rng.choice(4, BATCH, p=[0.7, 0.2, 0.07, 0.03])
        events = [pb.Event(event_id=f"{prefix}{b}-{j}", user_id=f"u{users[j]}",
                           item_id=f"i{items[j]}", event=kinds[types[j]], timestamp=now)
                  for j in range(BATCH)]
        out.append(pb.RecordEventsRequest(events=events).SerializeToString())
    return out


# -- 2. RecordEvents throughput ---------------------------------------------------------------


def bench_record(seconds: float, threads: int) -> dict[str, float]:
    print(f"\n2. RecordEvents over gRPC: {threads} client threads, {BATCH:,}-event batches, "
          f"{seconds:.0f} s; server pinned to core {SERVER_CORE}, client to core {CLIENT_CORE}",
          flush=True)
    requests = make_requests(int(seconds * 120) + 50, "rec")
    with tempfile.TemporaryDirectory() as tmp:
        config = write_config(Path(tmp) / "config.yaml", 1.0,
                              data_dir=str(Path(tmp) / "data"), file={"fsync": "batch"})
        server = Serve(config, "--synthetic", "100000", core=SERVER_CORE).wait()
        try:
            channel = grpc.insecure_channel(server.address)
            call = channel.unary_unary(RECORD_EVENTS, request_serializer=None,
                                       response_deserializer=pb.RecordEventsResponse.FromString)
            call(requests[-1], timeout=30)  # warm up (and the last batch is then a duplicate)
            next_batch = iter(range(len(requests) - 1))
            lock = threading.Lock()
            accepted = [0]
            latencies: list[float] = []
            stop_at = time.perf_counter() + seconds

            def worker() -> None:
                while time.perf_counter() < stop_at:
                    with lock:
                        k = next(next_batch, None)
                    if k is None:
                        return
                    t0 = time.perf_counter()
                    response = call(requests[k], timeout=30)
                    dt = time.perf_counter() - t0
                    with lock:
                        accepted[0] += response.accepted
                        latencies.append(dt)

            started = time.perf_counter()
            pool = [threading.Thread(target=worker) for _ in range(threads)]
            for t in pool:
                t.start()
            for t in pool:
                t.join()
            elapsed = time.perf_counter() - started
            stub = pb_grpc.RecommenderStub(channel)
            status = stub.GetIngestStatus(pb.GetIngestStatusRequest(), timeout=30)
            behind = status.apply_lag_seconds
            # How long the server needs to apply the rest of what it acknowledged.
            catch_started = time.perf_counter()
            target = status
            while True:
                target = stub.GetIngestStatus(pb.GetIngestStatusRequest(), timeout=30)
                if target.apply_lag_seconds == 0 and target.applied_position == \
                        target.visible_position:
                    break
                time.sleep(0.05)
            caught_up_s = time.perf_counter() - catch_started
            channel.close()
        finally:
            server.stop()
    return {
        "events/s acknowledged": accepted[0] / elapsed,
        "batches": len(latencies),
        "batch p50 ms": pct(latencies, 50) * 1000,
        "batch p99 ms": pct(latencies, 99) * 1000,
        "apply lag at end s": behind,
        "caught up after s": caught_up_s,
    }


# -- 3. event-to-visible across replicas ------------------------------------------------------


def bench_visible(publish_interval_s: float, seconds: float, rate: float) -> dict[str, float]:
    print(f"\n3. event-to-visible across two replicas (Redis stream), publish_interval_s "
          f"{publish_interval_s}, background {rate:,.0f} events/s into A, {seconds:.0f} s",
          flush=True)
    background = make_requests(int(seconds * rate / BATCH) + 20, f"bg{publish_interval_s}-")
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = RedisServer(Path(tmp)).start()
        servers: list[Serve] = []
        try:
            config = write_config(Path(tmp) / "config.yaml", publish_interval_s,
                                  redis={"stream_key": "bench:events"})
            servers = [Serve(config, "--synthetic", "100000", "--event-log-url",
                             redis_server.url, "--data-dir", str(Path(tmp) / n))
                       for n in ("a", "b")]
            for s in servers:
                s.wait()
            a_chan = grpc.insecure_channel(servers[0].address)
            b_chan = grpc.insecure_channel(servers[1].address)
            a, b = pb_grpc.RecommenderStub(a_chan), pb_grpc.RecommenderStub(b_chan)
            raw_a = a_chan.unary_unary(RECORD_EVENTS, request_serializer=None,
                                       response_deserializer=pb.RecordEventsResponse.FromString)
            stop = threading.Event()
            probes: dict[int, tuple[Position, float]] = {}
            seen: dict[int, float] = {}
            lock = threading.Lock()

            def load() -> None:  # ~rate events/s in BATCH-event requests
                interval = BATCH / rate
                k = 0
                next_at = time.perf_counter()
                while not stop.is_set() and k < len(background):
                    raw_a(background[k], timeout=30)
                    k += 1
                    next_at += interval
                    stop.wait(max(next_at - time.perf_counter(), 0))

            def probe() -> None:
                k = 0
                while not stop.is_set():
                    sent = time.perf_counter()
                    event = pb.Event(event_id=f"probe{publish_interval_s}-{k}",
                                     user_id=f"probe-user-{k}", item_id="i1", event="view")
                    response = a.RecordEvents(pb.RecordEventsRequest(events=[event]), timeout=30)
                    with lock:
                        probes[k] = (Position.parse(response.log_position), sent)
                    k += 1
                    stop.wait(0.05)

            def poll() -> None:
                while not stop.is_set() or len(seen) < len(probes):
                    status = b.GetIngestStatus(pb.GetIngestStatusRequest(), timeout=30)
                    now = time.perf_counter()
                    visible = Position.parse(status.visible_position or str(START))
                    with lock:
                        for k, (pos, _) in probes.items():
                            if k not in seen and pos <= visible:
                                seen[k] = now
                    if stop.is_set() and now > stop_time[0] + 10:
                        return
                    time.sleep(0.005)

            stop_time = [float("inf")]
            threads = [threading.Thread(target=f) for f in (load, probe, poll)]
            for t in threads:
                t.start()
            time.sleep(seconds)
            stop_time[0] = time.perf_counter()
            stop.set()
            for t in threads:
                t.join(60)
            delays = [seen[k] - probes[k][1] for k in probes if k in seen]
            # Spot check: the probes are really in B's graph, not just past its position.
            sample = [k for k in list(seen)[:: max(len(seen) // 5, 1)]]
            found = sum(bool(b.DescribeUser(pb.DescribeUserRequest(user_id=f"probe-user-{k}"),
                                            timeout=30).found) for k in sample)
            a_chan.close()
            b_chan.close()
        finally:
            for s in servers:
                s.stop()
            redis_server.stop()
    return {
        "probes": len(probes),
        "seen on B": len(delays),
        "spot-checked in B's graph": found / max(len(sample), 1),
        "p50 ms": pct(delays, 50) * 1000,
        "p99 ms": pct(delays, 99) * 1000,
        "max ms": max(delays) * 1000 if delays else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    args = parser.parse_args()
    if shutil.which("taskset"):
        os.sched_setaffinity(0, {CLIENT_CORE})
    print(machine_line())
    quick = args.quick
    apply = bench_apply(300_000 if quick else 1_000_000, 200_000 if quick else 500_000)
    record = bench_record(5.0 if quick else 10.0, threads=4)
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    visible = {interval: bench_visible(interval, 8.0 if quick else 15.0, rate=5_000)
               for interval in (1.0, 0.5)}

    print("\nresults")
    rows = [[name, f"{value:,.0f}" if "(s)" not in name else f"{value:.3f}"]
            for name, value in apply.items()]
    print_table(["apply (events/s)", "value"], rows)
    best_apply = apply["tailer from the file log (read+CRC+decode+ingest)"]
    print("  apply target >= 500,000 events/s: "
          f"{verdict(best_apply, 500_000, higher_is_better=True)}")
    print()
    print_table(["RecordEvents", "value"], [[k, f"{v:,.1f}"] for k, v in record.items()])
    rate = record["events/s acknowledged"]
    print(f"  RecordEvents target >= 50,000 events/s: "
          f"{verdict(rate, 50_000, higher_is_better=True)}")
    print()
    keys = ["probes", "seen on B", "spot-checked in B's graph", "p50 ms", "p99 ms", "max ms"]
    print_table(["event -> visible on B", *[f"interval {i} s" for i in visible]],
                [[k, *[f"{visible[i][k]:,.2f}" for i in visible]] for k in keys])
    for interval, v in visible.items():
        print(f"  publish_interval_s {interval}: p99 target <= 1,000 ms: "
              f"{verdict(v['p99 ms'], 1000, higher_is_better=False)}")


if __name__ == "__main__":
    main()
