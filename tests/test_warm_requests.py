"""A worker answers every surface once, user and item context, before it says SERVING."""

from __future__ import annotations

from typing import Any

import pytest

from recserver.node.worker import warm_requests
from recserver.service.types import Recommendation, RecommendQuery
from tests.service_fixtures import clustered_graph, make_recommender, surface_config


def test_every_surface_answers_a_user_and_an_item_context(monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    live = clustered_graph()
    recommender = make_recommender(live, surface_config())
    asked: list[tuple[RecommendQuery, Recommendation]] = []
    real = recommender.recommend

    def recording(query: RecommendQuery, **kwargs: Any) -> Recommendation:
        answer = real(query, **kwargs)
        asked.append((query, answer))
        return answer

    monkeypatch.setattr(recommender, "recommend", recording)
    assert warm_requests(recommender, live.current, ["home", "item_page"]) == 4
    kinds = {(q.surface, q.user_id != "", q.context_item_ids != ()) for q, _ in asked}
    assert kinds == {("home", True, False), ("home", False, True),
                     ("item_page", True, False), ("item_page", False, True)}
    for query, answer in asked:
        assert live.current.users.get(query.user_id) is not None or query.context_item_ids
        assert answer.items, query  # a real answer, not an empty one
