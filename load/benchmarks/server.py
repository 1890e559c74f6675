"""Server benchmark for the serving targets: per-surface p99 within budget, service overhead.

    .venv/bin/python -m load.benchmarks.server [--seconds 15] [--empty-seconds 5] [--rate 0]

Starts the real server (``recserver serve --port 0 --synthetic medium``) and the empty-handler
server (``load/common/empty_server.py``: same transport, no domain work) as subprocesses pinned to
core 1 with ``taskset``; this client pins itself to core 0. For each surface it sends requests one
at a time (``--rate`` paces them; 0 = back to back) with random synthetic users, 1-3 context items
on ``item_page``, and ``debug`` on, alternating 1.5 s blocks on the real server with 0.5 s blocks on
the empty one so both see the same machine noise. Reported per surface: server-side p50/p99/max
(``server_elapsed_ms``) against the surface budget, degraded share, client p50/p99, and the overhead
= p99 of (client latency - walk ms) on the real server minus p99 of client latency on the empty
handler (target <= 1 ms; the same with p50), plus server CPU per request for both.

Before measuring, it waits until the real server idles: start-up work in background threads
(e.g. the ANN index build) holds the GIL in slices and adds ~4 ms stalls to requests
(``--no-settle`` measures at once, to see that).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import cycle

import grpc

from load.common import machine_line, pct, print_table, verdict
from load.common.server_process import CLIENT_CORE, SERVER_CORE, ServerProcess
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc

BLOCK_REAL_S, BLOCK_EMPTY_S = 1.5, 0.5


@dataclass
class Sample:
    """What one server answered in one surface's run."""

    client_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    walk_ms: list[float] = field(default_factory=list)
    stage_ms: dict[str, list[float]] = field(default_factory=dict)
    budget_ms: float = 0.0
    degraded: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    cpu_s: float = 0.0
    wall_s: float = 0.0


def make_request(
    surface: str, rnd: random.Random, n_users: int, n_items: int
) -> pb.RecommendRequest:
    """A random synthetic user; 1-3 context items on ``item_page``; stage timings on."""
    context = [f"i{rnd.randrange(n_items)}" for _ in range(rnd.randint(1, 3))]
    return pb.RecommendRequest(
        user_id=f"u{rnd.randrange(n_users)}", surface=surface, debug=True,
        context_item_ids=context if surface == "item_page" else [],
        request_id=f"bench-{rnd.getrandbits(48):x}",
    )


def run_block(
    stub: pb_grpc.RecommenderStub,
    server: ServerProcess,
    requests: Iterator[pb.RecommendRequest],
    seconds: float,
    rate: float,
    out: Sample | None,
) -> None:
    """Send requests one at a time for ``seconds`` (paced at ``rate``/s when > 0)."""
    cpu0, t0 = server.cpu_s(), time.perf_counter()
    next_at = t0
    while time.perf_counter() - t0 < seconds:
        if rate > 0:
            next_at += 1.0 / rate
            time.sleep(max(0.0, next_at - time.perf_counter()))
        request = next(requests)
        c0 = time.perf_counter()
        try:
            response = stub.Recommend(request, timeout=5.0)
        except grpc.RpcError as exc:
            if out is not None:
                out.errors[str(exc.code())] += 1
            continue
        client_ms = (time.perf_counter() - c0) * 1e3
        if out is None:
            continue
        out.client_ms.append(client_ms)
        out.server_ms.append(response.server_elapsed_ms)
        out.walk_ms.append(response.stage_ms.get("walk", 0.0))
        for stage, ms in response.stage_ms.items():
            out.stage_ms.setdefault(stage, []).append(ms)
        out.budget_ms = response.budget_ms or out.budget_ms
        out.degraded += response.degraded
        out.reasons.update(response.degraded_reasons)
        out.sources[pb.Source.Name(response.source).lower()] += 1
    if out is not None:
        out.cpu_s += server.cpu_s() - cpu0
        out.wall_s += time.perf_counter() - t0


def _ms(values: list[float], *qs: float) -> str:
    return " / ".join(f"{pct(values, q):.2f}" for q in qs)


