"""Scenarios 4-6: Redis stopped, Redis paused in bursts, config reload + publishes under ingest.

Each is one open-loop run at half the full-quality saturation rate with actions at fixed times
into the measured window; the result has a per-second timeline and a summary per phase (before,
during, after), and ``timeline.png`` marks the actions.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import yaml

from load.loadgen.plots import plot_cdf, plot_timeline
from load.loadgen.runner import Action, IngestPlan
from load.loadgen.workload import ingest_events
from load.scenarios.common import BASE_DOCUMENT, Context, budget_verdict, deep_merge, log
from recserver.cli.serve import add_serve_options
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc

#: Scenarios 4 and 5 offer twice the full-quality saturation rate by default: below saturation
#: nearly every answer is the walk's and Redis is hardly read (only top-ups); at twice it about a
#: third of the answers come from the ANN tier, so losing Redis matters. ``--load 0.5`` for the
#: calm case.
REDIS_LOAD = 2.0
#: Redis-backed ANN with the default timeouts, named so the scenario's config shows them: 1 ms
#: reads and connects, the breaker opening after 3 failures in a row.
REDIS_OVERRIDES: dict[str, Any] = {"ann": {"socket_timeout_ms": 1.0, "connect_timeout_ms": 1.0}}


def _finish(ctx: Context, result: dict[str, Any], title: str, extra: dict[str, Any]
            ) -> dict[str, Any]:
    plot_timeline(result, ctx.out / "timeline.png", title)
    plot_cdf({ctx.name: result}, ctx.out / "cdf.png", f"{title}: latency CDF")
    for phase in result["phases"]:
        log(f"phase {phase['phase']:>14}: p99 {phase['latency_ms']['p99']} ms, max "
            f"{phase['latency_ms']['max']} ms, errors {phase['errors']}, sources "
            f"{phase['source_shares']}")
    return {"run": result, "verdict": budget_verdict(result), **extra}


def redis_down(ctx: Context) -> dict[str, Any]:
    """Scenario 4: Redis is killed (SIGKILL) a third of the way in and started again (empty, same
    port) at two thirds; the ANN tier must fail fast (breaker) and popular serve meanwhile."""
    offered = ctx.offered(REDIS_LOAD)
    redis = ctx.start_redis()
    server = ctx.start_server("redis_down", REDIS_OVERRIDES, redis_url=redis.url,
                              require_ann=True)
    d = ctx.seconds(45.0, 9.0)
    actions = (Action(d / 3, "redis killed", redis.kill),
               Action(2 * d / 3, "redis restarted (empty)", redis.prepare_restart()))
    phases = (("before", 0, d / 3), ("redis down", d / 3, 2 * d / 3), ("after", 2 * d / 3, d))
    result = ctx.drive(server, offered["rate"], d, "redis down", actions=actions, phases=phases)
    ctx.stop_server(server)
    return _finish(ctx, result, "scenario 4: Redis stopped mid-run", offered)


def redis_pause(ctx: Context) -> dict[str, Any]:
    """Scenario 5: ``CLIENT PAUSE <ms> ALL`` every ``period`` seconds through the middle half:
    Redis keeps its sockets but answers nothing (a hung server, not a dead one)."""
    offered = ctx.offered(REDIS_LOAD)
    redis = ctx.start_redis()
    server = ctx.start_server("redis_pause", REDIS_OVERRIDES, redis_url=redis.url,
                              require_ann=True)
    d = ctx.seconds(45.0, 9.0)
    pause_ms, period = ctx.args.pause_ms, max(d / 15, 1.0)
    times = np.arange(d / 4, 3 * d / 4, period)
    actions = tuple(Action(float(t), f"pause {pause_ms} ms", lambda: redis.pause(pause_ms))
                    for t in times)
    phases = (("before", 0, d / 4), ("pauses", d / 4, 3 * d / 4), ("after", 3 * d / 4, d))
    result = ctx.drive(server, offered["rate"], d, "redis pauses", actions=actions, phases=phases)
    ctx.stop_server(server)
    return _finish(ctx, result, f"scenario 5: Redis paused {pause_ms} ms every {period:g} s",
                   {**offered, "pause_ms": pause_ms, "period_s": period})


#: What the reload changes: smaller walks on home, a looser item_page budget (then back).
RELOADED: dict[str, Any] = {"surfaces": {"home": {"walk": {"steps": 60_000}},
                                         "item_page": {"budget_ms": 45}}}


def reload(ctx: Context) -> dict[str, Any]:
    """Scenario 6: ingest under load with a config reload (file rewritten + SIGHUP), a forced
    compacting publish, and a reload back.

    Ingest goes through ``RecordEvents`` from the load generator (the node keeps a file event
    log in a temporary ``--data-dir``) when it is ready; otherwise the scenario server sends the
    events to ``RecordEvents`` itself (``load/scenarios/server.py``, switched on and off by
    SIGUSR2). The server is the node: SIGHUP and SIGUSR1 are relayed to its roles. The graph
    publishes an overlay snapshot every ``graph.publish_interval_s`` and compacts in the
    background when the overlay grows past ``graph.compact_overlay_fraction``.
    """
    offered = ctx.offered(0.5)
    ingest_rate = ctx.args.ingest_rate
    data_dir = Path(tempfile.mkdtemp(prefix="recserver-perf-log-"))
    extra = ["--ingest-rate", f"{ingest_rate:g}"]
    if _serve_accepts("--data-dir"):
        extra += ["--data-dir", str(data_dir)]
    server = ctx.start_server("reload", module="load.scenarios.server", extra=extra)
    mode = "rpc" if ingest_ready(server.port) else "scenario-server"
    log(f"ingest: {mode} ({ingest_rate:g} events/s)")
    config = ctx.out / "reload.yaml"
    original = config.read_text()
    changed = yaml.safe_dump(deep_merge(BASE_DOCUMENT, RELOADED), sort_keys=False)
    proc = server.proc

    def rewrite(text: str) -> None:
        tmp = config.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(config)
        proc.send_signal(signal.SIGHUP)

    d = ctx.seconds(60.0, 10.0)
    plan = None
    if mode == "rpc":
        n_events = int(0.8 * d * ingest_rate) + 1
        plan = IngestPlan(ingest_events(ctx.population(), n_events, rate=ingest_rate,
                                        seed=ctx.args.seed),
                          rate=ingest_rate, start_s=0.1 * d, stop_s=0.9 * d)
        toggles: tuple[Action, ...] = ()
    else:
        toggles = (Action(0.1 * d, "ingest on", lambda: proc.send_signal(signal.SIGUSR2)),
                   Action(0.9 * d, "ingest off", lambda: proc.send_signal(signal.SIGUSR2)))
    actions = (
        *toggles,
        Action(0.3 * d, "config reload", lambda: rewrite(changed)),
        Action(0.5 * d, "compacting publish", lambda: proc.send_signal(signal.SIGUSR1)),
        Action(0.7 * d, "config reload back", lambda: rewrite(original)),
    )
    phases = (("no ingest", 0, 0.1 * d), ("ingest", 0.1 * d, 0.3 * d),
              ("reloaded", 0.3 * d, 0.5 * d), ("after publish", 0.5 * d, 0.7 * d),
              ("reloaded back", 0.7 * d, 0.9 * d), ("ingest off", 0.9 * d, d))
    result = ctx.drive(server, offered["rate"], d, "reload+publish", actions=actions,
                       phases=phases, ingest=plan)
    log_lines = [line for line in getattr(server, "lines", server.tail)
                 if any(w in line for w in ("reload", "compact", "ingest", "publish"))]
    ctx.stop_server(server)
    shutil.rmtree(data_dir, ignore_errors=True)
    versions = sorted({row["snapshot"] for row in result["timeline"] if row["snapshot"]})
    log(f"snapshot versions seen by the load generator: {len(versions)} "
        f"({versions[0] if versions else '-'} to {versions[-1] if versions else '-'})")
    if "ingest" in result:
        log(f"RecordEvents: {result['ingest']}")
    return _finish(ctx, result, "scenario 6: config reload and snapshot publishes under ingest",
                   {**offered, "ingest_rate": ingest_rate, "ingest_mode": mode,
                    "snapshot_versions_seen": len(versions), "server_log": log_lines})


def _serve_accepts(flag: str) -> bool:
    parser = argparse.ArgumentParser()
    add_serve_options(parser)
    return flag in parser._option_string_actions


def ingest_ready(port: int) -> bool:
    """True when the server answers GetIngestStatus with ready (RecordEvents is open)."""
    if "RecordEvents" not in pb.DESCRIPTOR.services_by_name["Recommender"].methods_by_name:
        return False
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.RecommenderStub(channel)
        try:
            status = stub.GetIngestStatus(pb.GetIngestStatusRequest(), timeout=5.0)
        except grpc.RpcError as exc:
            log(f"GetIngestStatus failed ({exc}); ingest runs in the server process instead")
            return False
    return bool(status.ready)
