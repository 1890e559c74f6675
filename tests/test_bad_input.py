"""Bad input over gRPC, table-driven: each malformed request gets its own status code and a
message that says what to fix; a bad event is rejected alone, with its reason.

One in-process node (``tests.node_harness``: a builder with a file event log, a worker that
relays writes to it; small limits: 64 KiB messages, 20-event batches, at most 5 context /
exclude items on ``home``, ``k_max`` 50) serves every row.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc
from tests.node_harness import DataSource, InProcessNode
from tests.server_fixtures import KNOWN_USER, SYNTHETIC_SIZE, config_document, write_config

CALL_TIMEOUT_S = 20.0
MAX_MESSAGE_BYTES = 64 * 1024
MAX_BATCH = 20
INVALID = grpc.StatusCode.INVALID_ARGUMENT


def served_app(root: Path, budget_ms: float | None = None) -> InProcessNode:
    doc = config_document()
    if budget_ms is not None:  # generous budgets: the fuzz checks the property, not the speed
        for surface in doc["surfaces"].values():
            surface.update(budget_ms=budget_ms, sla_p99_ms=budget_ms)
    doc["server"]["max_message_bytes"] = MAX_MESSAGE_BYTES
    doc["ingest"] = {"max_batch_events": MAX_BATCH, "checkpoint": {"interval_s": 3600}}
    app = InProcessNode(write_config(root / "config.yaml", doc), root)
    try:
        app.start(DataSource(synthetic=SYNTHETIC_SIZE))
    except BaseException:
        app.stop(grace=0.5)
        raise
    return app


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[InProcessNode, grpc.Channel]]:
    app = served_app(tmp_path_factory.mktemp("bad-input"))
    channel = grpc.insecure_channel(app.address)
    try:
        yield app, channel
    finally:
        channel.close()
        app.stop(grace=1.0)


def stub_of(served: tuple[InProcessNode, grpc.Channel]) -> Any:
    return pb_grpc.RecommenderStub(served[1])


def ask(**fields: Any) -> pb.RecommendRequest:
    request = {"user_id": KNOWN_USER, "surface": "home", "k": 5}
    request.update(fields)
    return pb.RecommendRequest(**request)


LONG = "x" * 257

RECOMMEND_CASES: list[tuple[str, pb.RecommendRequest, grpc.StatusCode, str]] = [
    ("unknown surface", ask(surface="nope"), INVALID,
     "unknown surface 'nope'; known surfaces: home, item_page, search"),
    ("empty surface", ask(surface=""), INVALID, "unknown surface '(empty)'"),
    ("no user, no context", ask(user_id=""), INVALID,
     "send a user_id, context items, or both"),
    ("over-long user id", ask(user_id=LONG), INVALID, "user_id is 257 characters; ids are at most"),
    ("negative k", ask(k=-1), INVALID, "k=-1 is negative; ask for 1..50 items"),
    ("absurd k", ask(k=2_000_000_000), INVALID, "exceeds k_max=50 for surface 'home'"),
    ("k just over k_max", ask(k=51), INVALID, "ask for at most 50"),
    ("too many context items", ask(context_item_ids=["i1"] * 6), INVALID,
     "context_item_ids has 6 ids; surface 'home' accepts at most 5"),
    ("huge context list", ask(context_item_ids=["i1"] * 5_000), INVALID,
     "context_item_ids has 5000 ids"),
    ("empty context id", ask(context_item_ids=["i1", ""]), INVALID,
     "context_item_ids[1] is empty; send non-empty item ids"),
    ("over-long context id", ask(context_item_ids=[LONG]), INVALID,
     "context_item_ids[0] is 257 characters"),
    ("too many excludes", ask(exclude_item_ids=["i1"] * 6), INVALID,
     "exclude_item_ids has 6 ids; surface 'home' accepts at most 5"),
    ("empty exclude id", ask(exclude_item_ids=[""]), INVALID, "exclude_item_ids[0] is empty"),
    ("zero budget", ask(budget_ms=0.0), INVALID, "budget_ms=0.0 is invalid; leave it unset"),
    ("negative budget", ask(budget_ms=-3.0), INVALID, "budget_ms=-3.0 is invalid"),
    ("NaN budget", ask(budget_ms=float("nan")), INVALID, "budget_ms=nan is invalid"),
    ("oversize message", ask(exclude_item_ids=["y" * 1000] * 100),
     grpc.StatusCode.RESOURCE_EXHAUSTED, "larger than max"),
]


@pytest.mark.parametrize(("request_", "code", "message"),
                         [c[1:] for c in RECOMMEND_CASES], ids=[c[0] for c in RECOMMEND_CASES])
def test_a_bad_recommend_request_gets_its_code_and_what_to_fix(
    served: Any, request_: pb.RecommendRequest, code: grpc.StatusCode, message: str
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub_of(served).Recommend(request_, timeout=CALL_TIMEOUT_S)
    assert err.value.code() == code
    assert message in str(err.value.details())


@pytest.mark.parametrize("method", ["Recommend", "RecordEvents", "DescribeUser"])
@pytest.mark.parametrize("payload", [b"\xff\xff\xff", b"\x0a\x02\xff\xfe", b"\x0a\x05ab"],
                         ids=["garbage", "invalid-utf8", "truncated"])
def test_bytes_that_do_not_parse_are_invalid_argument_not_internal(
    served: Any, method: str, payload: bytes
) -> None:
    call = served[1].unary_unary(f"/recserver.v1.Recommender/{method}")
    with pytest.raises(grpc.RpcError) as err:
        call(payload, timeout=CALL_TIMEOUT_S)
    assert err.value.code() == INVALID
    assert f"the {method} request is not a valid protobuf message" in str(err.value.details())


def test_the_budget_ms_message_states_the_rule_the_server_applies(served: Any) -> None:
    # The message once offered "(0, surface budget]" while a larger value was answered: it
    # must state the rule the server applies, and the server must apply it.
    stub = stub_of(served)
    surface_ms = float(config_document()["surfaces"]["home"]["budget_ms"])
    with pytest.raises(grpc.RpcError) as err:
        stub.Recommend(ask(budget_ms=0.0), timeout=CALL_TIMEOUT_S)
    details = str(err.value.details())
    assert f"give a value > 0 ms (a request can only lower its surface's budget: a larger " \
        f"value runs under the {surface_ms:g} ms of surface 'home')" in details
    above = stub.Recommend(ask(budget_ms=surface_ms * 10), timeout=CALL_TIMEOUT_S)
    assert (above.budget_ms, above.budget_limited_by) == (surface_ms, "surface")
    below = stub.Recommend(ask(budget_ms=surface_ms / 2), timeout=CALL_TIMEOUT_S)
    assert (below.budget_ms, below.budget_limited_by) == (surface_ms / 2, "request")


def test_odd_but_valid_requests_are_answered(served: Any) -> None:
    stub = stub_of(served)
    for request in (ask(k=0), ask(user_id="never-seen"), ask(budget_ms=1e9),
                    ask(budget_ms=float("inf")), ask(user_id="", context_item_ids=["i1"]),
                    ask(context_item_ids=["no-such-item"]), ask(surface="search", k=50)):
        answer = stub.Recommend(request, timeout=CALL_TIMEOUT_S)
        assert answer.server_elapsed_ms <= answer.budget_ms


def event(**fields: Any) -> pb.Event:
    base = {"user_id": "bad-u", "item_id": "bad-i", "event": "view"}
    base.update(fields)
    return pb.Event(**base)


EVENT_CASES: list[tuple[str, pb.Event, str]] = [
    ("empty user id", event(user_id=""), "empty user_id"),
    ("empty item id", event(item_id=""), "empty item_id"),
    ("NaN weight", event(weight=float("nan")), "weight is not finite (nan)"),
    ("infinite weight", event(weight=float("inf")), "weights must be finite numbers >= 0"),
    ("negative weight", event(weight=-1.0), "weight is negative (-1.0); weights must be >= 0"),
    ("far-future timestamp", event(timestamp=4e12), "far-future timestamp"),
    ("negative timestamp", event(timestamp=-5.0), "timestamp is negative (-5.0)"),
    ("NaN timestamp", event(timestamp=float("nan")), "timestamp is not finite"),
    ("unknown event type", event(event="zzz"), "unknown event type 'zzz'; known: add_to_cart"),
    ("empty event type", event(event=""), "unknown event type ''"),
    ("over-long user id", event(user_id="u" * 300),
     "user_id is 300 characters long; the limit is ingest.max_id_chars = 256"),
    ("over-long item id", event(item_id="i" * 300), "item_id is 300 characters long"),
    ("over-long event id", event(event_id="e" * 300), "event_id is 300 characters long"),
]


def test_every_bad_event_is_rejected_alone_with_its_reason(served: Any) -> None:
    stub = stub_of(served)
    good = event(event_id="bad-good-1", user_id="bad-good", item_id="i1")
    events = [good, *(c[1] for c in EVENT_CASES)]
    response = stub.RecordEvents(pb.RecordEventsRequest(events=events), timeout=CALL_TIMEOUT_S)
    assert response.accepted == 1 and response.rejected == len(EVENT_CASES)
    assert response.results[0].status == pb.ACCEPTED
    for (name, _, reason), result in zip(EVENT_CASES, response.results[1:], strict=True):
        assert result.status == pb.REJECTED, name
        assert reason in result.reason, (name, result.reason)


def test_an_oversize_batch_is_invalid_and_nothing_is_appended(served: Any) -> None:
    stub = stub_of(served)
    events = [event(event_id=f"ob{i}") for i in range(MAX_BATCH + 1)]
    with pytest.raises(grpc.RpcError) as err:
        stub.RecordEvents(pb.RecordEventsRequest(events=events), timeout=CALL_TIMEOUT_S)
    assert err.value.code() == INVALID
    assert f"max_batch_events = {MAX_BATCH}" in str(err.value.details())
    # Nothing of the refused batch was recorded: its first event is new afterwards.
    again = stub.RecordEvents(pb.RecordEventsRequest(events=events[:1]), timeout=CALL_TIMEOUT_S)
    assert again.accepted == 1


def test_an_oversize_event_message_is_resource_exhausted(served: Any) -> None:
    events = [event(event_id=f"big{i}", user_id="u" * 250, item_id="i" * 250)
              for i in range(MAX_BATCH)]
    events[0].event = "v" * MAX_MESSAGE_BYTES
    with pytest.raises(grpc.RpcError) as err:
        stub_of(served).RecordEvents(pb.RecordEventsRequest(events=events),
                                     timeout=CALL_TIMEOUT_S)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_an_empty_batch_is_a_no_op(served: Any) -> None:
    response = stub_of(served).RecordEvents(pb.RecordEventsRequest(), timeout=CALL_TIMEOUT_S)
    assert (response.accepted, response.rejected, response.log_position) == (0, 0, "")
