"""New items get an ANN vector from their first users between builds, and become reachable."""

from __future__ import annotations

import time

import numpy as np

from recserver.ann.vectors import user_vector
from recserver.graph.events import Event, EventColumns
from tests.ann_helpers import make_runtime, request, synthetic_live


def test_a_new_item_gets_its_users_direction_and_joins_a_similar_items_cached_list() -> None:
    live = synthetic_live(20_000, seed=3)
    runtime = make_runtime(live, None, compute_on_miss=False, fold_min_users=2)
    try:
        runtime.build_now()
        model = runtime.model
        assert model is not None
        version, built_items = model.version, model.n_items
        snap = live.current
        # An item with a vector, and three of its users whose vectors say what they like.
        degree = np.diff(snap.base_items.indptr)
        anchor = int(np.flatnonzero(degree >= 3)[0])
        users = [int(u) for u in snap.base_items.neighbours(anchor)[:3]]
        names = [snap.users.name(u) for u in users]
        t = snap.t_ref + 60.0
        live.ingest(EventColumns.from_events(
            [Event(name, "brand-new", "click", 1.0, t + n) for n, name in enumerate(names)]
            + [Event("somebody", "lonely-new", "click", 1.0, t)]))  # one user: not folded
        live.publish()
        snap = live.current
        new = snap.items.get("brand-new")
        assert new is not None and new >= built_items
        assert runtime.tier.fetch(request(snap, context=[new])).__getitem__(0).shape[0] == 0

        assert runtime.fold_new_items() == 1
        model = runtime.model
        assert model is not None and model.version == version  # no rebuild: the same version
        vec = model.vectors[new]
        assert abs(float(np.linalg.norm(vec)) - 1.0) < 1e-4
        assert not model.vectors[snap.items.get("lonely-new")].any()
        for user in users:  # close to each of its users: in their top results now
            query, _ = user_vector(snap, model.vectors, user, 50, model.fold)
            scores = model.vectors @ query
            assert scores[new] >= np.sort(scores[:built_items])[-50], user
        # Reachable through the cached lists (no compute on a miss in this runtime).
        own, _ = runtime.tier.fetch(request(snap, context=[new], k=50))
        assert own.shape[0] > 0 and new not in own.tolist()
        joined = [int(i) for i in own.tolist()
                  if new in runtime.tier.fetch(request(snap, context=[int(i)], k=50))[0]]
        assert joined, "the new item is in no cached neighbour list"
        assert runtime.tier.counts["computed"] == 0
        # A later fold with nothing new changes nothing; a second user folds the lonely item.
        assert runtime.fold_new_items() == 0 and runtime.model is model
        live.ingest(EventColumns.from_events([Event(names[0], "lonely-new", "click", 1.0,
                                                    t + 10.0)]))
        live.publish()
        assert runtime.fold_new_items() == 1
        assert runtime.model.vectors[live.current.items.get("lonely-new")].any()
    finally:
        runtime.stop()
        live.stop()


def test_the_runtime_folds_new_items_in_the_background_between_builds() -> None:
    live = synthetic_live(8_000, seed=4)
    runtime = make_runtime(live, None, compute_on_miss=False, fold_min_users=1,
                           fold_new_items_s=0.05)
    try:
        runtime.start()
        deadline = time.monotonic() + 60.0
        while runtime.model is None and time.monotonic() < deadline:
            time.sleep(0.05)
        model = runtime.model
        assert model is not None
        snap = live.current
        user = snap.users.name(int(np.flatnonzero(np.diff(snap.base_users.indptr) >= 3)[0]))
        live.ingest(EventColumns.from_events(
            [Event(user, "fresh", "click", 1.0, snap.t_ref + 5.0)]))
        live.publish()
        new = live.current.items.get("fresh")
        assert new is not None and new >= model.n_items
        while time.monotonic() < deadline:
            folded = runtime.model
            if folded is not None and folded.n_items > new and folded.vectors[new].any():
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the new item was never folded in")
        assert folded.version == model.version  # folded, not rebuilt
        own, _ = runtime.tier.fetch(request(live.current, context=[new], k=20))
        assert own.shape[0] > 0
    finally:
        runtime.stop()
        live.stop()
