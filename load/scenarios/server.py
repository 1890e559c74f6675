"""``recserver serve --single-process`` plus signal hooks for scenario 6 (config reload and
publishes under load).

    .venv/bin/python -m load.scenarios.server --events FILE --port 0 --config C.yaml \\
        [--data-dir DIR] [--ingest-rate 2000]

**Not the node that ``serve`` ships**: the hooks below reach into the graph of the process that
answers, which only the single-process server (``recserver.node.single``, built from the node's
own wiring) has; it says so when it starts. It takes all of ``serve``'s flags and runs through
``node.commands.cmd_serve`` with ``--single-process`` set, with two signal hooks:

* SIGUSR1 forces a compacting publish (``LiveGraph.publish(compact=True)``: the base is rebuilt
  with pruning and swapped in), the heaviest publish there is.
* SIGUSR2 starts (or stops) ingest *inside the server process*: ``--ingest-rate`` events/s in 10
  batches a second, replayed from the server's own event source with timestamps past the newest
  event (new events, not duplicates), through ``LiveGraph.ingest``. Scenario 6 uses it only when
  the server cannot take ``RecordEvents`` (no ``--data-dir`` / event log); otherwise the load
  generator sends the events over gRPC, which also measures decoding, validation and the log.

SIGHUP reloads the config file, as in ``recserver serve``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from pathlib import Path
from types import FrameType

import numpy as np

from recserver.cli.serve import add_serve_options
from recserver.graph.events import EventColumns
from recserver.node.commands import cmd_serve
from recserver.node.single import App

log = logging.getLogger("load.scenarios.server")
BATCHES_PER_S = 10


class Ingest:
    """Replays ``cols`` into the app's graph at ``rate`` events/s while switched on."""

    def __init__(self, app: App, cols: EventColumns, rate: float) -> None:
        self.app = app
        self.cols = cols
        self.rate = rate
        self.on = threading.Event()
        self.applied = 0
        self._pos = 0
        self._t0 = float(np.max(cols.timestamp)) + 1.0
        self._thread = threading.Thread(target=self._run, name="scenario-ingest", daemon=True)
        self._thread.start()

    def toggle(self) -> None:
        if self.on.is_set():
            self.on.clear()
            log.warning("scenario ingest stopped (%d events applied)", self.applied)
        else:
            self.on.set()
            log.warning("scenario ingest started: %.0f events/s", self.rate)

    def _batch(self, n: int, offset_s: float) -> EventColumns:
        idx = (self._pos + np.arange(n)) % len(self.cols)
        self._pos += n
        mask = np.zeros(len(self.cols), dtype=bool)
        mask[idx] = True
        batch = self.cols.take(mask)
        batch.timestamp = np.full(len(batch), self._t0 + offset_s) + np.arange(len(batch)) * 1e-6
        batch.event_ids = None
        return batch

    def _run(self) -> None:
        per_batch = max(int(self.rate / BATCHES_PER_S), 1)
        started = time.monotonic()
        next_at = started
        while True:
            self.on.wait()
            next_at = max(next_at + 1.0 / BATCHES_PER_S, time.monotonic())
            time.sleep(max(next_at - time.monotonic(), 0.0))
            batch = self._batch(per_batch, time.monotonic() - started)
            outcome = self.app.graph.ingest(batch)
            self.applied += outcome.n_accepted
            self.app.metrics.record_ingest(outcome.n_accepted, int(outcome.duplicate.sum()),
                                           int(outcome.rejected.sum()))


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
    args.single_process = True  # the hooks need the graph in the answering process
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cols = population(args)

    def on_loaded(app: App) -> None:
        ingest = Ingest(app, cols, args.ingest_rate)

        def start_stop(signum: int, frame: FrameType | None) -> None:
            ingest.toggle()

        def force_publish(signum: int, frame: FrameType | None) -> None:
            def run() -> None:
                started = time.perf_counter()
                snap = app.graph.publish(compact=True)
                log.warning("forced compacting publish: version %d in %.2f s", snap.version,
                            time.perf_counter() - started)

            threading.Thread(target=run, name="scenario-publish", daemon=True).start()

        signal.signal(signal.SIGUSR2, start_stop)
        signal.signal(signal.SIGUSR1, force_publish)
        print("scenario hooks: SIGUSR2 toggles ingest, SIGUSR1 forces a compacting publish; "
              "SINGLE PROCESS, not the node serve ships (the hooks need its graph)", flush=True)

    return cmd_serve(args, on_loaded=on_loaded)


if __name__ == "__main__":
    raise SystemExit(main())
