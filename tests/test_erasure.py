"""Erasing users in process: the record, the store, the live graph, the tailer, checkpoints."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from recserver.config import load_config
from recserver.eventlog.codec import RecordFormatError
from recserver.eventlog.erasure_codec import decode_erasure, encode_erasure, is_erasure
from recserver.eventlog.file_log import FileEventLog
from recserver.graph.config import EventWeightsConfig, GraphConfig, PruneConfig
from recserver.graph.erasure import erased_name, is_erased_name
from recserver.graph.events import Event, EventColumns
from recserver.graph.live import LiveGraph
from recserver.graph.validate import validate_columns
from recserver.ingest.checkpoint import CheckpointStore
from recserver.ingest.recovery import restore_latest
from recserver.ingest.runtime import IngestRuntime, describe_user
from recserver.ingest.tailer import LogTailer
from recserver.node.builder import DataSource, bootstrap
from tests.graph_helpers import merged_edges
from tests.redis_fixture import RedisServer, redis_server  # noqa: F401
from tests.test_eventlog_apply import append_events, cols_of


def config(**kw: object) -> GraphConfig:
    return GraphConfig(
        event_weights=EventWeightsConfig(transform="linear", half_life_days=None),
        prune=PruneConfig(hub_percentile=None), **kw,  # type: ignore[arg-type]
    )


def item_neighbours(graph: LiveGraph, item: str) -> set[str]:
    """The users the walk can reach from ``item`` (base and overlay item sides)."""
    snap = graph.current
    i = snap.items.get(item)
    assert i is not None
    users = set()
    for side in (snap.base_items, snap.over_items):
        if i < side.n_rows:
            users |= {snap.users.name(int(u)) for u in side.neighbours(i).tolist()}
    return users


def shared_history() -> EventColumns:
    """u1 and u2 both bought i1; u1 also i2 (so a walk i1 -> u1 -> i2 links i1 to i2)."""
    return cols_of(("u1", "i1", "view", 1.0, 10.0, "a"), ("u1", "i2", "view", 1.0, 11.0, "b"),
                   ("u2", "i1", "view", 1.0, 12.0, "c"), ("u2", "i3", "view", 1.0, 13.0, "d"))


def test_an_erasure_record_round_trips_and_damage_is_refused() -> None:
    payload = encode_erasure(["u1", "ü\nx"], appended_at=5.5, origin="host:1")
    assert is_erasure(payload) and not is_erasure(b"RL" + payload[2:])
    record = decode_erasure(payload)
    assert record.user_ids == ["u1", "ü\nx"] and record.appended_at == 5.5
    assert record.origin == "host:1"
    for damaged in (payload[:-1], payload + b"\x00", b"RE\x09" + payload[3:]):
        with pytest.raises(RecordFormatError):
            decode_erasure(damaged)


def test_placeholder_names_are_unique_and_no_event_can_carry_one() -> None:
    names = [erased_name(i) for i in range(1000)]
    assert len(set(names)) == 1000 and all(is_erased_name(n) for n in names)
    assert not is_erased_name("u1")
    cols = EventColumns.from_events([Event(names[5], "i1", "view", 1.0, 1.0)])
    good = validate_columns(cols, config().event_weights, now=2.0)
    assert len(good) == 0 and good.rejected[0].reason == "empty user_id"


def test_erased_users_leave_both_sides_of_the_graph_and_their_name_goes() -> None:
    graph = LiveGraph(config())
    graph.ingest(shared_history())
    graph.publish()
    assert item_neighbours(graph, "i1") == {"u1", "u2"}
    assert graph.erase_users(["u1", "nobody"]) == 1
    snap = graph.publish()
    assert set(merged_edges(graph)) == {("u2", "i1"), ("u2", "i3")}
    assert item_neighbours(graph, "i1") == {"u2"} and item_neighbours(graph, "i2") == set()
    assert snap.users.get("u1") is None and snap.n_users == 2  # the id slot stays, unnamed
    assert graph.erase_users(["u1"]) == 0  # again: nothing left to erase
    assert not describe_user(graph, erased_name(0)).found  # the placeholder names nobody
    # The same user id sending events later starts a new profile under a new id.
    graph.ingest(cols_of(("u1", "i3", "view", 1.0, 20.0, "e")))
    graph.publish()
    assert {k for k in merged_edges(graph) if k[0] == "u1"} == {("u1", "i3")}
    assert graph.current.users.get("u1") == 2


def test_a_replayed_pre_erasure_event_is_not_brought_back() -> None:
    graph = LiveGraph(config())
    graph.ingest(shared_history())
    graph.erase_users(["u1"])
    again = graph.ingest(cols_of(("u1", "i1", "view", 1.0, 10.0, "a")))  # the same event id
    assert again.n_accepted == 0
    graph.publish()
    assert not [k for k in merged_edges(graph) if k[0] == "u1"]


def test_an_erasure_during_a_background_compaction_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    import recserver.graph.live as live_module

    graph = LiveGraph(config(compact_overlay_fraction=0.01))
    graph.ingest(cols_of(*[(f"u{k}", f"i{k % 7}", "view", 1.0, 10.0 + k, f"a{k}")
                           for k in range(50)]))
    graph.publish(compact=True)
    real = live_module.build_base
    gate = []

    def slow_build(*args: object, **kw: object) -> object:
        while not gate:
            time.sleep(0.005)
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(live_module, "build_base", slow_build)
    graph.ingest(cols_of(*[(f"u{k}", f"i{k % 7}", "view", 1.0, 100.0 + k, f"b{k}")
                           for k in range(50)]))
    graph.publish()  # the overlay outgrew the base: a compaction starts in the background
    assert graph._compaction is not None
    graph.erase_users(["u3"])
    gate.append(True)
    graph.wait_for_compaction(10)
    graph.publish()
    assert not [k for k in merged_edges(graph) if k[0] == "u3"]
    assert "u3" not in item_neighbours(graph, "i3")
    assert not (graph.store.main.keys >> np.int64(32) == 3).any()


def test_the_tailer_applies_an_erasure_at_its_place_and_a_checkpoint_keeps_it(
    tmp_path: Path,
) -> None:
    log = FileEventLog(tmp_path / "log")
    try:
        append_events(log, shared_history())
        log.append(encode_erasure(["u1"], appended_at=time.time(), origin="t"))
        append_events(log, cols_of(("u1", "i3", "view", 1.0, 30.0, "later")))
        graph = LiveGraph(config())
        tailer = LogTailer(log, graph, max_records=1)
        tailer.catch_up()
        graph.publish()
        assert tailer.visible_position == log.end
        edges = merged_edges(graph)
        assert {k for k in edges if k[0] == "u1"} == {("u1", "i3")}  # only the later event
        store = CheckpointStore(tmp_path / "ckpt")
        folder = store.save(graph.capture_state())
        names = (folder / "users.blob").read_bytes()
        assert names.count(b"u1") == 1  # the new profile's name, the erased one replaced
        restored = LiveGraph(config())
        restore_latest(restored, store)
        restored.publish()
        assert merged_edges(restored) == edges
        # A checkpoint from before the erasure plus the log after it: erased again.
        early = CheckpointStore(tmp_path / "early")
        before = LiveGraph(config())
        LogTailer(log, before, max_records=1).poll(0.0)  # the first record only
        early.save(before.capture_state())
        replayed = LiveGraph(config())
        restore_latest(replayed, early)
        LogTailer(log, replayed).catch_up()
        replayed.publish()
        assert merged_edges(replayed) == edges
    finally:
        log.close()


# -- the erasure ledger: bootstraps after the log lost the erasure record ------------------


class _NoMetrics:
    def record_ingest(self, *args: object) -> None:
        pass


def bootstrapped(data_dir: Path, redis_url: str | None = None) -> tuple[LiveGraph, IngestRuntime]:
    cfg = load_config(None)
    graph = LiveGraph(cfg.graph)
    ingest = IngestRuntime(cfg.ingest, graph, data_dir=data_dir, url_flag=redis_url)
    bootstrap(graph, ingest, DataSource(synthetic="5000"), _NoMetrics())  # type: ignore[arg-type]
    return graph, ingest


@pytest.mark.parametrize("backend", ["file", "redis"])
def test_a_bootstrap_after_the_log_lost_the_erasure_still_erases(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = None
    if backend == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        server.flush()
        url = server.url
    graph, ingest = bootstrapped(tmp_path / "a", url)
    graph.start()
    ingest.start()
    try:
        assert graph.current.users.get("u1") is not None
        assert ingest.delete_user("u1").found
        deadline = time.monotonic() + 10
        while graph.current.users.get("u1") is not None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        ingest.stop()
        graph.stop()
    if backend == "file":
        ledger = (tmp_path / "a" / "log" / "erasures.ledger").read_bytes()
        assert b"u1" not in ledger and len(ledger) == 16  # a hash and a time, never the id
        # Lose every checkpoint and every log segment: the bootstrap data holds u1 again.
        shutil.rmtree(tmp_path / "a" / "checkpoints")
        for segment in (tmp_path / "a" / "log").glob("*.seg"):
            segment.unlink()
        again = tmp_path / "a"
    else:
        client = server.client()
        assert client.hlen("recserver:events:erased") == 1
        client.delete("recserver:events")  # the stream trimmed past the erasure
        client.close()
        again = tmp_path / "new-replica"  # a replica that never saw the erasure
    graph, ingest = bootstrapped(again, url)
    try:
        snap = graph.current
        assert snap.users.get("u1") is None and snap.users.get("u2") is not None
        assert not [k for k in merged_edges(graph) if k[0] == "u1"]
    finally:
        ingest.stop()
