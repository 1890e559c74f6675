"""A publish carries the event-log position it makes visible, whatever its listeners' order.

Real parts: a file event log, the tailer that applies it, the live graph, and the builder's
snapshot writer whose manifest a worker maps (``GetIngestStatus``'s visible position).
"""

from __future__ import annotations

from pathlib import Path

from recserver.eventlog.file_log import FileEventLog
from recserver.graph.live import LiveGraph
from recserver.graph.snapshot import GraphSnapshot
from recserver.ingest.tailer import LogTailer
from recserver.node.layout import RunDir
from recserver.node.mapped import MappedGraph
from recserver.node.snapshot_files import SnapshotWriter
from tests.test_eventlog_apply import append_events, cols_of, config


def batch(k: int):  # type: ignore[no-untyped-def]
    return cols_of(*[(f"u{k}", f"i{j}", "view", 1.0, 10.0 + j, f"e{k}-{j}") for j in range(3)])


def test_publish_returns_the_position_it_made_visible(tmp_path: Path) -> None:
    log = FileEventLog(tmp_path / "log")
    try:
        graph = LiveGraph(config())
        seen: list[str] = []
        # Registered before the tailer's own hook: it must still see this publish's position.
        graph.on_publish.append(lambda snap: seen.append(snap.log_position))
        tailer = LogTailer(log, graph)
        append_events(log, batch(0))
        first_end = log.end
        tailer.catch_up()
        snap = graph.publish()
        assert snap.log_position == str(first_end) == seen[-1]
        append_events(log, batch(1))
        tailer.catch_up()  # applied, not yet published: the current snapshot still says so
        assert graph.current.log_position == str(first_end)
        assert graph.publish(compact=True).log_position == str(log.end) == seen[-1]
        assert tailer.visible_position == log.end  # the tailer's own account agrees
    finally:
        log.close()


def test_a_graph_not_fed_from_a_log_has_no_position() -> None:
    graph = LiveGraph(config())
    graph.ingest(batch(0))
    assert graph.publish().log_position == ""


def test_the_manifest_carries_the_position_with_the_writer_hooked_first(tmp_path: Path) -> None:
    """The builder's order: the snapshot writer's hook added before the tailer's."""
    log = FileEventLog(tmp_path / "log")
    run = RunDir(tmp_path / "run").create()
    writer = SnapshotWriter(run, keep_s=0.0)
    mapped = MappedGraph(run)
    try:
        graph = LiveGraph(config())
        written: list[GraphSnapshot] = []
        graph.on_publish.append(lambda snap: (writer.write(snap), written.append(snap)))
        tailer = LogTailer(log, graph)
        for k in range(3):
            append_events(log, batch(k))
        tailer.catch_up()
        graph.publish()
        assert mapped.wait_ready(5.0)
        assert mapped.visible_position == str(log.end)
        assert mapped.current.log_position == str(log.end)
        assert written[-1].version == mapped.current.version
    finally:
        mapped.stop()
        log.close()