def report(results: dict[str, tuple[Sample, Sample]]) -> None:
    """Print the budget table and the overhead table."""
    budget_rows, over_rows, notes = [], [], []
    for surface, (real, empty) in results.items():
        n = len(real.client_ms)
        p99 = pct(real.server_ms, 99)
        budget_rows.append([
            surface, f"{real.budget_ms:g}", f"{n} ({n / real.wall_s:.0f}/s)",
            _ms(real.server_ms, 50, 99, 100), verdict(p99, real.budget_ms, higher_is_better=False),
            f"{100 * real.degraded / max(n, 1):.1f}%", _ms(real.client_ms, 50, 99),
            _ms(real.walk_ms, 50, 99),
        ])
        less_walk = [c - w for c, w in zip(real.client_ms, real.walk_ms, strict=True)]
        in_server = [s - w for s, w in zip(real.server_ms, real.walk_ms, strict=True)]
        o50 = pct(less_walk, 50) - pct(empty.client_ms, 50)
        o99 = pct(less_walk, 99) - pct(empty.client_ms, 99)
        n_empty = len(empty.client_ms)
        cpu = f"{1e3 * real.cpu_s / max(n, 1):.2f} / {1e3 * empty.cpu_s / max(n_empty, 1):.2f}"
        over_rows.append([
            surface, _ms(less_walk, 50, 99), f"{_ms(empty.client_ms, 50, 99)} (n={n_empty})",
            f"{o50:.2f} / {o99:.2f}", verdict(o99, 1.0, higher_is_better=False),
            _ms(in_server, 50, 99), cpu,
        ])
        stages = ", ".join(f"{k} {_ms(v, 50, 99)}" for k, v in real.stage_ms.items())
        notes.append(f"{surface}: sources {dict(real.sources)}; degraded reasons "
                     f"{dict(real.reasons)}; errors real {dict(real.errors)} empty "
                     f"{dict(empty.errors)}\n  stages p50 / p99 ms: {stages}")
    print("\nserver-side latency vs surface budget (ms; p50 / p99 / max)")
    print_table(["surface", "budget", "requests", "server p50/p99/max", "p99 <= budget",
                 "degraded", "client p50/p99", "walk p50/p99"], budget_rows)
    print("\nservice overhead over an empty handler (ms; p50 / p99)")
    print_table(["surface", "real: client - walk", "empty handler: client", "overhead",
                 "overhead p99 <= 1 ms", "in server: elapsed - walk",
                 "server CPU ms/req real / empty"], over_rows)
    print()
    for note in notes:
        print(note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="real-server time a surface")
    parser.add_argument("--empty-seconds", type=float, default=5.0, help="empty-handler time")
    parser.add_argument("--rate", type=float, default=0.0, help="requests/s; 0 = back to back")
    parser.add_argument("--synthetic", default="medium")
    parser.add_argument(
        "--no-settle", dest="settle", action="store_false",
        help="measure at once, while start-up background work (e.g. an ANN build) still runs",
    )
    args = parser.parse_args()
    os.sched_setaffinity(0, {CLIENT_CORE})
    print(machine_line())
    print(
        f"client pinned to core {CLIENT_CORE}; servers to core {SERVER_CORE} "
        f"({'taskset' if shutil.which('taskset') else 'NOT pinned: no taskset'})"
    )
    started = time.perf_counter()
    servers: list[ServerProcess] = []
    channels: list[grpc.Channel] = []
    try:
        real = ServerProcess(["-m", "recserver.cli", "serve", "--port", "0",
                              "--synthetic", args.synthetic, "--metrics-port", "0"])
        servers.append(real)
        print(f"real server ready in {time.perf_counter() - started:.1f} s: {real.serving_line}")
        settle = real.wait_idle() if args.settle else 0.0
        print(f"waited {settle:.1f} s for the server's start-up background work to finish "
              f"(it idles below 5% of a core; --no-settle skips)")
        empty = ServerProcess(["-m", "load.common.empty_server", "--port", "0"])
        servers.append(empty)
        sizes = re.search(r"([\d,]+) users, ([\d,]+) items", real.serving_line)
        if sizes is None:
            raise RuntimeError(f"cannot read graph size from: {real.serving_line}")
        n_users, n_items = (int(g.replace(",", "")) for g in sizes.groups())
        surfaces = real.serving_line.rsplit("surfaces:", 1)[1].replace(" ", "").split(",")
        stubs = []
        for server in (real, empty):
            channels.append(grpc.insecure_channel(f"127.0.0.1:{server.port}"))
            stubs.append(pb_grpc.RecommenderStub(channels[-1]))
        rnd = random.Random(11)
        results: dict[str, tuple[Sample, Sample]] = {}
        for surface in surfaces:
            requests = cycle([make_request(surface, rnd, n_users, n_items) for _ in range(20_000)])
            for stub, server in zip(stubs, servers, strict=True):  # warm-up, not recorded
                run_block(stub, server, requests, 1.0, args.rate, None)
            sample_real, sample_empty = Sample(), Sample()
            while sample_real.wall_s < args.seconds or sample_empty.wall_s < args.empty_seconds:
                run_block(stubs[0], real, requests, BLOCK_REAL_S, args.rate, sample_real)
                run_block(stubs[1], empty, requests, BLOCK_EMPTY_S, args.rate, sample_empty)
            results[surface] = (sample_real, sample_empty)
            print(
                f"{surface}: {len(sample_real.client_ms)} real, "
                f"{len(sample_empty.client_ms)} empty-handler requests",
                flush=True,
            )
        report(results)
    finally:
        for channel in channels:
            channel.close()
        for server in servers:
            server.stop()
    print(f"\n{machine_line()}; total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
