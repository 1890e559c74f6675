"""The item catalogue's parts: updates, state, view, per-request filter, log records, files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recserver.catalog.codec import (
    CatalogRecordError,
    decode_updates,
    encode_updates,
    is_catalog_record,
)
from recserver.catalog.describe import MAX_DESCRIBE_ITEMS, ItemState, describe_items
from recserver.catalog.files import load_view, save_view
from recserver.catalog.filter import ItemFilter
from recserver.catalog.items import MAX_BATCH_ITEMS, ItemUpdate, validate_updates
from recserver.catalog.items_file import read_items
from recserver.catalog.state import CatalogState
from recserver.core.errors import InvalidArgument
from recserver.graph.bootstrap import build_graph
from recserver.graph.config import GraphConfig
from recserver.graph.events import Event, EventColumns
from recserver.node.layout import RunDir
from recserver.node.mapped import MappedGraph
from recserver.node.snapshot_files import SnapshotWriter


def state_with(*updates: ItemUpdate, ids: list[int] | None = None) -> CatalogState:
    state = CatalogState()
    state.apply(np.asarray(ids if ids is not None else range(len(updates)), np.int32),
                list(updates))
    return state


def test_updates_set_only_what_they_name() -> None:
    state = state_with(ItemUpdate("a", hidden=True, categories=("shoes", "sale"),
                                  expires_at=50.0))
    state.apply(np.array([0], np.int32), [ItemUpdate("a", hidden=False)])
    rules = state.view().rules(0)
    assert (rules.hidden, rules.expires_at, set(rules.categories)) == (False, 50.0,
                                                                       {"shoes", "sale"})
    state.apply(np.array([0], np.int32), [ItemUpdate("a", categories=())])
    assert state.view().rules(0).categories == ()
    assert state.view().rules(99).hidden is False  # never described: no rules


def test_view_is_rebuilt_only_after_a_change_and_survives_a_round_trip(tmp_path: Path) -> None:
    state = state_with(ItemUpdate("a", categories=("x",)), ItemUpdate("b", hidden=True),
                       ItemUpdate("c", categories=("y", "x"), expires_at=7.0))
    view = state.view()
    assert state.view() is view
    save_view(tmp_path, view)
    loaded = load_view(tmp_path, mmap=True)
    restored = CatalogState.from_view(loaded)
    for item in range(3):
        assert restored.view().rules(item) == view.rules(item)
    restored.apply(np.array([5], np.int32), [ItemUpdate("f", categories=("z",))])
    assert restored.view() is not loaded
    assert restored.view().rules(5).categories == ("z",)
    assert restored.view().rules(2).categories == view.rules(2).categories


def test_filter_drops_hidden_expired_and_out_of_category_items() -> None:
    state = state_with(
        ItemUpdate("0", categories=("shoes",)), ItemUpdate("1", hidden=True, categories=("shoes",)),
        ItemUpdate("2", expires_at=100.0, categories=("bags",)),
        ItemUpdate("3", categories=("bags", "sale")), ItemUpdate("4"),
    )
    view = state.view()
    items = np.array([0, 1, 2, 3, 4, 9], np.int32)  # 9: past the described range
    rules = ItemFilter(view, now=99.0)
    assert rules.keep(items).tolist() == [True, False, True, True, True, True]
    assert ItemFilter(view, now=100.0).keep(items).tolist() == [True, False, False, True, True,
                                                                True]
    shoes_or_sale = ItemFilter(view, now=0.0, categories=("shoes", "sale"))
    assert shoes_or_sale.keep(items).tolist() == [True, False, False, True, False, False]
    assert shoes_or_sale.removed == 4
    unknown = ItemFilter(view, now=0.0, categories=("no-such",))
    assert not unknown.keep(items).any()


def test_no_filter_when_nothing_can_be_filtered() -> None:
    plain = state_with(ItemUpdate("a", categories=("x",))).view()
    assert ItemFilter.for_request(plain, 0.0) is None
    assert ItemFilter.for_request(None, 0.0) is None
    assert ItemFilter.for_request(plain, 0.0, ("x",)) is not None
    assert ItemFilter.for_request(state_with(ItemUpdate("a", hidden=True)).view(), 0.0)


@pytest.mark.parametrize(("update", "fix"), [
    (ItemUpdate(""), "item_id is empty"),
    (ItemUpdate("a", categories=("no spaces",)), "letters, digits"),
    (ItemUpdate("a", categories=("",)), "1-64 characters"),
    (ItemUpdate("a", categories=tuple(f"c{i}" for i in range(40))), "at most 32"),
    (ItemUpdate("a", expires_at=float("nan")), "unix seconds"),
    (ItemUpdate("a", expires_at=1.7e12), "unix seconds"),  # milliseconds sent as seconds
])
def test_bad_updates_refuse_the_whole_batch_with_a_fix(update: ItemUpdate, fix: str) -> None:
    with pytest.raises(InvalidArgument, match=fix) as raised:
        validate_updates([ItemUpdate("fine"), update])
    assert "items[1]" in str(raised.value) and "nothing was applied" in str(raised.value)


def test_batch_limits() -> None:
    with pytest.raises(InvalidArgument, match="split the batch"):
        validate_updates([ItemUpdate("a")] * (MAX_BATCH_ITEMS + 1))
    with pytest.raises(InvalidArgument, match="at least one"):
        validate_updates([])


def test_log_records_round_trip_and_are_told_from_event_batches() -> None:
    updates = [ItemUpdate("a", hidden=True), ItemUpdate("é/b", categories=("x", "y:z")),
               ItemUpdate("c", categories=(), expires_at=12.5)]
    payload = encode_updates(updates, appended_at=3.0, origin="host:1")
    assert is_catalog_record(payload) and not is_catalog_record(b"RL\x01")
    batch = decode_updates(payload)
    assert batch.updates == updates and batch.appended_at == 3.0 and batch.origin == "host:1"
    with pytest.raises(CatalogRecordError):
        decode_updates(payload[:-3])


def test_items_files_csv_and_jsonl(tmp_path: Path) -> None:
    csv_file = tmp_path / "items.csv"
    csv_file.write_text("item_id,hidden,categories,expires_at\n"
                        "i1,true,shoes|sale,\ni2,,,1700000000\ni3,false,,\n")
    assert read_items(csv_file) == [
        ItemUpdate("i1", hidden=True, categories=("shoes", "sale")),
        ItemUpdate("i2", expires_at=1_700_000_000.0), ItemUpdate("i3", hidden=False)]
    jsonl = tmp_path / "items.jsonl"
    jsonl.write_text('{"item_id": "i1", "categories": ["a"]}\n\n{"item_id": "i2", '
                     '"hidden": true}\n')
    assert read_items(jsonl) == [ItemUpdate("i1", categories=("a",)),
                                 ItemUpdate("i2", hidden=True)]


@pytest.mark.parametrize(("name", "text", "fix"), [
    ("a.csv", "item,hidden\nx,1\n", "must name item_id"),
    ("a.csv", "item_id,hidden\nx,maybe\n", r"a.csv:2: hidden='maybe'"),
    ("a.csv", "item_id,categories\nx,bad cat\n", "letters, digits"),
    ("a.jsonl", '{"item_id": "x", "colour": 1}\n', "unknown key"),
    ("a.jsonl", '{"item_id": ""}\n', "item_id is empty"),
    ("a.txt", "", "name it .csv or .jsonl"),
])
def test_items_file_errors_name_the_line_and_fix(tmp_path: Path, name: str, text: str,
                                                 fix: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=fix):
        read_items(path)


def test_category_filter_is_exact_beyond_64_categories() -> None:
    # Categories c0 and c64 share a bit of the per-item bitmask: the lists must settle it.
    updates = [ItemUpdate(f"x{i}", categories=(f"c{i}",)) for i in range(100)]
    view = state_with(*updates).view()
    assert len(view.categories) == 100
    items = np.arange(100, dtype=np.int32)
    assert np.flatnonzero(ItemFilter(view, 0.0, ("c64",)).keep(items)).tolist() == [64]
    assert np.flatnonzero(ItemFilter(view, 0.0, ("c0", "c99")).keep(items)).tolist() == [0, 99]
    assert view.items_in(view.category_ids(["c3", "c70"])).tolist() == [3, 70]


def test_workers_map_the_catalogue_published_with_each_snapshot(tmp_path: Path) -> None:
    graph, _ = build_graph(GraphConfig(), synthetic="2000")
    run = RunDir(tmp_path / "run")
    writer = SnapshotWriter(run, keep_s=60.0)
    graph.on_publish.append(writer.write)
    graph.update_items([ItemUpdate("i3", hidden=True, categories=("x",)),
                        ItemUpdate("new-item", categories=("y",))])
    graph.publish()
    mapped = MappedGraph(run)
    assert mapped.wait_ready(5.0)
    snap = mapped.current
    assert snap.catalog is not None and not snap.catalog.hidden.flags.writeable  # mapped
    i3, new = snap.items.get("i3"), snap.items.get("new-item")
    assert i3 is not None and new is not None
    assert snap.catalog.rules(i3) == graph.current.catalog.rules(i3)  # type: ignore[union-attr]
    assert snap.catalog.rules(new).categories == ("y",)
    folders = {p.name for p in run.snapshots.iterdir() if p.name.startswith("cat-")}
    graph.ingest(batch_of_one())
    graph.publish()  # no catalogue change: no new catalogue folder
    assert {p.name for p in run.snapshots.iterdir() if p.name.startswith("cat-")} == folders
    assert mapped.refresh() and mapped.current.catalog is snap.catalog


def test_describe_items_reads_the_published_snapshot_on_builder_and_worker(
    tmp_path: Path,
) -> None:
    graph, _ = build_graph(GraphConfig(), synthetic="2000")
    run = RunDir(tmp_path / "run")
    graph.on_publish.append(SnapshotWriter(run, keep_s=60.0).write)
    graph.update_items([ItemUpdate("i3", hidden=True, categories=("x",), expires_at=5.0),
                        ItemUpdate("new-item", categories=("y",))])
    graph.publish()
    graph.update_items([ItemUpdate("later-item", hidden=True)])  # not published yet
    mapped = MappedGraph(run)
    assert mapped.wait_ready(5.0)
    ids = ["i3", "new-item", "i4", "later-item", "", "no-such-item"]
    for source in (graph, mapped):
        states = describe_items(source, ids)
        assert states.snapshot_version == graph.current.version
        i3, new, i4, later, blank, unknown = states.items
        degree = int(graph.current.item_degree[graph.current.items.get("i3") or 0])
        assert degree > 0
        assert i3 == ItemState("i3", True, True, 5.0, ("x",), degree)
        assert new == ItemState("new-item", True, False, 0.0, ("y",), 0)  # catalogue only
        assert i4.found and not i4.hidden and i4.categories == ()
        assert [s.found for s in (later, blank, unknown)] == [False, False, False]
    graph.publish()
    assert describe_items(graph, ["later-item"]).items[0].hidden
    with pytest.raises(InvalidArgument, match="the limit is 1000"):
        describe_items(graph, ["i3"] * (MAX_DESCRIBE_ITEMS + 1))


def batch_of_one() -> EventColumns:
    return EventColumns.from_events([Event("u1", "i2", "purchase", 1.0, 2e9)])
