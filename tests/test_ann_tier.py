"""The ANN tier on both backends: build, publish, hits, misses, corrupt payloads, versions."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest

from recserver.ann.codec import Keys, decode, encode, parse_pointer
from recserver.ann.runtime import AnnRuntime
from recserver.ann.tier import ServingState
from recserver.graph.events import Event, EventColumns
from recserver.graph.live import LiveGraph
from tests.ann_helpers import counting, make_runtime, request, synthetic_live
from tests.redis_fixture import RedisServer, redis_server  # noqa: F401


@pytest.fixture(scope="module")
def live() -> LiveGraph:
    return synthetic_live()


@pytest.fixture(params=["redis", "lru"])
def backend_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "lru":
        return None
    server: RedisServer = request.getfixturevalue("redis_server")
    server.flush()
    return server.url


@pytest.fixture
def runtime(live: LiveGraph, backend_url: str | None) -> Iterator[AnnRuntime]:
    rt = make_runtime(live, backend_url)
    rt.build_now()
    yield rt
    rt.stop()


def user_with_items(live: LiveGraph, min_items: int = 3) -> int:
    snap = live.current
    for user in range(snap.n_users):
        if np.unique(snap.user_items(user)[0]).shape[0] >= min_items:
            return user
    raise AssertionError("no user with history")


def test_build_publishes_every_item_and_user(runtime: AnnRuntime, live: LiveGraph) -> None:
    report = runtime.last_report
    assert report is not None and report.version == runtime.tier.state.version  # type: ignore[union-attr]
    assert report.items_written == report.items_indexed > 0
    assert report.users_written == report.users_eligible > 0 and report.users_over_cap == 0
    assert report.bytes_per_entry > 16 and report.total_bytes > 0
    keys = Keys("recserver:ann")
    assert parse_pointer(runtime.cache.get(keys.pointer, 1.0)) == report.version
    ttl = runtime.cache.ttl(keys.at(report.version).user(live.current.users.name(0)))
    assert ttl is not None and 0 < ttl <= runtime.cfg.ttl_s


def test_a_hit_serves_the_precomputed_list(runtime: AnnRuntime, live: LiveGraph) -> None:
    snap = live.current
    user = user_with_items(live)
    state = runtime.tier.state
    assert state is not None
    payload = runtime.cache.get(state.keys.user(snap.users.name(user)), 1.0)
    assert payload is not None
    stored, _ = decode(payload, state.version)
    items, scores = runtime.tier.fetch(request(snap, user=user, k=10))
    assert items.tolist() == stored[:10].tolist()
    assert np.all(np.diff(scores) <= 1e-6)  # best first
    seen = set(snap.user_items(user)[0].tolist())
    assert not seen & set(stored.tolist())  # a user's list leaves out what they have
    assert runtime.tier.counts["hit"] == 1 and runtime.tier.counts["computed"] == 0
    # The cached list is what the in-process index computes (float16 scores aside).
    computed, _ = runtime.tier.compute(state.model, request(snap, user=user),  # type: ignore[arg-type]
                                       runtime.tier._targets(state, request(snap, user=user))[0])
    assert computed.tolist() == stored.tolist()


def test_exclusions_and_context_use_one_round_trip(runtime: AnnRuntime, live: LiveGraph) -> None:
    snap = live.current
    user = user_with_items(live)
    calls: list[str] = []
    real = runtime.cache
    original_get, original_mget = real.get, real.mget

    def spy_get(key, timeout_s):  # type: ignore[no-untyped-def]
        calls.append("get")
        return original_get(key, timeout_s)

    def spy_mget(keys, timeout_s):  # type: ignore[no-untyped-def]
        calls.append(f"mget:{len(keys)}")
        return original_mget(keys, timeout_s)

    real.get, real.mget = spy_get, spy_mget  # type: ignore[method-assign]
    try:
        first, _ = runtime.tier.fetch(request(snap, user=user, k=10))
        banned = first[:3].tolist()
        again, _ = runtime.tier.fetch(request(snap, user=user, k=10, exclude=banned))
        assert not set(banned) & set(again.tolist()) and len(again) == 10
        context = [0, 1, 2]
        with_context, _ = runtime.tier.fetch(request(snap, user=user, context=context, k=10,
                                                      exclude=context))
        assert len(with_context) == 10 and not set(context) & set(with_context.tolist())
    finally:
        real.get, real.mget = original_get, original_mget  # type: ignore[method-assign]
    assert calls == ["get", "get", "mget:4"]


def test_a_miss_is_computed_and_written_back(runtime: AnnRuntime, live: LiveGraph) -> None:
    t_ref = live.current.t_ref
    name = f"new-user-{runtime.cache.backend}"  # the graph is shared by both backends' runs
    new_events = [Event(name, live.current.items.name(i), "purchase", 1, t_ref)
                  for i in range(3)]
    live.ingest(EventColumns.from_events(new_events))
    snap = live.publish()  # the user is newer than the build: no precomputed key
    user = snap.users.get(name)
    assert user is not None
    items, _ = runtime.tier.fetch(request(snap, user=user, k=10))
    assert len(items) == 10 and not {0, 1, 2} & set(items.tolist())
    assert runtime.tier.counts["miss"] == 1 and runtime.tier.counts["computed"] == 1
    assert runtime.writer is not None
    runtime.writer.flush()
    state = runtime.tier.state
    assert state is not None
    stored = runtime.cache.get(state.keys.user(name), 1.0)
    assert stored is not None and decode(stored, state.version)[0][:10].tolist() == items.tolist()
    runtime.tier.fetch(request(snap, user=user, k=10))
    assert runtime.tier.counts["hit"] == 1


@pytest.mark.parametrize("bad", ["garbage", "wrong_version", "ids_out_of_range"])
def test_corrupt_or_wrong_version_payload_is_a_counted_miss(
    runtime: AnnRuntime, live: LiveGraph, bad: str
) -> None:
    snap = live.current
    user = user_with_items(live)
    state = runtime.tier.state
    assert state is not None
    key = state.keys.user(snap.users.name(user))
    payload = {"garbage": b"\x00garbage",
               "wrong_version": encode(state.version + 1, [1, 2], [0.5, 0.4]),
               "ids_out_of_range": encode(state.version, [10**6], [0.5])}[bad]
    runtime.cache.put_many([(key, payload)], ttl_s=60)
    items, _ = runtime.tier.fetch(request(snap, user=user, k=10))
    assert len(items) == 10  # computed in-process instead
    assert runtime.tier.counts["corrupt"] == 1 and runtime.tier.counts["computed"] == 1
    assert counting(runtime).errors["other"] == 1
    assert counting(runtime).lookups["miss"] == 1


def test_memory_cap_bounds_a_version_and_is_reported(live: LiveGraph,
                                                     backend_url: str | None) -> None:
    rt = make_runtime(live, backend_url, max_memory_mb=0.3, key_prefix="capped")
    try:
        report = rt.build_now()
        assert report.items_written == report.items_indexed
        assert 0 < report.users_written < report.users_eligible
        assert report.users_over_cap == report.users_eligible - report.users_written
        assert report.total_bytes <= report.cap_bytes
        assert "left out by the cap" in report.summary()
    finally:
        rt.stop()


def test_version_switch_is_atomic_under_concurrent_readers(
    live: LiveGraph, backend_url: str | None
) -> None:
    """Readers see version 1's answer or version 2's, whole, never a mix, never a failure."""
    snap = live.current
    users = [u for u in range(snap.n_users) if snap.user_items(u)[0].shape[0]][:20]
    rt = make_runtime(live, backend_url, key_prefix="switch")
    try:
        rt.build_now()
        v1 = rt.tier.state.version  # type: ignore[union-attr]
        first = {u: rt.tier.fetch(request(snap, user=u))[0].tolist() for u in users}
        observed: list[tuple[int, list[int]]] = []
        errors: list[BaseException] = []
        stop = threading.Event()

        def reader() -> None:
            while not stop.is_set():
                for u in users:
                    try:
                        observed.append((u, rt.tier.fetch(request(snap, user=u))[0].tolist()))
                    except BaseException as exc:  # collected, asserted below
                        errors.append(exc)

        threads = [threading.Thread(target=reader) for _ in range(3)]
        for t in threads:
            t.start()
        # Version 2 differs: other embedding dimensions give other neighbours.
        rt.cfg = rt.cfg.model_copy(update={"embeddings": rt.cfg.embeddings.model_copy(
            update={"dim": 8, "seed": 5})})
        rt.build_now()
        v2 = rt.tier.state.version  # type: ignore[union-attr]
        second = {u: rt.tier.fetch(request(snap, user=u))[0].tolist() for u in users}
        stop.set()
        for t in threads:
            t.join(timeout=30)
        assert not errors and v2 > v1
        assert any(first[u] != second[u] for u in users)
        assert all(got in (first[u], second[u]) for u, got in observed)
        assert rt.tier.counts["computed"] == 0 and rt.tier.counts["corrupt"] == 0
        old_ttl = rt.cache.ttl(Keys("switch", v1).user(snap.users.name(users[0])))
        assert old_ttl is not None and old_ttl <= rt.cfg.old_version_grace_s  # expires soon
    finally:
        rt.stop()


def test_a_version_published_elsewhere_is_adopted(
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """A second process (own graph, other internal ids) serves the builder's version."""
    redis_server.flush()
    builder_graph = synthetic_live()
    builder = make_runtime(builder_graph, redis_server.url)
    # The reader saw another event first: same names, internal ids shifted by one.
    from recserver.graph.config import GraphConfig
    from recserver.graph.synthetic import generate

    reader_graph = LiveGraph(GraphConfig())
    first = builder_graph.current.t_ref
    reader_graph.ingest(EventColumns.from_events([Event("zz-user", "zz-item", "view", 1, first)]))
    reader_graph.ingest(generate(20_000, seed=0))
    reader_graph.publish(compact=True)
    reader = make_runtime(reader_graph, redis_server.url)
    try:
        builder.build_now()
        version = builder.tier.state.version  # type: ignore[union-attr]
        assert reader.poll_pointer() == version
        state = reader.tier.state
        assert isinstance(state, ServingState) and state.model is None
        b_snap, r_snap = builder_graph.current, reader_graph.current
        user_name = b_snap.users.name(user_with_items(builder_graph))
        want, _ = builder.tier.fetch(request(b_snap, user=b_snap.users.get(user_name) or 0))
        got, _ = reader.tier.fetch(request(r_snap, user=r_snap.users.get(user_name) or 0))
        assert b_snap.items.names(want.tolist()) == r_snap.items.names(got.tolist())
        assert b_snap.items.name(0) != r_snap.items.name(0)  # the ids really differ
    finally:
        builder.stop()
        reader.stop()
