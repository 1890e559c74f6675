"""The trending tier: decayed recent counts kept by the builder, ranked by the workers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recserver.config import ConfigError, config_from_document
from recserver.graph.config import GraphConfig
from recserver.graph.events import Event, EventColumns
from recserver.graph.live import LiveGraph
from recserver.graph.trending import TrendingCounters, half_life_key
from recserver.node.layout import RunDir
from recserver.node.mapped import MappedGraph
from recserver.node.snapshot_files import SnapshotWriter
from recserver.service.fallback import FallbackRequest, PopularTier, TierNotReady
from recserver.service.trending import TrendingTier, keep_trending, trending_half_lives

T = 1.7e9
HL_MIN = 15.0


def config(half_life_minutes: float = HL_MIN, tiers: tuple[str, ...] = ("trending", "popular")):
    return config_from_document({"surfaces": {
        "news": {"fallback": {"tiers": list(tiers)},
                 "trending": {"half_life_minutes": half_life_minutes}},
        "home": {}}})


def clicks(pairs: list[tuple[str, str, float]]) -> EventColumns:
    return EventColumns.from_events([Event(u, i, "click", 1.0, t) for u, i, t in pairs])


def old_hit_and_new_burst() -> EventColumns:
    """``old``: 60 clicks a day before; ``new``: 6 clicks in the last minutes; ``mid``: 20
    clicks two hours before."""
    pairs = [(f"a{n}", "old", T - 86_400.0 + n) for n in range(60)]
    pairs += [(f"b{n}", "mid", T - 7_200.0 + n) for n in range(20)]
    pairs += [(f"c{n}", "new", T - 300.0 + 30 * n) for n in range(6)]
    return clicks(pairs)


def request(snap, surface: str = "news", k: int = 3) -> FallbackRequest:  # type: ignore[no-untyped-def]
    return FallbackRequest(snapshot=snap, surface=surface, user=-1,
                           context=np.empty(0, np.int32), exclude=np.empty(0, np.int32), k=k,
                           deadline=float("inf"))


def names(snap, items: np.ndarray) -> list[str]:  # type: ignore[no-untyped-def]
    return snap.items.names(items.tolist())


def trending_graph(cfg=None) -> LiveGraph:  # type: ignore[no-untyped-def]
    graph = LiveGraph(GraphConfig())
    keep_trending(graph, cfg or config())
    return graph


def test_counts_decay_by_the_half_life_over_any_gap() -> None:
    counters = TrendingCounters((60.0,))
    counters.add(np.array([0, 0, 1], np.int32), np.array([T, T, T - 60.0]))
    np.testing.assert_allclose(counters.at(T, 2)["60"], [2.0, 0.5], rtol=1e-6)
    np.testing.assert_allclose(counters.at(T + 120.0, 3)["60"], [0.5, 0.125, 0.0], rtol=1e-6)
    # Thousands of half-lives later (epoch moved): old counts vanish, new ones are exact.
    later = T + 60.0 * 5_000
    counters.add(np.array([1], np.int32), np.array([later]))
    np.testing.assert_allclose(counters.at(later + 60.0, 2)["60"], [0.0, 0.5], rtol=1e-6)
    counters.ensure((60.0, 3_600.0))
    assert counters.half_lives_s == (60.0, 3_600.0) and not counters.at(later, 2)["3600"].any()
    with pytest.raises(ValueError, match="> 0"):
        TrendingCounters((0.0,))


def test_a_new_burst_beats_an_old_hit_and_popular_keeps_its_meaning() -> None:
    graph = trending_graph()
    try:
        graph.ingest(old_hit_and_new_burst())
        snap = graph.publish(compact=True)
        # Counts are read at the newest event (T - 150), with the surface's half-life.
        counts = snap.trending[half_life_key(HL_MIN * 60.0)]
        new, old = snap.items.get("new"), snap.items.get("old")
        assert counts[new] == pytest.approx(sum(2 ** (-(150 - 30 * n) / 900) for n in range(6)),
                                            rel=1e-5)
        assert counts[old] < 1e-20
        tier = TrendingTier(lambda: config())
        tier.refresh(snap)
        items, scores = tier.fetch(request(snap))
        assert names(snap, items) == ["new", "mid", "old"]
        assert scores[0] == 1.0 and 0 < scores[2] < 1e-20 < scores[1] < 1
        popular = PopularTier()
        popular.refresh(snap)
        assert names(snap, popular.fetch(request(snap))[0])[0] == "old"
        # Seen items are excluded, as in every tier.
        seen = FallbackRequest(**{**request(snap).__dict__,
                                  "exclude": np.array([new], np.int32)})
        assert names(snap, tier.fetch(seen)[0]) == ["mid", "old"]
    finally:
        graph.stop()


def test_half_life_is_per_surface_and_decays_as_configured() -> None:
    long_cfg = config(half_life_minutes=48 * 60.0)  # two days: the heavy old item still wins
    graph = trending_graph(long_cfg)
    try:
        graph.ingest(old_hit_and_new_burst())
        snap = graph.publish(compact=True)
        tier = TrendingTier(lambda: long_cfg)
        tier.refresh(snap)
        assert names(snap, tier.fetch(request(snap))[0]) == ["old", "mid", "new"]
        # A surface whose half-life the builder keeps no counts for is not ready (next tier).
        tier_short = TrendingTier(lambda: config(half_life_minutes=5.0))
        tier_short.refresh(snap)
        with pytest.raises(TierNotReady):
            tier_short.fetch(request(snap))
    finally:
        graph.stop()


def test_the_builder_keeps_only_the_half_lives_surfaces_use() -> None:
    cfg = config_from_document({"surfaces": {
        "a": {"fallback": {"tiers": ["trending", "popular"]},
              "trending": {"half_life_minutes": 5}},
        "b": {"fallback": {"tiers": ["popular", "trending"]},
              "trending": {"half_life_minutes": 60}},
        "c": {"trending": {"half_life_minutes": 1}}}})  # not listed: no counts kept
    assert trending_half_lives(cfg) == (300.0, 3_600.0)
    graph = LiveGraph(GraphConfig())
    keep_trending(graph, config(tiers=("popular",)))
    assert graph.trending is None  # nothing to keep: publishes carry no trending arrays
    keep_trending(graph, cfg)  # a reload naming half-lives starts counting them
    assert graph.trending is not None and graph.trending.half_lives_s == (300.0, 3_600.0)


def test_config_errors_name_the_field_and_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"surfaces.news.trending.half_life_minutes: 0 is "
                       r"out of range; use a value > 0"):
        config(half_life_minutes=0)
    with pytest.raises(ConfigError, match="known tiers: ann, popular, trending"):
        config(tiers=("trendy",))
    with pytest.raises(ConfigError, match=r"surfaces.s.trending.half_life"):
        config_from_document({"surfaces": {"s": {"trending": {"half_life": 5}}}})


def test_workers_map_the_builders_counts_and_rank_the_same(tmp_path: Path) -> None:
    graph = trending_graph()
    try:
        graph.ingest(old_hit_and_new_burst())
        writer = SnapshotWriter(RunDir(tmp_path / "run"), keep_s=0.0)
        writer.write(graph.publish(compact=True))
        graph.ingest(clicks([(f"d{n}", "later", T + n) for n in range(10)]))
        writer.write(graph.publish())  # an overlay publish: counts travel with every one
        mapped = MappedGraph(RunDir(tmp_path / "run"))
        assert mapped.wait_ready(5.0)
        mine, theirs = graph.current, mapped.current
        assert set(theirs.trending) == set(mine.trending) == {"900"}
        np.testing.assert_array_equal(theirs.trending["900"], mine.trending["900"])
        assert not theirs.trending["900"].flags.writeable
        tiers = [TrendingTier(lambda: config()) for _ in range(2)]
        tiers[0].refresh(mine)
        tiers[1].refresh(theirs)
        got = [names(s, t.fetch(request(s))[0]) for s, t in zip((mine, theirs), tiers,
                                                                strict=True)]
        assert got[0] == got[1] == ["later", "new", "mid"]
    finally:
        graph.stop()


def test_counts_survive_a_restart_from_a_checkpoint() -> None:
    graph = trending_graph()
    try:
        graph.ingest(old_hit_and_new_burst())
        graph.publish(compact=True)
        graph.ingest(clicks([("c0", "mid", T - 100.0), ("e1", "new", T - 60.0)]))
        graph.publish()
        state = graph.capture_state()
        before = graph.current.trending["900"]
        restarted = trending_graph()
        try:
            restarted.restore_state(state)
            snap = restarted.publish(compact=True)
            after = snap.trending["900"]
            order = [snap.items.name(int(i)) for i in np.argsort(-after)[:3]]
            assert order == ["new", "mid", "old"]
            # Rebuilt from edges (one per user and item): close to the counts before.
            np.testing.assert_allclose(after, before, rtol=0.05, atol=1e-6)
        finally:
            restarted.stop()
    finally:
        graph.stop()
