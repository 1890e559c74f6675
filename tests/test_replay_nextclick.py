"""``replay --protocol next-click``: ask with the item just clicked, score the next click."""

from __future__ import annotations

import pytest

from recserver.cli import main
from recserver.config import RecServerConfig, config_from_document
from recserver.eval.metrics import Scores, reciprocal_rank_at_k
from recserver.eval.replay import ReplayOptions, format_document, replay
from recserver.eval.replay_engine import Replayer
from recserver.eval.replay_nextclick import cut_next_clicks
from recserver.eval.replay_sessions import Ask
from recserver.graph.events import Event, EventColumns
from recserver.graph.synthetic_churn import generate_churn


def small_config() -> RecServerConfig:
    return config_from_document({"surfaces": {"home": {
        "budget_ms": 2_000, "sla_p99_ms": 2_000, "walk": {"steps": 5_000},
        "fallback": {"tiers": ["popular"]}}}})


def test_pairs_within_the_gap_to_an_item_new_to_the_user_with_the_previous_as_context() -> None:
    t = 1.7e9
    rows = [("u", "old", t - 100.0),  # before the cutoff: history, never a context
            ("u", "a", t + 10.0), ("u", "b", t + 70.0),  # ask at +70: context a, next b
            ("u", "old", t + 100.0),  # an item the user had: not asked
            ("u", "c", t + 100.0),  # the same second as the previous line: not asked
            ("u", "d", t + 5_000.0),  # more than 30 minutes later: not asked
            ("u", "e", t + 5_060.0),
            ("v", "x", t + 1.0), ("v", "y", t + 20.0)]
    cols = EventColumns.from_events([Event(u, i, "click", 1.0, ts) for u, i, ts in rows])
    timeline = cut_next_clicks(cols, t, gap_s=1_800.0, probe_users=0)
    got = [(a.t - t, a.user, a.context, sorted(a.relevant), a.since_last_s)
           for a in timeline.asks]
    assert got == [(20.0, "v", ("x",), ["y"], 19.0), (70.0, "u", ("a",), ["b"], 60.0),
                   (5_060.0, "u", ("d",), ["e"], 60.0)]
    assert (timeline.sessions, timeline.sessions_without_new_items) == (4, 1)


def test_mrr_is_one_over_the_rank_of_the_first_relevant_item() -> None:
    assert reciprocal_rank_at_k(["a", "b", "c"], {"c"}, 3) == pytest.approx(1 / 3)
    assert reciprocal_rank_at_k(["a", "b", "c"], {"c"}, 2) == 0.0
    scores = Scores(k=2, catalogue=3, top_items=frozenset())
    scores.add(["a", "b"], {"a"}, 0.0, "")
    scores.add(["a", "b"], {"b"}, 0.0, "")
    assert scores.summary()["mrr@2"] == pytest.approx(0.75)


def test_next_click_replay_asks_with_the_context_and_reports_hit_rate_and_mrr() -> None:
    cols = generate_churn(30_000, seed=2, days=3.0)
    contexts: list[tuple[str, ...]] = []

    def on_ask(ask: Ask, replayer: Replayer) -> None:
        if not ask.probe:
            contexts.append(ask.context)

    opts = ReplayOptions(k=10, test_fraction=0.2, modes="realtime,frozen,trending:15m",
                         probe_users=0, max_sessions=300, tune_baselines=False,
                         protocol="next-click")
    doc = replay(small_config(), cols, opts, "churn", on_ask=on_ask)
    assert doc["protocol"] == "next-click"
    by = {r["mode"]: r for r in doc["modes"]}
    assert len(contexts) == 3 * doc["sessions"]["asked"] and all(len(c) == 1 for c in contexts)
    for record in by.values():
        assert 0.0 <= record["mrr@10"] <= record["hit_rate@10"] <= 1.0
        assert record["recall@10"] == pytest.approx(record["hit_rate@10"])  # one item each
    assert by["realtime"]["hit_rate@10"] > by["frozen"]["hit_rate@10"]
    assert by["trending:15m"]["mrr@10"] > 0
    text = format_document(doc)
    assert "mrr@10" in text and "next clicks" in text


def test_cli_protocol_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--synthetic", "churn:8000", "--modes", "trending:1h", "-k", "5",
                 "--protocol", "next-click", "--stability-every", "0"]) == 0
    assert "mrr@5" in capsys.readouterr().out
    with pytest.raises(SystemExit) as bad:
        main(["replay", "--synthetic", "8000", "--protocol", "next-item"])
    assert bad.value.code == 2
