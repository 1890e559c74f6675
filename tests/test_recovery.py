"""Checkpoints and restart recovery: in process first, then a real server killed with SIGKILL.

The SIGKILL test runs ``recserver serve`` with a file log, feeds it batches from a client thread,
kills it in the middle of that (after at least one periodic checkpoint), restarts it on the same
data directory and checks, through ``DescribeUser`` and ``GetIngestStatus``, that every
acknowledged event is in the graph exactly once. Edge weights are exact there (linear transform,
no decay): one ``view`` of weight 1 is an edge of weight 1.0, so an event applied twice shows.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

import recserver.graph.live as live_module
from recserver.eventlog.base import Position
from recserver.eventlog.codec import encode_batch
from recserver.eventlog.file_log import FileEventLog
from recserver.graph import idmap_kernels
from recserver.graph.config import EventWeightsConfig, GraphConfig, PruneConfig, WalkConfig
from recserver.graph.events import Event, EventColumns
from recserver.graph.live import LiveGraph
from recserver.graph.walk import run_walk
from recserver.ingest.checkpoint import CheckpointStore, load_checkpoint
from recserver.ingest.recorder import event_keys
from recserver.ingest.recovery import Checkpointer, restore_latest
from recserver.ingest.tailer import LogTailer
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from tests.graph_helpers import merged_edges
from tests.ingest_servers import Server, write_ingest_config

WAIT_S = 60.0


def config(**kw: Any) -> GraphConfig:
    return GraphConfig(
        event_weights=EventWeightsConfig(transform="linear", half_life_days=None),
        prune=PruneConfig(hub_percentile=None), **kw,
    )


def cols_of(rows: list[tuple[str, str, str]], ts: float = 1.0) -> EventColumns:
    return EventColumns.from_events([Event(u, i, "view", 1.0, ts, e) for u, i, e in rows])



def batch(k: int, n: int = 10) -> EventColumns:
    return cols_of([(f"u{k}-{j % 3}", f"i{(k * 7 + j) % 40}", f"e{k}-{j}") for j in range(n)])


# -- in process -------------------------------------------------------------------------------


def test_a_checkpoint_restores_the_same_graph_and_dedup(tmp_path: Path) -> None:
    graph = LiveGraph(config(compact_overlay_fraction=0.5))
    graph.ingest(batch(0, 50), log_position="10-0")
    graph.publish()  # the base
    graph.ingest(batch(1), log_position="20-0")
    graph.publish()  # an overlay on top
    graph.ingest(batch(2), log_position="30-0")  # not even published yet
    store = CheckpointStore(tmp_path)
    store.save(graph.capture_state())
    graph.publish()
    restored = LiveGraph(config())
    found = restore_latest(restored, store)
    assert found is not None and found.position == "30-0" and found.events_applied == 70
    restored.publish()
    assert merged_edges(restored) == merged_edges(graph)
    assert restored.applied_position == "30-0" and restored.events_applied == 70
    assert restored.store.users.names(range(len(restored.store.users))) == \
        graph.store.users.names(range(len(graph.store.users)))
    for k in range(3):  # every event is known: a replay changes nothing
        assert restored.ingest(batch(k, 50 if k == 0 else 10)).n_accepted == 0
    assert restored.store.t0 == graph.store.t0 and restored.store.max_ts == graph.store.max_ts


def test_a_restore_maps_the_saved_id_maps_and_answers_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [(f"user-{u % 37}-é", f"item-{(u * 11 + j) % 53}", f"e{u}-{j}")
            for u in range(120) for j in range(4)]
    graph = LiveGraph(config())
    graph.ingest(cols_of(rows), log_position="1-0")
    graph.publish()
    state = graph.capture_state()
    graph.ingest(cols_of([("late-user", "late-item", "late")]))  # after the capture: not saved
    CheckpointStore(tmp_path).save(state)
    graph.publish(compact=True)

    def no_index_build(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a restore must map the saved index, not build one")

    monkeypatch.setattr(idmap_kernels, "build_index", no_index_build)
    restored = LiveGraph(config())
    restored.restore_state(load_checkpoint(CheckpointStore(tmp_path).folders()[0]))
    users, items = restored.store.users, restored.store.items
    assert isinstance(users._a.index, np.memmap) and isinstance(items._a.blob, np.memmap)
    assert (len(users), len(items)) == (state.n_users, state.n_items)
    assert users.get("late-user") is None and items.get("late-item") is None
    for mine, theirs in ((users, graph.store.users), (items, graph.store.items)):
        names = theirs.names(range(len(mine)))
        assert mine.names(range(len(mine))) == names  # same dense index for every name
        assert mine.lookup_many(names).tolist() == list(range(len(mine)))
    monkeypatch.undo()
    restored.publish()
    for u in range(0, state.n_users, 5):
        assert graph.current.users.get(users.name(u)) == u
        answers = []
        for live in (graph, restored):
            snap = live.current
            seeds, weights = snap.user_items(u)
            walked = run_walk(snap, seeds, weights, WalkConfig(steps=2_000), k=10, rng_seed=u)
            answers.append((snap.items.names(walked.items), walked.scores.tolist()))
        assert answers[0][0] and answers[0] == answers[1]
    # The restored maps still grow: new names get the next ids, privately.
    assert restored.ingest(cols_of([("late-user", "late-item", "late")])).n_accepted == 1
    assert users.get("late-user") == state.n_users and items.get("late-item") == state.n_items


def test_a_checkpoint_taken_during_a_background_compaction_holds_every_edge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    real_build = live_module.build_base

    def slow_build(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread().name == "graph-compaction":
            release.wait(30)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(live_module, "build_base", slow_build)
    graph = LiveGraph(config(compact_overlay_fraction=0.1))
    graph.ingest(batch(0, 30))
    graph.publish()
    graph.ingest(batch(1, 30))
    graph.publish()  # starts a background compaction, held until released
    assert graph._compacting is not None
    graph.ingest(batch(2, 5))
    state = graph.capture_state()
    release.set()
    assert graph.wait_for_compaction(30)
    graph.publish()
    CheckpointStore(tmp_path).save(state)
    restored = LiveGraph(config())
    restored.restore_state(load_checkpoint(CheckpointStore(tmp_path).folders()[0]))
    restored.publish()
    assert merged_edges(restored) == merged_edges(graph)


def test_an_unreadable_newest_checkpoint_falls_back_to_the_previous(tmp_path: Path) -> None:
    graph = LiveGraph(config())
    graph.ingest(batch(0), log_position="5-0")
    store = CheckpointStore(tmp_path, keep=3)
    store.save(graph.capture_state())
    graph.ingest(batch(1), log_position="9-0")
    newest = store.save(graph.capture_state())
    (newest / "dedup.npy").write_bytes(b"garbage")
    (tmp_path / ".ckpt-000000000000999-000001.tmp").mkdir()  # a save a crash interrupted
    reopened = CheckpointStore(tmp_path, keep=3)
    assert not list(tmp_path.glob(".*.tmp"))
    restored = LiveGraph(config())
    found = restore_latest(restored, reopened)
    assert found is not None and found.position == "5-0"


def test_only_the_newest_checkpoints_are_kept(tmp_path: Path) -> None:
    graph = LiveGraph(config())
    store = CheckpointStore(tmp_path, keep=2)
    for k in range(4):
        graph.ingest(batch(k), log_position=f"{k + 1}-0")
        store.save(graph.capture_state())
    assert len(store.folders()) == 2
    assert store.oldest_position() == "3-0"


def test_restore_then_replay_equals_never_stopping(tmp_path: Path) -> None:
    log = FileEventLog(tmp_path / "log", segment_bytes=2_000)
    try:
        for k in range(12):
            cols = batch(k)
            log.append(encode_batch(cols, event_keys(cols.event_ids or []), appended_at=0.0,
                                    origin="t"))
        survivor = LiveGraph(config())
        tailer = LogTailer(log, survivor, max_records=5)
        tailer.poll(0.0)  # five records applied, then a checkpoint, then the rest
        store = CheckpointStore(tmp_path / "ckpt", keep=1)
        checkpointer = Checkpointer(survivor, store, log, interval_s=3600)
        assert checkpointer.save_now() is not None
        assert checkpointer.save_now() is None  # nothing new since: skipped
        assert len(list((tmp_path / "log").glob("*.seg"))) < 12  # segments before it deleted
        tailer.catch_up()
        survivor.publish()

        recovered = LiveGraph(config())
        assert restore_latest(recovered, store) is not None
        replay = LogTailer(log, recovered)
        assert checkpointer.last_position is not None
        assert replay.position == Position.parse(checkpointer.last_position)
        assert replay.catch_up() == 70  # the seven records after the checkpoint
        recovered.publish()
        assert merged_edges(recovered) == merged_edges(survivor)
        assert recovered.events_applied == survivor.events_applied == 120
    finally:
        log.close()


# -- a real server killed with SIGKILL mid-ingest ---------------------------------------------


def view(event_id: str, user: str, item: str) -> pb.Event:
    return pb.Event(event_id=event_id, user_id=user, item_id=item, event="view", weight=1.0)


def make_batch(k: int) -> list[pb.Event]:
    return [view(f"kill{k}-{j}", f"kill-u{k}-{j % 5}", f"kill-i{k}-{j}") for j in range(100)]


def wait_until(check: Any, what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_sigkill_mid_ingest_loses_no_acknowledged_event(tmp_path: Path) -> None:
    config_path = write_ingest_config(
        tmp_path / "config.yaml",
        file={"fsync": "batch", "segment_mb": 1},
        checkpoint={"interval_s": 0.3},
    )
    data = ["--data-dir", str(tmp_path / "data")]
    server = Server(config_path, *data)
    restarted: Server | None = None
    acked: dict[int, list[pb.Event]] = {}
    in_doubt: list[list[pb.Event]] = []
    stop = threading.Event()

    def client() -> None:
        k = 0
        while not stop.is_set():
            events = make_batch(k)
            try:
                response = server.stub.RecordEvents(pb.RecordEventsRequest(events=events),
                                                    timeout=10)
            except grpc.RpcError:
                in_doubt.append(events)  # the server died: this batch's fate is unknown
                return
            assert [r.status for r in response.results] == [pb.ACCEPTED] * len(events)
            acked[k] = events
            k += 1

    try:
        server.wait_serving()
        bootstrap_events = server.status().events_applied
        sender = threading.Thread(target=client, name="kill-client", daemon=True)
        sender.start()
        wait_until(lambda: server.status().checkpoint_position != "", "a periodic checkpoint")
        after_checkpoint = len(acked) + 10
        wait_until(lambda: len(acked) >= after_checkpoint, "batches after the checkpoint")
        version_before = server.status().snapshot_version
        server.kill()  # SIGKILL while the client keeps sending
        sender.join(30)
        assert not sender.is_alive() and in_doubt
        assert len(list((tmp_path / "data" / "checkpoints").glob("ckpt-*"))) >= 1

        restarted = Server(config_path, *data).wait_serving()
        assert "from checkpoint" in restarted.output  # recovered from a checkpoint ...
        assert "event log replayed:" in restarted.output  # ... plus the log after it
        status = restarted.status()
        assert status.checkpoint_position != ""  # the restored checkpoint is the recovery point
        assert status.snapshot_version > version_before  # versions only grow (clients compare)
        by_user: dict[str, dict[str, float]] = defaultdict(dict)
        for events in acked.values():
            for e in events:
                by_user[e.user_id][e.item_id] = 1.0
        for user, items in by_user.items():
            assert restarted.edges(user) == items, user  # every acknowledged event, once

        # The client retries what it never heard back about, and repeats an acknowledged batch.
        retry = restarted.record(in_doubt[0])
        assert {r.status for r in retry.results} <= {pb.ACCEPTED, pb.DUPLICATE}
        again = restarted.record(acked[0])
        assert [r.status for r in again.results] == [pb.DUPLICATE] * 100
        if retry.log_position:
            restarted.wait_visible(retry.log_position)
        for e in in_doubt[0]:
            assert restarted.edges(e.user_id)[e.item_id] == 1.0
        expected = bootstrap_events + 100 * (len(acked) + 1)
        assert restarted.status().events_applied == expected  # nothing applied twice anywhere

        # A clean stop writes a final checkpoint: the next start replays nothing.
        assert restarted.stop() == 0
        third = Server(config_path, *data).wait_serving()
        restarted = third
        assert "event log replayed: 0 events" in third.output
        assert third.status().events_applied == expected
        sample = make_batch(3)[0]
        assert third.edges(sample.user_id)[sample.item_id] == 1.0
    finally:
        stop.set()
        server.kill()
        if restarted is not None:
            restarted.kill()

