"""Publishing snapshots: overlay, compaction, atomic swap under concurrent readers."""

from __future__ import annotations

import threading
import weakref

import numpy as np
import pytest

import recserver.graph.live as live_module
from recserver.graph.config import EventWeightsConfig, GraphConfig, PruneConfig
from recserver.graph.events import Event, EventColumns
from recserver.graph.live import LiveGraph
from tests.graph_helpers import merged_edges


def config(**kw: object) -> GraphConfig:
    return GraphConfig(
        event_weights=EventWeightsConfig(transform="linear", half_life_days=None),
        prune=PruneConfig(hub_percentile=None),
        **kw,  # type: ignore[arg-type]
    )


def batch(*rows: tuple[str, str], ts: float = 1.0) -> EventColumns:
    return EventColumns.from_events([Event(u, i, "view", 1, ts) for u, i in rows])



def test_first_publish_builds_the_base() -> None:
    live = LiveGraph(config())
    live.ingest(batch(("u1", "a"), ("u1", "b"), ("u2", "a")))
    snap = live.publish()
    assert snap.version == 1
    assert snap.base_users.nnz == 3 and snap.over_users.nnz == 0
    assert merged_edges(live) == {("u1", "a"): 1.0, ("u1", "b"): 1.0, ("u2", "a"): 1.0}
    assert snap.item_degree.tolist() == [2, 1]


def test_small_delta_goes_to_the_overlay_without_rebuilding_the_base() -> None:
    live = LiveGraph(config(compact_overlay_fraction=0.5))
    live.ingest(batch(*[(f"u{k}", f"i{k % 5}") for k in range(40)]))
    first = live.publish()
    live.ingest(batch(("u1", "i1"), ("new-user", "i2"), ("u3", "new-item"), ts=2.0))
    second = live.publish()
    assert second.base_users is first.base_users  # the base arrays are shared, not rebuilt
    assert second.over_users.nnz == 3
    edges = merged_edges(live)
    assert edges[("u1", "i1")] == 2.0  # extra weight on an existing edge
    assert edges[("new-user", "i2")] == 1.0
    assert edges[("u3", "new-item")] == 1.0
    assert second.n_users == 41 and second.n_items == 6
    # The base covers only the nodes it was built with; the overlay covers all.
    assert second.base_users.n_rows == 40 and second.over_users.n_rows == 41


def test_overlay_past_the_threshold_triggers_compaction() -> None:
    live = LiveGraph(config(compact_overlay_fraction=0.1))
    live.ingest(batch(*[(f"u{k}", f"i{k % 5}") for k in range(20)]))
    first = live.publish()
    live.ingest(batch(*[(f"v{k}", "i0") for k in range(5)]))  # 25% of the base
    during = live.publish()  # starts a background compaction; the overlay serves meanwhile
    assert during.base_users is first.base_users and during.over_users.nnz == 5
    assert live.wait_for_compaction(timeout=60)
    second = live.current  # the compaction published its new base when it finished
    assert second.version > during.version
    assert second.base_users is not first.base_users
    assert second.over_users.nnz == 0
    assert second.base_users.nnz == 25
    assert len(live.store.main) == 25 and len(live.store.pending) == 0


def test_a_background_compaction_hands_the_freed_heap_back_once_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[int, bool, int]] = []  # (compactions, old main still held, thread)
    live = LiveGraph(config(compact_overlay_fraction=0.1))

    def release() -> int:
        seen.append((live.compactions, old_main() is not None, threading.get_ident()))
        return 0

    live.ingest(batch(*[(f"u{k}", f"i{k % 5}") for k in range(20)]))
    live.publish()
    monkeypatch.setattr(live_module, "release_free_heap", release)
    old_main = weakref.ref(live.store.main.keys)  # the run the compaction replaces
    live.ingest(batch(*[(f"v{k}", "i0") for k in range(5)]))
    live.publish()  # starts the background compaction
    assert live.wait_for_compaction(timeout=60)
    # Called once, in the compaction thread, after the new base was installed and the
    # replaced run was let go (nothing of the old build is held while the heap is trimmed).
    assert len(seen) == 1
    assert seen[0][0] == 2 and not seen[0][1] and seen[0][2] != threading.get_ident()


