"""``trending:W`` replay modes: the most-clicked items of the window before each ask."""

from __future__ import annotations

import numpy as np
import pytest

from recserver.config import RecServerConfig, config_from_document
from recserver.eval.replay import ReplayOptions, format_document, replay
from recserver.eval.replay_modes import parse_mode
from recserver.eval.replay_sessions import Ask
from recserver.eval.replay_trending import TrendingReplayer
from recserver.graph.events import Event, EventColumns
from recserver.graph.synthetic_churn import generate_churn


def small_config() -> RecServerConfig:
    return config_from_document({"surfaces": {"home": {
        "budget_ms": 2_000, "sla_p99_ms": 2_000, "walk": {"steps": 5_000},
        "fallback": {"tiers": ["popular"]}}}})


def test_trending_modes_parse_with_any_window() -> None:
    mode = parse_mode("trending:15m")
    assert (mode.name, mode.kind, mode.window_s, mode.freshness_s) == (
        "trending:15m", "trending", 900.0, 450.0)
    assert parse_mode("trending:3600").name == "trending:1h"
    for bad in ("trending", "trending:0", "trending:1h@1m"):
        with pytest.raises(ValueError):
            parse_mode(bad)


def test_counts_only_the_window_before_the_ask_and_drops_the_users_items() -> None:
    t = 1.7e9
    rows = [("a", "old", t - 3_600.0)] * 1 + [(f"u{n}", "old", t - 3_000.0) for n in range(9)]
    rows += [(f"v{n}", "hot", t - 300.0) for n in range(3)]
    rows += [("me", "mine", t - 200.0), ("w", "mine", t - 100.0), ("w2", "mine", t - 100.0),
             ("w3", "mine", t - 50.0)]
    rows += [(f"x{n}", "future", t) for n in range(20)]  # at the ask: never counted
    cols = EventColumns.from_events([Event(u, i, "click", 1.0, ts) for u, i, ts in rows])
    replayer = TrendingReplayer(parse_mode("trending:15m"), cols)
    order = np.argsort(cols.timestamp, kind="stable")
    assert np.all(np.diff(order) > 0)  # from_events kept time order
    me = replayer.answer(Ask(t, "me", frozenset(), 0), k=5)
    assert me.items == ["hot"] and not me.cold  # "mine" is the user's own; "old" too far back
    stranger = replayer.answer(Ask(t, "nobody", frozenset(), 1), k=5)
    assert stranger.items == ["mine", "hot"] and stranger.cold
    hour = TrendingReplayer(parse_mode("trending:1h"), cols)
    assert hour.answer(Ask(t, "nobody", frozenset(), 2), k=1).items == ["old"]


def test_on_the_churn_log_trending_beats_frozen() -> None:
    cols = generate_churn(30_000, seed=2, days=3.0)
    opts = ReplayOptions(k=10, test_fraction=0.2, modes="frozen,trending:15m",
                         probe_users=0, max_sessions=300, tune_baselines=False)
    doc = replay(small_config(), cols, opts, "churn")
    by = {r["mode"]: r for r in doc["modes"]}
    assert set(by) == {"frozen", "trending:15m"}
    assert by["trending:15m"]["kind"] == "trending"
    assert by["trending:15m"]["recall@10"] > 2 * max(by["frozen"]["recall@10"], 0.01)
    assert by["trending:15m"]["window_events"] > 0
    assert "trending:15m" in format_document(doc)  # a row of the table like any mode
