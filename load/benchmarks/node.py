"""The node (one builder + N serving workers) against the single-process server, in one run.

    .venv/bin/python -m load.benchmarks.node                      # every part, ~8 minutes
    .venv/bin/python -m load.benchmarks.node --parts stalls --events 2500000

* **stalls** — a light sequential client (one Recommend every 10 ms, 20 ms budget) from the
  first SERVING on, while 20k events/s are recorded, the overlay compacts, checkpoints run every
  5 s and the ANN index rebuilds every 15 s; max and p99 client latency, node vs single process.
* **multicore** — closed-loop capacity and node CPU per answer with 1 and 2 workers.
* **memory** — proportional set size (PSS) of all the node's processes per edge, 1 and 2
  workers, against the single-process server.
Figures print as a table and go to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import random
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from load.benchmarks.node_harness import cpu_seconds, free_port, pss_bytes, start_node, write_config
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


PARTS = {"stalls": part_stalls, "multicore": part_multicore,
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
