"""The whole node end to end: a builder and a worker (``tests.node_harness``, the classes the
node's processes run) on a free port, a real gRPC channel.

The domain pipeline is tested in-process with a fake clock (tests/test_recommender.py) and the
transport with a fake handler (tests/test_grpc_transport.py); these tests check that the parts
hold together over the wire: budgets per surface, the client's deadline, degradation under an
injected slow walk or slow fallback tier, status codes and messages of bad requests, config
reload while serving, and health. Slowness is injected (sleeps in a hook or a tier) and every
timing assertion compares the server's own figures with its budget, where the budget is generous
against the injected delay; nothing asserts how fast the machine is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from recserver.config_reload import ConfigHolder
from recserver.node.single import App
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc
from recserver.server.methods import SERVICE_NAME
from tests.node_harness import DataSource, InProcessNode
from tests.prometheus_fixture import free_port
from tests.server_fixtures import (
    KNOWN_ITEM,
    KNOWN_USER,
    SYNTHETIC_SIZE,
    SleepingTier,
    SwitchableWalkHook,
    config_document,
    write_config,
)

#: A client deadline on every call, so a hung server fails the test instead of stalling it.
CALL_TIMEOUT_S = 20.0

SLOW_TIER_DELAY_S = 0.03

#: Surfaces beside home / item_page / search, each for one scenario. A walk of millions of steps
#: (early stop off) cannot finish inside its budget, so the deadline always cuts it.
EXTRA_SURFACES: dict[str, dict[str, Any]] = {
    # Room to spare: only the client's deadline can make this budget short.
    "roomy": {"budget_ms": 500, "sla_p99_ms": 600},
    # A walk slowed by the hook; 40 ms kept back is ample for the in-memory popular tier.
    "slow_walk": {
        "budget_ms": 150,
        "sla_p99_ms": 200,
        "walk": {"steps": 5_000_000, "n_p": 0},
        "fallback": {"min_reserve_ms": 40},
    },
    # A slow first fallback tier: the reserve must learn its duration (tiny floor, so the
    # learning is what keeps answers inside the budget; a margin for sleep jitter).
    "slow_fallback": {
        "budget_ms": 300,
        "sla_p99_ms": 400,
        "walk": {"steps": 5_000_000, "n_p": 0},
        "fallback": {"tiers": ["ann", "popular"], "min_reserve_ms": 5, "reserve_margin_ms": 25},
    },
}


@dataclass
class Served:
    app: InProcessNode
    hook: SwitchableWalkHook
    slow_tier: SleepingTier
    channel: grpc.Channel
    stub: pb_grpc.RecommenderStub
    config_path: Path

    def call(self, timeout: float = CALL_TIMEOUT_S, **fields: Any) -> pb.RecommendResponse:
        fields.setdefault("user_id", KNOWN_USER)
        fields.setdefault("surface", "home")
        response: pb.RecommendResponse = self.stub.Recommend(
            pb.RecommendRequest(**fields), timeout=timeout
        )
        return response

    def health(self, service: str) -> int:
        stub = health_pb2_grpc.HealthStub(self.channel)
        request = health_pb2.HealthCheckRequest(service=service)
        return int(stub.Check(request, timeout=CALL_TIMEOUT_S).status)


def make_app(config_path: Path, port: int = 0
             ) -> tuple[InProcessNode, SwitchableWalkHook, SleepingTier]:
    hook = SwitchableWalkHook()
    app = InProcessNode(config_path, config_path.parent, walk_hook=hook, port=port)
    # The worker's FallbackChain holds this very dict: the slow stand-in replaces the ANN
    # tier (config validation admits only the tier names the node registers).
    slow_tier = SleepingTier("ann", SLOW_TIER_DELAY_S)
    app.tiers["ann"] = slow_tier
    return app, hook, slow_tier


def connect(
    app: InProcessNode, hook: SwitchableWalkHook, slow_tier: SleepingTier, config_path: Path
) -> Served:
    channel = grpc.insecure_channel(app.address)
    return Served(app, hook, slow_tier, channel, pb_grpc.RecommenderStub(channel), config_path)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server for the tests that do not change its config or lifecycle."""
    path = write_config(
        tmp_path_factory.mktemp("e2e") / "config.yaml", config_document(**EXTRA_SURFACES)
    )
    app, hook, slow_tier = make_app(path)
    try:
        app.start(DataSource(synthetic=SYNTHETIC_SIZE))
        running = connect(app, hook, slow_tier, path)
        yield running
        running.channel.close()
    finally:
        app.stop(grace=1.0)


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Served]:
    """A node of its own, its graph published but no worker started: the test calls ``load``
    when it wants one listening."""
    path = write_config(tmp_path / "config.yaml", config_document())
    app, hook, slow_tier = make_app(path, port=free_port())
    channel: grpc.Channel | None = None
    try:
        app.start_builder(DataSource(synthetic=SYNTHETIC_SIZE))
        running = connect(app, hook, slow_tier, path)
        channel = running.channel
        yield running
    finally:
        if channel is not None:
            channel.close()
        app.stop(grace=1.0)


