"""The ``recommend`` command's footer says which limit set the budget."""

from __future__ import annotations

from recserver.cli.recommend import budget_line, format_table
from recserver.proto.recserver.v1 import recommender_pb2 as pb


def answer(budget_ms: float, limited_by: str) -> pb.RecommendResponse:
    return pb.RecommendResponse(budget_ms=budget_ms, budget_limited_by=limited_by,
                                server_elapsed_ms=3.0)


def test_a_larger_asked_budget_is_reported_as_lowered_to_the_surface() -> None:
    line = budget_line(answer(60.0, "surface"), asked_ms=100.0)
    assert "60.0 ms budget" in line
    assert "the surface's; the asked 100 ms can only lower it" in line


def test_the_limit_that_set_the_budget_is_named() -> None:
    assert budget_line(answer(20.0, "request"), asked_ms=20.0).endswith("(set by the request)")
    assert budget_line(answer(60.0, "surface")).endswith("(set by the surface)")
    assert "(set by the client)" in format_table(answer(8.0, "client"), asked_budget_ms=50.0)
