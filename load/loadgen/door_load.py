"""Load for the door benchmark: scheduled (open-loop) and closed-loop Recommend calls, one channel.

Every call is timed from the moment it was *due*, not from when the client got round to it, so
a client that falls behind shows as latency rather than hiding it; the client's own lag (due to
sent) is reported apart. One grpc.aio channel carries every call (a client app's normal shape);
given a target that names several addresses (a node's worker ports), the channel balances
calls over them with the round_robin policy.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np

from load.common import pct
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc

WALKED = {pb.GRAPH, pb.GRAPH_PARTIAL, pb.BLENDED}


@dataclass(frozen=True)
class Call:
    """One finished call: when it was due (s from the run's start) and how it ended."""

    due_s: float
    code: str
    client_ms: float  # due time to the answer (or error) received
    lag_ms: float  # due time to the call sent: the client's own lag
    server_ms: float = float("nan")  # the server's own clock (arrival to answer built)
    walked: bool = False  # the answer came from a walk (graph, graph_partial, blended)
    overloaded: bool = False  # the door degraded it: no walk could finish in time


def channel(target: str) -> grpc.aio.Channel:
    """One channel; calls spread over every address of the target (round_robin)."""
    return grpc.aio.insecure_channel(target, options=[("grpc.lb_policy_name", "round_robin")])


def requests(users: list[str], n: int = 512, seed: int = 3) -> list[pb.RecommendRequest]:
    rng = random.Random(seed)
    return [pb.RecommendRequest(user_id=rng.choice(users), surface="home", k=10)
            for _ in range(n)]


async def _one(stub: pb_grpc.RecommenderStub, request: pb.RecommendRequest, due: float,
               began: float, out: list[Call], timeout_s: float) -> None:
    sent = time.monotonic()
    try:
        reply = await stub.Recommend(request, timeout=timeout_s)  # type: ignore[misc]
    except grpc.aio.AioRpcError as exc:
        now = time.monotonic()
        out.append(Call(due - began, exc.code().name, (now - due) * 1e3, (sent - due) * 1e3))
        return
    now = time.monotonic()
    out.append(Call(due - began, "OK", (now - due) * 1e3, (sent - due) * 1e3,
                    reply.server_elapsed_ms, reply.source in WALKED,
                    "overloaded" in reply.degraded_reasons))


async def scheduled(target: str, dues: list[float], reqs: list[pb.RecommendRequest],
                    timeout_s: float = 1.0) -> tuple[list[Call], float]:
    """Send call ``i`` at ``start + dues[i]`` (seconds), whatever is still in flight; returns
    the calls and ``start`` as a wall-clock epoch (to line them up with a wire capture)."""
    out: list[Call] = []
    async with channel(target) as ch:
        await ch.channel_ready()
        stub = pb_grpc.RecommenderStub(ch)
        for _ in range(4):  # one call per address (round_robin), so every connection is up
            await stub.Recommend(reqs[0], timeout=5.0)
        began = time.monotonic() + 0.2
        began_epoch = time.time() + 0.2
        tasks, i = [], 0
        while i < len(dues):
            now = time.monotonic()
            while i < len(dues) and began + dues[i] <= now:
                tasks.append(asyncio.ensure_future(
                    _one(stub, reqs[i % len(reqs)], began + dues[i], began, out, timeout_s)))
                i += 1
            if i < len(dues):
                await asyncio.sleep(max(0.0, began + dues[i] - time.monotonic()))
        await asyncio.gather(*tasks)
    return out, began_epoch


def poisson_dues(rate: float, seconds: float, start_s: float = 0.0, *, burst: int = 1,
                 seed: int = 5) -> list[float]:
    """Due times of a Poisson process at ``rate`` calls/s; ``burst`` calls share each arrival
    (same mean rate, ``burst`` times fewer arrivals)."""
    rng = np.random.default_rng(seed)
    n = int(rate * seconds / burst)
    gaps = rng.exponential(burst / rate, n)
    at = start_s + np.cumsum(gaps)
    return [float(t) for t in np.repeat(at[at < start_s + seconds], burst)]


async def closed(target: str, seconds: float, callers: int, reqs: list[pb.RecommendRequest],
                 until: Callable[[], bool] | None = None) -> list[Call]:
    """``callers`` sequential callers sharing one channel, each sending again at once, for
    ``seconds`` or until ``until()`` says so (asked once a second)."""
    out: list[Call] = []
    async with channel(target) as ch:
        await ch.channel_ready()
        stub = pb_grpc.RecommenderStub(ch)
        began = time.monotonic()
        stop_at = began + seconds
        done = asyncio.Event()

        async def watch() -> None:
            while not done.is_set() and time.monotonic() < stop_at:
                await asyncio.sleep(1.0)
                if until is not None and until():
                    break
            done.set()

        async def caller(slot: int) -> None:
            i = slot
            while not done.is_set() and time.monotonic() < stop_at:
                await _one(stub, reqs[i % len(reqs)], time.monotonic(), began, out, 5.0)
                i += callers

        await asyncio.gather(watch(), *(caller(s) for s in range(callers)))
    return out


def summary(calls: list[Call], budget_ms: float, seconds: float) -> dict[str, Any]:
    """Latency by outcome, goodput (answers inside the budget from their due time), tiers."""
    codes: dict[str, int] = {}
    for c in calls:
        codes[c.code] = codes.get(c.code, 0) + 1
    ok = [c for c in calls if c.code == "OK"]
    refused = [c.client_ms for c in calls if c.code == "RESOURCE_EXHAUSTED"]
    answered = [c.client_ms for c in ok]
    return {
        "calls": len(calls), "codes": codes,
        "answered_p50_ms": pct(answered, 50), "answered_p99_ms": pct(answered, 99),
        "answered_max_ms": max(answered) if answered else None,
        "server_p99_ms": pct([c.server_ms for c in ok], 99),
        "refusal_p99_ms": pct(refused, 99),
        "goodput_per_s": sum(1 for c in ok if c.client_ms <= budget_ms) / seconds,
        "walked_share": (sum(c.walked for c in ok) / len(ok)) if ok else None,
        "overloaded_share": (sum(c.overloaded for c in ok) / len(ok)) if ok else None,
        "client_lag_p99_ms": pct([c.lag_ms for c in calls], 99),
    }


def run(coro: Any) -> Any:
    """Run a load coroutine on a fresh event loop, timing the client's CPU too."""
    before = os.times()
    result = asyncio.run(coro)
    after = os.times()
    return result, (after.user - before.user) + (after.system - before.system)
