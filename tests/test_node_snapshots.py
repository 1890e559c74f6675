"""Published snapshot files: what a worker maps is the builder's graph, swapped safely."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from recserver.graph.bootstrap import build_graph
from recserver.graph.config import GraphConfig, WalkConfig
from recserver.graph.events import Event, EventColumns
from recserver.graph.live import LiveGraph
from recserver.graph.walk import run_walk
from recserver.node.layout import RunDir
from recserver.node.mapped import MappedGraph
from recserver.node.snapshot_files import SnapshotWriter

SIDES = ("base_users", "base_items", "over_users", "over_items")


def events(users: list[str], items: list[str], ts: float = 1.7e9) -> EventColumns:
    return EventColumns.from_events(
        [Event(u, i, "purchase", 1.0, ts) for u, i in zip(users, items, strict=True)])


def published(tmp_path: Path) -> tuple[LiveGraph, SnapshotWriter, MappedGraph]:
    graph, _ = build_graph(GraphConfig(), synthetic="2000")
    run = RunDir(tmp_path / "run")
    writer = SnapshotWriter(run, keep_s=0.0)
    graph.on_publish.append(writer.write)
    writer.write(graph.current)
    mapped = MappedGraph(run)
    assert mapped.wait_ready(5.0)
    return graph, writer, mapped


def assert_same(a, b) -> None:  # type: ignore[no-untyped-def]
    assert (a.version, a.n_users, a.n_items, a.n_edges) == (b.version, b.n_users, b.n_items,
                                                             b.n_edges)
    for side in SIDES:
        for array in ("indptr", "packed", "row_weight"):
            assert np.array_equal(getattr(getattr(a, side), array),
                                  getattr(getattr(b, side), array)), (side, array)
    assert np.array_equal(a.item_degree, b.item_degree)
    names = [a.users.name(i) for i in range(a.n_users)]
    assert [b.users.get(n) for n in names] == list(range(a.n_users))
    assert b.items.names(range(b.n_items)) == a.items.names(range(a.n_items))


def test_a_worker_maps_exactly_the_builders_snapshot_read_only(tmp_path: Path) -> None:
    graph, _, mapped = published(tmp_path)
    assert_same(graph.current, mapped.current)
    assert not mapped.current.base_users.packed.flags.writeable
    # The same seeded walk gives the same answer on both.
    snap = graph.current
    seeds = np.flatnonzero(np.asarray(snap.item_degree) > 0)[:3].astype(np.int32)
    weights = np.ones(3, np.float32)
    here = run_walk(snap, seeds, weights, WalkConfig(steps=5_000), k=10, rng_seed=3)
    there = run_walk(mapped.current, seeds, weights, WalkConfig(steps=5_000), k=10, rng_seed=3)
    assert np.array_equal(here.items, there.items)


def test_new_users_and_items_reach_workers_in_overlays_then_in_a_new_base(tmp_path: Path) -> None:
    graph, writer, mapped = published(tmp_path)
    graph.ingest(events(["new-user", "new-user"], ["new-item", "i1"]))
    graph.publish()
    assert mapped.refresh()
    snap = mapped.current
    user = snap.users.get("new-user")
    assert user is not None and snap.items.get("new-item") is not None
    items, _ = snap.user_items(user)
    assert set(snap.items.names(items.tolist())) == {"new-item", "i1"}
    first_base = snap.base_users
    graph.publish(compact=True)
    assert mapped.refresh()
    assert mapped.current.base_users is not first_base  # the base was re-mapped
    assert_same(graph.current, mapped.current)
    assert not mapped.refresh()  # nothing new: no swap
    assert writer.writes == 3


def test_versions_only_grow_across_builder_restarts(tmp_path: Path) -> None:
    graph, writer, _ = published(tmp_path)
    graph.publish()
    graph.publish()
    last = writer.last_version()
    assert last == graph.current.version == 3
    restarted = LiveGraph(GraphConfig(), first_version=SnapshotWriter(writer.run).last_version()
                          + 1)
    restarted.ingest(events(["u"], ["i"]))
    assert restarted.publish().version == last + 1


def test_readers_keep_walking_while_snapshots_swap_and_old_folders_go(tmp_path: Path) -> None:
    graph, writer, mapped = published(tmp_path)
    mapped.poll_s = 0.001
    mapped.start()
    errors: list[BaseException] = []
    versions: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                snap = mapped.current  # taken once per "request", like the recommender
                seeds = np.flatnonzero(np.asarray(snap.item_degree) > 0)[:2].astype(np.int32)
                run_walk(snap, seeds, np.ones(2, np.float32), WalkConfig(steps=2_000), k=5)
                versions.append(snap.version)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(40):
            graph.ingest(events([f"u-{i}"], [f"item-{i % 7}"], ts=1.7e9 + i))
            graph.publish(compact=(i % 10 == 9))  # folders of older versions are deleted
        # Folders deleted under a load never kill the watcher: it keeps following.
        assert mapped.watching
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        mapped.stop()
    assert not errors, errors  # no reader ever saw a torn or vanished snapshot
    # keep_s=0 deletes folders at once, so a load may find its folder gone: it is retried at
    # the next manifest (what the worker logs), never half-swapped.
    assert len(versions) > 10
    # Each reader sees versions in order; the last one is the builder's.
    mapped.refresh()
    assert mapped.current.version == graph.current.version
    kept = {p.name for p in writer.run.snapshots.iterdir() if p.is_dir()}
    assert len(kept) <= 4, kept  # collected, not piling up


def test_a_half_written_or_missing_manifest_is_not_mapped(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run").create()
    mapped = MappedGraph(run)
    assert not mapped.wait_ready(0.05)
    run.manifest.write_text('{"format": 1, "version": 3, "ba')
    assert not mapped.refresh() and not mapped.ready
    with pytest.raises(RuntimeError):
        _ = mapped.current


def mapped_from(array: np.ndarray) -> str:
    """The snapshot folder whose file ``array`` maps ("" when it is private memory)."""
    return Path(array.filename).parent.name if isinstance(array, np.memmap) else ""


def test_the_builder_serves_the_base_it_published_from_the_files(tmp_path: Path) -> None:
    graph, _ = build_graph(GraphConfig(), synthetic="2000")
    private = graph.current
    run = RunDir(tmp_path / "run")
    writer = SnapshotWriter(run, keep_s=0.0)
    writer.on_base.append(graph.adopt_base)
    graph.on_publish.append(writer.write)
    writer.write(graph.current)
    snap = graph.current
    base = json.loads(run.manifest.read_text())["base"]
    assert snap.version == private.version
    for side in ("base_users", "base_items"):
        for name in ("indptr", "packed", "row_weight"):
            array = getattr(getattr(snap, side), name)
            assert mapped_from(array) == base, (side, name)  # no private copy held
            assert np.array_equal(array, getattr(getattr(private, side), name))
    del private
    seeds = np.flatnonzero(np.asarray(snap.item_degree) > 0)[:3].astype(np.int32)
    before = run_walk(snap, seeds, np.ones(3, np.float32), WalkConfig(steps=5_000), k=10,
                      rng_seed=3)
    # An overlay publish keeps the mapped base and does not write it again.
    graph.ingest(events(["new-user"], ["i1"]))
    graph.publish()
    assert json.loads(run.manifest.read_text())["base"] == base
    assert mapped_from(graph.current.base_users.packed) == base
    mapped = MappedGraph(run)
    assert mapped.wait_ready(5.0)
    assert_same(graph.current, mapped.current)
    # A compaction installs a new base: written once, then served from its own files.
    graph.publish(compact=True)
    rebuilt = json.loads(run.manifest.read_text())["base"]
    assert rebuilt != base
    assert mapped_from(graph.current.base_items.packed) == rebuilt
    again = run_walk(snap, seeds, np.ones(3, np.float32), WalkConfig(steps=5_000), k=10,
                     rng_seed=3)
    assert np.array_equal(before.items, again.items)


def test_a_stale_base_read_back_is_not_adopted(tmp_path: Path) -> None:
    graph, _ = build_graph(GraphConfig(), synthetic="2000")
    first = graph.current
    graph.publish(compact=True)  # another base installed before the first one's files came back
    assert not graph.adopt_base(first.base_users, first.base_users, first.base_items)
    assert graph.current.base_users is not first.base_users


def test_names_first_seen_since_the_base_resolve_on_the_worker(tmp_path: Path) -> None:
    graph, _, mapped = published(tmp_path)
    new_users = [f"late-{i}" for i in range(300)]
    graph.ingest(events(new_users, [f"late-item-{i % 3}" for i in range(300)]))
    graph.publish()
    assert mapped.refresh()
    here, there = graph.current, mapped.current
    known = here.users.name(0)
    asked = [new_users[7], "nobody", known, new_users[299]]
    assert there.users.lookup_many(asked).tolist() == [here.users.get(n) if n in here.users
                                                       else -1 for n in asked]
    assert there.users.get("late-42") == here.users.get("late-42")
    assert "late-item-2" in there.items and "late-item-9" not in there.items
    assert there.users.names([here.users.get("late-5")]) == ["late-5"]
    assert len(there.users) == len(here.users)
