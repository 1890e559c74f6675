"""``recserver serve`` (the node: a builder and workers) plus an ingest hook for scenario 6
(config reload and publishes under ingest).

    .venv/bin/python -m load.scenarios.server --events FILE --port 0 --config C.yaml \\
        [--data-dir DIR] [--ingest-rate 2000]

It takes all of ``serve``'s flags and runs the node through ``node.commands.cmd_serve``, whose
supervisor passes the roles' signals on:

* SIGHUP reloads the config file in every role, as in ``recserver serve``.
* SIGUSR1 makes the builder force a compacting publish (``Builder.publish_compacted``: the base
  is rebuilt with pruning and published), the heaviest publish there is.
* SIGUSR2 (this module's) starts or stops ingest: ``--ingest-rate`` events/s in 10 batches a
  second, replayed from the node's own event source with timestamps past the newest event and
  unique event ids (new events, not duplicates), sent to the node's ``RecordEvents`` from a
  thread of this (the supervisor's) process. Scenario 6 uses it only when the load generator
  cannot send the events itself; either way they take the path every client's events take.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from pathlib import Path
from types import FrameType

import grpc
import numpy as np

from recserver.cli.serve import add_serve_options
from recserver.config import load_config
from recserver.core.durable import read_json
from recserver.graph.events import EventColumns
from recserver.node.commands import DEFAULT_DATA_DIR, cmd_serve
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc

log = logging.getLogger("load.scenarios.server")
BATCHES_PER_S = 10
CALL_TIMEOUT_S = 10.0


def node_target(args: argparse.Namespace) -> str | None:
    """The node's address, from the ports ``serve`` wrote into its run directory (None until
    it has)."""
    config = load_config(args.config)
    data_dir = Path(args.data_dir or config.ingest.data_dir or DEFAULT_DATA_DIR)
    run_dir = Path(args.run_dir) if args.run_dir is not None else data_dir / "run"
    ports = read_json(run_dir / "ports.json")
    if not ports:
        return None
    host = config.server.host
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"[{host}]:{ports['node']}" if ":" in host else f"{host}:{ports['node']}"


class Ingest:
    """Sends ``cols`` replayed to the node's ``RecordEvents`` at ``rate`` events/s while on."""

    def __init__(self, args: argparse.Namespace, cols: EventColumns, rate: float) -> None:
        self.args = args
        self.cols = cols
        self.rate = rate
        self.on = threading.Event()
        self.accepted = 0
        self._sent = 0
        self._t0 = float(np.max(cols.timestamp)) + 1.0
        self._thread = threading.Thread(target=self._run, name="scenario-ingest", daemon=True)
        self._thread.start()

    def toggle(self) -> None:
        if self.on.is_set():
            self.on.clear()
            log.warning("scenario ingest stopped (%d events accepted)", self.accepted)
        else:
            self.on.set()
            log.warning("scenario ingest started: %.0f events/s over RecordEvents", self.rate)

    def batch(self, n: int) -> list[pb.Event]:
        """The next ``n`` events: the source's rows in turn, each new (id and time)."""
        cols, first = self.cols, self._sent
        self._sent += n
        out = []
        for k in range(first, first + n):
            row = k % len(cols)
            out.append(pb.Event(
                event_id=f"scenario-{k}", user_id=cols.user_names[int(cols.user_codes[row])],
                item_id=cols.item_names[int(cols.item_codes[row])],
                event=cols.type_names[int(cols.type_codes[row])],
                weight=float(cols.weight[row]), timestamp=self._t0 + k / self.rate))
        return out

    def _run(self) -> None:
        per_batch = max(int(self.rate / BATCHES_PER_S), 1)
        channel: grpc.Channel | None = None
        next_at = time.monotonic()
        while True:
            self.on.wait()
            if channel is None:
                target = node_target(self.args)
                if target is None:
                    time.sleep(0.5)
                    continue
                channel = grpc.insecure_channel(target)
            stub = pb_grpc.RecommenderStub(channel)
            next_at = max(next_at + 1.0 / BATCHES_PER_S, time.monotonic())
            time.sleep(max(next_at - time.monotonic(), 0.0))
            try:
                done = stub.RecordEvents(pb.RecordEventsRequest(events=self.batch(per_batch)),
                                         timeout=CALL_TIMEOUT_S)
            except grpc.RpcError as exc:
                log.warning("scenario ingest: RecordEvents failed: %s", exc)
                continue
            self.accepted += done.accepted


def population(args: argparse.Namespace) -> EventColumns:
    from load.loadgen.workload import load_population

    return load_population(args.events, args.synthetic)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--events", type=Path)
    source.add_argument("--synthetic", metavar="SIZE")
    parser.add_argument("--strict", action="store_true")
    parser.add_argument("--ingest-rate", type=float, default=2_000.0, help="events/s")
    add_serve_options(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ingest = Ingest(args, population(args), args.ingest_rate)

    def start_stop(signum: int, frame: FrameType | None) -> None:
        ingest.toggle()

    signal.signal(signal.SIGUSR2, start_stop)
    print("scenario hooks: SIGUSR2 toggles ingest over RecordEvents; serve relays SIGUSR1 (a "
          "compacting publish) to the builder and SIGHUP (reload) to every role", flush=True)
    return cmd_serve(args)


if __name__ == "__main__":
    raise SystemExit(main())
