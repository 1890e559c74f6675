"""An empty-handler gRPC server: the same transport as ``recserver serve``, no domain work.

    .venv/bin/python -m load.empty_server [--port 0]

It runs the real ``GrpcServer`` (thread pool with arrival stamps, error interceptor, health,
reflection, the servicer's decode and encode) around a handler that returns a fixed empty
``Recommendation``. ``load/bench_server.py`` measures it beside the real server, so the difference
is the service's own overhead. Prints ``listening on ... (port N)`` then ``serving``, like
``recserver serve``; stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from types import FrameType

from recserver.server.grpc_server import GrpcServer
from recserver.service.types import Recommendation, RecommendQuery


class EmptyHandler:
    """A ``RecommendHandler`` that answers every query with no items at once."""

    def recommend(
        self, query: RecommendQuery, *, arrival: float, client_remaining_s: float | None
    ) -> Recommendation:
        """A fixed empty answer (only the elapsed time is filled in)."""
        return Recommendation(
            items=[],
            source="graph",
            degraded=False,
            degraded_reasons=[],
            coverage=1.0,
            budget_ms=0.0,
            server_elapsed_ms=(time.perf_counter() - arrival) * 1000.0,
            snapshot_version=0,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = GrpcServer(EmptyHandler(), port=args.port)
    port = server.start()
    print(f"empty server listening on {server.address} (port {port})", flush=True)
    server.set_serving()
    print(f"empty server serving on {server.address}", flush=True)
    while not stop.wait(0.5):
        pass
    server.stop(0.5)


if __name__ == "__main__":
    main()
