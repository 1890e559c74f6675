"""Errors never echo unbounded input: a 10,000-character field gets INVALID_ARGUMENT with a short
message naming the field and its length, never RESOURCE_EXHAUSTED "Stream removed" (a message
echoing the whole value passes gRPC's 8 KiB metadata limit).

The helpers (``core.echo``) first, then every endpoint through one in-process node (builder and
worker, ``tests.node_harness``) on a free port (the same node ``test_bad_input`` builds: file event
log, 64 KiB messages, so a 10,000-character field is well inside the message limit and only the
error message could overflow).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recserver.core.echo import (
    MESSAGE_WIRE_BYTES,
    SHOWN_CHARS,
    bounded_message,
    shown,
    wire_size,
)
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.proto.recserver.v1 import recommender_pb2_grpc as pb_grpc
from tests.server_fixtures import KNOWN_ITEM, KNOWN_USER
from tests.test_bad_input import served_app

CALL_TIMEOUT_S = 20.0
INVALID = grpc.StatusCode.INVALID_ARGUMENT
HUGE = 10_000
#: The most characters a message about one huge field may have: enough for what to fix, far
#: from the metadata limit.
SHORT = 600
#: gRPC's default metadata limit: a message must stay well under it on the wire.
METADATA_LIMIT = 8 * 1024
ELLIPSIS = "\u2026"


def long_text(char: str = "x", n: int = HUGE) -> str:
    return char * n


# ---- shown ----------------------------------------------------------------------------------

def test_a_short_value_is_quoted_whole_like_repr() -> None:
    for value in ("nope", "", "u1", "with space", "é-ü", "\U0001f600", "x" * SHOWN_CHARS):
        assert shown(value) == repr(value)


def test_a_long_value_is_cut_and_says_how_long_it_was() -> None:
    assert shown("a" * HUGE) == f"'{'a' * SHOWN_CHARS}{ELLIPSIS}' (10,000 characters)"
    assert shown("a" * (SHOWN_CHARS + 1)).endswith(f"' ({SHOWN_CHARS + 1} characters)")
    assert shown("abcdef", limit=3) == f"'abc{ELLIPSIS}' (6 characters)"


def test_non_printable_characters_are_escaped_and_escapes_are_never_split() -> None:
    assert shown("a\nb'c\\") == "'a\\nb\\'c\\\\'"
    cut = shown("\x00" * 100, limit=10)  # '\x00' shows as 4 characters: two fit in 10
    assert cut == f"'\\x00\\x00{ELLIPSIS}' (100 characters)"


@settings(max_examples=300, deadline=None, derandomize=True)
@given(value=st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=300),
       limit=st.integers(0, 80))
def test_shown_is_bounded_valid_utf8_and_a_true_prefix(value: str, limit: int) -> None:
    """Any text (lone surrogates and control characters included): the result is valid
    UTF-8, its quoted part is at most ``limit`` characters, and it reads back as a prefix."""
    out = shown(value, limit)
    out.encode("utf-8")  # raises on a lone surrogate or a cut code point
    quoted, _, rest = out.rpartition("'")
    if rest:  # cut: "'<body>…' (N characters)"
        assert rest == f" ({len(value):,} characters)"
        assert quoted.endswith(ELLIPSIS)
        body = quoted[1:-1]
    else:
        body = quoted[1:]
    assert len(body) <= max(limit, 0)
    assert value.startswith(ast.literal_eval(f"'{body}'"))


# ---- bounded_message ------------------------------------------------------------------------

def test_a_message_that_fits_is_unchanged() -> None:
    text = "unknown surface 'nope'; known surfaces: home, item_page, search"
    assert bounded_message(text) == text
    assert bounded_message("x" * MESSAGE_WIRE_BYTES) == "x" * MESSAGE_WIRE_BYTES


def test_a_long_message_is_cut_to_the_limit_and_says_so() -> None:
    out = bounded_message("y" * 50_000)
    assert wire_size(out) <= MESSAGE_WIRE_BYTES
    assert out.startswith("y" * 1_000)
    assert out.endswith("[message cut: it was 50,000 characters]")


@pytest.mark.parametrize("char", ["\U0001f600", "\u00e9", "%", "\ud800", "\n"])
def test_the_cap_counts_bytes_as_grpc_sends_them(char: str) -> None:
    """Wide characters cost up to 12 bytes percent-encoded: the cap holds on the wire, the
    result is valid UTF-8 (a lone surrogate is escaped), and no code point is cut."""
    out = bounded_message("head: " + char * 5_000, limit=1_000)
    assert wire_size(out) <= 1_000
    out.encode("utf-8")
    assert out.startswith("head: ")


def test_wire_size_matches_grpc_percent_encoding() -> None:
    assert wire_size("abc ~") == 5
    assert wire_size("%") == 3
    assert wire_size("\u00e9") == 6  # two UTF-8 bytes, each %XX
    assert wire_size("\U0001f600") == 12
    assert wire_size("\n") == 3


# ---- through a real server ------------------------------------------------------------------

@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    app = served_app(tmp_path_factory.mktemp("echo-bounds"))
    channel = grpc.insecure_channel(app.address)
    try:
        yield pb_grpc.RecommenderStub(channel)
    finally:
        channel.close()
        app.stop(grace=1.0)


def invalid_details(call: Any) -> str:
    """The details of a call that must fail with INVALID_ARGUMENT and a short message."""
    with pytest.raises(grpc.RpcError) as err:
        call()
    code, details = err.value.code(), str(err.value.details())
    assert code == INVALID, (code, details[:300])
    assert len(details) < SHORT, details[:300]
    assert wire_size(details) < METADATA_LIMIT // 4
    return details


def ask(**fields: Any) -> pb.RecommendRequest:
    request: dict[str, Any] = {"user_id": KNOWN_USER, "surface": "home", "k": 5}
    request.update(fields)
    return pb.RecommendRequest(**request)


RECOMMEND_CASES: list[tuple[str, pb.RecommendRequest, list[str]]] = [
    ("surface, k=0", ask(surface=long_text("s"), k=0),
     ["unknown surface 'sss", "(10,000 characters)", "known surfaces: home"]),
    ("surface of emoji", ask(surface=long_text("\U0001f600")),
     ["unknown surface '\U0001f600", "(10,000 characters)"]),
    ("user_id", ask(user_id=long_text("u")), ["user_id is 10,000 characters"]),
    ("context id", ask(context_item_ids=[long_text("c")]),
     ["context_item_ids[0] is 10,000 characters"]),
    ("exclude id", ask(exclude_item_ids=["i1", long_text("e")]),
     ["exclude_item_ids[1] is 10,000 characters"]),
    ("category", ask(categories=[long_text("k")]),
     ["categories[0]: category 'kkk", "(10,000 characters)", "is not 1-64 characters"]),
    ("category of emoji", ask(categories=["books", long_text("\U0001f600")]),
     ["categories[1]: category '\U0001f600", "(10,000 characters)"]),
]


@pytest.mark.parametrize(("request_", "expected"), [c[1:] for c in RECOMMEND_CASES],
                         ids=[c[0] for c in RECOMMEND_CASES])
def test_a_huge_recommend_field_is_invalid_argument_with_a_short_message(
    stub: Any, request_: pb.RecommendRequest, expected: list[str]
) -> None:
    details = invalid_details(lambda: stub.Recommend(request_, timeout=CALL_TIMEOUT_S))
    for part in expected:
        assert part in details, details


def item(**fields: Any) -> pb.ItemInfo:
    info: dict[str, Any] = {"item_id": KNOWN_ITEM}
    info.update(fields)
    return pb.ItemInfo(**info)


ITEM_CASES: list[tuple[str, list[pb.ItemInfo], list[str]]] = [
    ("item_id", [item(item_id=long_text("i"), hidden=True)],
     ["items[0] ('iii", "(10,000 characters)", "item_id is 10,000 characters"]),
    ("category", [item(categories=[long_text("k")])],
     ["items[0] ('i1'): category 'kkk", "(10,000 characters)", "is not 1-64 characters"]),
    ("three items, two huge fields each",
     [item(item_id=long_text(c), categories=[long_text("k")]) for c in "abc"],
     ["items[0] ('aaa", "items[2] ('ccc", "nothing was applied"]),
    ("clear_categories with categories",
     [item(item_id=long_text("i"), clear_categories=True, categories=["books"])],
     ["items[0] ('iii", "(10,000 characters)", "sets clear_categories and lists categories"]),
]


@pytest.mark.parametrize(("items", "expected"), [c[1:] for c in ITEM_CASES],
                         ids=[c[0] for c in ITEM_CASES])
def test_a_huge_update_items_field_is_invalid_argument_with_a_short_message(
    stub: Any, items: list[pb.ItemInfo], expected: list[str]
) -> None:
    request = pb.UpdateItemsRequest(items=items)
    details = invalid_details(lambda: stub.UpdateItems(request, timeout=CALL_TIMEOUT_S))
    for part in expected:
        assert part in details, details


def test_a_huge_delete_user_id_is_invalid_argument_with_a_short_message(stub: Any) -> None:
    request = pb.DeleteUserRequest(user_id=long_text("u"))
    details = invalid_details(lambda: stub.DeleteUser(request, timeout=CALL_TIMEOUT_S))
    assert "user_id is 10,000 characters long" in details


def event(**fields: Any) -> pb.Event:
    base: dict[str, Any] = {"user_id": "echo-u", "item_id": KNOWN_ITEM, "event": "view"}
    base.update(fields)
    return pb.Event(**base)


def test_huge_event_fields_are_rejected_one_by_one_with_short_reasons(stub: Any) -> None:
    """RecordEvents judges events alone: each huge field is REJECTED with a reason naming the
    field and its length (the call itself succeeds), and the reasons stay short."""
    cases = [
        (event(event_id=long_text("e")), "event_id is 10,000 characters long"),
        (event(user_id=long_text("u")), "user_id is 10,000 characters long"),
        (event(item_id=long_text("i")), "item_id is 10,000 characters long"),
        (event(event=long_text("t")), "event is 10,000 characters long"),
        # Within the id limit but not a known type: the name is shown cut, with its length.
        (event(event="t" * 250), "unknown event type 'ttt"),
    ]
    request = pb.RecordEventsRequest(events=[c[0] for c in cases], request_id=long_text("r"))
    response = stub.RecordEvents(request, timeout=CALL_TIMEOUT_S)
    assert response.rejected == len(cases)
    for (_, reason), result in zip(cases, response.results, strict=True):
        assert result.status == pb.REJECTED
        assert reason in result.reason, result.reason
        assert len(result.reason) < SHORT, result.reason[:300]
    assert "(250 characters)" in response.results[-1].reason


def test_the_server_answers_normally_afterwards(stub: Any) -> None:
    answer = stub.Recommend(ask(), timeout=CALL_TIMEOUT_S)
    assert len(answer.items) == 5