def load(running: Served) -> None:
    running.app.start_workers()


VALID_SOURCES = {pb.GRAPH, pb.GRAPH_PARTIAL, pb.BLENDED, pb.ANN_FALLBACK, pb.POPULAR}


# -- answers ----------------------------------------------------------------------------------


def test_every_surface_answers_with_its_own_budget(served: Served) -> None:
    surfaces = served.app.holder.current.surfaces
    assert len(surfaces) == 6
    for name, cfg in surfaces.items():
        for debug in (False, True):
            resp = served.call(surface=name, debug=debug, request_id=f"{name}-{debug}")
            assert resp.budget_ms == cfg.budget_ms, name
            assert resp.request_id == f"{name}-{debug}"
            assert len(resp.items) == cfg.k_default, name
            assert resp.source in VALID_SOURCES
            assert all(item.source in VALID_SOURCES for item in resp.items)
            assert all(item.item_id for item in resp.items)
            assert len({item.item_id for item in resp.items}) == len(resp.items)
            assert resp.snapshot_version > 0
            assert 0.0 <= resp.coverage <= 1.0 and resp.steps_planned > 0
            assert resp.server_elapsed_ms > 0
            if debug:
                assert {"queue", "seeds", "walk", "rank"} <= set(resp.stage_ms), name
                assert all(ms >= 0 for ms in resp.stage_ms.values())
            else:
                assert dict(resp.stage_ms) == {}


def test_known_user_is_answered_from_the_graph(served: Served) -> None:
    resp = served.call(k=5)
    assert len(resp.items) == 5
    # The walk ran and produced (at least the first) items.
    assert resp.steps_done > 0
    assert resp.items[0].source in (pb.GRAPH, pb.GRAPH_PARTIAL)


def test_request_budget_only_lowers_the_surface_budget(served: Served) -> None:
    lowered = served.call(budget_ms=20.0)
    assert (lowered.budget_ms, lowered.budget_limited_by) == (20.0, "request")
    # home's budget cannot be raised, and the answer says which budget it ran under.
    capped = served.call(budget_ms=5_000.0)
    assert (capped.budget_ms, capped.budget_limited_by) == (60.0, "surface")


def test_client_deadline_shorter_than_the_budget_is_honoured(served: Served) -> None:
    # roomy's budget is 500 ms; the client gives 100 ms. The reply must arrive in time (a
    # DEADLINE_EXCEEDED would raise here) and report the shorter budget it worked to. (Not
    # exactly 100 - margin: gRPC sends the timeout rounded up to the millisecond and the server
    # dates it from when its transport received the call.)
    for _ in range(3):
        resp = served.call(surface="roomy", timeout=0.1)
        assert 0.0 <= resp.budget_ms < 100.0
        assert len(resp.items) == 10


def test_slow_walk_is_cut_at_the_deadline_and_answered_in_budget(served: Served) -> None:
    with served.hook.slow(0.01) as hook:  # 10 ms per walk batch: 5M steps cannot finish
        batches_before = hook.batches
        resp = served.call(surface="slow_walk", k=10)
        assert hook.batches > batches_before  # the hook really slowed this walk
    assert resp.budget_ms == 150.0
    assert resp.degraded
    assert "deadline" in resp.degraded_reasons
    assert 0.0 < resp.coverage < 1.0
    assert 0 < resp.steps_done < resp.steps_planned
    assert resp.server_elapsed_ms <= resp.budget_ms
    assert len(resp.items) == 10
    # Low coverage: the partial walk was topped up from the popular tier.
    assert resp.source in (pb.GRAPH_PARTIAL, pb.BLENDED)


