"""Log records (the codec) and the tailer that applies them to a graph, in process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recserver.eventlog.base import START
from recserver.eventlog.codec import (
    RecordFormatError,
    concat_batches,
    decode_batch,
    encode_batch,
)
from recserver.eventlog.file_log import FileEventLog
from recserver.graph.config import EventWeightsConfig, GraphConfig, PruneConfig
from recserver.graph.dedup import id_keys
from recserver.graph.events import Event, EventColumns
from recserver.graph.live import LiveGraph
from recserver.ingest.recorder import event_keys
from recserver.ingest.tailer import LogTailer
from tests.graph_helpers import merged_edges


def config() -> GraphConfig:
    return GraphConfig(
        event_weights=EventWeightsConfig(transform="linear", half_life_days=None),
        prune=PruneConfig(hub_percentile=None),
    )


def cols_of(*rows: tuple[str, str, str, float, float, str]) -> EventColumns:
    return EventColumns.from_events([Event(u, i, t, w, ts, e) for u, i, t, w, ts, e in rows])



class Recorder:
    def __init__(self) -> None:
        self.applied_n = 0
        self.duplicates = 0
        self.apply_delays: list[float] = []
        self.visible_delays: list[float] = []
        self.errors: list[str] = []

    def applied(self, accepted: int, duplicates: int) -> None:
        self.applied_n += accepted
        self.duplicates += duplicates

    def apply_delay(self, seconds: float) -> None:
        self.apply_delays.append(seconds)

    def visible_delay(self, seconds: float) -> None:
        self.visible_delays.append(seconds)

    def log_error(self, op: str) -> None:
        self.errors.append(op)


# -- the codec --------------------------------------------------------------------------------


def test_a_record_round_trips() -> None:
    cols = cols_of(("u1", "i1", "view", 1.0, 10.0, "e1"), ("u2", "i1", "purchase", 3.0, 11.5, ""),
                   ("u1", "ï2", "click", 0.5, 12.0, "e3"))
    keys = event_keys(cols.event_ids or [])
    batch = decode_batch(encode_batch(cols, keys, appended_at=123.5, origin="host:1"))
    assert batch.appended_at == 123.5 and batch.origin == "host:1"
    assert batch.keys is not None and batch.keys.tolist() == keys.tolist()
    assert batch.keys[1] == 0 and batch.keys[0] == id_keys(["e1"])[0]
    back = batch.cols.to_events()
    assert [(e.user_id, e.item_id, e.event, e.weight, e.timestamp) for e in back] == [
        ("u1", "i1", "view", 1.0, 10.0), ("u2", "i1", "purchase", 3.0, 11.5),
        ("u1", "ï2", "click", 0.5, 12.0),
    ]
    assert batch.cols.event_ids is None  # only the keys travel


def test_names_holding_newlines_and_empty_batches_survive() -> None:
    cols = cols_of(("line\nbreak", "i\n", "view", 1.0, 1.0, ""), ("", "x", "view", 1.0, 2.0, ""))
    batch = decode_batch(encode_batch(cols, None, appended_at=0.0, origin=""))
    assert batch.keys is None
    assert [e.user_id for e in batch.cols.to_events()] == ["line\nbreak", ""]
    assert [e.item_id for e in batch.cols.to_events()] == ["i\n", "x"]
    empty = decode_batch(encode_batch(cols_of(), None, appended_at=0.0, origin="o"))
    assert len(empty.cols) == 0 and empty.cols.user_names == []


@pytest.mark.parametrize("damage", ["magic", "truncate", "extra", "codes"])
def test_damaged_records_are_refused(damage: str) -> None:
    cols = cols_of(("u1", "i1", "view", 1.0, 10.0, ""), ("u2", "i2", "view", 1.0, 10.0, ""))
    good = bytearray(encode_batch(cols, None, appended_at=1.0, origin="o"))
    if damage == "magic":
        good[0:2] = b"XX"
    elif damage == "truncate":
        good = good[:-3]
    elif damage == "extra":
        good += b"\x00"
    else:  # the user codes array (after header 16 + weights 16 + timestamps 16) points past 2
        good[48:52] = (7).to_bytes(4, "little")
    with pytest.raises(RecordFormatError):
        decode_batch(bytes(good))


def test_concatenated_records_apply_like_separate_ones() -> None:
    a = cols_of(("u1", "i1", "view", 1.0, 10.0, "a"), ("u2", "i2", "click", 1.0, 10.0, ""))
    b = cols_of(("u2", "i1", "view", 1.0, 11.0, "b"), ("u1", "i1", "view", 1.0, 12.0, "a"))
    c = cols_of(("u3", "i3", "purchase", 2.0, 13.0, ""))
    batches = [decode_batch(encode_batch(x, event_keys(x.event_ids) if x.event_ids else None,
                                         appended_at=0.0, origin="o")) for x in (a, b, c)]
    together, together_keys = concat_batches(batches)
    one = LiveGraph(config())
    outcome = one.ingest(together, event_keys=together_keys)
    assert outcome.duplicate.tolist() == [False, False, False, True, False]  # "a" twice
    one.publish()
    separate = LiveGraph(config())
    for batch in batches:
        separate.ingest(batch.cols, event_keys=batch.keys)
    separate.publish()
    assert merged_edges(one) == merged_edges(separate) == {
        # click 2 x 1; purchase 8 x weight 2
        ("u1", "i1"): 1.0, ("u2", "i2"): 2.0, ("u2", "i1"): 1.0, ("u3", "i3"): 16.0,
    }


def test_precomputed_keys_dedup_like_hashing_the_ids() -> None:
    cols = cols_of(("u1", "i1", "view", 1.0, 10.0, "same"))
    graph = LiveGraph(config())
    graph.ingest(cols)  # hashes cols.event_ids itself
    again = graph.ingest(cols, event_keys=event_keys(["same"]))
    assert again.n_accepted == 0 and again.duplicate.tolist() == [True]
    assert graph.seen(cols).tolist() == [True]
    assert graph.seen(cols_of(("u1", "i1", "view", 1.0, 10.0, "other"))).tolist() == [False]
    # Without an id the tuple (user, item, type, time) is the key; unknown users are new.
    graph.ingest(cols_of(("u1", "i1", "click", 1.0, 20.0, "")))
    assert graph.seen(cols_of(("u1", "i1", "click", 1.0, 20.0, ""),
                              ("u1", "i1", "click", 1.0, 21.0, ""),
                              ("nobody", "i1", "click", 1.0, 20.0, ""))).tolist() == [
        True, False, False]


# -- the tailer -------------------------------------------------------------------------------


def append_events(log: FileEventLog, cols: EventColumns, at: float = 0.0) -> None:
    keys = event_keys(cols.event_ids) if cols.event_ids else None
    log.append(encode_batch(cols, keys, appended_at=at, origin="test"))


def test_the_tailer_applies_the_log_and_a_replay_changes_nothing(tmp_path: Path) -> None:
    log = FileEventLog(tmp_path)
    try:
        for k in range(5):
            append_events(log, cols_of(*[(f"u{k}", f"i{j}", "view", 1.0, 10.0 + j, f"e{k}-{j}")
                                         for j in range(3)]))
        graph = LiveGraph(config())
        seen = Recorder()
        tailer = LogTailer(log, graph, observer=seen, max_records=2, max_events=4)
        assert tailer.catch_up() == 15
        graph.publish()
        assert tailer.position == log.end and graph.applied_position == str(log.end)
        assert tailer.visible_position == log.end
        assert seen.applied_n == 15
        assert len(seen.apply_delays) == 5 and len(seen.visible_delays) == 5
        edges = merged_edges(graph)
        assert len(edges) == 15 and set(edges.values()) == {1.0}
        assert tailer.lag_seconds() == 0.0
        # A second replica-like pass over the same records from the start applies nothing new.
        graph.applied_position = None
        replay = LogTailer(log, graph, observer=seen)
        assert replay.position == START
        replay.catch_up()
        graph.publish()
        assert seen.duplicates == 15 and merged_edges(graph) == edges
        assert graph.events_applied == 15
    finally:
        log.close()


def test_the_tailer_skips_a_record_it_cannot_decode(tmp_path: Path) -> None:
    log = FileEventLog(tmp_path)
    try:
        append_events(log, cols_of(("u1", "i1", "view", 1.0, 10.0, "a")))
        log.append(b"not an event record")
        append_events(log, cols_of(("u2", "i2", "view", 1.0, 10.0, "b")))
        graph = LiveGraph(config())
        seen = Recorder()
        tailer = LogTailer(log, graph, observer=seen)
        tailer.catch_up()
        graph.publish()
        assert tailer.records_skipped == 1 and seen.errors == ["decode"]
        assert set(merged_edges(graph)) == {("u1", "i1"), ("u2", "i2")}
        assert tailer.position == log.end
    finally:
        log.close()


def test_the_background_tailer_follows_new_appends(tmp_path: Path) -> None:
    log = FileEventLog(tmp_path, fsync="interval", fsync_interval_s=0.01)
    graph = LiveGraph(config())
    tailer = LogTailer(log, graph, block_s=0.02)
    tailer.start()
    try:
        for k in range(10):
            append_events(log, cols_of((f"u{k}", "i", "view", 1.0, 1.0, f"x{k}")))
        deadline = 200
        while tailer.position < log.end and deadline:
            tailer._stop.wait(0.05)
            deadline -= 1
        assert tailer.position == log.end
        assert graph.events_applied == 10
    finally:
        tailer.stop()
        log.close()


def test_visible_position_waits_for_the_publish(tmp_path: Path) -> None:
    log = FileEventLog(tmp_path)
    try:
        graph = LiveGraph(config())
        graph.ingest(cols_of(("u0", "i0", "view", 1.0, 1.0, "")))
        graph.publish()
        tailer = LogTailer(log, graph)
        append_events(log, cols_of(("u1", "i1", "view", 1.0, 1.0, "a")))
        tailer.poll(0.0)
        assert tailer.position == log.end and tailer.visible_position == START
        graph.publish()
        assert tailer.visible_position == log.end
        assert np.isfinite(tailer.lag_seconds())
    finally:
        log.close()
