"""``recserver serve``: run the server until SIGTERM/SIGINT, then drain and exit."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from recserver.app import App, DataSource
from recserver.config_reload import ConfigHolder


def add_serve_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML config (default: the embedded one)")
    parser.add_argument("--port", type=int, help="gRPC port (0 picks a free one)")
    parser.add_argument("--metrics-port", type=int, help="Prometheus metrics port")


def cmd_serve(args: argparse.Namespace) -> int:
    holder = ConfigHolder(args.config)
    if args.metrics_port is not None:
        holder.current.server.metrics_port = args.metrics_port
    app = App(holder, port=args.port)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    holder.install_sighup()
    bound = app.bind()
    print(f"recserver listening on {app.server.address} (port {bound}); loading the graph",
          flush=True)
    app.load(DataSource(events=args.events, synthetic=args.synthetic, strict=args.strict))
    report = app.report
    snap = app.graph.current
    print(
        f"recserver serving on {app.server.address}: "
        f"{snap.n_users:,} users, {snap.n_items:,} items, {snap.n_edges:,} edges "
        f"from {report.source if report else '?'}; surfaces: {', '.join(holder.current.surfaces)}",
        flush=True,
    )
    while not stop.wait(0.5):
        pass
    print("recserver: draining in-flight requests ...", file=sys.stderr, flush=True)
    app.stop()
    return 0