def test_reserve_adapts_to_a_slow_fallback_tier(served: Served) -> None:
    surface = served.app.holder.current.surfaces["slow_fallback"]
    reserve = served.app.recommender.reserve_for("slow_fallback", surface)
    delay_ms = SLOW_TIER_DELAY_S * 1000.0
    with served.hook.slow(0.002):  # a slow walk, so every answer needs the fallback
        for _ in range(8):  # the first answers may overrun: the reserve has not learned yet
            served.call(surface="slow_fallback")
            if reserve.reserve_ms >= delay_ms:
                break
        assert reserve.reserve_ms >= delay_ms
        for _ in range(3):
            calls_before = served.slow_tier.calls
            resp = served.call(surface="slow_fallback")
            # The walk stopped early enough for the slow tier to get its turn, and the whole
            # answer (walk + slow tier + popular) still fits the budget.
            assert served.slow_tier.calls == calls_before + 1
            assert resp.server_elapsed_ms <= resp.budget_ms == 300.0
            assert "deadline" in resp.degraded_reasons
            assert len(resp.items) == 10
            assert {item.source for item in resp.items} <= {pb.GRAPH_PARTIAL, pb.POPULAR}


# -- unknown ids ------------------------------------------------------------------------------


def test_unknown_context_id_is_reported_not_an_error(served: Served) -> None:
    resp = served.call(surface="item_page", context_item_ids=[KNOWN_ITEM, "no-such-item"])
    assert "context_unknown" in resp.degraded_reasons
    assert resp.degraded
    assert len(resp.items) == 10
    assert KNOWN_ITEM not in {item.item_id for item in resp.items}  # context never returned


def test_unknown_user_without_context_gets_popular_cold_start(served: Served) -> None:
    resp = served.call(user_id="nobody-we-know")
    assert resp.source == pb.POPULAR
    assert resp.degraded and "cold_start" in resp.degraded_reasons
    assert all(item.source == pb.POPULAR for item in resp.items)
    assert len(resp.items) == 10
    assert resp.steps_done == 0 and resp.coverage == 0.0
    scores = [item.score for item in resp.items]
    assert scores == sorted(scores, reverse=True)


