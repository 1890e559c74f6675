"""The builder role: the node's single writer.

It owns every write: event-log tailing and apply, the edge store, dedup, compaction with
pruning, ANN builds, checkpoints. Each publish is written as files (``SnapshotWriter``) that
serving workers map; ANN results go to Redis when configured, else to sealed files in the run
directory. ANN builds run in a short-lived child process at SCHED_IDLE (``ann_builds="child"``,
the default), so they take only CPU no worker wants and their heap leaves with the child;
``"thread"`` keeps the older in-process build (a benchmark baseline). Workers reach it on a
local Unix socket for ``RecordEvents`` and ``GetIngestStatus``; it also serves the node's one
``/metrics`` endpoint (every process's multi-process files summed, plus its own graph and ingest
gauges), so rendering never runs in a process that answers requests.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recserver.catalog.items_file import read_items
from recserver.config import ServerSection
from recserver.config_reload import ConfigHolder
from recserver.core.errors import Unavailable
from recserver.eventlog.file_log import LogLocked
from recserver.graph.bootstrap import BuildReport, load_into
from recserver.graph.heap import release_free_heap
from recserver.graph.live import LiveGraph
from recserver.graph.snapshot import GraphSnapshot
from recserver.ingest.runtime import IngestRuntime
from recserver.metrics import Metrics
from recserver.node import source_record, wiring
from recserver.node.layout import RunDir
from recserver.node.snapshot_files import SnapshotWriter
from recserver.online.intake import OnlineIntake
from recserver.server.grpc_server import GrpcServer
from recserver.service.tiers import uses_ann
from recserver.service.types import Recommendation, RecommendQuery

log = logging.getLogger(__name__)


#: where the builder runs ANN builds (``recserver builder --ann-build``)
ANN_BUILDS = ("child", "thread")


@dataclass(frozen=True)
class DataSource:
    """Where the first graph comes from: an event file, or synthetic data of a size."""

    events: Path | None = None
    synthetic: str | None = None
    strict: bool = False
    items: Path | None = None  # catalogue items (``catalog.items_file``), like the events
    #: where a first bootstrap records what it loaded (``node.source_record``); None: nowhere
    data_dir: Path | None = None


def bootstrap(graph: LiveGraph, ingest: IngestRuntime, source: DataSource, metrics: Metrics
              ) -> BuildReport:
    """Fill ``graph`` and publish it: the newest checkpoint (or ``source``), then the log."""
    restored = ingest.restore()
    erased = 0
    if restored is None:
        report = load_into(graph, events=source.events, synthetic=source.synthetic,
                           strict=source.strict)
        if source.items is not None:
            # A bootstrap source like the events: the log (replayed next) and checkpoints
            # carry every later change, so a restart keeps what UpdateItems set since.
            updates = read_items(source.items)
            graph.update_items(updates)
            log.info("catalogue: %d items from %s", len(updates), source.items)
        if source.data_dir is not None:  # before any checkpoint: none exists unrecorded
            source_record.record(source.data_dir, source_record.describe(
                source.events, source.synthetic, source.items))
        metrics.record_ingest(report.events_accepted, report.duplicates, report.rejected)
        erased = ingest.erase_ledgered()  # users erased before what is left of the log
    else:
        report = BuildReport(
            source=f"checkpoint {restored.folder}", events_read=0,
            events_accepted=restored.events_applied, duplicates=0, rejected=0,
            rejection_summary="", load_seconds=restored.seconds, build_seconds=0.0,
        )
    if ingest.catch_up() or restored is not None or erased:
        graph.publish(compact=True)
    return report


#: How often ``open_ingest`` repeats that it is still waiting for the event log.
WAIT_LOG_EVERY_S = 10.0


def open_ingest(make: Callable[[], IngestRuntime], wait_s: float = 60.0) -> IngestRuntime:
    """Open the event log, waiting while a builder that is still stopping holds its lock (a
    restart right after a crash of the supervisor: the old builder writes its last checkpoint).

    ``serve``'s node lock keeps a second live node out before it gets here, so this waits only
    for such a straggler; it says so once, naming the pid that holds the log, then every
    ``WAIT_LOG_EVERY_S``, and gives up with ``LogLocked`` after ``wait_s``."""
    deadline = time.monotonic() + wait_s
    next_note = 0.0
    while True:
        try:
            return make()
        except LogLocked as exc:
            now = time.monotonic()
            if now >= deadline:
                raise
            if now >= next_note:
                holder = f"pid {exc.pid}" if exc.pid else "another process"
                log.info("the event log is locked by %s (a builder still stopping?); waiting up "
                         "to %.0f s more for it to let go", holder, deadline - now)
                next_note = now + WAIT_LOG_EVERY_S
            time.sleep(0.5)


class _NoRecommend:
    """The builder answers no ``Recommend`` (workers do)."""

    def recommend(self, query: RecommendQuery, *, arrival: float,
                  client_remaining_s: float | None) -> Recommendation:
        raise Unavailable("this is the node's builder; ask a serving worker")


class Builder:
    """One node's builder process (see the module docstring)."""

    def __init__(
        self, holder: ConfigHolder, run: RunDir, *, redis_url: str | None = None,
        event_log_url: str | None = None, data_dir: str | None = None,
        metrics_port: int | None = None, ann_builds: str = "child",
        metrics: Metrics | None = None,
    ) -> None:
        """``ann_builds``: ``child`` (a SCHED_IDLE process per build) or ``thread`` (here);
        ``metrics``: a test's own registry (default: a fresh one)."""
        if ann_builds not in ANN_BUILDS:
            raise ValueError(f"ann_builds must be one of {', '.join(ANN_BUILDS)}, "
                             f"not {ann_builds!r}")
        config = holder.current
        self.holder = holder
        self.run = run.create()
        self.metrics = wiring.role_metrics(holder, answers_as=None, metrics=metrics)
        self.writer = SnapshotWriter(self.run)
        self.graph = wiring.writer_graph(holder, self.metrics,
                                         first_version=self.writer.last_version() + 1)
        self.writer.on_base.append(self.graph.adopt_base)  # the base's pages: once, shared
        self.ann = wiring.ann_runtime(config, self.graph, self.metrics, redis_url=redis_url,
                                      run=self.run, child_builds=ann_builds == "child")
        self.ingest = wiring.ingest_runtime(holder, self.graph, self.metrics,
                                            event_log_url=event_log_url, data_dir=data_dir,
                                            wait_for_log_s=60.0)
        self.server = GrpcServer(_NoRecommend(), ServerSection(), unix_socket=run.builder_socket,
                                 ingest=self.ingest)
        # Online quality for the whole node: workers report what they served on this socket,
        # matched here with the events this graph applies; counted on this /metrics.
        self.online = OnlineIntake(config.online_quality, self.graph,
                                   quality_metrics=self.metrics.online,
                                   stability_metrics=self.metrics.stability)
        self.server.add_service(self.online.register)
        self.metrics_server = wiring.metrics_endpoint(config, self.metrics, metrics_port)
        self.report: BuildReport | None = None
        #: why the last snapshot could not be written ("" when it was)
        self.publish_error = ""
        self._error_logged = -1e9
        self._stopped = threading.Event()

    def start(self, source: DataSource) -> None:
        """Serve /metrics and the local endpoint, build and publish the graph, start writers."""
        self.metrics_server.start()
        self.server.start()
        self.report = bootstrap(self.graph, self.ingest, source, self.metrics)
        if not self.graph.ready:
            self.graph.publish(compact=True)
        # Each snapshot carries the log position it makes visible (``log_position``, set by
        # the publish itself), so this hook's place among the others does not matter.
        self.graph.on_publish.append(self._write)
        self._write(self.graph.current)
        release_free_heap()  # the private base the write swapped for its mapped files
        self.graph.start()
        self.ingest.start()
        self.online.start()
        if uses_ann(self.holder.current):
            self.ann.start()
        if self.holder.path is not None:
            self.holder.start_watching()
        self.server.set_serving()

    def publish_compacted(self) -> GraphSnapshot | None:
        """Rebuild the base with pruning and publish it now (the heaviest publish there is;
        ``recserver builder`` runs it on SIGUSR1, e.g. for a drill under load). None before
        the first graph is loaded: the bootstrap publishes compacted anyway."""
        if not self.graph.ready:
            log.warning("compacting publish asked before the first graph is loaded: ignored")
            return None
        started = time.perf_counter()
        snap = self.graph.publish(compact=True)
        log.warning("forced compacting publish: version %d in %.2f s", snap.version,
                    time.perf_counter() - started)
        return snap

    def _write(self, snap: GraphSnapshot) -> None:
        try:
            self.writer.write(snap)
        except OSError as exc:  # disk full, run dir gone: workers keep the last version
            self.publish_error = f"snapshot {snap.version} not published: {exc}"
            now = time.monotonic()
            if now - self._error_logged >= 10.0:
                self._error_logged = now
                log.error("%s; workers keep serving the last published snapshot, the next "
                          "publish retries", self.publish_error)
        else:
            self.publish_error = ""

    def stop(self) -> None:
        """Close RecordEvents, stop tailing, write the final checkpoint, stop the rest."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.server.stop(2.0)
        self.ingest.stop()
        self.graph.stop()
        self.online.stop()
        # The final checkpoint is written (ingest.stop): a half-done ANN build is not worth
        # holding the shutdown for (it would take up to its whole build time); a build child
        # is killed at once.
        self.ann.stop(timeout_s=2.0)
        self.holder.stop_watching()
        self.metrics_server.stop()
