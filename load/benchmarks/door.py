"""The door: many callers, overload, an empty handler, freshness; asyncio door against sync.

    .venv/bin/python -m load.benchmarks.door                       # every part, ~25 minutes
    .venv/bin/python -m load.benchmarks.door --parts overload,empty

Every part runs the node that ``recserver serve`` ships (builder + workers, processes) on the
hard log of ``load/benchmarks/hub_log.py`` (2.5M events, hub items, heavy users), one ``home``
surface with a 20 ms budget, walks of 400,000 planned steps (4x the default) and the fallback chain
``ann, popular``. Each figure is printed beside its baseline measured in the same run: the
sync door (grpcio's thread-pool server with the older admission at submission), and for the
callers part also one channel on the node's shared port (what a client got before workers
had ports of their own).

* **callers** — from the first SERVING (process start) through the builder's first ANN build,
  4 closed-loop callers on one channel, 2 workers on the 2 cores beside the builder and this
  client: errors, server and client p99, each worker's answer count (``/metrics``), and
  meanwhile, from a process of its own, **freshness**: one event recorded every 250 ms, timed
  from its acknowledgement until every worker's ``DescribeUser`` sees it.
* **overload** — the node started on core 1 (so one worker), this client on core 0, after the
  first ANN build: full-quality capacity (answers that walked per second, the better of a
  closed loop of 2 and of 4 callers), then one open-loop
  schedule: 0.7x steady, 0.7x in bursts of 10, 2x, 0.7x, 4x, 0.7x; per phase answered and
  refusal p99 from each call's scheduled send, goodput (answers of any tier inside the budget
  from the scheduled send), the share that walked, refusals and DEADLINE_EXCEEDED.
* **empty** — an empty handler behind each door (``load/common/empty_server.py``), 1,000 calls/s.
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import grpc

from load.benchmarks.hub_log import ensure_hub_log, heavy_user_ids
from load.benchmarks.node_harness import Node, free_port, start_node, write_config
from load.common import machine_line, pct, print_table
from load.loadgen import door_load, wire_latency
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc

BUDGET_MS = 20.0
WALK_STEPS = 400_000
PHASES = (("0.7x", 0.7, 6.0, 1), ("0.7x bursts of 10", 0.7, 6.0, 10), ("2x", 2.0, 8.0, 1),
          ("0.7x after 2x", 0.7, 5.0, 1), ("4x", 4.0, 8.0, 1), ("0.7x after 4x", 0.7, 5.0, 1))


def users(n_events: int) -> list[str]:
    """Every user id of the hub log of ``n_events`` (u0..; heavy users come last)."""
    last = int(heavy_user_ids(n_events)[-1][1:])
    return [f"u{i}" for i in range(last + 1)]


def config(tmp: Path, door: str) -> Path:
    return write_config(tmp / "config.yaml", budget_ms=BUDGET_MS, walk_steps=WALK_STEPS,
                        tiers=["ann", "popular"], server={"door": door})


def ann_built(node: Node) -> bool:
    """Whether the builder has published its first ANN results (its log says so)."""
    text = (node.data.parent / "server.log").read_text(errors="replace")
    return re.search(r"ann build \d+ .*published|ann: adopted version", text) is not None


def worker_counts(node: Node) -> dict[str, float]:
    """Answers per worker, from the node's ``/metrics``."""
    info = json.loads((node.data / "run" / "builder.json").read_text())
    text = urllib.request.urlopen(info["metrics_url"], timeout=5).read().decode()
    found = re.findall(r'recserver_worker_answers_total\{worker="([^"]+)"\} ([0-9.e+]+)', text)
    return {name: float(value) for name, value in found}


def keep_log(node: Node, name: str) -> None:
    """Keep the node's log beside the figures (``var/perf/door-logs``) for a second look."""
    out = Path("var/perf/door-logs")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.log").write_bytes((node.data.parent / "server.log").read_bytes())


def round_robin(node: Node) -> str:
    return str(json.loads((node.data / "run" / "ports.json").read_text())["round_robin_target"])


def freshness_probe(node_address: str, worker_addresses: list[str], seconds: float,
                    out: Any, stop: Any) -> None:
    """Record an event for a new user every 250 ms; time until every worker describes it.
    Runs until ``stop`` (a multiprocessing event) is set: while the load runs, not after."""
    lags: list[float] = []
    misses = 0
    with grpc.insecure_channel(node_address) as ch:
        stub = pb_grpc.RecommenderStub(ch)
        workers = [pb_grpc.RecommenderStub(grpc.insecure_channel(a)) for a in worker_addresses]
        stop_at = time.monotonic() + seconds
        i = 0
        while time.monotonic() < stop_at and not stop.is_set():
            user = f"fresh-{os.getpid()}-{i}"
            i += 1
            stub.RecordEvents(pb.RecordEventsRequest(events=[pb.Event(
                user_id=user, item_id="i1", event="purchase", timestamp=time.time())]),
                timeout=5.0)
            acked = time.monotonic()
            pending = set(range(len(workers)))
            while pending and time.monotonic() - acked < 10.0:
                for w in list(pending):
                    if workers[w].DescribeUser(pb.DescribeUserRequest(user_id=user),
                                               timeout=2.0).found:
                        pending.discard(w)
                if pending:
                    time.sleep(0.01)
            if pending:
                misses += 1
            else:
                lags.append((time.monotonic() - acked) * 1000.0)
            time.sleep(max(0.0, 0.25 - (time.monotonic() - acked)))
    out.put({"events": i, "not_seen_in_10s": misses, "p50_ms": pct(lags, 50),
             "p99_ms": pct(lags, 99), "max_ms": max(lags) if lags else None})


