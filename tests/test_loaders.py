"""Loading and validating event files: every rejection reason, strict mode, formats, real data."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from recserver.graph import arrow_csv
from recserver.graph.config import EventWeightsConfig
from recserver.graph.events import Event, EventColumns, RejectedEvent
from recserver.graph.loaders import load_events, summarise_rejections
from recserver.graph.validate import StrictLoadError, validate_columns

NOW = 1_700_000_000.0
HEADER = "user_id,item_id,event,weight,timestamp"
GOOD = "u1,i1,view,1,1699999000"
REAL = Path(__file__).resolve().parents[2] / "shared/data/online_retail"
REAL_FILE = REAL / "uci_online_retail_purchases.csv.gz"
COLUMNS = ("user_codes", "item_codes", "type_codes", "weight", "timestamp")


@pytest.fixture
def cfg() -> EventWeightsConfig:
    return EventWeightsConfig()


def write(path: Path, text: str) -> Path:
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def csv_file(tmp_path: Path, *rows: str, name: str = "e.csv") -> Path:
    return write(tmp_path / name, "\n".join([HEADER, *rows]) + "\n")


def jsonl_file(tmp_path: Path, *rows: object, name: str = "e.jsonl") -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    return write(tmp_path / name, "\n".join(lines) + "\n")


def same_columns(a: EventColumns, b: EventColumns) -> None:
    for name in COLUMNS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert (a.user_names, a.item_names, a.type_names) == (b.user_names, b.item_names, b.type_names)
    assert a.event_ids == b.event_ids


CSV_BAD = [
    ("u2,i2,click", "wrong column count: expected 5, got 3"),
    ("u2,i2,click,1,1699999000,x", "wrong column count: expected 5, got 6"),
    (",i2,click,1,1699999000", "empty user_id"),
    ("u2, ,click,1,1699999000", "empty item_id"),
    ("u2,i2,wishlist,1,1699999000", "unknown event type 'wishlist'; known: add_to_cart, click"),
    ("u2,i2,click,abc,1699999000", "weight is not a number: 'abc'"),
    ("u2,i2,click,nan,1699999000", "weight is not finite (nan)"),
    ("u2,i2,click,inf,1699999000", "weight is not finite (inf)"),
    ("u2,i2,click,-3,1699999000", "weight is negative (-3.0); weights must be >= 0"),
    ("u2,i2,click,1,yesterday", "timestamp is not unix seconds or an ISO-8601 date: 'yesterday'"),
    ("u2,i2,click,1,nan", "timestamp is not finite (nan)"),
    ("u2,i2,click,1,-5", "timestamp is negative (-5.0)"),
    ("u2,i2,click,1,1800000000", "far-future timestamp 1800000000 (2027-01-15T08:00:00Z)"),
]


@pytest.mark.parametrize(("row", "reason"), CSV_BAD)
def test_csv_rejects_bad_row_with_line_and_reason(tmp_path, cfg, row, reason):
    cols = load_events(csv_file(tmp_path, GOOD, row, "u3,i3,purchase,2,1699999500"), cfg, now=NOW)
    assert len(cols) == 2  # the good rows around the bad one still load
    assert cols.user_names == ["u1", "u3"]  # the bad row leaves no id behind
    assert [r.line for r in cols.rejected] == [3]
    assert cols.rejected[0].reason.startswith(reason), cols.rejected[0].reason


JSON_GOOD = {"user_id": "u1", "item_id": "i1", "event": "view", "weight": 1, "timestamp": 1.7e9}
JSON_BAD = [
    ("{not json", "bad JSON: Expecting property name"),
    ("[1, 2]", "not a JSON object (array)"),
    ({"user_id": "u2", "item_id": "i2", "event": "view"}, "missing keys 'weight', 'timestamp'"),
    ({**JSON_GOOD, "user_id": None}, "user_id has the wrong type (null)"),
    ({**JSON_GOOD, "item_id": 1.5}, "item_id has the wrong type (number)"),
    ({**JSON_GOOD, "weight": True}, "weight is not a number: True"),
    ({**JSON_GOOD, "timestamp": "soon"}, "timestamp is not unix seconds or an ISO-8601 date"),
    ({**JSON_GOOD, "event": "wishlist"}, "unknown event type 'wishlist'"),
    ({**JSON_GOOD, "weight": -1}, "weight is negative (-1.0)"),
]


@pytest.mark.parametrize(("row", "reason"), JSON_BAD)
def test_jsonl_rejects_bad_row_with_line_and_reason(tmp_path, cfg, row, reason):
    cols = load_events(jsonl_file(tmp_path, JSON_GOOD, "", row, JSON_GOOD), cfg, now=NOW)
    assert len(cols) == 2
    assert [(r.line, r.reason[: len(reason)]) for r in cols.rejected] == [(3, reason)]


def test_json_accepts_integer_ids_iso_timestamps_and_numeric_strings(tmp_path, cfg):
    row = {
        "user_id": 17850,
        "item_id": "85123A",
        "event": "purchase",
        "weight": "6",
        "timestamp": "2010-12-01T08:26:00",
        "event_id": "e1",
    }
    cols = load_events(
        jsonl_file(tmp_path, row, {**row, "timestamp": "2010-12-01T09:26:00+01:00"}), cfg, now=NOW
    )
    assert cols.to_events()[0] == Event("17850", "85123A", "purchase", 6.0, 1291191960.0, "e1")
    assert cols.timestamp.tolist() == [1291191960.0, 1291191960.0]


def test_unknown_type_loads_when_a_default_weight_is_set(tmp_path):
    path = csv_file(tmp_path, "u1,i1,wishlist,1,1699999000")
    assert len(load_events(path, EventWeightsConfig(default=0.5), now=NOW)) == 1


def test_strict_mode_stops_at_the_first_bad_row(tmp_path, cfg):
    path = csv_file(tmp_path, GOOD, "u2,i2,click,-3,1699999000", "u3,i3,click", GOOD)
    with pytest.raises(StrictLoadError, match=r"e\.csv:3: weight is negative") as err:
        load_events(path, cfg, strict=True, now=NOW)
    assert (err.value.line, err.value.source) == (3, str(path))
    path = jsonl_file(tmp_path, JSON_GOOD, "oops", {**JSON_GOOD, "user_id": ""})
    with pytest.raises(StrictLoadError, match=r":2: bad JSON"):
        load_events(path, cfg, strict=True, now=NOW)
    assert len(load_events(csv_file(tmp_path, GOOD, GOOD), cfg, strict=True, now=NOW)) == 2


def test_csv_and_jsonl_give_identical_columns_plain_and_gzipped(tmp_path, cfg):
    rows = [
        ("u1", "i1", "view", 1, 1_699_999_000),
        ("u2", "i1", "purchase", 3, 1_699_999_001),
        ("u1", "i2", "click", 1.5, 1_699_999_002.5),
        ("u3", "i3", "add_to_cart", 2, 0),
    ]
    csv_text = "\n".join([HEADER, *(",".join(map(str, r)) for r in rows)]) + "\n"
    objs = [dict(zip(HEADER.split(","), r, strict=True)) for r in rows]
    first = load_events(write(tmp_path / "a.csv", csv_text), cfg, now=NOW)
    assert len(first) == 4 and not first.rejected and first.event_ids is None
    for name in ("b.csv.gz",):
        same_columns(first, load_events(write(tmp_path / name, csv_text), cfg, now=NOW))
    for name in ("c.jsonl", "d.jsonl.gz", "e.ndjson"):
        same_columns(first, load_events(jsonl_file(tmp_path, *objs, name=name), cfg, now=NOW))


def test_event_ids_quotes_blank_lines_and_crlf(tmp_path, cfg):
    text = (
        f"{HEADER},event_id\r\nu1,i1,view,1,1699999000,e1\r\n\r\n"
        '"u,2","i\n2",click,1,1699999000,\r\nu3,i3,view,1,1699999000\r\n'
    )
    cols = load_events(write(tmp_path / "q.csv", text), cfg, now=NOW)
    assert cols.user_names == ["u1", "u,2"] and cols.item_names == ["i1", "i\n2"]
    assert cols.event_ids == ["e1", ""]
    assert cols.rejected == [RejectedEvent(6, "wrong column count: expected 6, got 5")]


def test_small_chunks_keep_codes_and_line_numbers(tmp_path, cfg, monkeypatch):
    rows = [f"u{i % 7},i{i % 5},view,1,{1_699_000_000 + i}" for i in range(200)]
    rows[150] = "u1,i1,view"
    rows[40] = '"u1","i""1",view,1,1699999000'
    path = csv_file(tmp_path, *rows)
    whole = load_events(path, cfg, now=NOW)
    monkeypatch.setattr(arrow_csv, "CHUNK_BYTES", 64)  # many chunks, one quoted
    chunked = load_events(path, cfg, now=NOW)
    same_columns(whole, chunked)
    assert chunked.rejected == whole.rejected == [RejectedEvent(152, whole.rejected[0].reason)]
    assert 'i"1' in chunked.item_names


def test_bad_header_and_unknown_suffix_name_the_file(tmp_path, cfg):
    path = write(tmp_path / "h.csv", "user,item,event,weight,timestamp\nu1,i1,view,1,1\n")
    with pytest.raises(
        ValueError,
        match=r"h\.csv: header is .* expected exactly "
        r"'user_id,item_id,event,weight,timestamp'",
    ):
        load_events(path, cfg, now=NOW)
    with pytest.raises(ValueError, match=r"x\.txt: unknown event file type"):
        load_events(write(tmp_path / "x.txt", ""), cfg, now=NOW)


def test_summary_counts_reasons_and_shows_examples(tmp_path, cfg):
    rows = [GOOD, "u2,i2,click,-3,1", "u2,i2,click,-4,1", "u3,i3,click", "u4,i4,nope,1,1"]
    summary = summarise_rejections(load_events(csv_file(tmp_path, *rows), cfg, now=NOW))
    assert "loaded 1 events, rejected 4" in summary
    assert "2 x weight is negative" in summary and "1 x wrong column count" in summary
    assert "line 3: weight is negative (-3.0)" in summary
    assert summarise_rejections(EventColumns.from_events([])) == "loaded 0 events, none rejected"


def test_validate_columns_keeps_earlier_rejections_and_compacts_names(cfg):
    events = [
        Event("u1", "i1", "view", 1, 1),
        Event("", "i2", "view", 1, 2),
        Event("u3", "i1", "view", -1, 3),
    ]
    cols = EventColumns.from_events(events)
    cols.rejected.append(RejectedEvent(2, "from the parser"))
    good = validate_columns(cols, cfg, now=NOW)
    assert good.to_events() == events[:1]
    assert (good.user_names, good.item_names) == (["u1"], ["i1"])
    assert [(r.line, r.reason[:9]) for r in good.rejected] == [
        (2, "from the "),
        (2, "empty use"),
        (3, "weight is"),
    ]


@pytest.mark.skipif(not REAL_FILE.exists(), reason=f"real dataset not present at {REAL_FILE}")
def test_real_online_retail_file_loads_completely(cfg):
    cols = load_events(REAL_FILE, cfg, strict=True)
    assert (len(cols), len(cols.user_names), len(cols.item_names)) == (383_559, 4_324, 3_646)
    assert cols.rejected == [] and cols.type_names == ["purchase"]
    assert cols.timestamp.min() == 1291191960 and cols.timestamp.max() == 1323435000
    assert cols.weight.min() == 1 and cols.weight.max() == 4_800
