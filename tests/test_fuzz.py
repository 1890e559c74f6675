"""Property-based fuzz (hypothesis) of Recommend requests and RecordEvents batches against an
in-process node (builder and worker, ``tests.node_harness``): never INTERNAL or UNKNOWN, never a
crash (the server still answers a plain request afterwards), and every answered Recommend within
its budget (generous budgets: this is a correctness property, not a speed test).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc
from tests.server_fixtures import KNOWN_USER
from tests.test_bad_input import served_app

CALL_TIMEOUT_S = 20.0
GENEROUS_MS = 2_000.0
#: Codes a fuzzed request may get: an answer, or the client's fault explained.
ALLOWED = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}
FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    app = served_app(tmp_path_factory.mktemp("fuzz"), budget_ms=GENEROUS_MS)
    channel = grpc.insecure_channel(app.address)
    try:
        yield pb_grpc.RecommenderStub(channel)
    finally:
        channel.close()
        app.stop(grace=1.0)


ids = st.one_of(
    st.sampled_from(["", KNOWN_USER, "u2", "i1", "i2", "never-seen"]),
    st.text(max_size=20),
    st.text(min_size=250, max_size=300, alphabet="ab"),
)
id_lists = st.lists(ids, max_size=12)
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([0.0, -1.0, 1e-9, 5.0, 1e12]))

recommend_requests = st.builds(
    lambda user, surface, k, context, exclude, budget, debug: pb.RecommendRequest(
        user_id=user, surface=surface, k=k, context_item_ids=context, exclude_item_ids=exclude,
        debug=debug, **({} if budget is None else {"budget_ms": budget})),
    ids,
    st.sampled_from(["home", "item_page", "search", "", "nope", "HOME"]),
    st.one_of(st.integers(-(2**31), 2**31 - 1), st.integers(-2, 60)),
    id_lists,
    id_lists,
    st.one_of(st.none(), floats, st.floats(min_value=200, max_value=5_000)),
    st.booleans(),
)

events = st.builds(
    lambda event_id, user, item, kind, weight, ts: pb.Event(
        event_id=event_id, user_id=user, item_id=item, event=kind, timestamp=ts,
        **({} if weight is None else {"weight": weight})),
    ids, ids, ids,
    st.one_of(st.sampled_from(["view", "click", "purchase", "rating", ""]), st.text(max_size=8)),
    st.one_of(st.none(), floats),
    st.one_of(st.just(0.0), floats, st.floats(min_value=1.6e9, max_value=1.8e9)),
)


def _check(call: Any) -> Any:
    try:
        return call()
    except grpc.RpcError as exc:
        assert exc.code() in ALLOWED, (exc.code(), exc.details())
        assert exc.details(), "an error must say what to fix"
        return None


@FUZZ
@given(request=recommend_requests)
def test_fuzzed_recommend_never_internal_and_within_budget(stub: Any,
                                                           request: pb.RecommendRequest) -> None:
    answer = _check(lambda: stub.Recommend(request, timeout=CALL_TIMEOUT_S))
    generous = not request.HasField("budget_ms") or request.budget_ms >= 200
    if answer is not None and generous:
        assert answer.server_elapsed_ms <= answer.budget_ms, answer
        assert len(answer.items) <= (request.k or 50)


@FUZZ
@given(batch=st.lists(events, max_size=25))
def test_fuzzed_event_batches_never_internal(stub: Any, batch: list[pb.Event]) -> None:
    response = _check(lambda: stub.RecordEvents(pb.RecordEventsRequest(events=batch),
                                                timeout=CALL_TIMEOUT_S))
    if response is not None:
        assert len(response.results) == len(batch)
        assert response.accepted + response.duplicates + response.rejected == len(batch)
        for result in response.results:
            assert (result.status == pb.REJECTED) == bool(result.reason)


def test_the_server_still_answers_after_the_fuzz(stub: Any) -> None:
    answer = stub.Recommend(pb.RecommendRequest(user_id=KNOWN_USER, surface="home", k=5),
                            timeout=CALL_TIMEOUT_S)
    assert len(answer.items) == 5
