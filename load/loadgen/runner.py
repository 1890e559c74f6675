"""The open-loop sender: asyncio, several gRPC channels, requests fired at their due times.

The send loop wakes at the next due time and fires every request that is due, without waiting for
answers (each call is its own task); latency is measured from the due time, so when the client or
the server falls behind the delay is charged to the requests it hit (no coordinated omission).
``send_lag_ms`` in the output says how late the client itself sent: if its p99 is more than a
fraction of the budget, the client was the bottleneck and the run says little about the server.

A run is bounded: the schedule stops at ``duration_s`` and ``max_requests``; afterwards in-flight
calls get ``drain_s`` to finish and are then cancelled (counted as ``UNFINISHED``). At most
``max_in_flight`` calls are outstanding; a request due beyond that is not sent and counts as a
``CLIENT_BACKLOG`` error. Targets must be loopback: this tool is for a server on this machine.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import grpc

from load.loadgen.schedule import Schedule
from load.loadgen.stats import Recorder, new_histogram, percentiles_ms, phase_summary
from load.loadgen.workload import Planned
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc

SCHEMA = "recserver.loadgen/1"
CHANNEL_OPTIONS = [
    ("grpc.use_local_subchannel_pool", 1),  # one TCP connection per channel, not one shared
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
]


@dataclass(frozen=True)
class Action:
    """Something a scenario does at ``at_s`` into the measured window (runs in a thread)."""

    at_s: float
    what: str
    run: Callable[[], object]


@dataclass(frozen=True)
class IngestPlan:
    """RecordEvents calls beside the Recommend load: ``rate`` events/s in batches of ``batch``,
    from ``start_s`` to ``stop_s`` into the measured window, open loop as well."""

    events: Sequence[pb.Event]
    rate: float
    start_s: float
    stop_s: float
    batch: int = 100

    def requests(self) -> list[pb.RecordEventsRequest]:
        n = max(int((self.stop_s - self.start_s) * self.rate / self.batch), 0)
        events = list(self.events)
        return [pb.RecordEventsRequest(events=events[i * self.batch:(i + 1) * self.batch],
                                       request_id=f"loadgen-ingest-{i}")
                for i in range(n) if events[i * self.batch:(i + 1) * self.batch]]


@dataclass(frozen=True)
class RunConfig:
    target: str
    schedule: Schedule
    channels: int = 4
    timeout_s: float = 2.0
    warmup_s: float = 0.0
    max_in_flight: int = 20_000
    drain_s: float | None = None  # default: timeout_s + 1
    progress: bool = True
    label: str = ""
    actions: Sequence[Action] = field(default_factory=tuple)
    #: (name, from_s, to_s) slices of the measured window summarised on their own
    phases: Sequence[tuple[str, float, float]] = field(default_factory=tuple)
    ingest: IngestPlan | None = None


def check_loopback(target: str) -> None:
    """Refuse anything but a loopback ``host:port`` (or a unix socket)."""
    if target.startswith(("unix:", "unix-abstract:")):
        return
    host = target.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"target {target!r}: the load generator only drives a server on this "
                         "machine (127.0.0.1, ::1, localhost, unix:)")


class _Progress:
    """A live status line on stderr (rewritten in place on a terminal, a line every 5 s else)."""

    def __init__(self, label: str, total_s: float, enabled: bool) -> None:
        self.label = f"[{label}] " if label else ""
        self.total_s = total_s
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self._last_print = 0.0

    def show(self, elapsed: float, rec: Recorder, in_flight: int, final: bool = False) -> None:
        if not self.enabled:
            return
        if not self.tty and not final and elapsed - self._last_print < 5.0:
            return
        self._last_print = elapsed
        second = int(elapsed) - 1
        recent = ""
        if 0 <= second < len(rec.timeline):
            row = rec.timeline[second].row(second)
            recent = (f" | t={second}s: {row['ok']}/s p99 {row['p99_ms']:.1f} ms "
                      f"degraded {row['degraded']}")
        t = rec.total
        line = (f"{self.label}{min(elapsed, self.total_s):5.1f}/{self.total_s:.0f}s due {t.due} "
                f"ok {t.ok} err {sum(t.errors.values())} in-flight {in_flight}{recent}")
        end = "\n" if final or not self.tty else ""
        print(("\r\x1b[K" if self.tty else "") + line, end=end, file=sys.stderr, flush=True)


async def _run(cfg: RunConfig, pool: Sequence[Planned]) -> dict[str, Any]:
    check_loopback(cfg.target)
    if not pool:
        raise ValueError("no requests to send (empty pool)")
    loop = asyncio.get_running_loop()
    channels = [grpc.aio.insecure_channel(cfg.target, options=CHANNEL_OPTIONS)
                for _ in range(max(cfg.channels, 1))]
    try:
        await asyncio.wait_for(asyncio.gather(*(c.channel_ready() for c in channels)), 15.0)
        stubs = [pb_grpc.RecommenderStub(c) for c in channels]
        rec = Recorder()
        warm = cfg.warmup_s
        schedule = Schedule(cfg.schedule.rate, cfg.schedule.duration_s + warm, cfg.schedule.kind,
                            cfg.schedule.max_requests, cfg.schedule.seed)
        offsets = schedule.offsets().tolist()
        in_flight: set[asyncio.Task[None]] = set()
        progress = _Progress(cfg.label, cfg.schedule.duration_s, cfg.progress)
        events: list[dict[str, Any]] = []
        last_done = [0.0]

        async def call(i: int, due_at: float) -> None:
            planned = pool[i % len(pool)]
            measured = offsets[i] >= warm
            second = int(offsets[i] - warm)
            sent = time.perf_counter()
            try:
                resp = await stubs[i % len(stubs)].Recommend(planned.request,
                                                             timeout=cfg.timeout_s)
            except grpc.aio.AioRpcError as exc:
                if measured:
                    rec.failed(planned.surface, exc.code().name, time.perf_counter() - due_at,
                               second)
                return
            except asyncio.CancelledError:
                if measured:
                    rec.failed(planned.surface, "UNFINISHED", time.perf_counter() - due_at, second)
                raise
            done = time.perf_counter()
            if measured:
                rec.answered(planned.surface, resp, done - due_at, sent - due_at, second,
                             planned.cold)
                last_done[0] = done

        async def act(action: Action) -> None:
            await asyncio.sleep(max(start + warm + action.at_s - time.perf_counter(), 0.0))
            t = time.perf_counter() - start - warm
            try:
                await asyncio.to_thread(action.run)
                events.append({"t": round(t, 3), "what": action.what, "ok": True,
                               "took_s": round(time.perf_counter() - start - warm - t, 3)})
            except Exception as exc:  # a failed action is reported, the run goes on
                events.append({"t": round(t, 3), "what": action.what, "ok": False,
                               "error": repr(exc)})

        ingest = _IngestStats()

        async def record_events(plan: IngestPlan) -> None:
            requests = plan.requests()
            interval = plan.batch / plan.rate
            sends = []
            for b, request in enumerate(requests):
                due_at = start + warm + plan.start_s + b * interval
                await asyncio.sleep(max(due_at - time.perf_counter(), 0.0))
                if b == 0:
                    events.append({"t": plan.start_s, "what": "RecordEvents on", "ok": True})
                sends.append(loop.create_task(ingest.send(stubs[b % len(stubs)], request,
                                                          due_at, cfg.timeout_s)))
            if requests:
                events.append({"t": plan.stop_s, "what": "RecordEvents off", "ok": True})
            await asyncio.gather(*sends, return_exceptions=True)

        async def show() -> None:
            while True:
                await asyncio.sleep(0.5)
                progress.show(time.perf_counter() - start - warm, rec, len(in_flight))

        cpu0 = time.process_time()
        start = time.perf_counter() + 0.05
        helpers = [loop.create_task(act(a)) for a in cfg.actions]
        if cfg.ingest is not None:
            helpers.append(loop.create_task(record_events(cfg.ingest)))
        helpers.append(loop.create_task(show()))
        i, n = 0, len(offsets)
        while i < n:
            now = time.perf_counter()
            due_at = start + offsets[i]
            if due_at > now:
                await asyncio.sleep(due_at - now)
                continue
            while i < n and start + offsets[i] <= now:
                if offsets[i] >= warm:
                    rec.due(pool[i % len(pool)].surface, int(offsets[i] - warm))
                if len(in_flight) >= cfg.max_in_flight:
                    if offsets[i] >= warm:
                        rec.failed(pool[i % len(pool)].surface, "CLIENT_BACKLOG", None,
                                   int(offsets[i] - warm))
                else:
                    task = loop.create_task(call(i, start + offsets[i]))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                i += 1
            await asyncio.sleep(0)
        window_end = start + warm + cfg.schedule.duration_s
        drain = cfg.timeout_s + 1.0 if cfg.drain_s is None else cfg.drain_s
        if in_flight:
            await asyncio.wait(set(in_flight), timeout=drain)
        for task in list(in_flight):
            task.cancel()
        if in_flight:
            await asyncio.gather(*in_flight, return_exceptions=True)
        pending_actions = [h for h in helpers[:-1] if not h.done()]
        if pending_actions:  # an action scheduled past the end still runs (e.g. a restart)
            await asyncio.gather(*pending_actions, return_exceptions=True)
        helpers[-1].cancel()
        client_cpu = time.process_time() - cpu0
        elapsed = max(last_done[0], window_end) - (start + warm)
        progress.show(cfg.schedule.duration_s, rec, 0, final=True)
        result: dict[str, Any] = {
            "schema": SCHEMA,
            "label": cfg.label,
            "target": cfg.target,
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "config": {
                **{f.name: getattr(cfg, f.name) for f in fields(cfg)
                   if f.name not in ("schedule", "actions", "phases", "ingest")},
                "schedule": asdict(cfg.schedule),
            },
            "window_s": cfg.schedule.duration_s,
            "elapsed_s": round(elapsed, 3),
            "client_cpu_s": round(client_cpu, 3),
            "events": sorted(events, key=lambda e: e["t"]),
            **rec.summary(cfg.schedule.duration_s, elapsed),
            "phases": [phase_summary(rec.timeline, *p) for p in cfg.phases],
        }
        if cfg.ingest is not None:
            result["ingest"] = ingest.summary(cfg.ingest)
        return result
    finally:
        await asyncio.gather(*(c.close(None) for c in channels), return_exceptions=True)


class _IngestStats:
    """RecordEvents outcomes: events by status, errors by code, call latency from due time."""

    def __init__(self) -> None:
        self.latency = new_histogram()
        self.batches = self.accepted = self.duplicates = self.rejected = 0
        self.errors: Counter[str] = Counter()

    async def send(self, stub: pb_grpc.RecommenderStub, request: pb.RecordEventsRequest,
                   due_at: float, timeout_s: float) -> None:
        try:
            call: Any = stub.RecordEvents(request, timeout=timeout_s)  # aio: awaitable
            resp = await call
        except grpc.aio.AioRpcError as exc:
            self.errors[exc.code().name] += 1
            return
        self.latency.record_value(max(int((time.perf_counter() - due_at) * 1e6), 1))
        self.batches += 1
        self.accepted += resp.accepted
        self.duplicates += resp.duplicates
        self.rejected += resp.rejected

    def summary(self, plan: IngestPlan) -> dict[str, Any]:
        return {"rate": plan.rate, "batch": plan.batch, "from_s": plan.start_s,
                "to_s": plan.stop_s, "batches_ok": self.batches, "accepted": self.accepted,
                "duplicates": self.duplicates, "rejected": self.rejected,
                "errors": dict(self.errors),
                "latency_ms": percentiles_ms(self.latency)}


def run(cfg: RunConfig, pool: Sequence[Planned]) -> dict[str, Any]:
    """One open-loop run; returns the JSON-ready result (see ``loadgen_stats``)."""
    return asyncio.run(_run(cfg, pool))
