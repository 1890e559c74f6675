"""The ``recommend`` command's table and footer: item tiers, degraded, score, budget."""

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


def blended(*, degraded: bool, reasons: tuple[str, ...] = ()) -> pb.RecommendResponse:
    return pb.RecommendResponse(
        items=[pb.Item(item_id="i1", score=0.0123, source=pb.GRAPH),
               pb.Item(item_id="i2", score=0.0081, source=pb.ANN_FALLBACK),
               pb.Item(item_id="i3", score=0.4, source=pb.POPULAR)],
        source=pb.BLENDED, degraded=degraded, degraded_reasons=list(reasons), coverage=1.0,
        budget_ms=60.0, budget_limited_by="surface", server_elapsed_ms=3.0,
    )


def rows(table: str) -> list[list[str]]:
    body = table.split("\n\n")[0].splitlines()[1:]
    return [line.split() for line in body]


def test_items_of_a_blended_answer_name_their_tier_not_a_failure() -> None:
    table = format_table(blended(degraded=False))
    assert [row[-1] for row in rows(table)] == ["graph", "ann", "popular"]
    assert "fallback" not in table
    # A partial walk's items are the walk's too; the footer says it was cut short.
    partial = pb.RecommendResponse(items=[pb.Item(item_id="i1", score=1.0,
                                                  source=pb.GRAPH_PARTIAL)])
    assert rows(format_table(partial))[0][-1] == "graph"


def test_the_footer_says_degraded_no_or_yes_with_the_reasons() -> None:
    footer = format_table(blended(degraded=False)).split("\n\n")[1].splitlines()
    assert "degraded   no" in footer
    assert not any(line.startswith("reasons") for line in footer)
    degraded = format_table(blended(degraded=True, reasons=("deadline", "few_candidates")))
    assert "degraded   yes: deadline, few_candidates" in degraded.splitlines()


def test_the_footer_explains_the_score_column() -> None:
    lines = format_table(blended(degraded=False)).splitlines()
    score = [line for line in lines if line.startswith("score  ")]
    assert len(score) == 1
    assert "walk visits" in score[0] and "1.0 = its best" in score[0]
    assert "fused" in score[0] and "this answer only" in score[0]
    assert not [line for line in format_table(pb.RecommendResponse()).splitlines()
                if line.startswith("score  ")]  # no items, no score to explain


def test_an_answer_over_its_budget_says_by_how_much() -> None:
    late = pb.RecommendResponse(budget_ms=2.0, budget_limited_by="request",
                                server_elapsed_ms=3.62, degraded=True,
                                degraded_reasons=["over_budget"])
    assert budget_line(late, asked_ms=2.0) == (
        "time       3.62 ms of a 2.0 ms budget (set by the request); OVER BUDGET by 1.62 ms")
    assert "degraded   yes: over_budget" in format_table(late, asked_budget_ms=2.0)
    assert "OVER" not in budget_line(answer(60.0, "surface"))