def test_unknown_user_with_context_walks_from_the_context(served: Served) -> None:
    resp = served.call(user_id="nobody-we-know", surface="item_page", context_item_ids=[KNOWN_ITEM])
    assert "cold_start" not in resp.degraded_reasons
    assert resp.steps_done > 0
    assert KNOWN_ITEM not in {item.item_id for item in resp.items}


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"surface": "nope"},
            "unknown surface 'nope'; known surfaces: home, item_page, roomy, "
            "search, slow_fallback, slow_walk",
        ),
        ({"surface": ""}, "unknown surface '(empty)'; known surfaces: home,"),
        ({"user_id": ""}, "user_id is empty and no context_item_ids were given"),
        ({"k": -1}, "k=-1 is negative; ask for 1..50 items"),
        ({"k": 51}, "k=51 exceeds k_max=50 for surface 'home'"),
        (
            {"context_item_ids": [KNOWN_ITEM] * 6},
            "context_item_ids has 6 ids; surface 'home' accepts at most 5",
        ),
        (
            {"exclude_item_ids": [KNOWN_ITEM] * 6},
            "exclude_item_ids has 6 ids; surface 'home' accepts at most 5",
        ),
        ({"context_item_ids": [""]}, "context_item_ids[0] is empty"),
        ({"budget_ms": -5.0}, "budget_ms=-5.0 is invalid"),
    ],
)
def test_bad_requests_are_invalid_argument_with_the_fix(
    served: Served, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        served.call(**fields)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (info.value.details() or "")


def test_unexpected_failure_is_internal_and_the_server_recovers(served: Served) -> None:
    with (
        served.hook.failing(RuntimeError("secret walk detail")),
        pytest.raises(grpc.RpcError) as info,
    ):
        served.call(request_id="boom-1")
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert info.value.details() == "internal error (request_id boom-1)"
    # The failed walk gave its slot back: more walks than there are slots still run.
    slots = served.app.holder.current.server.walk_slots
    for _ in range(slots + 2):
        resp = served.call()
        assert resp.steps_done > 0 and "overloaded" not in resp.degraded_reasons


# -- config reload ----------------------------------------------------------------------------


def test_config_reload_applies_a_good_file_and_rejects_a_bad_one(fresh: Served) -> None:
    load(fresh)
    assert fresh.call().budget_ms == 60.0

    good = config_document(
        home={"budget_ms": 45, "sla_p99_ms": 80}, promo={"budget_ms": 25, "sla_p99_ms": 40}
    )
    write_config(fresh.config_path, good)
    assert fresh.app.reload() is True
    assert fresh.call().budget_ms == 45.0
    assert fresh.call(surface="promo").budget_ms == 25.0

    bad = config_document(home={"budget_ms": 0, "sla_p99_ms": 80})
    write_config(fresh.config_path, bad)
    assert fresh.app.reload() is False
    error = fresh.app.holder.last_error or ""
    assert str(fresh.config_path) in error and "surfaces.home.budget_ms" in error
    # The previous config keeps serving, whole.
    assert fresh.call().budget_ms == 45.0
    assert fresh.call(surface="promo").budget_ms == 25.0

    write_config(fresh.config_path, config_document())  # promo gone again
    assert fresh.app.reload() is True
    assert fresh.call().budget_ms == 60.0
    with pytest.raises(grpc.RpcError) as info:
        fresh.call(surface="promo")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "known surfaces: home, item_page, search" in (info.value.details() or "")


# -- health -----------------------------------------------------------------------------------


def test_health_goes_serving_only_once_a_worker_is_ready(fresh: Served) -> None:
    # A node's worker listens only once its snapshot is mapped and warm: before that nothing
    # answers on the port (the supervisor holds it unlistened), so a call is UNAVAILABLE. (A
    # channel of its own: a refused connection's backoff would delay the shared subchannel.)
    alone = [("grpc.use_local_subchannel_pool", 1)]
    with (grpc.insecure_channel(fresh.app.address, options=alone) as early,
          pytest.raises(grpc.RpcError) as info):
        pb_grpc.RecommenderStub(early).Recommend(
            pb.RecommendRequest(user_id=KNOWN_USER, surface="home"), timeout=2.0)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE

    load(fresh)
    for name in ("", SERVICE_NAME):
        assert fresh.health(name) == health_pb2.HealthCheckResponse.SERVING
    assert len(fresh.call().items) == 10


def test_single_process_health_is_not_serving_while_it_loads(tmp_path: Path) -> None:
    """``serve --single-process`` (the benchmarks' baseline, ``node.single``) binds before it
    loads, unlike a node's worker: health says NOT_SERVING and Recommend UNAVAILABLE until the
    graph is loaded. Kept on ``App`` because that order is only the single process's."""
    path = write_config(tmp_path / "config.yaml", config_document())
    app = App(ConfigHolder(path), port=0)
    try:
        app.bind()
        with grpc.insecure_channel(app.server.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
            for name in ("", SERVICE_NAME):
                status = health.Check(health_pb2.HealthCheckRequest(service=name),
                                      timeout=CALL_TIMEOUT_S).status
                assert status == not_serving
            stub = pb_grpc.RecommenderStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                stub.Recommend(pb.RecommendRequest(user_id=KNOWN_USER, surface="home"),
                               timeout=CALL_TIMEOUT_S)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "loading" in (info.value.details() or "")
            app.load(DataSource(synthetic=SYNTHETIC_SIZE), watch_config=False)
            for name in ("", SERVICE_NAME):
                status = health.Check(health_pb2.HealthCheckRequest(service=name),
                                      timeout=CALL_TIMEOUT_S).status
                assert status == health_pb2.HealthCheckResponse.SERVING
            answer = stub.Recommend(pb.RecommendRequest(user_id=KNOWN_USER, surface="home"),
                                    timeout=CALL_TIMEOUT_S)
            assert len(answer.items) == 10
    finally:
        app.stop(grace=1.0)
