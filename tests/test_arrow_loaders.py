"""Arrow-based loading: the same events in CSV, JSON lines and Parquet give the same graph; bad
rows are named in every format; a file read in many small blocks streams through unchanged."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recserver.graph import arrow_csv, arrow_jsonl, arrow_parquet
from recserver.graph.bootstrap import build_graph
from recserver.graph.config import EventWeightsConfig, GraphConfig
from recserver.graph.event_files import write_events
from recserver.graph.events import Event, EventColumns, RejectedEvent
from recserver.graph.loaders import iter_events, load_events
from recserver.graph.synthetic import generate
from recserver.graph.validate import StrictLoadError
from tests.graph_helpers import merged_edges

NOW = 1_700_000_000.0
HEADER = "user_id,item_id,event,weight,timestamp"
FORMATS = ("csv", "csv.gz", "jsonl", "jsonl.gz", "parquet")


@pytest.fixture
def cfg() -> EventWeightsConfig:
    return EventWeightsConfig()


def _events(n: int = 3000) -> EventColumns:
    cols = generate(n, seed=3)
    # Keep every timestamp before NOW so the far-future check rejects nothing.
    cols.timestamp = cols.timestamp - cols.timestamp.max() + NOW - 10
    return cols


def _graph_edges(path: Path) -> dict[tuple[str, str], float]:
    cfg = GraphConfig()
    live, report = build_graph(cfg, events=path)
    assert report.rejected == 0
    return merged_edges(live)


def test_every_format_gives_the_same_columns_and_graph(tmp_path, cfg):
    cols = _events()
    paths = {f: write_events(cols, tmp_path / f"e.{f}") for f in FORMATS}
    loaded = {f: load_events(p, cfg, now=NOW) for f, p in paths.items()}
    for f, got in loaded.items():
        assert got.to_events() == cols.to_events(), f
        assert not got.rejected, f
    edges = {f: _graph_edges(tmp_path / f"e.{f}") for f in ("csv", "jsonl", "parquet")}
    assert edges["csv"] == edges["jsonl"] == edges["parquet"]
    assert len(edges["csv"]) > 300


def test_many_small_blocks_give_the_same_events_as_one(tmp_path, cfg, monkeypatch):
    cols = _events(5000)
    for f in ("csv", "jsonl", "parquet"):
        path = write_events(cols, tmp_path / f"s.{f}")
        whole = load_events(path, cfg, now=NOW)
        monkeypatch.setattr(arrow_csv, "CHUNK_BYTES", 997)
        monkeypatch.setattr(arrow_jsonl, "CHUNK_BYTES", 997)
        monkeypatch.setattr(arrow_parquet, "BATCH_ROWS", 97)
        batches = list(iter_events(path, cfg, now=NOW))
        assert len(batches) > 40, f
        streamed = [e for b in batches for e in b.to_events()]
        assert streamed == whole.to_events() == cols.to_events(), f
        assert load_events(path, cfg, now=NOW).to_events() == streamed, f
        monkeypatch.undo()


def test_csv_bad_rows_keep_their_lines_across_block_edges(tmp_path, cfg, monkeypatch):
    rows = [f"u{i % 11},i{i % 13},view,1,{1_699_000_000 + i}" for i in range(300)]
    rows[10] = "u1,i1"  # line 12
    rows[100] = '"u,1","i\n1",view,1,1699000000'  # lines 102-103
    rows[200] = "u2,i2,view,x,1699000000"  # line 203 (after the two-line record: 204)
    rows.insert(250, "")  # a blank line: skipped, still counted
    path = tmp_path / "b.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    monkeypatch.setattr(arrow_csv, "CHUNK_BYTES", 211)
    cols = load_events(path, cfg, now=NOW)
    assert cols.rejected == [
        RejectedEvent(12, "wrong column count: expected 5, got 2"),
        RejectedEvent(203, "weight is not a number: 'x'"),
    ]
    assert len(cols) == 298 and "i\n1" in cols.item_names
    last = cols.to_events()[-1]
    assert last.timestamp == 1_699_000_299


def _parquet(path: Path, **columns: object) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def test_parquet_bad_rows_are_named_by_row(tmp_path, cfg):
    path = _parquet(
        tmp_path / "p.parquet",
        user_id=["u1", None, "u3", "u4", "u5", ""],
        item_id=["i1", "i2", "i3", "i4", "i5", "i6"],
        event=["view", "view", "wishlist", "view", "view", "view"],
        weight=[1.0, 1.0, 1.0, -2.0, None, 1.0],
        timestamp=[1.6e9] * 6,
    )
    cols = load_events(path, cfg, now=NOW)
    assert cols.to_events() == [Event("u1", "i1", "view", 1.0, 1.6e9)]
    assert [(r.line, r.reason[:22]) for r in cols.rejected] == [
        (2, "user_id is null"),
        (3, "unknown event type 'wi"),
        (4, "weight is negative (-2"),
        (5, "weight is null"),
        (6, "empty user_id"),
    ]
    with pytest.raises(StrictLoadError, match=r"p\.parquet:2: user_id is null"):
        load_events(path, cfg, strict=True, now=NOW)


def test_parquet_integer_ids_timestamp_type_and_text_numbers(tmp_path, cfg):
    ts = pa.array([1_600_000_000_000, 1_600_000_001_000], pa.timestamp("ms", tz="UTC"))
    path = _parquet(
        tmp_path / "t.parquet", user_id=[17, 18], item_id=["a", "b"], event=["view", "click"],
        weight=["2", "oops"], timestamp=ts, event_id=["e1", None],
    )
    cols = load_events(path, cfg, now=NOW)
    assert cols.to_events() == [Event("17", "a", "view", 2.0, 1.6e9, "e1")]
    assert cols.rejected == [RejectedEvent(2, "weight is not a number: 'oops'")]
    with pytest.raises(ValueError, match=r"m\.parquet: Parquet columns \['weight'\] missing"):
        load_events(_parquet(tmp_path / "m.parquet", user_id=["u"], item_id=["i"],
                             event=["view"], timestamp=[1.0]), cfg, now=NOW)


def test_jsonl_block_with_one_bad_line_keeps_the_others(tmp_path, cfg, monkeypatch):
    good = {"user_id": "u1", "item_id": "i1", "event": "view", "weight": 1, "timestamp": 1.6e9}
    lines = [json.dumps({**good, "timestamp": 1.6e9 + i}) for i in range(50)]
    lines[7] = "{oops"
    lines[30] = json.dumps({**good, "user_id": 5})  # an integer id: Arrow refuses, Python reads
    path = tmp_path / "j.jsonl.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    monkeypatch.setattr(arrow_jsonl, "CHUNK_BYTES", 500)
    cols = load_events(path, cfg, now=NOW)
    assert len(cols) == 49 and sorted(cols.user_names) == ["5", "u1"]
    assert [(r.line, r.reason[:9]) for r in cols.rejected] == [(8, "bad JSON:")]
    assert 1.6e9 + 7 not in cols.timestamp.tolist()


def test_not_utf8_names_the_file(tmp_path, cfg):
    path = tmp_path / "x.csv"
    path.write_bytes((HEADER + "\n").encode() + b"u\xff1,i1,view,1,1\n")
    with pytest.raises(ValueError, match=r"x\.csv: not UTF-8 text"):
        load_events(path, cfg, now=NOW)
