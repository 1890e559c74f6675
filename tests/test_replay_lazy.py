"""Lazy publishing in replay: one publish per ask that needs it, the answers of eager publishing."""

from __future__ import annotations

import numpy as np

from recserver.ann.embeddings import interaction_matrix
from recserver.config import RecServerConfig, config_from_document
from recserver.eval.replay_engine import Replayer, run_mode
from recserver.eval.replay_graph import GraphReplayer, time_ordered
from recserver.eval.replay_modes import parse_mode
from recserver.eval.replay_sessions import Ask, cut_timeline
from recserver.eval.split import cutoff_time
from recserver.graph.synthetic_churn import generate_churn


def small_config() -> RecServerConfig:
    return config_from_document({"surfaces": {"home": {
        "budget_ms": 2_000, "sla_p99_ms": 2_000, "walk": {"steps": 5_000},
        "fallback": {"tiers": ["popular", "trending"]}}}})


def test_lazy_publishing_gives_the_answers_of_eager_publishing_with_fewer_publishes() -> None:
    cols = time_ordered(generate_churn(12_000, seed=4, days=2.0))
    cutoff = cutoff_time(cols.timestamp, 0.25)
    timeline = cut_timeline(cols, cutoff, probe_every_s=21_600.0, probe_users=10,
                            max_sessions=150)
    config = small_config()
    answers: dict[bool, list[tuple[str, list[str]]]] = {}
    seen: dict[bool, list[int]] = {}
    replayers: dict[bool, GraphReplayer] = {}
    for lazy in (False, True):
        replayer = GraphReplayer(config, "home", parse_mode("realtime"), cols, cutoff, lazy=lazy)
        replayers[lazy] = replayer
        got: list[tuple[str, list[str]]] = []
        snapshot_edges: list[int] = []

        def on_ask(ask: Ask, r: Replayer, got: list[tuple[str, list[str]]] = got,
                   edges: list[int] = snapshot_edges) -> None:
            assert isinstance(r, GraphReplayer)
            edges.append(interaction_matrix(r.snapshot).nnz)  # distinct user-item pairs
            got.append((ask.user, r.answer(ask, 10).items))

        try:
            run_mode(parse_mode("realtime"), replayer, timeline, k=10, catalogue=1_000,
                     on_ask=on_ask)
        finally:
            replayer.close()
        answers[lazy], seen[lazy] = got, snapshot_edges
    eager, lazy_r = replayers[False], replayers[True]
    assert len(answers[True]) == len(timeline.asks)
    assert seen[True] == seen[False]  # every ask read a snapshot of the same events
    assert answers[True] == answers[False]
    assert sum(1 for _, items in answers[True] if items) > 0.9 * len(timeline.asks)
    # One publish at most per ask, where eager publishing made one per second with events.
    assert lazy_r.publishes <= len(timeline.asks) < eager.publishes
    assert lazy_r.publishes + lazy_r.skipped_publishes == eager.publishes
    assert lazy_r.applied == eager.applied
    assert np.isfinite(lazy_r.publish_cpu_s)
