"""``recserver serve``: run the server until SIGTERM/SIGINT, then drain and exit."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

from recserver.app import App, DataSource
from recserver.config_reload import ConfigHolder
from recserver.service.recommender import WalkHook

log = logging.getLogger(__name__)


#: Fault injection for drills and tests: sleep this many ms after every walk batch.
FAULT_WALK_DELAY_ENV = "RECSERVER_FAULT_WALK_DELAY_MS"


def fault_walk_hook() -> WalkHook | None:
    """A walk hook that slows every batch, when ``RECSERVER_FAULT_WALK_DELAY_MS`` is set."""
    raw = os.environ.get(FAULT_WALK_DELAY_ENV)
    if not raw:
        return None
    try:
        delay_s = float(raw) / 1000.0
    except ValueError:
        raise ValueError(f"{FAULT_WALK_DELAY_ENV}={raw!r}: give milliseconds, e.g. 5") from None
    log.warning("fault injection: every walk batch sleeps %.1f ms", delay_s * 1000)
    return lambda steps_done: time.sleep(delay_s)


def cmd_serve(
    args: argparse.Namespace, *, on_loaded: Callable[[App], None] | None = None
) -> int:
    """Serve until SIGTERM/SIGINT: a builder and serving workers (``--single-process``: one
    process). ``on_loaded(app)`` runs on the main thread once the single-process server is
    SERVING (load/scenarios/server.py starts its ingest there)."""
    if not getattr(args, "single_process", False) and on_loaded is None:
        from recserver.node.commands import cmd_serve_node

        return cmd_serve_node(args)
    from pathlib import Path

    from recserver.node.commands import check_data_dir

    holder = ConfigHolder(args.config)
    # The node's rule here too: a data dir serves only the source it was built from.
    data_dir = getattr(args, "data_dir", None) or holder.current.ingest.data_dir
    serving = check_data_dir(args, holder.current, Path(data_dir), Path(data_dir) / "run") \
        if data_dir else ""
    app = App(holder, port=args.port, metrics_port=args.metrics_port, redis_url=args.redis_url,
              walk_hook=fault_walk_hook(), event_log_url=getattr(args, "event_log_url", None),
              data_dir=getattr(args, "data_dir", None))
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    holder.install_sighup()
    bound = app.bind()
    # The port is bound, but health says NOT_SERVING until the graph is loaded.
    print(f"recserver starting on {app.server.address} (port {bound}), not answering yet: "
          "loading the graph", flush=True)
    print(f"recserver metrics on {app.metrics_server.url} (port {app.metrics_server.port})",
          flush=True)
    if serving:
        print(f"recserver: {serving}", flush=True)
    app.load(DataSource(events=args.events, synthetic=args.synthetic, strict=args.strict,
                        items=args.items, data_dir=Path(data_dir) if data_dir else None))
    report = app.report
    snap = app.graph.current
    print(
        f"recserver serving on {app.server.address}: "
        f"{snap.n_users:,} users, {snap.n_items:,} items, {snap.n_edges:,} edges "
        f"from {report.source if report else '?'}; surfaces: {', '.join(holder.current.surfaces)}",
        flush=True,
    )
    if on_loaded is not None:
        on_loaded(app)
    while not stop.wait(0.5):
        pass
    print("recserver: draining in-flight requests ...", file=sys.stderr, flush=True)
    app.stop()
    return 0
