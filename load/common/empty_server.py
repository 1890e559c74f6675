"""An empty-handler gRPC server: the same transport as ``recserver serve``, no domain work.

    .venv/bin/python -m load.common.empty_server [--port 0] [--door aio|sync]

It runs the real door (``--door aio``: the serving workers' asyncio door, with its arrival stamp,
loop-lag refusal, walk admission and interceptor; ``--door sync``: ``GrpcServer``, thread pool with
arrival stamps and admission; both with health, reflection, the servicer's decode and encode) around
a handler that returns a fixed empty ``Recommendation``. ``load/benchmarks/server.py`` measures it
beside the real server, so the difference is the service's own overhead. Prints ``listening on ...
(port N)`` then ``serving``, like ``recserver serve``; stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from dataclasses import dataclass
from types import FrameType

from recserver.core.heap import freeze_startup_heap
from recserver.server.aio_server import AioGrpcServer
from recserver.server.grpc_server import GrpcServer
from recserver.service.budget import Deadline
from recserver.service.types import Recommendation, RecommendQuery


@dataclass(frozen=True)
class EmptyAsk:
    """What ``EmptyHandler.begin`` fixes: nothing to walk (the door answers on its loop)."""

    query: RecommendQuery
    arrival: float
    deadline: Deadline
    walk_deadline: float = 0.0
    walkable: bool = False


class EmptyHandler:
    """A ``RecommendHandler`` (and the asyncio door's two-step handler) that answers every
    query with no items at once."""

    def begin(self, query: RecommendQuery, *, arrival: float,
              client_remaining_s: float | None) -> EmptyAsk:
        return EmptyAsk(query, arrival, Deadline(arrival + 1.0, 1000.0, "surface"))

    def answer(self, ask: EmptyAsk, *, walk: bool | None = None) -> Recommendation:
        return self.finish(ask, self.walk_step(ask, walk=walk))

    def walk_step(self, ask: EmptyAsk, *, walk: bool | None = None) -> None:
        return None

    def finish(self, ask: EmptyAsk, walked: None) -> Recommendation:
        return self.recommend(ask.query, arrival=ask.arrival, client_remaining_s=None)

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
    parser.add_argument("--door", choices=("aio", "sync"), default="aio",
                        help="the serving workers' asyncio door, or the sync server")
    args = parser.parse_args()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server: AioGrpcServer | GrpcServer = (AioGrpcServer(EmptyHandler(), port=args.port)
                                          if args.door == "aio"
                                          else GrpcServer(EmptyHandler(), port=args.port))
    freeze_startup_heap()  # as a serving worker does before it listens
    port = server.start()
    print(f"empty server listening on {server.address} (port {port})", flush=True)
    server.set_serving()
    print(f"empty server serving on {server.address}", flush=True)
    while not stop.wait(0.5):
        pass
    server.stop(0.5)


if __name__ == "__main__":
    main()
