"""``recserver worker``: run one serving worker of a node (maps snapshots, answers)."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from recserver.config_reload import ConfigHolder
from recserver.node.commands import stop_event
from recserver.node.layout import RunDir

NAME = "worker"
HELP = "run one serving worker of a node"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", type=Path, required=True,
                        help="the directory the builder publishes into")
    parser.add_argument("--config", type=Path, help="YAML config (default: the embedded one)")
    parser.add_argument("--port", type=int, help="gRPC port, shared with the other workers")
    parser.add_argument("--own-port", type=int,
                        help="a gRPC port of this worker alone (for clients that balance calls "
                        "over the workers with round_robin)")
    parser.add_argument("--walk-threads", type=int,
                        help="walks at once (default: server.max_concurrent_walks, else the "
                        "usable cores less one)")
    parser.add_argument("--redis-url", help="ANN result cache (default: the builder's files)")
    parser.add_argument("--name", default="worker",
                        help="name for logs and the ready marker (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    """Run one serving worker until SIGTERM/SIGINT."""
    from recserver.graph.heap import arrow_on_system_heap
    from recserver.node.wiring import fault_walk_hook
    from recserver.node.worker import Worker

    arrow_on_system_heap()  # freed Arrow buffers go back to the system (graph.heap)

    holder = ConfigHolder(args.config)
    holder.install_sighup()
    run_dir = RunDir(args.run_dir)
    worker = Worker(holder, run_dir, port=args.port, redis_url=args.redis_url,
                    walk_hook=fault_walk_hook(), own_port=args.own_port,
                    name=args.name, walk_threads=args.walk_threads)
    stop = stop_event()
    worker.start()
    ready = run_dir.root / "ready"
    ready.mkdir(exist_ok=True)
    marker = ready / f"{args.name}.{os.getpid()}"
    marker.write_text(str(time.time()))
    while not stop.wait(0.5):
        pass
    worker.stop()
    marker.unlink(missing_ok=True)
    return 0
