"""``recserver builder``: run a node's builder role (every write; publishes snapshots).

SIGHUP reloads the config, SIGUSR1 forces a compacting publish, SIGTERM stops it (``serve``
relays the first two from its supervisor)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from pathlib import Path

from recserver.cli._source_args import add_items_arg, add_source_args
from recserver.config_reload import ConfigHolder
from recserver.core.background import BackgroundWorker
from recserver.core.durable import write_json_atomic
from recserver.node import source_record
from recserver.node.commands import DEFAULT_DATA_DIR, stop_event
from recserver.node.layout import RunDir

log = logging.getLogger(__name__)

#: ``recserver serve`` starts the builder with its own flags; these reach it through the
#: environment the supervisor passes on (benchmarks compare both ways in one run)
NICE_ENV = "RECSERVER_BUILDER_NICE"
ANN_BUILD_ENV = "RECSERVER_ANN_BUILD"
#: What is left in the builder once ANN builds run in their SCHED_IDLE child is mostly
#: real-time work (tail, fold, publish every second), which needs little CPU but needs it on
#: time: on 2 saturated cores at 15k events/s, nice 10 fell behind (freshness p99 2.2 s)
#: where nice 0 kept it under 1 s taking about the same CPU (load/benchmarks/bulk.py).
DEFAULT_NICE = 0

NAME = "builder"
HELP = "run a node's builder role (writes, publishes)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_args(parser)
    parser.add_argument("--run-dir", type=Path, required=True,
                         help="the directory shared with the workers")
    parser.add_argument("--config", type=Path, help="YAML config (default: the embedded one)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                         help="event log and checkpoints (default: %(default)s)")
    parser.add_argument("--event-log-url", help="Redis stream event log (redis://...)")
    add_items_arg(parser)
    parser.add_argument("--redis-url", help="ANN result cache (default: files in the run dir)")
    parser.add_argument("--metrics-port", type=int, help="the node's /metrics port (0: any)")
    parser.add_argument("--nice", type=int, default=_env_int(NICE_ENV, DEFAULT_NICE),
                         help="CPU niceness of the builder process (publishing, tailing, "
                         "compactions, checkpoints); ANN builds run at SCHED_IDLE in a child "
                         f"whatever this is (default: ${NICE_ENV} or %(default)s)")
    parser.add_argument("--ann-build", choices=("child", "thread"),
                         default=os.environ.get(ANN_BUILD_ENV) or "child",
                         help="child: each ANN build in a short-lived SCHED_IDLE process; "
                         "thread: in the builder (the older way, a benchmark baseline) "
                         f"(default: ${ANN_BUILD_ENV} or %(default)s)")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def run(args: argparse.Namespace) -> int:
    """Run the builder role until SIGTERM/SIGINT."""
    from recserver.node.builder import Builder, DataSource

    if args.nice:
        # A positive niceness lets workers win the CPU whenever both want it, at the price of
        # late publishes under load (see DEFAULT_NICE). ANN builds need none: their child
        # runs at SCHED_IDLE whatever this is.
        os.nice(args.nice)
    # Run as a role of its own (Kubernetes), the builder refuses a data dir built from another
    # source as ``serve`` does; under ``serve`` the supervisor has checked already.
    serving = source_record.check(Path(args.data_dir), source_record.Requested(
        events=args.events, synthetic=args.synthetic, items=args.items))
    if serving:
        log.info("%s", serving)
    holder = ConfigHolder(args.config)
    holder.install_sighup()
    run_dir = RunDir(args.run_dir)
    builder = Builder(holder, run_dir, redis_url=args.redis_url,
                      event_log_url=args.event_log_url, data_dir=args.data_dir,
                      metrics_port=args.metrics_port, ann_builds=args.ann_build)
    stop = stop_event()
    # SIGUSR1 (``serve`` relays it): a compacting publish, off the signal handler's thread.
    asked = threading.Event()

    def forced_publishes(stop: threading.Event) -> None:
        while not stop.is_set():
            if asked.wait(0.5) and not stop.is_set():
                asked.clear()
                builder.publish_compacted()

    forced = BackgroundWorker("forced-publish", forced_publishes, wake=asked.set)
    forced.start()
    signal.signal(signal.SIGUSR1, lambda signum, frame: asked.set())
    builder.start(DataSource(events=args.events, synthetic=args.synthetic, strict=args.strict,
                             items=args.items, data_dir=Path(args.data_dir)))
    snap = builder.graph.current
    report = builder.report
    example = snap.users.name(0) if snap.n_users else "USER"
    write_json_atomic(run_dir.root / "builder.json", {
        "pid": os.getpid(), "metrics_port": builder.metrics_server.port,
        "metrics_url": builder.metrics_server.url, "edges": snap.n_edges,
        "source": report.source if report else "?", "example_user": example,
    })
    log.info("builder published version %d: %d users, %d items, %d edges", snap.version,
             snap.n_users, snap.n_items, snap.n_edges)
    while not stop.wait(0.5):
        pass
    forced.stop()
    builder.stop()
    return 0
