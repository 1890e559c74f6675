"""The node (one builder + N serving workers) against the single-process server, in one run.

    .venv/bin/python -m load.bench_node                      # every part, ~10 minutes
    .venv/bin/python -m load.bench_node --parts stalls --events 2500000

* **stalls** — a light sequential client (one Recommend every 10 ms, 20 ms budget) from the
  first SERVING on, while 20k events/s are recorded, the overlay compacts, checkpoints run every
  5 s and the ANN index rebuilds every 15 s; max and p99 client latency, node vs single process.
* **overload** — server on core 1, this client on core 0: capacity (closed loop; the node's CPU
  share then shows the node was the limit), then open loop at 2x and 4x it from a grpc.aio
  client: answered p99, DEADLINE_EXCEEDED, goodput, refusal latency, and the client's own lag and
  CPU a call (so a client that fell behind shows), and where ``dumpcap`` may capture, the same
  calls timed on the loopback wire (request HEADERS to end of stream: the node's own latency);
  with admission control and without (the baseline).
* **multicore** — closed-loop capacity and node CPU per answer with 1 and 2 workers.
* **memory** — proportional set size (PSS) of all the node's processes per edge, 1 and 2
  workers, against the single-process server.
Figures print as a table and go to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from load import wire_latency
from load.node_harness import cpu_seconds, free_port, pss_bytes, start_node, write_config
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc

BUDGET_MS = 20.0


def users(n: int) -> list[str]:
    return [f"u{i}" for i in range(n)]


def light_load(address: str, seconds: float, user_pool: list[str],
               errors: dict[str, list[float]] | None = None) -> list[tuple[float, float]]:
    """Sequential Recommend every 10 ms; (time since start, client latency ms) per call. A failed
    call has latency NaN; ``errors`` collects when each one happened, by status code."""
    out: list[tuple[float, float]] = []
    rng = random.Random(1)
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.RecommenderStub(channel)
        began = time.perf_counter()
        due = began
        while due - began < seconds:
            sent = time.perf_counter()
            try:
                stub.Recommend(pb.RecommendRequest(user_id=rng.choice(user_pool), surface="home",
                                                   k=10), timeout=5.0)
                out.append((sent - began, (time.perf_counter() - sent) * 1000.0))
            except grpc.RpcError as exc:
                out.append((sent - began, float("nan")))  # an error: counted apart
                if errors is not None:
                    errors.setdefault(exc.code().name, []).append(round(sent - began, 2))
            due += 0.010
            time.sleep(max(0.0, due - time.perf_counter()))
    return out


def ingest_load(address: str, seconds: float, rate: float) -> int:
    """RecordEvents at ``rate`` events/s in batches of 1,000; returns events accepted."""
    accepted, batch, i = 0, 1_000, 0
    rng = random.Random(2)
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.RecommenderStub(channel)
        began = time.perf_counter()
        while time.perf_counter() - began < seconds:
            events = [pb.Event(event_id=f"b{i}-{j}", user_id=f"u{rng.randrange(50_000)}",
                               item_id=f"i{rng.randrange(20_000)}", event="view")
                      for j in range(batch)]
            i += 1
            with contextlib.suppress(grpc.RpcError):
                accepted += stub.RecordEvents(pb.RecordEventsRequest(events=events),
                                              timeout=10).accepted
            time.sleep(max(0.0, began + i * batch / rate - time.perf_counter()))
    return accepted


def part_stalls(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for mode in ("single", "node"):
        run_dir = tmp / f"stalls-{mode}"
        run_dir.mkdir()
        config = write_config(run_dir / "config.yaml", budget_ms=BUDGET_MS, ann_rebuild_s=15,
                              checkpoint_s=5, compact_fraction=0.01)
        node = start_node(run_dir, config, free_port(), synthetic=str(args.events), workers=2,
                          single=mode == "single")
        try:
            ready_s = node.wait_serving()
            # The feeder is a process of its own: building 1,000 protobuf events holds a GIL
            # for milliseconds, which must not delay the measured client.
            feeder = multiprocessing.get_context("spawn").Process(
                target=ingest_load, args=(node.address, args.duration, 20_000))
            feeder.start()
            failed: dict[str, list[float]] = {}
            calls = light_load(node.address, args.duration, users(10_000), failed)
            feeder.join(60)
        finally:
            node.stop()
        lat = np.array([ms for _, ms in calls if ms == ms])
        errors = sum(1 for _, ms in calls if ms != ms)
        worst = sorted(calls, key=lambda c: -c[1] if c[1] == c[1] else 0)[:3]
        results[mode] = {
            "serving_after_s": ready_s, "calls": len(calls), "errors": errors,
            "errors_at_s": failed,
            "max_ms": float(lat.max()), "p99_ms": float(np.percentile(lat, 99)),
            "p50_ms": float(np.percentile(lat, 50)),
            "over_budget_plus_5": int((lat > BUDGET_MS + 5).sum()),
            "worst_at_s": [round(t, 2) for t, _ in worst],
        }
        print(f"stalls {mode:7s} {json.dumps(results[mode])}", flush=True)
    return results


def closed_loop(address: str, seconds: float, concurrency: int) -> tuple[int, float]:
    """``concurrency`` sequential clients; returns (answers, seconds)."""
    done = [0] * concurrency
    stop_at = time.perf_counter() + seconds

    def client(slot: int) -> None:
        rng = random.Random(slot)
        pool = users(10_000)
        with grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]
                                   ) as channel:
            stub = pb_grpc.RecommenderStub(channel)
            while time.perf_counter() < stop_at:
                try:
                    stub.Recommend(pb.RecommendRequest(user_id=rng.choice(pool),
                                                       surface="home", k=10), timeout=5.0)
                    done[slot] += 1
                except grpc.RpcError:
                    pass

    began = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done), time.perf_counter() - began


async def _open_loop_calls(address: str, rate: float, seconds: float
                           ) -> tuple[list[tuple[str, float, float]], list[float]]:
    """Call i is due at ``start + i / rate``: one task per call, started when due."""
    records: list[tuple[str, float, float]] = []  # code, client ms, server_elapsed_ms
    lags: list[float] = []  # ms from due time to the call's task starting: the client's own lag
    rng = random.Random(3)
    pool = users(10_000)
    requests = [pb.RecommendRequest(user_id=rng.choice(pool), surface="home", k=10)
                for _ in range(256)]
    async with grpc.aio.insecure_channel(address) as channel:
        await channel.channel_ready()
        stub = pb_grpc.RecommenderStub(channel)

        async def call(i: int, due: float) -> None:
            lags.append((time.monotonic() - due) * 1000.0)
            server_ms = float("nan")
            try:
                reply = await stub.Recommend(requests[i % 256], timeout=1.0)
                code, server_ms = "OK", reply.server_elapsed_ms
            except grpc.aio.AioRpcError as exc:
                code = exc.code().name
            records.append((code, (time.monotonic() - due) * 1000.0, server_ms))

        start, total, i = time.monotonic() + 0.5, int(rate * seconds), 0
        tasks = []
        while i < total:
            now = time.monotonic()
            while i < total and start + i / rate <= now:
                tasks.append(asyncio.ensure_future(call(i, start + i / rate)))
                i += 1
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        await asyncio.gather(*tasks)
    return records, lags


def open_loop(address: str, rate: float, seconds: float) -> dict[str, Any]:
    """Open-loop Recommend at ``rate``/s for ``seconds``: latency by outcome, from each call's
    due time, and the client's own lag (due time to sending) and CPU a call.

    The client is grpc.aio on one event loop: measured on this machine against an empty server
    at 2,000 calls/s it lagged 1.3 ms p99 for 0.36 ms of CPU a call, where the sync client's
    futures lagged 22 ms (Node's grpc-js was no better). Past ~2,500 calls/s it needs more
    than its core, and ``client_lag_p99_ms`` shows it."""
    began_cpu = os.times()
    records, lags = asyncio.run(_open_loop_calls(address, rate, seconds))
    ended = os.times()
    client_cpu = ended.user - began_cpu.user + ended.system - began_cpu.system
    ok = np.array([ms for code, ms, _ in records if code == "OK"])
    server_ok = np.array([ms for code, _, ms in records if code == "OK"])
    refused = np.array([ms for code, ms, _ in records if code == "RESOURCE_EXHAUSTED"])
    codes: dict[str, int] = {}
    for code, _, _ in records:
        codes[code] = codes.get(code, 0) + 1
    in_budget = int((ok <= BUDGET_MS).sum()) if ok.size else 0
    return {
        "offered_per_s": rate, "codes": codes,
        "answered_p99_ms": float(np.percentile(ok, 99)) if ok.size else None,
        # The same answers by the server's clock (arrival stamp to reply built): what is left
        # is gRPC outside the handler, the network and the client.
        "answered_server_p99_ms": float(np.percentile(server_ok, 99)) if ok.size else None,
        "refusal_p99_ms": float(np.percentile(refused, 99)) if refused.size else None,
        "goodput_per_s": in_budget / seconds,
        "client_lag_p99_ms": float(np.percentile(lags, 99)) if lags else None,
        "client_cpu_ms_per_call": 1000.0 * client_cpu / max(len(records), 1),
    }


def part_overload(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    os.sched_setaffinity(0, {0})  # this client on core 0, the node on core 1
    results: dict[str, Any] = {}
    for shedding in (True, False):
        name = "admission" if shedding else "no_shedding"
        run_dir = tmp / f"overload-{name}"
        run_dir.mkdir()
        config = write_config(run_dir / "config.yaml", budget_ms=BUDGET_MS, shedding=shedding)
        node = start_node(run_dir, config, free_port(), synthetic=args.overload_events,
                          workers=1, single=False, cores="1")
        try:
            node.wait_serving()
            cpu0 = cpu_seconds(node.pids)
            answers, secs = closed_loop(node.address, 8.0, 4)
            capacity = answers / secs
            # The node's share of its core while measuring capacity: near 1.0 means the node,
            # not this client, was the limit.
            runs: dict[str, Any] = {"capacity_per_s": capacity,
                                    "capacity_node_cpu": (cpu_seconds(node.pids) - cpu0) / secs}
            port = int(node.address.rsplit(":", 1)[1])
            for factor in (2, 4):
                with wire_latency.capture(port, tmp / f"{name}-{factor}x.pcap", core=0) as pcap:
                    run = open_loop(node.address, capacity * factor, 8.0)
                # The same calls on the loopback wire: the node's latency without the client's.
                run["wire"] = wire_latency.summary(pcap, port)
                runs[f"{factor}x"] = run
                time.sleep(2.0)
        finally:
            node.stop()
        results[name] = runs
        print(f"overload {name:11s} {json.dumps(runs)}", flush=True)
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    return results


def part_multicore(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for workers in (1, 2):
        run_dir = tmp / f"multicore-{workers}"
        run_dir.mkdir()
        config = write_config(run_dir / "config.yaml", budget_ms=60.0)
        node = start_node(run_dir, config, free_port(), synthetic=args.overload_events,
                          workers=workers, single=False)
        try:
            node.wait_serving()
            closed_loop(node.address, 2.0, 4)  # connections spread, pages touched
            cpu0 = cpu_seconds(node.pids)
            answers, secs = closed_loop(node.address, 10.0, 4 * workers)
            cpu = cpu_seconds(node.pids) - cpu0
        finally:
            node.stop()
        results[f"{workers}_workers"] = {"answers_per_s": answers / secs,
                                         "node_cpu_ms_per_answer": 1000.0 * cpu / answers}
        print(f"multicore {workers} workers {json.dumps(results[f'{workers}_workers'])}",
              flush=True)
    return results


def part_memory(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for label, workers, single in (("single", 1, True), ("node_1", 1, False),
                                   ("node_2", 2, False)):
        run_dir = tmp / f"memory-{label}"
        run_dir.mkdir()
        config = write_config(run_dir / "config.yaml", budget_ms=60.0)
        node = start_node(run_dir, config, free_port(), synthetic=str(args.events),
                          workers=workers, single=single)
        try:
            node.wait_serving()
            closed_loop(node.address, 3.0, 2)
            time.sleep(2.0)
            pss = pss_bytes(node.pids)
            edges = node.edges() or args.edges_hint
        finally:
            node.stop()
        results[label] = {"pss_mib": pss / 2**20, "edges": edges,
                          "pss_bytes_per_edge": pss / max(edges, 1)}
        print(f"memory {label:7s} {json.dumps(results[label])}", flush=True)
    return results


PARTS = {"stalls": part_stalls, "overload": part_overload, "multicore": part_multicore,
         "memory": part_memory}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated parts")
    parser.add_argument("--events", type=int, default=2_500_000,
                        help="synthetic events for stalls and memory (default: %(default)s)")
    parser.add_argument("--overload-events", default="1000000",
                        help="synthetic events for overload and multicore")
    parser.add_argument("--duration", type=float, default=40.0, help="stall run seconds")
    parser.add_argument("--edges-hint", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("var/perf/node.json"))
    args = parser.parse_args()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-node-") as tmp:
        for name in args.parts.split(","):
            part_dir = Path(tmp) / name
            part_dir.mkdir()
            out[name] = PARTS[name](args, part_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