def part_callers(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, door, spread in (("sync door, shared port", "sync", False),
                               ("aio door, worker ports", "aio", True)):
        if door not in args.doors:
            continue
        run_dir = tmp / name.replace(" ", "_").replace(",", "")
        run_dir.mkdir()
        node = start_node(run_dir, config(run_dir, door), free_port(), events=args.log,
                          workers=2, single=False)
        try:
            serving_s = node.wait_serving()
            ports = json.loads((node.data / "run" / "ports.json").read_text())
            target = round_robin(node) if spread else node.address
            spawn = multiprocessing.get_context("spawn")
            queue: Any = spawn.Queue()
            loaded: Any = spawn.Event()  # set when the callers stop
            prober = spawn.Process(
                target=freshness_probe, args=(node.address, [f"127.0.0.1:{p}" for p in
                                                            ports["workers"]],
                                              args.callers_s, queue, loaded))
            prober.start()
            began = time.monotonic()
            reqs = door_load.requests(users(args.events))
            # One channel throughout, until the first ANN build is published (or the limit).
            calls, _ = door_load.run(door_load.closed(target, args.callers_s, 4, reqs,
                                                      until=functools.partial(ann_built, node)))
            seconds = time.monotonic() - began
            loaded.set()
            fresh = queue.get(timeout=60)
            prober.join(30)
            counts = worker_counts(node)
        finally:
            node.stop()
            keep_log(node, "callers-" + door)
        row = door_load.summary(calls, BUDGET_MS, seconds)
        row.update(serving_after_s=serving_s, seconds=seconds, ann_built=ann_built(node),
                   worker_answers=counts, freshness=fresh)
        per_worker: list[float] = sorted(counts.values())
        row["worker_spread"] = (per_worker[-1] / per_worker[0] - 1.0
                                if per_worker and per_worker[0] else None)
        results[name] = row
        print(f"callers {name}: {json.dumps(row)}", flush=True)
    return results


def part_overload(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    os.sched_setaffinity(0, {0})  # this client on core 0, the node on core 1
    results: dict[str, Any] = {}
    reqs = door_load.requests(users(args.events))
    for door in args.doors:
        run_dir = tmp / door
        run_dir.mkdir()
        node = start_node(run_dir, config(run_dir, door), free_port(), events=args.log,
                          workers=1, single=False, cores="1")
        try:
            node.wait_serving()
            deadline = time.monotonic() + 600
            while not ann_built(node) and time.monotonic() < deadline:
                time.sleep(1.0)
            target = round_robin(node)
            port = int(target.rsplit(":", 1)[1])  # the one worker's own port
            # Full-quality capacity: answers that walked, per second, in a closed loop of 2
            # and of 4 callers (the better of the two: with more callers than a door keeps
            # walking, the rest come back from the fallback at once and call again).
            capacity = 0.0
            for callers in (2, 4):
                probe, _ = door_load.run(door_load.closed(target, 8.0, callers, reqs))
                walked = sum(1 for c in probe if c.code == "OK" and c.walked
                             and not c.overloaded)
                capacity = max(capacity, walked / 8.0)
            dues: list[float] = []
            bounds: list[tuple[str, float, float]] = []
            at = 0.0
            for label, factor, seconds, burst in PHASES:
                dues += door_load.poisson_dues(capacity * factor, seconds, at, burst=burst)
                bounds.append((label, at, seconds))
                at += seconds
            with wire_latency.capture(port, tmp / f"{door}.pcap", core=0) as pcap:
                (calls, began), cpu = door_load.run(door_load.scheduled(target, dues, reqs))
        finally:
            node.stop()
            keep_log(node, "overload-" + door)
        wire = wire_latency.streams(pcap, port) if pcap is not None else None
        row: dict[str, Any] = {"capacity_per_s": capacity, "client_cpu_ms_per_call":
                               1000.0 * cpu / max(len(calls), 1)}
        for label, start, seconds in bounds:
            phase = [c for c in calls if start <= c.due_s < start + seconds]
            summary = door_load.summary(phase, BUDGET_MS, seconds)
            summary["goodput_share_of_capacity"] = summary["goodput_per_s"] / capacity
            if wire is not None:  # the node's own latency: request HEADERS to end of stream
                summary["wire"] = wire_latency.summary(
                    pcap, wire, (began + start, began + start + seconds))
            row[label] = summary
        results[door] = row
        print(f"overload {door}: {json.dumps(row)}", flush=True)
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    return results


def part_empty(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    os.sched_setaffinity(0, {0})
    results: dict[str, Any] = {}
    for door in args.doors:
        port = free_port()
        proc = subprocess.Popen(["taskset", "-c", "1", sys.executable, "-m",
                                 "load.common.empty_server", "--port", str(port), "--door", door],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if b"serving" in line:
                    break
            target = f"127.0.0.1:{port}"
            reqs = [pb.RecommendRequest(user_id="u1", surface="home", k=10)]
            dues = door_load.poisson_dues(1000.0, 8.0)
            with wire_latency.capture(port, tmp / f"empty-{door}.pcap", core=0) as pcap:
                (calls, _), _ = door_load.run(door_load.scheduled(target, dues, reqs))
        finally:
            proc.terminate()
            proc.wait(30)
        results[door] = door_load.summary(calls, BUDGET_MS, 8.0)
        results[door]["wire"] = wire_latency.summary(pcap, port)
        print(f"empty {door}: {json.dumps(results[door])}", flush=True)
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    return results


def _wire(row: dict[str, Any], kind: str, digits: int = 1) -> str:
    figures = (row.get("wire") or {}).get(kind)
    return f"{figures['p99_ms']:.{digits}f}" if figures else "-"


def report(out: dict[str, Any]) -> None:
    """The figures against the targets, baseline beside each."""
    print(machine_line())
    if "callers" in out:
        rows = []
        for name, r in out["callers"].items():
            errors = sum(n for code, n in r["codes"].items() if code != "OK")
            fresh = r["freshness"]
            rows.append([name, str(r["calls"]), str(errors), f"{r['server_p99_ms']:.1f}",
                         f"{r['answered_p99_ms']:.1f}", f"{r['answered_max_ms']:.1f}",
                         " / ".join(f"{v:.0f}" for v in r["worker_answers"].values()),
                         f"{fresh['p99_ms']:.0f} / {fresh['max_ms'] or 0:.0f}"])
        print("\n4 callers on one channel, first SERVING through the first ANN build "
              "(targets: 0 errors, server p99 <= 21, client p99 <= 25, workers within 20%, "
              "freshness p99 <= 1000 ms)")
        print_table(["door", "calls", "errors", "server p99", "client p99", "client max",
                     "answers per worker", "fresh p99/max ms"], rows)
    if "overload" in out:
        for door, r in out["overload"].items():
            print(f"\noverload, {door} door, node on one core: capacity {r['capacity_per_s']:.0f}"
                  " answers/s that walked (targets: answered p99 <= 25 ms from the scheduled "
                  "send, goodput >= 150% at 2x and >= 120% at 4x, refusal p99 <= 5 ms, "
                  "0 refusals at 0.7x)")
            rows = []
            for label, *_ in PHASES:
                p = r[label]
                rows.append([label, str(p["calls"]), f"{p['answered_p99_ms']:.1f}",
                             _wire(p, "answered"), f"{p['refusal_p99_ms']:.1f}",
                             _wire(p, "refused"),
                             str(p["codes"].get("RESOURCE_EXHAUSTED", 0)),
                             str(p["codes"].get("DEADLINE_EXCEEDED", 0)),
                             f"{100 * p['goodput_share_of_capacity']:.0f}%",
                             f"{100 * (p['walked_share'] or 0):.0f}%"])
            print_table(["phase", "calls", "answered p99", "wire p99", "refusal p99",
                         "wire refusal p99", "refused", "deadline exc.", "goodput", "walked"],
                        rows)
    if "empty" in out:
        print("\nempty handler, 1,000 calls/s (target p99 <= 1 ms; wire: the server's own)")
        print_table(["door", "client p50 ms", "client p99 ms", "client max ms", "wire p99 ms",
                     "errors"], [
            [d, f"{r['answered_p50_ms']:.2f}", f"{r['answered_p99_ms']:.2f}",
             f"{r['answered_max_ms']:.2f}", _wire(r, "answered", 2),
             str(r["calls"] - r["codes"].get("OK", 0))] for d, r in out["empty"].items()])


PARTS = {"callers": part_callers, "overload": part_overload, "empty": part_empty}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated parts")
    parser.add_argument("--events", type=int, default=2_500_000, help="events in the hub log")
    parser.add_argument("--callers-s", type=float, default=240.0,
                        help="callers part: at most this long (it ends once the first ANN build "
                        "is published)")
    parser.add_argument("--doors", default="sync,aio", type=lambda v: v.split(","),
                        help="doors to measure (default: %(default)s; sync is the baseline)")
    parser.add_argument("--out", type=Path, default=Path("var/perf/door.json"))
    args = parser.parse_args()
    args.log = ensure_hub_log(Path("var/perf") / f"hub-{args.events}.parquet", args.events)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-door-") as tmp:
        for name in args.parts.split(","):
            part_dir = Path(tmp) / name
            part_dir.mkdir()
            out[name] = PARTS[name](args, part_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    report(out)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