def test_a_rebuild_in_publish_hands_the_heap_back_once_the_old_base_is_let_go(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    live = LiveGraph(config())
    live.ingest(batch(*[(f"u{k}", f"i{k % 5}") for k in range(20)]))
    live.publish()
    old_base = weakref.ref(live.current.base_users.packed)
    seen: list[bool] = []  # whether the replaced base was still held when the heap was trimmed
    monkeypatch.setattr(live_module, "release_free_heap", lambda: seen.append(
        old_base() is not None) or 0)
    live.ingest(batch(("w", "i1")))
    snap = live.publish(compact=True)
    assert seen == [False]
    assert snap is live.current
    live.ingest(batch(("w", "i2")))
    live.publish()  # an overlay publish builds no base: nothing to hand back
    assert seen == [False]


def test_compaction_keeps_the_unpruned_edges_in_the_store() -> None:
    cfg = config()
    cfg.prune = PruneConfig(max_user_degree=1, hub_percentile=None)
    live = LiveGraph(cfg)
    live.ingest(batch(("u", "a"), ("u", "b"), ("u", "c")))
    snap = live.publish(compact=True)
    assert snap.base_users.nnz == 1  # the snapshot is pruned...
    assert len(live.store.main) == 3  # ...the store keeps every edge for later builds
    assert live.last_prune.removed_edges["max_user_degree"] == 2


def test_readers_never_see_half_a_batch() -> None:
    live = LiveGraph(config(compact_overlay_fraction=0.3))
    live.ingest(batch(("seed-user", "a")))
    live.publish()
    stop = threading.Event()
    errors: list[str] = []
    seen_versions: list[int] = []

    def reader() -> None:
        while not stop.is_set():
            snap = live.current
            seen_versions.append(snap.version)
            for side in (snap.base_users, snap.over_users, snap.base_items, snap.over_items):
                if side.indptr[-1] != side.nnz:
                    errors.append(f"v{snap.version}: indptr does not match nnz")
            # Each batch gives one user two edges at once: never exactly one of them.
            for u in range(1, snap.n_users):
                items, _ = snap.user_items(u)
                if items.shape[0] not in (0, 2):
                    errors.append(f"v{snap.version}: user {u} has {items.shape[0]} edges")

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for k in range(60):
        live.ingest(batch((f"w{k}", "x"), (f"w{k}", "y")))
        if k % 3 == 0:
            live.publish()
    live.publish()
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[:5]
    assert seen_versions == sorted(seen_versions)  # versions only move forward
    assert live.current.n_users == 61


def test_background_publisher_makes_events_visible() -> None:
    live = LiveGraph(config(publish_interval_s=0.05))
    live.ingest(batch(("u", "a")))
    live.publish()
    live.start()
    try:
        live.ingest(batch(("u", "b")))
        for _ in range(200):
            if ("u", "b") in merged_edges(live):
                break
            threading.Event().wait(0.02)
        assert ("u", "b") in merged_edges(live)
    finally:
        live.stop()


def test_current_before_any_publish_is_an_error() -> None:
    live = LiveGraph(config())
    assert not live.ready
    with pytest.raises(RuntimeError):
        _ = live.current
    assert np.isinf(live.store.max_ts)


def test_events_stay_visible_while_a_compaction_runs() -> None:
    live = LiveGraph(config(compact_overlay_fraction=0.1))
    live.ingest(batch(*[(f"u{k}", f"i{k % 5}") for k in range(20)]))
    live.publish()
    started = threading.Event()
    release = threading.Event()
    import recserver.graph.live as live_module

    real_build = live_module.build_base

    def slow_build(*args, **kwargs):  # type: ignore[no-untyped-def]
        started.set()
        assert release.wait(30)
        return real_build(*args, **kwargs)

    live_module.build_base = slow_build  # type: ignore[assignment]
    try:
        live.ingest(batch(*[(f"v{k}", "i0") for k in range(5)]))
        live.publish()  # starts the (held) compaction
        assert started.wait(30)
        live.ingest(batch(("late", "i3")))
        during = live.publish()  # publishes an overlay against the old base
        assert ("late", "i3") in merged_edges(live)
        assert ("v0", "i0") in merged_edges(live)
        assert during.over_users.nnz == 6
    finally:
        release.set()
        live_module.build_base = real_build  # type: ignore[assignment]
    assert live.wait_for_compaction(timeout=60)
    final = live.publish()
    edges = merged_edges(live)
    assert ("late", "i3") in edges and ("v4", "i0") in edges
    assert final.base_users.nnz == 25 and final.over_users.nnz == 1
