"""Overload over gRPC, on an in-process node (``tests.node_harness``) with deliberately slow walks.

Admission control has two levels (see docs/reliability.md): walk work is bounded
(``server.max_concurrent_walks``, ``max_walk_waiters``); a request that cannot get a walk slot is
answered from the fallback at once with ``degraded_reasons`` ``overloaded``. Only when even that is
impossible, because more calls are in flight than ``server.max_concurrent_rpcs``, does gRPC answer
RESOURCE_EXHAUSTED, at once and without running a handler. Nothing is INTERNAL.
"""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Any

import grpc
import pytest

from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc
from tests.node_harness import DataSource, InProcessNode
from tests.server_fixtures import (
    SYNTHETIC_SIZE,
    SwitchableWalkHook,
    config_document,
    write_config,
)

CALL_TIMEOUT_S = 30.0
SLOW = {"budget_ms": 400, "sla_p99_ms": 800,
        "walk": {"steps": 10_000_000, "n_p": 0, "batch_steps": 65_536}}


def overloaded_app(root: Path, hook: SwitchableWalkHook, **server: Any) -> InProcessNode:
    doc = config_document(slow=SLOW)
    doc["server"].update(max_workers=16, **server)
    app = InProcessNode(write_config(root / "config.yaml", doc), root, walk_hook=hook)
    app.start(DataSource(synthetic=SYNTHETIC_SIZE))  # stops what it started if it fails
    return app


@pytest.fixture
def hook() -> SwitchableWalkHook:
    return SwitchableWalkHook()


def burst(app: InProcessNode, n: int) -> list[pb.RecommendResponse | grpc.RpcError]:
    with grpc.insecure_channel(app.address) as channel:
        stub = pb_grpc.RecommenderStub(channel)
        stub.Recommend(pb.RecommendRequest(user_id="u1", surface="home"), timeout=CALL_TIMEOUT_S)
        futures: list[Future[Any]] = [
            stub.Recommend.future(pb.RecommendRequest(user_id=f"u{i + 1}", surface="slow"),
                                  timeout=CALL_TIMEOUT_S)
            for i in range(n)
        ]
        outcomes: list[pb.RecommendResponse | grpc.RpcError] = []
        for future in futures:
            try:
                outcomes.append(future.result())
            except grpc.RpcError as exc:
                outcomes.append(exc)
    return outcomes


def test_more_walks_than_slots_are_answered_from_the_fallback(
    tmp_path: Path, hook: SwitchableWalkHook
) -> None:
    app = overloaded_app(tmp_path, hook, max_concurrent_walks=1, max_walk_waiters=0)
    try:
        with hook.slow(0.02):
            outcomes = burst(app, 10)
    finally:
        app.stop(grace=1.0)
    errors = [o for o in outcomes if isinstance(o, grpc.RpcError)]
    assert errors == [], [(e.code(), e.details()) for e in errors]
    answers = [o for o in outcomes if isinstance(o, pb.RecommendResponse)]
    shed = [a for a in answers if "overloaded" in a.degraded_reasons]
    assert shed, "no request was shed to the fallback"
    assert all(len(a.items) == 10 and a.degraded for a in shed)
    assert any("overloaded" not in a.degraded_reasons for a in answers)  # one walked


def test_resource_exhausted_only_beyond_max_concurrent_rpcs(
    tmp_path: Path, hook: SwitchableWalkHook
) -> None:
    app = overloaded_app(tmp_path, hook, max_concurrent_walks=1, max_walk_waiters=0,
                         max_concurrent_rpcs=3)
    try:
        with hook.slow(0.02):
            outcomes = burst(app, 10)
    finally:
        app.stop(grace=1.0)
    errors = [o for o in outcomes if isinstance(o, grpc.RpcError)]
    codes = {e.code() for e in errors}
    assert codes == {grpc.StatusCode.RESOURCE_EXHAUSTED}, codes  # never INTERNAL
    answered = [o for o in outcomes if isinstance(o, pb.RecommendResponse)]
    assert answered and all(len(a.items) == 10 for a in answered)
