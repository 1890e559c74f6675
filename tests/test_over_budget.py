"""An answer that took longer than its budget says so: the ``over_budget`` reason, over the wire.

An in-process node (``tests.node_harness``) on a free port whose worker has a fallback tier that
sleeps far longer than the surface's budget (the kind of stall the reserve cannot plan for), so the
answer is late whatever the machine's speed; nothing asserts how fast anything is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from recserver.metrics.labels import REASONS
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc
from tests.node_harness import DataSource, InProcessNode
from tests.server_fixtures import (
    KNOWN_USER,
    SYNTHETIC_SIZE,
    SleepingTier,
    config_document,
    write_config,
)

CALL_TIMEOUT_S = 20.0
#: The stalled tier sleeps 2.5x the late surface's budget.
STALL_S = 0.05
LATE_SURFACES = {
    # A walk that cannot finish, so the fallback chain always runs, and its first tier stalls.
    "late": {
        "budget_ms": 20,
        "sla_p99_ms": 40,
        "walk": {"steps": 5_000_000, "n_p": 0},
        "fallback": {"tiers": ["ann", "popular"], "min_reserve_ms": 5},
    },
}


@dataclass
class Served:
    app: InProcessNode
    stub: pb_grpc.RecommenderStub

    def call(self, surface: str) -> pb.RecommendResponse:
        request = pb.RecommendRequest(user_id=KNOWN_USER, surface=surface, k=5)
        response: pb.RecommendResponse = self.stub.Recommend(request, timeout=CALL_TIMEOUT_S)
        return response

    def degraded_count(self, surface: str, reason: str) -> float:
        got = self.app.metrics.registry.get_sample_value(
            "recserver_request_degraded_total", {"surface": surface, "reason": reason})
        return 0.0 if got is None else got


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("over-budget")
    path = write_config(root / "config.yaml", config_document(**LATE_SURFACES))
    app = InProcessNode(path, root)
    app.tiers["ann"] = SleepingTier("ann", STALL_S)  # the worker's chain holds this very dict
    try:
        app.start(DataSource(synthetic=SYNTHETIC_SIZE))
        with grpc.insecure_channel(app.address) as channel:
            yield Served(app, pb_grpc.RecommenderStub(channel))
    finally:
        app.stop(grace=1.0)


def test_over_budget_is_a_reason_of_the_fixed_label_set() -> None:
    assert "over_budget" in REASONS


def test_a_late_answer_is_flagged_over_budget_and_counted(served: Served) -> None:
    before = served.degraded_count("late", "over_budget")
    resp = served.call("late")
    assert resp.server_elapsed_ms > resp.budget_ms == 20.0
    assert resp.degraded
    assert "over_budget" in resp.degraded_reasons
    assert len(resp.items) == 5  # late, but answered in full from the last tier
    assert served.degraded_count("late", "over_budget") == before + 1


def test_the_flag_follows_the_reported_times(served: Served) -> None:
    # home has no stalled tier: whether or not a busy machine makes an answer late, the flag
    # and the figures the answer reports always agree.
    for _ in range(3):
        resp = served.call("home")
        late = resp.server_elapsed_ms > resp.budget_ms
        assert ("over_budget" in resp.degraded_reasons) == late
